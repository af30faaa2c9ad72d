"""Pheromone routing: intent tables, quality-gated asynchronous learning, bounds, persistence, bad input."""

import math
import threading

import pytest

from crossroads import (
    START,
    ConfigError,
    CostModel,
    Feedback,
    FeedbackError,
    Flow,
    RouteContext,
    SQLRecorder,
    TargetInfo,
    TraceStore,
    agent,
)
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

    def pick(q):
        return sum(r.route(ctx(q)).target == "a" for _ in range(200)) / 200

    assert pick("refund my money") > 0.8 and pick("app error again") < 0.2
    assert set(r.tau) == {"billing", "tech"}
    d = r.route(ctx("refund my money"))
    assert d.metadata["intent"] == "billing" and set(d.metadata["tau"]) == {"a", "b"} and "tau=" in d.rationale
    assert sum(d.scores.values()) == pytest.approx(1.0)


def test_max_min_updates_by_hand():
    # MMAS (Stuetzle & Hoos 2000): every edge enters at tau_max; each update evaporates every edge of the
    # table by (1 - rho) and deposits rho * utility * tau_max on a result that passed the gate
    r = PheromoneRouter(seed=0, tau_min=0.1, tau_max=2.0, evaporation=0.1, quality_gate=0.5, cost_weight=0.5)
    r.route(ctx("x"))  # registers a and b at tau_max
    only_a = RouteContext(query="x", candidates=CANDS[:1])
    d1 = r.route(only_a)
    r.feedback(Feedback(decision_id=d1.decision_id, reward=1.0, cost_usd=0.4))  # utility 1 - 0.5 * 0.4 = 0.8
    r.flush()
    assert r.tau["default"] == pytest.approx({"__start__->a": 2.0 * 0.9 + 0.1 * 0.8 * 2.0, "__start__->b": 1.8})
    d2 = r.route(only_a)
    r.feedback(Feedback(decision_id=d2.decision_id, reward=0.2))  # below the gate: no deposit, fades once more
    r.flush()
    assert r.tau["default"] == pytest.approx({"__start__->a": 1.96 * 0.9 * 0.9, "__start__->b": 1.62})
    assert (r.updates, r.gated_out) == (2, 1)
    for _ in range(60):  # 60 gated results: both edges reach the floor tau_min and stay there
        d = r.route(only_a)
        r.feedback(Feedback(decision_id=d.decision_id, reward=0.0))
    r.flush()
    assert r.tau["default"] == {"__start__->a": 0.1, "__start__->b": 0.1}


def test_success_is_reinforced_over_an_untried_candidate():
    # three equal candidates; for 400 decisions, a always succeeds and the others never get an outcome.
    # Evaporation reaches every edge, so b and c fall to tau_min (5 * 0.9^k < 0.05 once a has had 44 updates)
    # while a stays at tau_max: p(a) = 5 / (5 + 0.05 + 0.05) = 0.980
    cands = tuple(TargetInfo(name=n, cost=CostModel(per_call=0.01), quality=0.5) for n in "abc")
    r = PheromoneRouter(seed=3)
    for _ in range(400):
        d = r.route(RouteContext(query="q", candidates=cands))
        if d.target == "a":
            r.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    r.flush()
    assert r.tau["default"] == {"__start__->a": 5.0, "__start__->b": 0.05, "__start__->c": 0.05}
    d = r.route(RouteContext(query="q", candidates=cands))
    assert d.scores["a"] == pytest.approx(5 / 5.1) and d.scores["b"] == pytest.approx(0.05 / 5.1)
    picks = [r.route(RouteContext(query="q", candidates=cands)).target for _ in range(1000)]
    assert picks.count("a") > 20 * picks.count("b")


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


def test_online_suite_gives_pheromone_no_task_labels_and_a_warm_start():
    # two prompt clusters (near e0 and near e1); model m0 always right on the first, m1 on the second. Every
    # row carries the same task label, so intents built from task labels would merge the clusters (p = 0.5).
    import numpy as np

    from crossroads.evals.online import evaluate_online
    from crossroads.evals.query_routing import QueryData

    rng = np.random.default_rng(0)

    def data(n, tag):
        side = np.arange(n) % 2
        X = np.eye(4)[side] + 0.05 * rng.standard_normal((n, 4))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        Y = np.stack([side == 0, side == 1], axis=1).astype(np.float32)
        return QueryData([f"{tag} prompt {i}" for i in range(n)], ["same"] * n, ["m0", "m1"], X, Y, np.full((n, 2), 0.001))

    res = evaluate_online(data(200, "train"), data(100, "stream"), [("ph", "pheromone", {"clusters": 2})], None, window=50)
    ph = res["routers"]["ph"]
    assert ph["intents"] == 2 and ph["updates"] == 100  # updates counted on the stream only
    # after the warm start each cluster's right edge is at tau_max = 5 and the wrong one at tau_min = 0.05:
    # p(right) = 5 / 5.05 = 0.990 with equal heuristics; every stream decision is then on a learnt table
    assert ph["quality"] > 0.95
