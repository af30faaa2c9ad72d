import math

import pytest

from crossroads import Decision, RouteContext, RoutingError, TargetInfo
from crossroads.types import CostModel, Health, HealthStatus


def test_from_scores_picks_top_k_in_order():
    d = Decision.from_scores({"a": 0.1, "b": 0.7, "c": 0.5}, k=2, router="r")
    assert d.targets == ("b", "c")
    assert d.router == "r"
    with pytest.raises(RoutingError, match="chose 2 targets"):
        _ = d.target


def test_validate_rejects_non_candidate_missing_scores_and_nan():
    ok = Decision(targets=("a",), scores={"a": 1.0, "b": 0.0}, router="r")
    ok.validate(["a", "b"])
    with pytest.raises(RoutingError, match="'x', which is not a candidate; candidates: a, b") as e:
        Decision(targets=("x",), scores={"a": 1, "b": 0}, router="r").validate(["a", "b"])
    assert e.value.target == "x" and e.value.candidates == ("a", "b")
    with pytest.raises(RoutingError, match="no score for candidate"):
        Decision(targets=("a",), scores={"a": 1.0}, router="r").validate(["a", "b"])
    with pytest.raises(RoutingError, match="non-finite"):
        Decision(targets=("a",), scores={"a": math.nan, "b": 0}, router="r").validate(["a", "b"])
    with pytest.raises(RoutingError, match="chose no target"):
        Decision(targets=(), scores={"a": 1, "b": 0}, router="r").validate(["a", "b"])


def test_cost_model_estimate():
    c = CostModel(input_per_mtok=2.0, output_per_mtok=10.0, per_call=0.001)
    assert c.estimate(1_000_000, 100_000) == pytest.approx(0.001 + 2.0 + 1.0)


def test_available_candidates_skips_down_unless_all_down():
    a, b = TargetInfo(name="a"), TargetInfo(name="b")
    ctx = RouteContext(query="q", candidates=(a, b), health={"a": Health(status=HealthStatus.DOWN)})
    assert [c.name for c in ctx.available_candidates()] == ["b"]
    all_down = RouteContext(query="q", candidates=(a,), health={"a": Health(status=HealthStatus.DOWN)})
    assert [c.name for c in all_down.available_candidates()] == ["a"]
