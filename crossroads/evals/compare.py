"""Compare two stored eval runs router by router (``crossroads eval compare`` and the ui's evals page)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["HEADLINE_METRICS", "compare_runs", "headline_metrics", "scalar_metrics", "test_set_differences"]

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
