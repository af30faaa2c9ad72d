"""Read-only queries behind ``crossroads ui``: runs with filters, one run, per-router statistics."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from ..tracing.schema import CallRow, DecisionRow, EventRow, RunRow, StepRow
from ..tracing.store import TraceStore

__all__ = ["RunFilter", "candidate_bars", "list_runs", "router_stats", "top2_margin"]

_TABLES: list[Any] = [m.__table__ for m in (RunRow, StepRow, DecisionRow, CallRow, EventRow)]  # type: ignore[attr-defined,union-attr]
RUNS, STEPS, DECISIONS, CALLS, EVENTS = _TABLES
LOW_CONFIDENCE_SCAN = 20_000
"""The routers page looks for low-confidence decisions among this many most recent decisions."""


@dataclass(frozen=True)
class RunFilter:
    flow: str | None = None
    status: str | None = None
    router: str | None = None
    target: str | None = None
    min_cost: float | None = None
    q: str | None = None
    """A run id prefix, or text the run's input contains."""
    limit: int = 50


def _cost_expr() -> Any:
    steps = select(func.coalesce(func.sum(STEPS.c.cost_usd), 0.0)).where(STEPS.c.run_id == RUNS.c.id).scalar_subquery()
    decisions = select(func.coalesce(func.sum(DECISIONS.c.cost_usd), 0.0)).where(DECISIONS.c.run_id == RUNS.c.id).scalar_subquery()
    return steps + decisions  # the run cost as crossroads.types.run_cost defines it: targets' steps + routers


def list_runs(store: TraceStore, f: RunFilter) -> list[dict[str, Any]]:
    """Most recent runs first matching ``f``, each with steps, decisions and cost."""
    q = select(RUNS).order_by(RUNS.c.started_at.desc()).limit(max(1, min(f.limit, 500)))
    if f.flow:
        q = q.where(RUNS.c.flow == f.flow)
    if f.status:
        q = q.where(RUNS.c.status == f.status)
    if f.router or f.target:
        conds = [DECISIONS.c.run_id == RUNS.c.id]
        if f.router:
            conds.append(DECISIONS.c.router == f.router)
        if f.target:
            conds.append(DECISIONS.c.chosen_json.like(f"%{json.dumps(f.target)}%"))
        q = q.where(exists(select(DECISIONS.c.id).where(and_(*conds))))
    if f.q:
        q = q.where(or_(RUNS.c.id.like(f"{f.q}%"), RUNS.c.input.contains(f.q, autoescape=True)))
    if f.min_cost is not None:
        q = q.where(_cost_expr() >= f.min_cost)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings().all()]
        ids = [r["id"] for r in rows]
        stats: dict[str, dict[str, float]] = defaultdict(lambda: {"steps": 0, "decisions": 0, "cost_usd": 0.0})
        if ids:
            for rid, n, cost in conn.execute(select(STEPS.c.run_id, func.count(), func.sum(STEPS.c.cost_usd))
                                             .where(STEPS.c.run_id.in_(ids)).group_by(STEPS.c.run_id)):
                stats[rid]["steps"] = n
                stats[rid]["cost_usd"] += cost or 0.0
            for rid, n, cost in conn.execute(select(DECISIONS.c.run_id, func.count(), func.sum(DECISIONS.c.cost_usd))
                                             .where(DECISIONS.c.run_id.in_(ids)).group_by(DECISIONS.c.run_id)):
                stats[rid]["decisions"] = n
                stats[rid]["cost_usd"] += cost or 0.0
    for r in rows:
        r.update(stats[r["id"]])
    return rows


def distinct_values(store: TraceStore) -> dict[str, list[str]]:
    """Flows, statuses and routers present (for the filter menus)."""
    with store.engine.connect() as conn:
        return {
            "flows": [r[0] for r in conn.execute(select(RUNS.c.flow).distinct().order_by(RUNS.c.flow))],
            "statuses": [r[0] for r in conn.execute(select(RUNS.c.status).distinct().order_by(RUNS.c.status))],
            "routers": [r[0] for r in conn.execute(select(DECISIONS.c.router).distinct().order_by(DECISIONS.c.router))],
        }


def top2_margin(scores: Sequence[float | None]) -> float | None:
    """Score of the best candidate minus the second best (None with fewer than two finite scores)."""
    finite = sorted((s for s in scores if s is not None and math.isfinite(s)), reverse=True)
    return finite[0] - finite[1] if len(finite) >= 2 else None


def candidate_bars(candidates: Sequence[Mapping[str, Any]], chosen: Sequence[str]) -> list[dict[str, Any]]:
    """Every candidate, best first, with a bar width in percent: the score itself when every score is in
    [0, 1] (probabilities, similarities), otherwise the score's share of the largest absolute score."""
    scores = [c.get("score") for c in candidates]
    finite = [s for s in scores if s is not None and math.isfinite(s)]
    unit = all(0.0 <= s <= 1.0 for s in finite)
    top = max((abs(s) for s in finite), default=0.0)
    out = []
    def order(c: Mapping[str, Any]) -> float:
        s = c.get("score")
        return -float(s) if s is not None and math.isfinite(s) else math.inf

    for c in sorted(candidates, key=order):
        s = c.get("score")
        if s is None or not math.isfinite(s):
            width = 0.0
        elif unit:
            width = s * 100
        else:
            width = abs(s) / top * 100 if top else 0.0
        out.append({"name": c.get("name"), "score": s, "width": round(width, 1), "chosen": c.get("name") in chosen,
                    "negative": s is not None and s < 0})
    return out


def _percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method) of an already sorted list."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def router_stats(store: TraceStore, *, margin_below: float = 0.1, low_limit: int = 50) -> list[dict[str, Any]]:
    """Per router: decisions per target, p50/p99 latency, routing-error rate (``routing_error`` events on
    its decisions / its decisions), fallback rate (``fallback`` events in runs it routed / its decisions),
    and its low-confidence decisions (top-2 margin below ``margin_below``) among the most recent
    :data:`LOW_CONFIDENCE_SCAN` decisions."""
    with store.engine.connect() as conn:
        per_target: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        totals: dict[str, int] = defaultdict(int)
        for router, chosen_json, n in conn.execute(select(DECISIONS.c.router, DECISIONS.c.chosen_json, func.count())
                                                   .group_by(DECISIONS.c.router, DECISIONS.c.chosen_json)):
            totals[router] += n
            for t in json.loads(chosen_json or "[]"):
                per_target[router][t] += n
        latencies: dict[str, list[float]] = defaultdict(list)
        for router, lat in conn.execute(select(DECISIONS.c.router, DECISIONS.c.latency_ms).order_by(DECISIONS.c.router, DECISIONS.c.latency_ms)):
            latencies[router].append(lat)
        errors: dict[str, int] = dict(conn.execute(select(DECISIONS.c.router, func.count()).select_from(
            EVENTS.join(DECISIONS, EVENTS.c.decision_id == DECISIONS.c.id)).where(EVENTS.c.kind == "routing_error")
            .group_by(DECISIONS.c.router)).all())
        routed = select(DECISIONS.c.router, DECISIONS.c.run_id).distinct().subquery()
        fallbacks: dict[str, int] = dict(conn.execute(select(routed.c.router, func.count()).select_from(
            EVENTS.join(routed, EVENTS.c.run_id == routed.c.run_id)).where(EVENTS.c.kind == "fallback")
            .group_by(routed.c.router)).all())
        recent = conn.execute(select(DECISIONS.c.id, DECISIONS.c.run_id, DECISIONS.c.router, DECISIONS.c.candidates_json,
                                     DECISIONS.c.chosen_json, DECISIONS.c.created_at)
                              .order_by(DECISIONS.c.created_at.desc()).limit(LOW_CONFIDENCE_SCAN)).mappings().all()
    low: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in recent:
        if len(low[d["router"]]) >= low_limit:
            continue
        m = top2_margin([c.get("score") for c in json.loads(d["candidates_json"] or "[]")])
        if m is not None and m < margin_below:
            low[d["router"]].append({"id": d["id"], "run_id": d["run_id"], "margin": m,
                                     "chosen": json.loads(d["chosen_json"] or "[]"), "created_at": d["created_at"]})
    out = []
    for router in sorted(totals):
        n = totals[router]
        lat = latencies[router]
        out.append({"router": router, "decisions": n,
                    "targets": sorted(per_target[router].items(), key=lambda kv: (-kv[1], kv[0])),
                    "p50_ms": _percentile(lat, 50), "p99_ms": _percentile(lat, 99),
                    "error_rate": errors.get(router, 0) / n, "fallback_rate": fallbacks.get(router, 0) / n,
                    "low_confidence": low.get(router, [])})
    return out
