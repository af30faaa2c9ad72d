"""Agent selection: metrics, the out-of-scope calibration rule, the registered intent routers and the
suite's data protocol (hand-computed expectations)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crossroads import ConfigError, RouteContext, TargetInfo, create_router
from crossroads.evals.selection_metrics import selection_metrics
from crossroads.routers.intent import (
    CentroidRouter,
    ClassifierRouter,
    KNNIntentRouter,
    NearestRouter,
    calibrate_oos_threshold,
    load_intent_router,
)
from crossroads.types import Health, HealthStatus


def _unit(*rows: list[float]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# --- metrics ---------------------------------------------------------------------------------------

def test_selection_metrics_hand_computed():
    gold = ["a", "b", "oos", "c", "oos"]
    chosen = [["a", "b"], ["c", "b"], ["oos"], ["c"], ["a"]]
    m = selection_metrics(gold, chosen)
    assert m["top1_accuracy"] == pytest.approx(3 / 5)        # a, oos, c
    assert m["set_accuracy"] == pytest.approx(4 / 5)         # b is in its set too
    assert m["mean_set_size"] == pytest.approx(7 / 5)
    assert m["multi_agent_share"] == pytest.approx(2 / 5)
    assert m["conflict_rate"] is None                        # no outputs: no conflict figure at all
    assert m["oos_precision"] == pytest.approx(1.0) and m["oos_recall"] == pytest.approx(1 / 2)
    assert m["in_scope_top1_accuracy"] == pytest.approx(2 / 3)
    # with outputs, only the multi-agent rows whose agents disagree are conflicts
    outs = [{"a": "x", "b": "x"}, {"c": "y", "b": "z"}, {}, {"c": "w"}, {"a": "v"}]
    assert selection_metrics(gold, chosen, outputs=outs)["conflict_rate"] == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="no output recorded for chosen agent 'b'"):
        selection_metrics(gold, chosen, outputs=[{"a": "x"}, {}, {}, {}, {}])
    nan = selection_metrics(["a"], [["a"]])
    assert math.isnan(nan["oos_precision"]) and math.isnan(nan["oos_recall"])


# --- the out-of-scope rule -------------------------------------------------------------------------

def test_calibration_takes_the_highest_recall_meeting_the_target_not_the_first_drop():
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.9]
    oos = [True, True, False, True, False, False]
    # flagging the 2 lowest: P=1; 3 lowest: 2/3 (below 0.75); 4 lowest: 3/4 -> threshold between 0.4 and 0.5
    assert calibrate_oos_threshold(conf, oos, precision_target=0.75) == pytest.approx(0.45)
    # at a 10% out-of-scope share: k=2 has R=2/3, F=0 -> P=1; k=4 has R=1, F=1/3 -> P=0.1/(0.1+0.3)=0.25
    assert calibrate_oos_threshold(conf, oos, precision_target=0.75, prior=0.1) == pytest.approx(0.25)
    # ... and at a 60% share k=4 gives 0.6/(0.6+0.4/3) = 0.818 >= 0.8
    assert calibrate_oos_threshold(conf, oos, precision_target=0.8, prior=0.6) == pytest.approx(0.45)
    # tied confidences are flagged together: {0.2 oos, 0.2 in} cannot be split
    assert calibrate_oos_threshold([0.1, 0.2, 0.2, 0.9], [True, True, False, False], precision_target=0.9) == pytest.approx(0.15)
    assert calibrate_oos_threshold([0.5, 0.1], [True, False], precision_target=0.9) is None  # unreachable: never flag
    with pytest.raises(ConfigError, match="needs validation rows labelled 'oos'"):
        calibrate_oos_threshold([0.1], [False], precision_target=0.9)
    with pytest.raises(ConfigError, match="oos_prior must be in"):
        calibrate_oos_threshold([0.1], [True], precision_target=0.9, prior=1.5)


# --- routers ---------------------------------------------------------------------------------------

X = _unit([1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0.6, 0.8], [0, 0, 1])
LABELS = ["a", "a", "b", "b", "oos"]


def test_centroid_nearest_knn_scores_by_hand():
    q = _unit([1, 1, 0])[0]  # (0.7071, 0.7071, 0)
    c = CentroidRouter.fit(X, LABELS)
    assert c.agents == ["a", "b"]  # out-of-scope rows do not make an agent
    mean_a = np.array([0.9, 0.3, 0]) / np.linalg.norm([0.9, 0.3, 0])
    mean_b = np.array([0, 0.8, 0.4]) / np.linalg.norm([0, 0.8, 0.4])
    assert c.agent_scores(q[None])[0] == pytest.approx([mean_a @ q, mean_b @ q], abs=1e-6)
    n = NearestRouter.fit(X, LABELS)
    assert n.agent_scores(q[None])[0] == pytest.approx([max(0.7071, 0.8 * 0.7071 + 0.6 * 0.7071), 0.7071], abs=1e-4)
    k = KNNIntentRouter.fit(X, LABELS, k=3)
    # the 3 nearest in-scope rows: (0.8,0.6) 0.9899 [a], (1,0) 0.7071 [a], (0,1) 0.7071 [b]; vote = sum / k
    assert k.agent_scores(q[None])[0] == pytest.approx([(0.98995 + 0.70711) / 3, 0.70711 / 3], abs=1e-4)
    k1 = KNNIntentRouter.fit(X, LABELS, k=1)
    assert k1.agent_scores(q[None])[0] == pytest.approx([0.98995, 0.0], abs=1e-4)  # b has no neighbour: 0


def _ctx(query="q", names=("a", "b", "oos"), health=None):
    return RouteContext(query=query, candidates=tuple(TargetInfo(name=n) for n in names), health=health or {})


def test_one_rule_threshold_fallback_set_and_health():
    r = CentroidRouter(centroids=np.eye(2, dtype=np.float32), agents=["a", "b"], threshold=0.5, fallback="oos",
                       set_margin=0.1)
    d = r._decision(_ctx(), np.array([0.45, 0.40]))
    assert d.targets == ("oos",) and d.scores["oos"] == 0.5 and "out of scope" in d.rationale
    d = r._decision(_ctx(), np.array([0.70, 0.65]))
    assert d.targets == ("a", "b") and d.metadata["confidence"] == pytest.approx(0.70)  # b within the 0.1 margin
    assert r._decision(_ctx(), np.array([0.70, 0.55])).targets == ("a",)
    down = {"a": Health(status=HealthStatus.DOWN)}
    assert r._decision(_ctx(health=down), np.array([0.9, 0.6])).targets == ("b",)
    # without the fallback among the candidates a decision never goes out of scope
    assert r._decision(_ctx(names=("a", "b")), np.array([0.1, -0.2])).targets == ("a",)
    with pytest.raises(Exception, match="knows none of the candidates"):
        r._decision(_ctx(names=("x", "oos")), np.array([0.1, 0.0]))


def test_saved_routers_load_by_registry_name_with_the_same_scores(tmp_path):
    q = _unit([0.3, 0.5, 0.2], [1, 0, 0.1])
    for cls, extra in [(CentroidRouter, {}), (NearestRouter, {}), (KNNIntentRouter, {"k": 2})]:
        r = cls.fit(X, LABELS, fallback="oos", **extra)
        r.threshold = 0.42
        path = r.save(tmp_path / f"{cls.name}.npz")
        loaded = create_router(cls.name, {"path": str(path)})
        assert type(loaded) is cls and loaded.threshold == 0.42 and loaded.fallback == "oos"
        assert np.allclose(loaded.agent_scores(q), r.agent_scores(q))
        assert create_router(cls.name, {"path": str(path), "fallback": "general"}).fallback == "general"
    with pytest.raises(ConfigError, match="holds a 'centroid' router, not 'nearest'"):
        create_router("nearest", {"path": str(tmp_path / "centroid.npz")})
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a crossroads agent-selection router"):
        load_intent_router(tmp_path / "junk.npz")
    good = (tmp_path / "centroid.npz").read_bytes()  # a truncated file (an interrupted copy) is a zip error inside numpy
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ConfigError, match=r"cut.npz is not a crossroads agent-selection router file .*write it again"):
        load_intent_router(tmp_path / "cut.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        create_router("centroid", {"path": str(tmp_path / "missing.npz")})


def test_classifier_oos_class_and_calibrated_threshold(tmp_path):
    rng = np.random.default_rng(0)
    Xc = np.concatenate([X + 0.01 * rng.normal(size=X.shape) for _ in range(20)]).astype(np.float32)
    r = ClassifierRouter.fit(Xc, LABELS * 20, hidden=16, epochs=40, lr=1e-2, fallback="oos")
    p = r.classifier.predict_proba(X)
    assert r.agents == ["a", "b"] and r.classifier.classes == ["a", "b", "oos"]
    # uncalibrated, the head's own oos class decides; calibrated, max in-scope probability < threshold does
    assert r._decision(_ctx(), r.agent_scores(X[4:5])[0]).targets == ("oos",)
    r.threshold = float(p[0, 0]) + 1e-3
    assert r._decision(_ctx(), r.agent_scores(X[0:1])[0]).targets == ("oos",)
    r.threshold = float(p[0, 0]) - 1e-3
    assert r._decision(_ctx(), r.agent_scores(X[0:1])[0]).targets[0] == "a"
    loaded = create_router("classifier", {"path": str(r.save(tmp_path / "clf.npz"))})
    assert np.allclose(loaded.classifier.predict_proba(X), p) and loaded.threshold == r.threshold


# --- data protocol and the suite's evaluation ------------------------------------------------------

TRAIN = [("refund my order", "shop:refund"), ("i want my money back", "shop:refund"), ("return this purchase for a refund", "shop:refund"),
         ("give me a refund please", "shop:refund"), ("the app crashes on start", "tech:crash"), ("it keeps crashing", "tech:crash"),
         ("the program closed unexpectedly", "tech:crash"), ("app froze and quit", "tech:crash"),
         ("what's the weather tomorrow", "travel:weather"), ("will it rain today", "travel:weather"),
         ("is it sunny outside", "travel:weather"), ("forecast for the weekend", "travel:weather"),
         ("sing me a song", "oos"), ("who won the football game", "oos"), ("tell me a joke about cats", "oos"),
         ("what is the meaning of life", "oos")] * 2


def _write_csv(path, rows):
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def test_user_test_file_is_used_as_given_and_bare_intents_map_to_agents(tmp_path):
    from crossroads.evals.agent_selection import prepare_selection_data

    train = _write_csv(tmp_path / "train.csv", TRAIN)
    test_rows = [("my money back now", "refund"), ("crashes every time", "tech:crash"), ("recite a poem", "oos")]
    test = _write_csv(tmp_path / "test.csv", test_rows)
    d = prepare_selection_data("banking77", None, train_file=train, test_file=test)
    assert d.test.texts == [t for t, _ in test_rows]  # no re-split, no reordering
    assert d.test.labels == ["shop:refund", "tech:crash", "oos"]
    assert len(d.fit) + len(d.validation) == len(TRAIN) and d.validation.n_oos >= 1
    _write_csv(tmp_path / "bad.csv", [("hello", "billing")])
    with pytest.raises(ConfigError, match=r"test labels with no training rows: billing \(1 rows\)"):
        prepare_selection_data("banking77", None, train_file=train, test_file=tmp_path / "bad.csv")
    (tmp_path / "nolabel.csv").write_text("text,who\nhi,x\n")
    with pytest.raises(ConfigError, match="header must have a 'text' column"):
        prepare_selection_data("banking77", None, train_file=tmp_path / "nolabel.csv")


def test_official_oos_eval_layout_and_clinc_protocols(tmp_path):
    from crossroads.evals.agent_selection import (
        load_clinc150_splits,
        prepare_selection_data,
    )

    full = {"train": [["refund my order", "refund"], ["crash again", "crash"]] * 3, "val": [["money back", "refund"]],
            "test": [["app crashed", "crash"], ["refund it", "refund"]], "oos_train": [["sing", "oos"]] * 2,
            "oos_val": [["dance", "oos"]], "oos_test": [["paint", "oos"]]}
    (tmp_path / "data_full.json").write_text(json.dumps(full))
    s = load_clinc150_splits(tmp_path / "data_full.json")
    assert s["oos_test"].labels == ["oos"] and s["test"].labels == ["crash", "refund"]
    rows = [{"text": t, "intent": i, "domain": "d", "agent_id": f"d:{i}", "split": sp}
            for sp in ("train", "val", "oos_train", "oos_val") for t, i in full[sp]]
    for r in rows:
        if r["split"].startswith("oos"):
            r["agent_id"] = "oos"
    shipped = tmp_path / "clinc.jsonl"
    shipped.write_text("\n".join(json.dumps(r) for r in rows))
    d = prepare_selection_data("clinc150", shipped, test_file=tmp_path / "data_full.json")
    assert d.test.texts == ["app crashed", "refund it", "paint"] and d.test.labels == ["d:crash", "d:refund", "oos"]
    assert d.validation.texts == ["money back", "dance"]  # official protocol: calibrate on val + oos_val
    assert len(d.fit) == 8
    d = prepare_selection_data("clinc150", shipped)  # shipped split: test = val + oos_val, calibrate on held train rows
    assert d.test.texts == ["money back", "dance"] and d.validation.n_oos == 1 and len(d.fit) + len(d.validation) == 8


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from crossroads.agents.embeddings import MiniLMEmbedder

    return MiniLMEmbedder(cache=tmp_path_factory.mktemp("emb") / "emb.sqlite")


def test_suite_scores_the_router_object_a_flow_loads(tmp_path, embedder):
    from crossroads.evals.agent_selection import (
        IntentData,
        SelectionData,
        build_agent_router,
        evaluate_agent_routers,
    )

    test_rows = [("please refund me", "shop:refund"), ("my app crashed", "tech:crash"), ("rain this afternoon?", "travel:weather"),
                 ("play some jazz music", "oos"), ("the software quits by itself", "tech:crash")] * 4
    val = [("can i get a refund", "shop:refund"), ("the app stopped working and closed", "tech:crash"),
           ("how hot will it be today", "travel:weather"), ("book me a table for two", "oos"), ("what is your name", "oos")]
    fit = IntentData(*map(list, zip(*TRAIN[:16], strict=True)))
    data = SelectionData(fit, IntentData(*map(list, zip(*val, strict=True))), IntentData(*map(list, zip(*test_rows, strict=True))), "hand-made")
    res = evaluate_agent_routers(data, [("c", "centroid", {"oos_precision_target": 0.5})], embedder, bootstrap=0,
                                 latency_samples=6)
    m = res["routers"]["c"]
    assert m["router"] == "CentroidRouter (type: centroid)" and m["latency_samples"] == 6
    assert res["n_test"] == 20 and res["n_test_oos"] == 4 and m["conflict_rate"] is None
    # the same router, saved and loaded as a flow would, makes the same decisions
    r = build_agent_router("centroid", {"oos_precision_target": 0.5}, data, embedder)
    assert r.threshold == m["oos_threshold"]
    loaded = create_router("centroid", {"path": str(r.save(tmp_path / "c.npz")), "embedder": embedder})
    cands = tuple(TargetInfo(name=n) for n in ["shop:refund", "tech:crash", "travel:weather", "oos"])
    chosen = [loaded.route(RouteContext(query=q, candidates=cands)).targets[0] for q, _ in test_rows]
    top1 = sum(c == g for c, (_, g) in zip(chosen, test_rows, strict=True)) / len(test_rows)
    assert top1 == pytest.approx(m["top1_accuracy"])
    assert chosen[:2] == ["shop:refund", "tech:crash"]


def test_a_loaded_file_is_recalibrated_by_its_own_rule_unless_the_entry_sets_one(tmp_path, embedder):
    from crossroads.evals.agent_selection import IntentData, SelectionData, build_agent_router

    val = [("can i get a refund", "shop:refund"), ("the app stopped working and closed", "tech:crash"),
           ("how hot will it be today", "travel:weather"), ("book me a table for two", "oos"), ("what is your name", "oos")]
    fit = IntentData(*map(list, zip(*TRAIN[:16], strict=True)))
    v = IntentData(*map(list, zip(*val, strict=True)))
    data = SelectionData(fit, v, v, "hand-made")
    trained = build_agent_router("centroid", {"oos_precision_target": 0.5, "oos_prior": 0.2}, data, embedder)
    path = str(trained.save(tmp_path / "c.npz"))
    loaded = build_agent_router("centroid", {"path": path}, data, embedder)  # the entry names no rule
    assert loaded.calibration["oos_precision_target"] == 0.5 and loaded.calibration["oos_prior"] == 0.2
    assert loaded.threshold == trained.threshold
    over = build_agent_router("centroid", {"path": path, "oos_precision_target": 0.9}, data, embedder)
    assert over.calibration["oos_precision_target"] == 0.9 and over.calibration["oos_prior"] == 0.2


def test_latency_queries_are_drawn_across_the_test_set(tmp_path, embedder):
    from crossroads.evals.agent_selection import (
        IntentData,
        SelectionData,
        evaluate_agent_routers,
    )

    texts = [t for t, _ in TRAIN[:12]]
    labels = [lab for _, lab in TRAIN[:12]]
    fit = IntentData(texts, labels)
    test = IntentData(texts * 5, labels * 5)  # 60 rows, grouped by agent in blocks
    seen: list[str] = []
    real = embedder.embed_one

    def spy(text):
        seen.append(text)
        return real(text)

    embedder.embed_one = spy
    try:
        evaluate_agent_routers(SelectionData(fit, IntentData([], []), test, "t"), [("n", "nearest", {})], embedder,
                               bootstrap=0, latency_samples=12)
    finally:
        del embedder.embed_one
    agents_timed = {labels[texts.index(q)] for q in seen}
    assert len(seen) == 13 and agents_timed == {"shop:refund", "tech:crash", "travel:weather"}


def test_run_suite_scores_a_users_train_and_test_files_as_given(tmp_path, embedder):
    from crossroads.evals.suite import SuiteSpec, run_suite

    train = _write_csv(tmp_path / "train.csv", TRAIN[:16])
    test_rows = [("please refund me", "refund"), ("my app crashed", "crash"), ("play some jazz music", "oos")]
    test = _write_csv(tmp_path / "test.csv", test_rows)
    spec = SuiteSpec.model_validate({"name": "mine", "kind": "agent_selection", "data": {"dataset": "builtin:banking77"},
                                     "routers": [{"name": "c", "type": "centroid"}],
                                     "settings": {"bootstrap": 0, "latency_samples": 2}})
    res = run_suite(spec, embedder=embedder, train_file=train, test_file=test)
    assert res.results["n_test"] == 3 and res.results["n_test_oos"] == 1 and "test: test.csv as given" in res.results["protocol"]
    assert res.spec.data.test == str(test.resolve()) and "test:test.csv" in res.data_hashes
    assert res.results["routers"]["c"]["latency_samples"] == 2
