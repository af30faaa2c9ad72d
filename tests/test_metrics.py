"""The field's metrics on hand-computed cases."""

import math

import numpy as np
import pytest

from crossroads.evals.metrics import (
    CurvePoint,
    aiq,
    aiq_scores,
    apgr,
    bootstrap_ci,
    cost_to_reach,
    quantile_thresholds,
    sample_rows,
    strong_share_for_pgr,
    upper_hull,
)


def test_upper_hull_drops_dominated_and_concave_points():
    pts = [CurvePoint(0.0, 0.5), CurvePoint(0.5, 0.6), CurvePoint(1.0, 0.9), CurvePoint(0.8, 0.4), CurvePoint(2.0, 0.9)]
    hull = upper_hull(pts)
    # (0.5, 0.6) lies below the segment (0,0.5)-(1,0.9) (0.7 there); (0.8,0.4) is dominated; (2,0.9) adds nothing
    assert [(p.cost, p.quality) for p in hull] == [(0.0, 0.5), (1.0, 0.9)]


def test_aiq_routerbench_shared_max_cost():
    # router A: hull (0,0.5)-(1,0.9); router B: a single point; router C reaches cost 2.0
    a = [CurvePoint(0.0, 0.5), CurvePoint(0.5, 0.6), CurvePoint(1.0, 0.9)]  # (0.5,0.6) is below the hull
    b = [CurvePoint(1.0, 0.8)]
    c = [CurvePoint(0.5, 0.4), CurvePoint(2.0, 0.7)]
    scores, m = aiq_scores({"a": a, "b": b, "c": c})
    assert m == 2.0  # the largest cost on any router's hull
    # A: trapezoid 0..1 = 0.7, then flat 0.9 from 1 to 2 = 0.9 -> (0.7 + 0.9) / 2
    assert scores["a"] == pytest.approx(0.8)
    # B, a single point (c=1, q=0.8): q * (M - c) / M = 0.4 (no "single point returns its quality")
    assert scores["b"] == pytest.approx(0.4)
    # C: integrated from its first point 0.5: (0.4 + 0.7) / 2 * 1.5 / 2
    assert scores["c"] == pytest.approx(0.4125)
    # alone, a single point's hull has no width: AIQ 0
    assert aiq_scores({"b": b})[0]["b"] == pytest.approx(0.0)
    assert aiq(a, 1.0) == pytest.approx(0.7)


def test_aiq_dominated_router_and_the_old_single_point_ranking():
    # the case: a single model at cost 1.0 must not outrank a router that beats it at 0.84 cost
    single = [CurvePoint(1.0, 0.65)]
    router = [CurvePoint(0.1, 0.5), CurvePoint(0.84, 0.66)]
    s, _ = aiq_scores({"single": single, "router": router})
    assert s["router"] > s["single"] == pytest.approx(0.0)
    # a dominated router: (1.0, 0.40) is below its best, so not on its hull, and does not set the maximum
    dominated = [CurvePoint(0.2, 0.3), CurvePoint(0.5, 0.35), CurvePoint(0.9, 0.45), CurvePoint(1.0, 0.40)]
    s2, m = aiq_scores({"router": router, "dominated": dominated})
    assert m == pytest.approx(0.9)
    # dominated hull: (0.2,.3)-(0.9,.45), integrated to M = 0.9: (0.3+0.45)/2*0.7 / 0.9
    assert s2["dominated"] == pytest.approx(0.2625 / 0.9)
    # router: hull ends at 0.84 and is extended flat to 0.9: ((0.5+0.66)/2*0.74 + 0.66*0.06) / 0.9
    assert s2["router"] == pytest.approx((0.4292 + 0.0396) / 0.9)
    # an equal-quality point at higher cost stays on RouterBench's hull and sets the shared maximum
    s3, m3 = aiq_scores({"x": [CurvePoint(0.0, 0.5), CurvePoint(1.0, 0.9), CurvePoint(2.0, 0.9)]})
    assert m3 == 2.0 and s3["x"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="below the router's largest hull cost"):
        aiq(router, 0.5)


def test_apgr_as_routellm_on_a_sweep_not_starting_at_zero():
    # RouteLLM evaluate.py: AUC over the measured shares only, weak/strong AUC over the same range
    shares = [0.2, 0.5, 0.9]
    q = [0.6, 0.75, 0.85]
    auc = (0.3 * (0.6 + 0.75) / 2) + (0.4 * (0.75 + 0.85) / 2)  # 0.2025 + 0.32 = 0.5225
    weak_auc, strong_auc = 0.5 * 0.7, 0.9 * 0.7
    assert apgr(shares, q, q_weak=0.5, q_strong=0.9) == pytest.approx((auc - weak_auc) / (strong_auc - weak_auc))
    assert apgr(shares, q, q_weak=0.5, q_strong=0.9) == pytest.approx(0.61607142857)
    # unsorted input is sorted by share; no (0, weak) / (1, strong) endpoints are added
    assert apgr([0.9, 0.2, 0.5], [0.85, 0.6, 0.75], 0.5, 0.9) == pytest.approx(0.61607142857)
    # linear recovery over the full 0..1 sweep is 0.5
    assert apgr([0.0, 0.25, 0.5, 0.75, 1.0], [0.5, 0.6, 0.7, 0.8, 0.9], 0.5, 0.9) == pytest.approx(0.5)
    assert math.isnan(apgr([0.3], [0.7], 0.5, 0.9))
    # 50% PGR (quality 0.7) between (0.2, PGR .25) and (0.5, PGR .625)
    assert strong_share_for_pgr(shares, q, 0.5, 0.9, 0.5) == pytest.approx(0.2 + 0.3 * (0.5 - 0.25) / (0.625 - 0.25))
    assert math.isnan(strong_share_for_pgr(shares, q, 0.5, 0.9, 0.95))


def test_quantile_thresholds_match_pandas_qcut_bins():
    scores = [0.1, 0.4, 0.4, 0.5, 0.9]
    # qcut(scores, 4) bin edges = 0, 25, 50, 75, 100th percentiles (linear interpolation)
    assert quantile_thresholds(scores, 4) == pytest.approx([0.1, 0.4, 0.4, 0.5, 0.9])
    x = np.arange(11, dtype=float)
    edges = quantile_thresholds(x, 10)
    assert edges == pytest.approx(list(range(11)))
    # routing strong when score >= edge (> for the last) sweeps the share from 100% to 0%
    # (edges lowered by 1e-9 as the evaluator does, so that float noise in the quantiles cannot drop a row)
    shares = [float((x >= t - 1e-9).mean()) if i < 10 else float((x > t).mean()) for i, t in enumerate(edges)]
    assert shares == pytest.approx([(11 - i) / 11 for i in range(10)] + [0.0])


def test_cost_to_reach_uses_measured_points_and_the_hull_between_them():
    # B lies below the hull A-C; hull vertices alone would say 1.0 (C) for target 0.58
    pts = [CurvePoint(0.1, 0.5), CurvePoint(0.4, 0.6), CurvePoint(1.0, 0.9)]
    r = cost_to_reach(pts, 0.58)
    # the hull A-C reaches 0.58 at 0.1 + (0.58 - 0.5) / (0.4 / 0.9) = 0.28, below B's measured 0.4
    assert r.cost == pytest.approx(0.28) and r.via == "hull" and r.measured_cost == pytest.approx(0.4)
    # on a vertex the measured point wins the tie
    r2 = cost_to_reach(pts, 0.5)
    assert r2.cost == pytest.approx(0.1) and r2.via == "measured"
    assert cost_to_reach(pts, 0.9).cost == pytest.approx(1.0)
    r3 = cost_to_reach(pts, 0.95)
    assert math.isnan(r3.cost) and r3.via == "unreached"


def test_latency_samples_cover_the_whole_test_set():
    idx = sample_rows(1000, 100, seed=0)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100 and list(idx) == sorted(idx)
    assert idx.min() < 100 and idx.max() > 900  # not the first 100 rows
    assert list(sample_rows(5, 100)) == [0, 1, 2, 3, 4]


def test_bootstrap_ci_covers_mean():
    x = np.r_[np.ones(70), np.zeros(30)]
    lo, hi = bootstrap_ci(x, n=2000, seed=1)
    assert lo < 0.7 < hi and hi - lo < 0.25
