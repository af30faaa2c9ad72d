"""Router conformance: every registered router obeys the same protocol."""

import asyncio
import sys
import textwrap

import numpy as np
import pytest

from crossroads import (
    ConfigError,
    CostModel,
    Decision,
    Feedback,
    FeedbackError,
    RouteContext,
    RoutingError,
    TargetInfo,
    UnknownRouterError,
    available_routers,
    create_router,
)
from crossroads.agents.models import FunctionModel
from crossroads.routers import registry
from crossroads.skills import Skill
from crossroads.types import Health, HealthStatus

CANDS = (
    TargetInfo(name="cheap", cost=CostModel(input_per_mtok=0.1, output_per_mtok=0.1), quality=0.5),
    TargetInfo(name="mid", cost=CostModel(input_per_mtok=1.0, output_per_mtok=2.0), quality=0.7),
    TargetInfo(name="big", cost=CostModel(input_per_mtok=10.0, output_per_mtok=30.0), quality=0.9),
)
PARAMS = {
    "fixed": {"target": "mid"},
    "random": {"seed": 1},
    "cheapest": {},
    "most_capable": {},
    "rules": {"rules": [{"when": {"keyword": "refund"}, "route": "mid"}], "default": "cheap"},
    "semantic": {"routes": {"mid": ["I want my money back", "refund my purchase"], "big": ["explain quantum physics"]}},
    "trained": "trained.npz",
    "pheromone": {"seed": 0},
    "self_healing": {"graph": {"nodes": ["S", "cheap", "mid", "big", "G"], "start": "S", "goal": "G",
                               "edges": [{"source": "S", "target": t, "cost": c} for t, c in (("cheap", 0.1), ("mid", 0.2), ("big", 0.3))]
                               + [{"source": t, "target": "G", "cost": 0.1} for t in ("cheap", "mid", "big")]}},
    "classifier": "classifier.npz",
    "centroid": "centroid.npz",
    "knn_intent": "knn_intent.npz",
    "nearest": "nearest.npz",
    "reasoning": {"model": FunctionModel(lambda m: '{"reasoning": "a refund", "agents": ["mid"]}')},
    "router_r1": {"model": FunctionModel(lambda m: "<answer>ok</answer>" if m[-1].content.startswith("<information>")
                                         else "<think>refund</think><search>mid: refund my order</search>"),
                  "pool": {n: FunctionModel(lambda m: "done") for n in ("cheap", "mid", "big")}},
    "cascade": "trained.npz",
    "linucb": {"alpha": 0.5},
    "skills": {"skills": [Skill(name="cheap", description="Greetings, thanks and small talk"),
                          Skill(name="mid", description="Refund an order and give money back"),
                          Skill(name="big", description="Explain physics and prove theorems")]},
}
NON_INTERACTIVE = [n for n in PARAMS]
UTTERANCES = {"cheap": ["hi there", "thanks a lot", "good morning"],
              "mid": ["please refund my order", "I want my money back", "refund the charge"],
              "big": ["explain general relativity", "prove the theorem", "derive the equations of motion"]}


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    """Real trained routers (kNN quality predictor, softmax classifier) on real MiniLM embeddings."""
    import numpy as np

    from crossroads.agents.embeddings import default_embedder
    from crossroads.routers.intent import INTENT_ROUTERS, ClassifierRouter, SoftmaxClassifier
    from crossroads.routers.learned import LearnedRouter

    d = tmp_path_factory.mktemp("trained")
    texts = [t for ts in UTTERANCES.values() for t in ts]
    labels = [k for k, ts in UTTERANCES.items() for _ in ts]
    X = default_embedder().embed(texts)
    names = [c.name for c in CANDS]
    Y = np.array([[1.0 if n == lab else 0.0 for n in names] for lab in labels], dtype=np.float32)
    LearnedRouter.train("knn", X, Y, targets=names, params={"k": 1}, costs={"cheap": 0.1, "mid": 1, "big": 10}).save(d / "trained.npz")
    ClassifierRouter(classifier=SoftmaxClassifier(hidden=32, epochs=60, lr=1e-2).fit(X, labels)).save(d / "classifier.npz")
    for kind, extra in (("centroid", {}), ("knn_intent", {"k": 3}), ("nearest", {})):
        INTENT_ROUTERS[kind].fit(X, labels, **extra).save(d / f"{kind}.npz")
    return d


def params_for(name, trained_files):
    p = PARAMS[name]
    return {"path": str(trained_files / p)} if isinstance(p, str) else p


def ctx(query="please refund my order", **kw):
    return RouteContext(query=query, candidates=CANDS, **kw)


@pytest.mark.parametrize("name", NON_INTERACTIVE)
def test_conformance(name, trained_files):
    router = create_router(name, params_for(name, trained_files))
    d = router.route(ctx())
    assert isinstance(d, Decision)
    d.validate([c.name for c in CANDS])  # chosen are candidates, every candidate scored, finite
    assert d.router == name or name in ("trained", "linucb")  # a trained router keeps its trained label
    # async and batch variants agree with the sync one for deterministic routers
    if name not in ("random", "pheromone"):
        assert asyncio.run(router.aroute(ctx())).targets == d.targets
        assert [x.targets for x in router.route_batch([ctx(), ctx()])] == [d.targets, d.targets]
    # non-learning routers refuse feedback loudly; learning ones take it for their own decisions
    if router.learns:
        router.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    else:
        with pytest.raises(FeedbackError, match="does not learn"):
            router.feedback(Feedback(decision_id=d.decision_id, reward=1.0))


def test_every_builtin_is_covered_by_conformance():
    assert set(available_routers()) == set(PARAMS) | {"human"}


def test_cheapest_and_most_capable_and_down_targets():
    assert create_router("cheapest").route(ctx()).target == "cheap"
    assert create_router("most_capable").route(ctx()).target == "big"
    down = {"big": Health(status=HealthStatus.DOWN), "cheap": Health(status=HealthStatus.DOWN)}
    assert create_router("most_capable").route(ctx(health=down)).target == "mid"
    assert create_router("cheapest").route(ctx(health=down)).target == "mid"
    r = create_router("random", {"seed": 3})
    assert {r.route(ctx(health=down)).target for _ in range(20)} == {"mid"}


def test_random_is_seeded_and_covers_candidates():
    a = [create_router("random", {"seed": 7}).route(ctx()).target for _ in range(1)]
    b = [create_router("random", {"seed": 7}).route(ctx()).target for _ in range(1)]
    assert a == b
    r = create_router("random", {"seed": 0})
    assert {r.route(ctx()).target for _ in range(60)} == {"cheap", "mid", "big"}


def test_unknown_router_lists_known_and_suggests():
    with pytest.raises(UnknownRouterError) as e:
        create_router("rulez")
    msg = str(e.value)
    assert "unknown router 'rulez'" in msg and "cheapest" in msg and "did you mean 'rules'" in msg


def test_bad_params_name_the_router():
    with pytest.raises(ConfigError, match="router 'fixed'"):
        create_router("fixed", {"nope": 1})


def test_entry_point_plugin_is_loaded(tmp_path, monkeypatch):
    pkg = tmp_path / "crplugin_demo.py"
    pkg.write_text(textwrap.dedent('''
        from crossroads import Router
        class LongestRouter(Router):
            name = "longest"
            def route(self, ctx):
                return self.decide({c.name: len(c.name) for c in ctx.candidates}, rationale="longest name")
    '''))
    dist = tmp_path / "crplugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crplugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[crossroads.routers]\nlongest = crplugin_demo:LongestRouter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    assert "longest" in available_routers()
    assert create_router("longest").route(ctx()).target == "cheap"  # 'cheap' and 'mid'... longest name wins
    sys.modules.pop("crplugin_demo", None)


def test_rules_predicates_and_combinators():
    r = create_router("rules", {
        "rules": [
            {"name": "gold-long", "when": {"all": [{"metadata": {"tier": ["gold", "platinum"]}}, {"min_length": 10}]}, "route": "big"},
            {"name": "billing", "when": {"any": [{"keyword": ["refund", "invoice"]}, {"regex": r"charged?\s+twice"}]}, "route": "mid"},
            {"name": "short", "when": {"not": {"min_length": 5}}, "route": ["cheap", "mid"]},
        ],
        "default": "cheap",
    })
    d = r.route(ctx("a long question about my invoice", metadata={"tier": "gold"}))
    assert d.targets == ("big",) and d.metadata["matched_rules"] == ["gold-long", "billing"]
    assert d.scores == {"cheap": 0.0, "mid": 0.5, "big": 1.0}
    assert r.route(ctx("I was charged twice")).targets == ("mid",)
    assert "keyword 'invoice'" in r.route(ctx("Invoice please")).rationale
    assert r.route(ctx("hey")).targets == ("cheap", "mid")
    assert r.route(ctx("tell me a story")).rationale == "no rule matched; default"
    assert r.route(ctx("refundable")).targets == ("cheap",)  # word boundaries


def test_rules_without_default_raises_routing_error():
    r = create_router("rules", {"rules": [{"when": {"keyword": "x"}, "route": "mid"}]})
    with pytest.raises(RoutingError, match="no rule matched"):
        r.route(ctx("nothing here"))


@pytest.mark.parametrize("rules,fragment", [
    ([{"when": {"keywrd": "x"}, "route": "a"}], "unknown predicate 'keywrd' at rules[0].when"),
    ([{"when": {"regex": "("}, "route": "a"}], "not a valid regular expression"),
    ([{"when": {"all": []}, "route": "a"}], "rules[0].when.all must be a non-empty list"),
    ([{"route": "a"}], "rules[0] needs 'when' and 'route'"),
    ([{"when": {"keyword": "x"}, "route": "a", "priority": 1}], "unknown keys ['priority']"),
])
def test_rules_config_errors_name_the_path(rules, fragment):
    with pytest.raises(ConfigError) as e:
        create_router("rules", {"rules": rules})
    assert fragment in str(e.value)


def test_semantic_router_threshold_default_batch_and_health():
    r = create_router("semantic", {"routes": {"mid": ["I want my money back", "refund my purchase"],
                                              "big": ["explain quantum physics", "prove this theorem"]},
                                   "threshold": 0.3, "default": "cheap"})
    d = r.route(ctx("please refund my order"))
    assert d.targets == ("mid",) and "closest example of 'mid'" in d.rationale and d.scores["mid"] > 0.5
    assert r.route(ctx("what's the weather in Oslo")).targets == ("cheap",)
    assert [x.targets for x in r.route_batch([ctx("money back please"), ctx("derive the schrodinger equation")])] == [("mid",), ("big",)]
    down = {"mid": Health(status=HealthStatus.DOWN)}
    assert r.route(ctx("please refund my order", health=down)).targets != ("mid",)
    with pytest.raises(ConfigError, match="threshold needs a default"):
        create_router("semantic", {"threshold": 0.5})


def test_trained_routers_route_by_what_they_learned(trained_files):
    knn = create_router("trained", {"path": str(trained_files / "trained.npz")})
    assert knn.route(ctx("could you refund my order")).target == "mid"
    clf = create_router("classifier", {"path": str(trained_files / "classifier.npz")})
    assert clf.route(ctx("could you refund my order")).target == "mid"
    assert clf.route(ctx("explain special relativity")).target == "big"
    with pytest.raises(ConfigError, match="does not exist"):
        create_router("trained", {"path": str(trained_files / "missing.npz")})
    (trained_files / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a crossroads"):
        create_router("classifier", {"path": str(trained_files / "junk.npz")})


def _embed(texts):
    from crossroads.agents.embeddings import default_embedder

    return default_embedder().embed(texts)


def test_cascade_picks_the_cheapest_predicted_good_enough_and_round_trips(tmp_path):
    import numpy as np

    from crossroads.routers.cascade import CascadeRouter
    from crossroads.routers.learned import LearnedRouter

    texts = [t for ts in UTTERANCES.values() for t in ts]
    labels = [k for k, ts in UTTERANCES.items() for _ in ts]
    # greetings: every model succeeds; refunds: mid and big; physics: only big
    ok = {"cheap": {"cheap", "mid", "big"}, "mid": {"mid", "big"}, "big": {"big"}}
    names = [c.name for c in CANDS]
    Y = np.array([[1.0 if n in ok[lab] else 0.0 for n in names] for lab in labels], dtype=np.float32)
    base = LearnedRouter.train("knn", _embed(texts), Y, targets=names, params={"k": 1},
                               costs={"cheap": 0.1, "mid": 1.0, "big": 10.0})
    path = base.save(tmp_path / "knn.npz")
    r = create_router("cascade", {"path": str(path), "threshold": 0.5})
    assert isinstance(r, CascadeRouter) and r.threshold == 0.5
    assert r.route(ctx("good morning to you")).target == "cheap"
    assert r.route(ctx("could you refund my order")).target == "mid"  # big also passes but costs more
    assert r.route(ctx("derive the equations of relativity")).target == "big"
    # the argmax router would take the first of the tied maxima in candidate order, not the cheapest passing
    d = r.route(ctx("could you refund my order"))
    assert d.metadata["cascade_order"] == ["cheap", "mid", "big"] and d.scores["mid"] > d.scores["big"]
    # nothing reaches the threshold: the best predicted (the cheapest of ties) is chosen
    r.threshold = 1.01
    assert r.route(ctx("could you refund my order")).target == "mid"
    # a down target is skipped
    r.threshold = 0.5
    down = {"mid": Health(status=HealthStatus.DOWN)}
    assert r.route(ctx("could you refund my order", health=down)).target == "big"
    # the threshold is stored with the file
    saved = CascadeRouter(predictor=r.predictor, targets=r.targets, costs=r.costs, threshold=0.7).save(tmp_path / "c.npz")
    assert create_router("cascade", {"path": str(saved)}).threshold == 0.7
    with pytest.raises(ConfigError, match="needs a trained file"):
        create_router("cascade", {})


def test_linucb_updates_match_hand_computed_ridge_regression():
    from crossroads.routers.bandit import LinUCBRouter

    q = "please refund my order"
    x_norm2 = float((_embed([q])[0] ** 2).sum()) + 1.0  # unit embedding + bias feature: 2
    assert x_norm2 == pytest.approx(2.0, abs=1e-5)
    r = create_router("linucb", {"alpha": 1.0})
    d0 = r.route(ctx(q))
    # untrained arms: theta = 0, bound sqrt(x'x) = sqrt(2) for all: ties keep candidate order
    assert d0.target == "cheap" and d0.scores["big"] == pytest.approx(np.sqrt(2.0), abs=1e-5)
    r.feedback(Feedback(decision_id=d0.decision_id, reward=0.0))
    d1 = r.route(ctx(q))
    # cheap after reward 0: theta.x = 0, bound sqrt(x'(I - xx'/3)x) = sqrt(2 - 4/3)
    assert d1.scores["cheap"] == pytest.approx(np.sqrt(2 / 3), abs=1e-5)
    assert d1.target == "mid"  # untouched arms keep sqrt(2)
    r.feedback(Feedback(decision_id=d1.decision_id, reward=1.0))
    d2 = r.route(ctx(q))
    # mid after reward 1: theta.x = x'x / (1 + x'x) = 2/3, plus the same bound
    assert d2.scores["mid"] == pytest.approx(2 / 3 + np.sqrt(2 / 3), abs=1e-5)
    # willingness: reward 1 - 0.5 * cost(mid)/max cost (1/10) = 0.95
    w = LinUCBRouter(alpha=0.0, willingness=0.5, costs={"cheap": 0.1, "mid": 1.0, "big": 10.0})
    d = w.route(ctx(q))
    assert d.target == "cheap"
    w.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    # cheap's rel. cost 0.01: reward 0.995 -> theta.x = 0.995 * 2/3
    assert w.route(ctx(q)).scores["cheap"] == pytest.approx(0.995 * 2 / 3, abs=1e-5)
    with pytest.raises(FeedbackError, match="unknown or already-answered"):
        w.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    d3 = w.route(ctx(q))
    with pytest.raises(FeedbackError, match="must be finite"):
        w.feedback(Feedback(decision_id=d3.decision_id, reward=float("nan")))
    with pytest.raises(ConfigError, match="alpha must be"):
        create_router("linucb", {"alpha": -1})
