"""The field's routing metrics, as defined in the benchmarks that published them.

Query-level (RouterBench / RouteLLM): quality and cost of picks, cost-quality curves, AIQ (one per
router, against the run's shared maximum cost), APGR over RouteLLM's quantile-calibrated sweep with the
strong-call shares for 50% and 80% PGR, cost to reach X% of the best single model on the achievable
curve. Agent selection (TCAndon-Router): see selection_metrics.py. Step-level (TwinRouterBench static track): case pass, exact match, trajectory
pass, cost savings, combined. Plus latency percentiles and bootstrap confidence intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CurvePoint",
    "Reach",
    "aiq",
    "aiq_scores",
    "apgr",
    "bootstrap_ci",
    "cost_to_reach",
    "decision_latencies_ms",
    "percentile",
    "quantile_thresholds",
    "sample_rows",
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


def _hull_extent(points: Sequence[CurvePoint]) -> float:
    """The largest cost on a router's non-decreasing hull as RouterBench keeps it: its points reaching
    the router's best quality (equal-quality points at higher cost stay on RouterBench's hull)."""
    top = max(p.quality for p in points)
    return max(p.cost for p in points if p.quality >= top)


def aiq(points: Sequence[CurvePoint], max_cost: float) -> float:
    """RouterBench's AIQ of one router (``calc_AIQ`` in withmartian/routerbench ``evaluation/AIQ.py``):
    the non-decreasing upper convex hull of its (cost, quality) points, extended flat to ``max_cost``
    (the largest cost among ALL routers compared in the run, see :func:`aiq_scores`), integrated by
    trapezoids from the hull's first point to ``max_cost`` and divided by ``max_cost``. A single point
    (c, q) scores q * (max_cost - c) / max_cost."""
    hull = upper_hull(points)
    if not hull or not math.isfinite(max_cost) or max_cost <= 0:
        return float("nan")
    if max_cost < hull[-1].cost - 1e-12:
        raise ValueError(f"max_cost {max_cost} is below the router's largest hull cost {hull[-1].cost}")
    xs = [p.cost for p in hull] + [max_cost]
    ys = [p.quality for p in hull] + [hull[-1].quality]
    area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))
    return float(area / max_cost)


def aiq_scores(curves: Mapping[str, Sequence[CurvePoint]]) -> tuple[dict[str, float], float]:
    """AIQ of every router of one run against the shared maximum cost (RouterBench ``calc_AIQ``: the
    largest cost on any router's non-decreasing hull). Returns ({router: AIQ}, that maximum cost);
    routers without points get NaN."""
    live = {k: v for k, v in curves.items() if v}
    if not live:
        return {k: float("nan") for k in curves}, float("nan")
    m = max(_hull_extent(v) for v in live.values())
    return {k: (aiq(v, m) if v else float("nan")) for k, v in curves.items()}, m


def pgr(quality: float, q_weak: float, q_strong: float) -> float:
    """Performance gap recovered."""
    return (quality - q_weak) / (q_strong - q_weak) if q_strong != q_weak else float("nan")


def apgr(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float) -> float:
    """RouteLLM's APGR (``apgr_metric`` in lm-sys/RouteLLM ``routellm/evals/evaluate.py``): with the
    points sorted by strong-call share, (AUC - weak AUC) / (strong AUC - weak AUC), where AUC is the
    trapezoid area of quality over the MEASURED share range and the weak/strong AUCs are the constant
    weak/strong qualities over that same range. No endpoints are added: RouteLLM's calibration
    (:func:`quantile_thresholds`) makes the sweep cover 0-100% itself. NaN with fewer than two distinct
    shares or equal weak and strong qualities."""
    pts = sorted(zip(shares, qualities, strict=False))
    xs = np.array([p[0] for p in pts], dtype=float)
    ys = np.array([p[1] for p in pts], dtype=float)
    if len(pts) < 2 or xs[-1] == xs[0] or q_strong == q_weak:
        return float("nan")
    widths = np.diff(xs)
    auc = float(np.sum(widths * (ys[1:] + ys[:-1]) / 2))
    span = float(xs[-1] - xs[0])
    weak_auc, strong_auc = q_weak * span, q_strong * span
    return (auc - weak_auc) / (strong_auc - weak_auc)


def quantile_thresholds(scores: Sequence[float] | np.ndarray, n_bins: int = 10) -> list[float]:
    """RouteLLM's calibration: the bin edges of ``pandas.qcut(scores, n_bins)`` (the 0, 1/n, ..., 1
    quantiles of the router's strong-win scores). Routing to the strong model when score >= edge (> for
    the last edge) sweeps the strong-call share evenly from 100% down to 0%."""
    arr = np.asarray(scores, dtype=float)
    if arr.size == 0:
        raise ValueError("quantile_thresholds needs at least one score")
    return [float(x) for x in np.quantile(arr, np.linspace(0.0, 1.0, n_bins + 1))]


def strong_share_for_pgr(shares: Sequence[float], qualities: Sequence[float], q_weak: float, q_strong: float,
                         target: float) -> float:
    """Smallest strong-model call share at which the router reaches ``target`` PGR (e.g. 0.5, 0.8);
    linear interpolation between measured points (no endpoints added); NaN if never reached."""
    pts = sorted(zip(shares, qualities, strict=False))
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


@dataclass(frozen=True, slots=True)
class Reach:
    """Where a router first reaches a target quality."""

    cost: float
    """Lowest cost reaching the target (NaN if never)."""
    via: str
    """``measured`` (a measured operating point), ``hull`` (a mix of two measured settings on the upper
    convex hull, interpolated) or ``unreached``."""
    measured_cost: float
    """Lowest cost of a measured point reaching the target (NaN if none)."""


def cost_to_reach(points: Sequence[CurvePoint], quality: float) -> Reach:
    """Lowest cost on the router's achievable curve that reaches ``quality`` (issue 15): the measured
    points, and the upper convex hull between them (randomly mixing two settings achieves any point on
    the segment joining them). A measured point below the hull can reach the target; so can a hull
    segment before any measured point does. Returns the cost and which of the two gave it."""
    tol = 1e-12
    measured = [p.cost for p in points if p.quality >= quality - tol]
    m_cost = min(measured) if measured else float("nan")
    h_cost = float("nan")
    hull = upper_hull(points)
    for i, p in enumerate(hull):
        if p.quality >= quality - tol:
            if i == 0:
                h_cost = p.cost
            else:
                a = hull[i - 1]
                h_cost = a.cost + (quality - a.quality) * (p.cost - a.cost) / (p.quality - a.quality)
            break
    if math.isnan(m_cost) and math.isnan(h_cost):
        return Reach(float("nan"), "unreached", float("nan"))
    if math.isnan(h_cost) or (not math.isnan(m_cost) and m_cost <= h_cost + tol):
        return Reach(m_cost, "measured", m_cost)
    return Reach(h_cost, "hull", m_cost)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100); NaN for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def sample_rows(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(size, n)`` rows drawn uniformly without replacement across all ``n`` rows
    (latency samples must cover the whole test set, not its first rows)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def decision_latencies_ms(router: Any, queries: Sequence[str], candidates: Sequence[Any], embedder: Any, *,
                          warm_up: bool = False) -> list[float]:
    """Milliseconds per ``router.route`` call, one call per query, with the embedder's cache switched off so
    that real query embedding is timed, not cache hits. ``warm_up``: one untimed call first (builds lazy
    indexes outside the timing)."""
    import time

    from ..types import RouteContext

    cands = tuple(candidates)
    if warm_up and queries:
        router.route(RouteContext(query=queries[0], candidates=cands))
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
