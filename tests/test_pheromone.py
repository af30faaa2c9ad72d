"""Pheromone routing: intent tables, quality-gated asynchronous learning, bounds, persistence, bad input."""

import math
import threading

import pytest

from crossroads import START, ConfigError, CostModel, Feedback, FeedbackError, Flow, RouteContext, SQLRecorder, TargetInfo, TraceStore, agent
from crossroads.routers.pheromone import PheromoneRouter

CANDS = (TargetInfo(name="a", cost=CostModel(per_call=0.01), quality=0.5),
         TargetInfo(name="b", cost=CostModel(per_call=0.01), quality=0.5))
INTENTS = {"billing": ["refund my order", "I was charged twice"], "tech": ["the app crashes", "error on login"]}


def ctx(q):
    return RouteContext(query=q, candidates=CANDS)


def train(router, query, good, n=60):
    for _ in range(n):
        d = router.route(ctx(query))
        router.feedback(Feedback(decision_id=d.decision_id, reward=1.0 if d.target == good else 0.0))
    router.flush()


def test_learns_per_intent_without_interference():
    r = PheromoneRouter(intents=INTENTS, seed=1)
    train(r, "please refund me", "a")
    train(r, "it crashes at start", "b")
    pick = lambda q: sum(r.route(ctx(q)).target == "a" for _ in range(200)) / 200  # noqa: E731
    assert pick("refund my money") > 0.8 and pick("app error again") < 0.2
    assert set(r.tau) == {"billing", "tech"}
    d = r.route(ctx("refund my money"))
    assert d.metadata["intent"] == "billing" and set(d.metadata["tau"]) == {"a", "b"} and "tau=" in d.rationale
    assert sum(d.scores.values()) == pytest.approx(1.0)


def test_quality_gate_and_max_min_bounds():
    r = PheromoneRouter(seed=0, tau_min=0.1, tau_max=2.0, quality_gate=0.5)
    for _ in range(300):
        d = r.route(ctx("x"))
        r.feedback(Feedback(decision_id=d.decision_id, reward=1.0 if d.target == "a" else 0.2))
    r.flush()
    vals = list(r.tau["default"].values())
    assert all(0.1 <= v <= 2.0 for v in vals) and r.gated_out > 0
    assert r.tau["default"]["__start__->a"] > r.tau["default"]["__start__->b"]


def test_bad_feedback_is_refused_and_state_untouched():
    r = PheromoneRouter(seed=0)
    d = r.route(ctx("x"))
    before = {k: dict(v) for k, v in r.tau.items()}
    with pytest.raises(FeedbackError, match="unknown decision id 'nope'"):
        r.feedback(Feedback(decision_id="nope", reward=1.0))
    for bad in (math.nan, math.inf):
        with pytest.raises(FeedbackError, match="finite"):
            r.feedback(Feedback(decision_id=d.decision_id, reward=bad))
    with pytest.raises(FeedbackError, match="cost_usd must be finite"):
        r.feedback(Feedback(decision_id=d.decision_id, reward=1.0, cost_usd=math.nan))
    r.flush()
    assert r.tau == before and r.updates == 0


def test_decisions_never_wait_for_learning():
    r = PheromoneRouter(seed=0)
    gate = threading.Event()
    original = r._apply

    def slow_apply(*a):
        gate.wait(5)
        original(*a)

    r._apply = slow_apply  # the worker is stuck: decisions must still flow
    d = r.route(ctx("x"))
    r.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    for _ in range(50):
        r.route(ctx("x"))
    assert r.updates == 0
    gate.set()
    r.flush()
    assert r.updates == 1


def test_state_persists_and_corrupt_state_is_refused(tmp_path):
    path = tmp_path / "ph.json"
    r = PheromoneRouter(seed=0, state_path=str(path))
    train(r, "x", "a", n=30)
    r.save_state()
    again = PheromoneRouter(seed=0, state_path=str(path))
    assert again.tau == r.tau
    path.write_text("{broken")
    with pytest.raises(ConfigError, match="not a pheromone state file"):
        PheromoneRouter(state_path=str(path))
    keep = dict(again.tau["default"])
    with pytest.raises(ConfigError):
        again.load_state(str(path))
    assert again.tau["default"] == keep


def test_in_a_flow_with_feedback_recorded_as_learning_events(db_path):
    rec = SQLRecorder(str(db_path))
    router = PheromoneRouter(seed=0, recorder=rec, label="ants")
    flow = Flow("ants").add(agent("a", lambda t: "A"), agent("b", lambda t: "B"))
    flow.route(START, router, candidates=["a", "b"])
    app = flow.compile(recorder=rec)
    res = app.invoke("hello")
    decision_id = None
    rec.flush()
    run = TraceStore(db_path).get_run(res.run_id)
    decision_id = run["decisions"][0]["id"]
    assert run["decisions"][0]["metadata"]["tau"]  # the pheromone that produced the choice is in the trace
    app.feedback(Feedback(decision_id=decision_id, reward=1.0), router="ants")
    router.flush()
    rec.flush()
    kinds = [e["kind"] for e in TraceStore(db_path).events(kind="learning_update")]
    assert len(kinds) == 2  # the flow's record of the feedback, and the worker's applied update
