"""Compare two stored eval runs router by router (``crossroads eval compare`` and the ui's evals page)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["HEADLINE_METRICS", "compare_runs", "headline_metrics", "scalar_metrics"]

HEADLINE_METRICS: dict[str, list[str]] = {
    "query_routing": ["best_quality", "quality_at_half_cost", "aiq", "apgr", "cost_to_95pct_best_single", "latency_p50_ms"],
    "step_routing": ["case_pass", "exact_match", "trajectory_pass", "cost_savings", "combined"],
    "tool_graph": ["correct", "llm_calls", "reroutes", "silent_failures"],
    "online_routing": ["quality", "cost", "last_window_quality"],
    "skill_routing": ["recall@1", "recall@10", "mrr", "ndcg@10", "latency_p50_ms"],
}
"""The metrics ``crossroads eval compare`` shows per suite kind (other kinds: agent selection's)."""
_SELECTION = ["top1_accuracy", "set_accuracy", "oos_recall", "latency_p50_ms"]


def headline_metrics(kind: str) -> list[str]:
    """The headline metric names of a suite kind."""
    return list(HEADLINE_METRICS.get(kind, _SELECTION))


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics that are plain numbers (curves, points, intervals and texts left out)."""
    return {k: v for k, v in metrics.items() if _num(v)}


def compare_runs(a: Mapping[str, Any], b: Mapping[str, Any], *, keys: list[str] | None = None,
                 all_metrics: bool = False) -> list[dict[str, Any]]:
    """Rows ``{router, metric, a, b, delta}`` (delta = B - A when both are finite numbers, else None) for every
    router in either run: the headline metrics of A's kind, or with ``all_metrics`` every numeric metric either
    run has (headline ones first)."""
    keys = list(keys) if keys is not None else headline_metrics(str(a.get("kind")))
    rows = []
    for router in sorted(set(a["results"]) | set(b["results"])):
        ma, mb = a["results"].get(router, {}), b["results"].get(router, {})
        names = list(keys)
        if all_metrics:
            names += sorted((set(scalar_metrics(ma)) | set(scalar_metrics(mb))) - set(keys))
        for k in names:
            va, vb = ma.get(k), mb.get(k)
            ok = _num(va) and _num(vb) and math.isfinite(va) and math.isfinite(vb)
            rows.append({"router": router, "metric": k, "a": va, "b": vb, "delta": (vb - va) if ok else None})
    return rows
