"""Read-only queries behind ``crossroads ui``: runs with filters, one run, per-router statistics."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, exists, func, literal_column, or_, select

from ..tracing.schema import CallRow, DecisionRow, EventRow, RunRow, StepRow
from ..tracing.store import TraceStore

__all__ = ["ROUTER_SAMPLE", "RunFilter", "candidate_bars", "chosen_score", "histogram", "list_runs", "router_stats",
           "top2_margin"]

_TABLES: list[Any] = [m.__table__ for m in (RunRow, StepRow, DecisionRow, CallRow, EventRow)]  # type: ignore[attr-defined,union-attr]
RUNS, STEPS, DECISIONS, CALLS, EVENTS = _TABLES


@dataclass(frozen=True)
class RunFilter:
    flow: str | None = None
    status: str | None = None
    router: str | None = None
    target: str | None = None
    min_cost: float | None = None
    q: str | None = None
    """A run id prefix, or text the run's input contains."""
    started_from: float | None = None
    """Runs started at or after this time (epoch seconds)."""
    started_to: float | None = None
    """Runs started before this time (epoch seconds)."""
    limit: int = 50


def _cost_expr() -> Any:
    steps = select(func.coalesce(func.sum(STEPS.c.cost_usd), 0.0)).where(STEPS.c.run_id == RUNS.c.id).scalar_subquery()
    decisions = select(func.coalesce(func.sum(DECISIONS.c.cost_usd), 0.0)).where(DECISIONS.c.run_id == RUNS.c.id).scalar_subquery()
    return steps + decisions  # the run cost as crossroads.types.run_cost defines it: targets' steps + routers


def list_runs(store: TraceStore, f: RunFilter, *, since: float | None = None) -> list[dict[str, Any]]:
    """Most recent runs first matching ``f`` (and started at or after ``since``), each with steps, decisions
    and cost."""
    q = select(RUNS).order_by(RUNS.c.started_at.desc()).limit(max(1, min(f.limit, 500)))
    if since is not None:
        q = q.where(RUNS.c.started_at >= since)
    if f.flow:
        q = q.where(RUNS.c.flow == f.flow)
    if f.status:
        q = q.where(RUNS.c.status == f.status)
    if f.started_from is not None:
        q = q.where(RUNS.c.started_at >= f.started_from)
    if f.started_to is not None:
        q = q.where(RUNS.c.started_at < f.started_to)
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


_Key = tuple[str, str]
"""A router on the routers page: (flow, router name)."""

ROUTER_SAMPLE = 2_000
"""Latency percentiles, score and margin histograms and low-confidence decisions are computed over each
router's most recent decisions, at most this many (``?sample=`` changes it): their cost stays bounded
whatever the DB's size, and the recent decisions are the ones an operator watches for drift. Counts per
target, the time series and the error and fallback rates are exact, aggregated in SQL over every decision."""


def _nice_width(span: float, buckets: int) -> float:
    """The smallest 'round' bucket width (1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1 min, 2 min, 5 min, ... 1 day,
    then whole days) that covers ``span`` seconds in fewer than ``buckets`` buckets."""
    for w in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400):
        if span / w < buckets:
            return float(w)
    return 86400.0 * math.ceil(span / 86400 / buckets + 1e-9)


def histogram(values: Sequence[float], *, bins: int = 10, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (default: the values' range); the last bin
    is closed (a value equal to ``hi`` counts there), values outside [lo, hi] are left out."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if lo is None:
        lo = min(vals, default=0.0)
    if hi is None:
        hi = max(vals, default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    counts = [0] * bins
    width = (hi - lo) / bins
    for v in vals:
        if lo <= v <= hi:
            counts[min(int((v - lo) / width), bins - 1)] += 1
    return {"lo": lo, "hi": hi, "counts": counts, "edges": [lo + i * width for i in range(bins + 1)], "n": sum(counts)}


def chosen_score(candidates: Sequence[Mapping[str, Any]], chosen: Sequence[str]) -> float | None:
    """The score of the chosen candidate (the best of them for a fan-out); None if none has a finite score."""
    scores = [c.get("score") for c in candidates if c.get("name") in chosen]
    finite = [float(s) for s in scores if s is not None and math.isfinite(s)]
    return max(finite) if finite else None


def router_stats(store: TraceStore, *, margin_below: float = 0.1, low_limit: int = 50, buckets: int = 24,
                 sample: int = ROUTER_SAMPLE, hours: float | None = None) -> list[dict[str, Any]]:
    """Per router of each flow (two flows' routers of the same name are different routers: one entry each,
    keyed by ``(flow, router)``): decisions per target (all, and per time bucket), routing-error rate
    (``routing_error`` events on its decisions / its decisions), fallback rate (``fallback`` events in runs it
    routed / its decisions); over its most recent ``sample`` decisions: p50/p99 latency, histograms of the
    chosen candidate's score and of the top-2 margin, and the low-confidence decisions (margin <
    ``margin_below``). ``hours`` keeps only the decisions of the last that many hours before the newest
    decision."""
    sample = max(1, min(int(sample), 1_000_000))
    decided = DECISIONS.join(RUNS, DECISIONS.c.run_id == RUNS.c.id)
    with store.engine.connect() as conn:
        window: list[Any] = []
        if hours is not None:
            newest = conn.execute(select(func.max(DECISIONS.c.created_at))).scalar()
            if newest is not None:
                window = [DECISIONS.c.created_at >= newest - hours * 3600]
        # apart, each is one index lookup (together, SQLite scans the index)
        tmin = conn.execute(select(func.min(DECISIONS.c.created_at)).where(*window)).scalar()
        tmax = conn.execute(select(func.max(DECISIONS.c.created_at)).where(*window)).scalar()
        per_target: dict[_Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        totals: dict[_Key, int] = defaultdict(int)
        series: dict[_Key, dict[str, list[int]]] = defaultdict(dict)
        width = _nice_width((tmax or 0.0) - (tmin or 0.0), buckets)
        start = math.floor((tmin or 0.0) / width) * width
        nb = int(((tmax or 0.0) - start) // width) + 1 if tmin is not None else 0
        if tmin is not None:  # one scan, aggregated in SQL: the totals are the sums of the buckets
            bucket = func.cast((DECISIONS.c.created_at - start) / width, Integer)
            parsed: dict[str, list[str]] = {}
            for flow, router, b, chosen_json, n in conn.execute(
                    select(RUNS.c.flow, DECISIONS.c.router, bucket, DECISIONS.c.chosen_json, func.count())
                    .select_from(decided).where(*window)
                    .group_by(RUNS.c.flow, DECISIONS.c.router, bucket, DECISIONS.c.chosen_json)):
                key = (flow, router)
                totals[key] += n
                chosen = parsed.get(chosen_json)
                if chosen is None:
                    chosen = parsed[chosen_json] = json.loads(chosen_json or "[]")
                for t in chosen:
                    per_target[key][t] += n
                    series[key].setdefault(t, [0] * nb)[min(max(int(b), 0), nb - 1)] += n
        errors: dict[_Key, int] = {(f, r): n for f, r, n in conn.execute(
            select(RUNS.c.flow, DECISIONS.c.router, func.count())
            .select_from(EVENTS.join(decided, EVENTS.c.decision_id == DECISIONS.c.id))
            .where(EVENTS.c.kind == "routing_error", *window).group_by(RUNS.c.flow, DECISIONS.c.router))}
        routed = (select(RUNS.c.flow, DECISIONS.c.router, DECISIONS.c.run_id).select_from(decided).where(*window)
                  .distinct().subquery())
        fb_runs = select(EVENTS.c.run_id, func.count().label("n")).where(EVENTS.c.kind == "fallback").group_by(EVENTS.c.run_id).subquery()
        fallbacks: dict[_Key, int] = {(f, r): n for f, r, n in conn.execute(
            select(routed.c.flow, routed.c.router, func.sum(fb_runs.c.n))
            .select_from(fb_runs.join(routed, fb_runs.c.run_id == routed.c.run_id))
            .group_by(routed.c.flow, routed.c.router))}
        # most recent first: on SQLite by rowid (the order rows were written; the router index holds it, so no
        # sort of all the router's rows), elsewhere by created_at
        order = literal_column("rowid").desc() if store.url.startswith("sqlite") else DECISIONS.c.created_at.desc()
        recent: dict[_Key, list[Any]] = {}
        for flow, router in totals:
            recent[(flow, router)] = list(conn.execute(
                select(DECISIONS.c.id, DECISIONS.c.run_id, DECISIONS.c.latency_ms, DECISIONS.c.candidates_json,
                       DECISIONS.c.chosen_json, DECISIONS.c.created_at)
                .where(DECISIONS.c.router == router, DECISIONS.c.run_id.in_(select(RUNS.c.id).where(RUNS.c.flow == flow)),
                       *window).order_by(order).limit(sample)))
    out = []
    for key in sorted(totals, key=lambda k: (k[1], k[0])):  # by router name, then flow: same names side by side
        flow, router = key
        n = totals[key]
        lat = sorted(r[2] for r in recent[key])
        chosen_scores: list[float] = []
        margins: list[float] = []
        low: list[dict[str, Any]] = []
        parsed_chosen: dict[str, list[str]] = {}
        for did, run_id, _lat, cand_json, chosen_json, created in recent[key]:
            cands = json.loads(cand_json or "[]")
            chosen = parsed_chosen.get(chosen_json)
            if chosen is None:
                chosen = parsed_chosen[chosen_json] = json.loads(chosen_json or "[]")
            cs = chosen_score(cands, chosen)
            if cs is not None:
                chosen_scores.append(cs)
            m = top2_margin([c.get("score") for c in cands])
            if m is None:
                continue
            margins.append(m)
            if m < margin_below and len(low) < low_limit:
                low.append({"id": did, "run_id": run_id, "margin": m, "chosen": chosen, "created_at": created})
        unit = all(0.0 <= s <= 1.0 for s in chosen_scores)
        out.append({"flow": flow, "router": router, "decisions": n,
                    "targets": sorted(per_target[key].items(), key=lambda kv: (-kv[1], kv[0])),
                    "series": {"start": start, "width": width, "buckets": nb,
                               "targets": sorted(series[key].items(), key=lambda kv: (-sum(kv[1]), kv[0]))},
                    "sample": len(recent[key]),
                    "sample_since": recent[key][-1][5] if recent[key] else None,
                    "p50_ms": _percentile(lat, 50), "p99_ms": _percentile(lat, 99),
                    "score_hist": histogram(chosen_scores, lo=0.0 if unit else None, hi=1.0 if unit else None),
                    "margin_hist": histogram(margins, lo=0.0, hi=1.0 if unit else None),
                    "error_rate": errors.get(key, 0) / n, "fallback_rate": (fallbacks.get(key) or 0) / n,
                    "low_confidence": low})
    return out
