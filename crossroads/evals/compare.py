"""Compare two stored eval runs router by router (``crossroads eval compare`` and the ui's evals page)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["HEADLINE_METRICS", "aiq_ceiling", "compare_runs", "compare_warnings", "comparison", "headline_metrics",
           "scalar_metrics", "test_set_differences"]

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


_DATA_KEYS = ("dataset", "train", "test", "format", "test_fraction", "validation_fraction", "seed", "limit", "generated",
              "strong", "weak")


def test_set_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Why two eval runs were NOT scored on the same test rows (empty when they were, as far as the stored
    runs tell): a different suite kind, data file hashes, data settings (dataset, --train/--test files,
    split fraction, seed, --limit...) or number of test rows. A metric difference between such runs mixes
    the routers' change with the data's."""
    out = []
    if a.get("kind") != b.get("kind"):
        out.append(f"suite kind {a.get('kind')} vs {b.get('kind')}")
    if (a.get("data_hashes") or {}) != (b.get("data_hashes") or {}):
        out.append("data files differ (sha256)")
    da, db = (a.get("config") or {}).get("data") or {}, (b.get("config") or {}).get("data") or {}
    for k in _DATA_KEYS:
        if da.get(k) != db.get(k):
            out.append(f"data {k}: {da.get(k)!r} vs {db.get(k)!r}")
    na, nb = (a.get("summary") or {}).get("n_test"), (b.get("summary") or {}).get("n_test")
    if na is not None and nb is not None and na != nb:
        out.append(f"test rows: {na} vs {nb}")
    return out


def aiq_ceiling(run: Mapping[str, Any]) -> float | None:
    """The cost ceiling M a query-routing run integrated AIQ up to (the largest hull cost over the routers that
    ran): the run's summary ``aiq_max_cost``, or for runs stored before it was kept there, recomputed from the
    stored curves exactly as the run computed it. None for other kinds or when no router has a curve."""
    if run.get("kind") != "query_routing":
        return None
    m = (run.get("summary") or {}).get("aiq_max_cost")
    if isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m):
        return float(m)
    from .metrics import CurvePoint, aiq_scores

    curves = {k: [CurvePoint(float(p["cost"]), float(p["quality"])) for p in v.get("points") or []
                  if _num(p.get("cost")) and _num(p.get("quality"))]
              for k, v in (run.get("results") or {}).items() if isinstance(v, Mapping)}
    if not any(curves.values()):
        return None
    _, ceiling = aiq_scores(curves)
    return float(ceiling) if math.isfinite(ceiling) else None


def _two(x: float, y: float) -> tuple[str, str]:
    """``x`` and ``y`` with the fewest decimals (3 or more) that tell them apart."""
    for d in range(3, 13):
        sx, sy = f"{x:.{d}f}", f"{y:.{d}f}"
        if sx != sy:
            return sx, sy
    return repr(x), repr(y)


def compare_warnings(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Why some of the two runs' metric differences do not mean what they seem (empty when none applies):
    AIQ is comparable only between runs with the same cost ceiling M, which depends on which routers ran
    (``--only``, ``--router``), not only on the router being compared."""
    out = []
    if a.get("kind") == b.get("kind") == "query_routing":
        ma, mb = aiq_ceiling(a), aiq_ceiling(b)
        ida, idb = str(a.get("id", "A"))[:8], str(b.get("id", "B"))[:8]
        if ma is not None and mb is not None and not math.isclose(ma, mb, rel_tol=1e-9, abs_tol=1e-12):
            sa, sb = _two(ma, mb)
            out.append(f"AIQ ceilings differ: run A ({ida}) integrates AIQ up to M = {sa}, run B ({idb}) up to "
                       f"M = {sb} (M is the run's largest hull cost, set by every router in the run); AIQ "
                       "differences between these runs are not comparable. Compare AIQ of runs with the same "
                       "routers (same --only/--router)")
        elif (ma is None) != (mb is None):
            out.append(f"AIQ ceiling unknown for run {ida if ma is None else idb}: AIQ differences may not be "
                       "comparable")
    return out


def comparison(a: Mapping[str, Any], b: Mapping[str, Any], *, all_metrics: bool = False) -> dict[str, Any]:
    """Everything ``crossroads eval compare --json`` reports: the rows of :func:`compare_runs`, the
    :func:`test_set_differences` and the :func:`compare_warnings`."""
    return {"a": a.get("id"), "b": b.get("id"), "rows": compare_runs(a, b, all_metrics=all_metrics),
            "test_set_differences": test_set_differences(a, b), "warnings": compare_warnings(a, b)}
