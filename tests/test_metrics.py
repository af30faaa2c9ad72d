"""The field's metrics on hand-computed cases."""

import math

import numpy as np
import pytest

from crossroads.evals.metrics import (
    CurvePoint,
    aiq,
    apgr,
    bootstrap_ci,
    cost_to_reach,
    strong_share_for_pgr,
    upper_hull,
)


def test_upper_hull_drops_dominated_and_concave_points():
    pts = [CurvePoint(0.0, 0.5), CurvePoint(0.5, 0.6), CurvePoint(1.0, 0.9), CurvePoint(0.8, 0.4), CurvePoint(2.0, 0.9)]
    hull = upper_hull(pts)
    # (0.5, 0.6) lies below the segment (0,0.5)-(1,0.9) (0.7 there); (0.8,0.4) is dominated; (2,0.9) adds nothing
    assert [(p.cost, p.quality) for p in hull] == [(0.0, 0.5), (1.0, 0.9)]


def test_aiq_is_area_under_hull_over_cost_range():
    pts = [CurvePoint(0.0, 0.5), CurvePoint(1.0, 0.9)]
    assert aiq(pts) == pytest.approx(0.7)  # trapezoid (0.5 + 0.9) / 2
    pts2 = pts + [CurvePoint(2.0, 0.9)]
    assert aiq(pts2) == pytest.approx((0.7 * 1 + 0.9 * 1) / 2, abs=1e-3)  # flat after the last hull point
    assert aiq([CurvePoint(0.3, 0.6)]) == 0.6
    assert aiq([CurvePoint(0.5, 0.8)], cost_range=(0.0, 1.0)) == pytest.approx(0.4, abs=1e-3)  # 0 below 0.5


def test_apgr_and_strong_shares():
    # a router that recovers the gap linearly with the strong share has APGR 0.5
    shares = [0.25, 0.5, 0.75]
    q = [0.6, 0.7, 0.8]
    assert apgr(shares, q, q_weak=0.5, q_strong=0.9) == pytest.approx(0.5)
    assert strong_share_for_pgr(shares, q, 0.5, 0.9, 0.5) == pytest.approx(0.5)
    assert strong_share_for_pgr(shares, q, 0.5, 0.9, 0.8) == pytest.approx(0.8)
    # a perfect router recovers everything with 20% strong calls
    assert strong_share_for_pgr([0.2], [0.9], 0.5, 0.9, 0.8) == pytest.approx(0.16)
    assert apgr([0.2], [0.9], 0.5, 0.9) == pytest.approx(0.1 * 1 + 0.8 * 1.0)


def test_cost_to_reach():
    pts = [CurvePoint(0.2, 0.5), CurvePoint(0.4, 0.66), CurvePoint(0.9, 0.7)]
    assert cost_to_reach(pts, 0.65) == 0.4
    assert math.isnan(cost_to_reach(pts, 0.8))


def test_bootstrap_ci_covers_mean():
    x = np.r_[np.ones(70), np.zeros(30)]
    lo, hi = bootstrap_ci(x, n=2000, seed=1)
    assert lo < 0.7 < hi and hi - lo < 0.25
