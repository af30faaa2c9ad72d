"""The evals pages of ``crossroads ui``: stored eval runs (the trace DB's ``cr_eval_runs`` / ``cr_eval_results``),
one run's metrics and plots (inline SVG drawn from the stored metrics), and two runs side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..evals.compare import compare_runs, headline_metrics, scalar_metrics
from .charts import grouped_bars_svg, lines_svg

__all__ = ["eval_plots", "eval_table", "compare_table"]

_BAR_METRICS = {
    "step_routing": ["case_pass", "exact_match", "trajectory_pass", "cost_savings", "combined"],
    "skill_routing": ["recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"],
    "tool_graph": ["correct", "llm_calls", "reroutes", "silent_failures", "escalations"],
    "agent_selection": ["top1_accuracy", "in_scope_top1_accuracy", "set_accuracy"],
}


def eval_plots(run: Mapping[str, Any]) -> list[str]:
    """The plots of one eval run as SVG strings, from its stored per-router metrics: cost-quality curves
    (query routing), windowed learning curves (online routing), grouped bars of the headline metrics (others)."""
    kind = str(run.get("kind"))
    res: Mapping[str, Mapping[str, Any]] = run.get("results") or {}
    plots: list[str] = []
    if kind == "query_routing":
        series = {r: [(p.get("cost"), p.get("quality")) for p in m.get("points") or []] for r, m in res.items()}
        plots.append(lines_svg(series, title=f"{run.get('suite')}: cost-quality", xlabel="cost relative to the best single model (log)",
                               ylabel="mean quality", logx=True))
    elif kind == "online_routing":
        for key, title in (("curve_quality", "windowed quality over the stream"), ("curve_cost", "windowed cost (relative to best single)")):
            series = {r: list(enumerate(m.get(key) or [])) for r, m in res.items()}
            plots.append(lines_svg(series, title=title, xlabel="stream position (sampled)", ylabel=key.split("_")[1]))
    names = _BAR_METRICS.get(kind) or ([] if kind in ("query_routing", "online_routing") else _BAR_METRICS["agent_selection"])
    if kind == "query_routing":
        names = ["best_quality", "quality_at_half_cost", "aiq"]
    if names:
        values = {r: {k: m.get(k) for k in names if isinstance(m.get(k), (int, float))} for r, m in res.items()}
        plots.append(grouped_bars_svg(values, title=f"{run.get('suite')}: headline metrics"))
    return [p for p in plots if p]


def eval_table(run: Mapping[str, Any]) -> dict[str, Any]:
    """Columns (headline metrics first, then every other numeric metric) and one row per router."""
    res: Mapping[str, Mapping[str, Any]] = run.get("results") or {}
    head = headline_metrics(str(run.get("kind")))
    others = sorted({k for m in res.values() for k in scalar_metrics(m)} - set(head))
    cols = [k for k in head if any(k in m for m in res.values())] + others
    return {"columns": cols, "rows": [{"router": r, "values": [m.get(k) for k in cols]} for r, m in res.items()]}


def compare_table(a: Mapping[str, Any], b: Mapping[str, Any], *, all_metrics: bool = False) -> list[dict[str, Any]]:
    """``compare_runs`` rows (B - A per router and metric), each with ``change`` set from the sign of the difference:
    ``"up"``/``"down"`` for a change, ``None`` when equal or not comparable."""
    rows = compare_runs(a, b, all_metrics=all_metrics)
    for r in rows:
        d = r["delta"]
        r["change"] = None if d is None or d == 0 else ("up" if d > 0 else "down")
    return rows
