"""The field's routing metrics, as defined in the benchmarks that published them.

Query-level (RouterBench / RouteLLM): quality and cost of picks, cost-quality curves, AIQ, APGR with
the strong-call shares for 50% and 80% PGR, cost to reach X% of the best single model. Agent
selection (TCAndon-Router): see selection_metrics.py. Step-level (TwinRouterBench static track): case pass, exact match, trajectory
pass, cost savings, combined. Plus latency percentiles and bootstrap confidence intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CurvePoint",
    "aiq",
    "apgr",
    "bootstrap_ci",
    "cost_to_reach",
    "decision_latencies_ms",
    "percentile",
    "strong_share_for_pgr",
    "upper_envelope",
    "upper_hull",
]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One operating point of a router: total (or mean) cost and mean quality."""

    cost: float
    quality: float
    setting: float | None = None
    """The willingness-to-pay value (threshold, lambda) that produced it."""


def upper_envelope(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """The non-decreasing upper envelope: sorted by cost, each point's quality is the best reachable at
    that cost or less."""
    pts = sorted(points, key=lambda p: (p.cost, -p.quality))
    out: list[CurvePoint] = []
    best = -math.inf
    for p in pts:
        best = max(best, p.quality)
        out.append(CurvePoint(p.cost, best, p.setting))
    return out


def upper_hull(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """The non-decreasing upper convex hull (RouterBench): operating points reachable by mixing routers'
    settings, keeping only those that add quality as cost grows."""
    env = upper_envelope(points)
    hull: list[CurvePoint] = []
    for p in env:
        if hull and p.quality <= hull[-1].quality:
            continue  # costs more, adds nothing
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or below the segment a -> p
            if (b.quality - a.quality) * (p.cost - a.cost) <= (p.quality - a.quality) * (b.cost - a.cost):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def aiq(points: Sequence[CurvePoint], *, cost_range: tuple[float, float] | None = None) -> float:
    """RouterBench's AIQ: area under the non-decreasing upper convex hull of the (cost, quality) points,
    divided by the cost range (by default the router's own min..max cost). With ``cost_range`` the hull
    is held flat beyond its last point and is 0 below its first. A single point (or a zero-width range)
    returns its quality."""
    hull = upper_hull(points)
    if not hull:
        return float("nan")
    lo, hi = cost_range if cost_range else (min(p.cost for p in points), max(p.cost for p in points))
    if hi <= lo:
        return hull[-1].quality
    xs = np.array([p.cost for p in hull])
    ys = np.array([p.quality for p in hull])
    grid = np.linspace(lo, hi, 2001)
    vals = np.interp(grid, xs, ys, left=0.0, right=ys[-1])
    vals[grid < xs[0]] = 0.0
    trapz = getattr(np, "trapezoid", None) or np.trapz
    return float(trapz(vals, grid) / (hi - lo))


def pgr(quality: float, q_weak: float, q_strong: float) -> float:
    """Performance gap recovered."""
    return (quality - q_weak) / (q_strong - q_weak) if q_strong != q_weak else float("nan")


def apgr(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float) -> float:
    """RouteLLM's APGR: area under PGR vs. strong-call share over [0, 1] (trapezoids), with the
    endpoints (0, weak) and (1, strong) added."""
    pts = sorted(zip(shares, qualities))
    pts = [(0.0, q_weak)] + [(s, q) for s, q in pts if 0.0 <= s <= 1.0] + [(1.0, q_strong)]
    xs = np.array([p[0] for p in pts])
    ys = np.array([pgr(p[1], q_weak, q_strong) for p in pts])
    trapz = getattr(np, "trapezoid", None) or np.trapz
    return float(trapz(ys, xs))


def strong_share_for_pgr(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float,
                         target: float) -> float:
    """Smallest strong-model call share at which the router reaches ``target`` PGR (e.g. 0.5, 0.8);
    linear interpolation between measured points; NaN if never reached."""
    pts = sorted(zip(shares, qualities))
    pts = [(0.0, q_weak)] + list(pts) + [(1.0, q_strong)]
    prev = None
    for s, q in pts:
        g = pgr(q, q_weak, q_strong)
        if g >= target:
            if prev is None or prev[1] >= target:
                return s
            s0, g0 = prev
            return s0 + (target - g0) * (s - s0) / (g - g0) if g != g0 else s
        prev = (s, g)
    return float("nan")


def cost_to_reach(points: Sequence[CurvePoint], quality: float) -> float:
    """Lowest cost at which the router reaches ``quality``; NaN if it never does."""
    ok = [p.cost for p in points if p.quality >= quality - 1e-12]
    return min(ok) if ok else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100); NaN for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def decision_latencies_ms(router: Any, queries: Sequence[str], candidates: Sequence[Any], embedder: Any) -> list[float]:
    """Milliseconds per ``router.route`` call, one call per query, with the embedder's cache switched off so
    that real query embedding is timed, not cache hits."""
    import time

    from ..types import RouteContext

    cands = tuple(candidates)
    cache = getattr(embedder, "cache", None)
    embedder.cache = None
    out = []
    try:
        for q in queries:
            t = time.perf_counter()
            router.route(RouteContext(query=q, candidates=cands))
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        embedder.cache = cache
    return out


def bootstrap_ci(values: Sequence[float] | np.ndarray, stat: Callable[[np.ndarray], float] = np.mean, *,
                 n: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat`` over ``values`` (resampling rows)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n, arr.size))
    stats = np.array([stat(arr[i]) for i in idx]) if stat is not np.mean else arr[idx].mean(axis=1)
    return (float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2)))
