"""A ``crossroads train`` file scored in a query-routing suite (``type: trained`` / ``type: cascade`` with
``params: {path}``), and ``eval compare`` warning when two runs' AIQ ceilings differ.

Tiny hand-made outcomes and a fixed-vocabulary embedder (one dimension per word), so every number is
computed by hand and no embedding model loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossroads import ConfigError
from crossroads.evals.compare import aiq_ceiling, compare_runs, compare_warnings, comparison
from crossroads.evals.suite import SuiteSpec, run_suite
from crossroads.routers.learned import LearnedRouter
from crossroads.tracing import EvalStore, TraceStore

# every prompt is "cat W" or "dog W" with W a distinct two-token colour/place word: 2 cl100k tokens each, so
# relative costs are the price ratios (cheap 1, strong 10 per 1M tokens)
TRAIN_WORDS = ["alpha", "delta", "echo", "golf", "hotel", "india", "mike", "november", "uniform", "whiskey", "red", "blue"]
TEST_WORDS = ["green", "black", "white", "brown"]
VOCAB = ["cat", "dog", *TRAIN_WORDS, *TEST_WORDS]
PRICES = {"cheap": {"input": 1, "output": 1}, "strong": {"input": 10, "output": 10}}
# cat rows: both models right; dog rows: only strong is right
SCORES = {"cat": {"cheap": 1, "strong": 1}, "dog": {"cheap": 0, "strong": 1}}


class VocabEmbedder:
    """One dimension per word of a fixed vocabulary, L2-normalised ("cat x" . "cat y" = 1/2, "cat x" . "dog y" = 0)."""

    def __init__(self, vocab: list[str] = VOCAB) -> None:
        self.index = {w: i for i, w in enumerate(vocab)}
        self.calls = 0

    def embed(self, texts: Any) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), len(self.index)), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, self.index[w]] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class NoEmbedding(VocabEmbedder):
    def embed(self, texts: Any) -> np.ndarray:
        raise AssertionError("embedded before the bad router entry was refused")


def _rows(words: list[str]) -> list[dict[str, Any]]:
    # alternate cat and dog: half of each
    return [{"prompt": f"{'cat' if i % 2 == 0 else 'dog'} {w}", "scores": SCORES["cat" if i % 2 == 0 else "dog"],
             "price_per_1m_tokens": PRICES} for i, w in enumerate(words)]


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    for name, words in (("train.jsonl", TRAIN_WORDS), ("test.jsonl", TEST_WORDS)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in _rows(words)))
    return tmp_path


def _spec(routers: list[dict[str, Any]]) -> SuiteSpec:
    return SuiteSpec.model_validate({
        "name": "tiny", "kind": "query_routing",
        "data": {"train": "train.jsonl", "test": "test.jsonl", "format": "outcomes"},
        "routers": routers, "settings": {"bootstrap": 0, "latency_samples": 0}})


def _knn_file(path: Path, targets: tuple[str, ...] = ("cheap", "strong")) -> Path:
    """A k=1 kNN router trained (outside the suite) on one cat and one dog prompt, as ``crossroads train knn``
    writes it: per-model cost = price ratio."""
    emb = VocabEmbedder()
    y = {"cheap": [1.0, 0.0], "strong": [1.0, 1.0]}  # cat: both right; dog: strong only
    Y = np.array([[y[t][0] for t in targets], [y[t][1] for t in targets]], dtype=np.float32)
    r = LearnedRouter.train("knn", emb.embed(["cat", "dog"]), Y, targets=targets,
                            costs={"cheap": 1.0, "strong": 10.0}, params={"k": 1})
    return r.save(path)


def _run(data: Path, routers: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None,
         embedder: VocabEmbedder | None = None) -> Any:
    return run_suite(_spec(routers), base_dir=data, embedder=embedder or VocabEmbedder(), extra_routers=extra)


def _protocol(m: dict[str, Any]) -> str:
    """A router's metrics minus timing and provenance, as comparable text (NaN == NaN)."""
    return json.dumps({k: v for k, v in m.items() if k not in DROP}, sort_keys=True)


DROP = {"latency_p50_ms", "latency_p99_ms", "latency_samples", "train_s", "loaded_from", "file_sha256",
        "test_rows_in_training_file", "registered_as"}


def test_trained_file_is_scored_like_the_suites_own_knn_hand_computed(data: Path) -> None:
    mine = _knn_file(data / "mine.npz")
    rev = _knn_file(data / "rev.npz", targets=("strong", "cheap"))  # columns in another order: same router
    res = _run(data, [{"name": "knn", "type": "knn", "params": {"k": 1}}],
               extra=[{"name": "mine", "type": "trained", "params": {"path": str(mine)}},
                      {"name": "rev", "type": "trained", "params": {"path": str(rev)}}])
    r = res.results["routers"]
    assert list(r) == ["knn", "mine", "rev"]
    # test curve, by hand: lambda <= 1.0 routes cat -> cheap (tie at 0 goes to the first candidate), dog -> strong:
    # cost (2 x 1 + 2 x 10) / (4 x 10) = 0.55, quality 1; lambda >= 1.5 (cheap's utility 1 - 0.15 > strong's 1 - 1.5
    # on dogs too: 0 - 0.1 lambda > 1 - lambda) routes everything to cheap: cost 0.1, quality 0.5
    pts = {p["setting"]: (round(p["cost"], 9), p["quality"]) for p in r["mine"]["points"]}
    assert {s: v for s, v in pts.items() if s <= 1.0} == {s: (0.55, 1.0) for s in pts if s <= 1.0}
    assert {s: v for s, v in pts.items() if s > 1.0} == {s: (0.1, 0.5) for s in (1.5, 2.0, 3.0, 5.0, 10.0, 100.0)}
    assert r["mine"]["best_quality"] == 1.0 and r["mine"]["best_quality_cost"] == pytest.approx(0.55)
    # AIQ: hull (0.1, 0.5) -> (0.55, 1.0); the run's ceiling M = 0.55 (no router reaches its best quality later)
    assert res.results["aiq_max_cost"] == pytest.approx(0.55) and res.summary["aiq_max_cost"] == pytest.approx(0.55)
    assert r["mine"]["aiq"] == pytest.approx(0.45 * 0.75 / 0.55)
    # through the same protocol as the suite's own knn (trained on the fit rows, k=1: the same predictions):
    # every curve point, validation point and validation-chosen operating point is identical
    for name in ("mine", "rev"):
        assert _protocol(r[name]) == _protocol(r["knn"])
        assert r[name]["registered_as"] == "trained" and r[name]["loaded_from"] == str((data / f"{name}.npz").resolve())
        assert np.isnan(r[name]["train_s"])  # not trained in the run
    # the stored config names the absolute file that ran
    assert [e.params for e in res.spec.routers][1] == {"path": str(mine.resolve())}


def test_cascade_file_sweeps_its_threshold_like_the_suites_cascade(data: Path) -> None:
    mine = _knn_file(data / "mine.npz")
    res = _run(data, [{"name": "cascade", "type": "cascade", "params": {"k": 1}},
                      {"name": "best_single", "type": "best_single"}],
               extra=[{"name": "mine_cascade", "type": "cascade", "params": {"path": str(mine)}}])
    r = res.results["routers"]
    # every threshold 0.05..1.0: cat -> cheap (predicted 1 >= t), dog -> strong (cheap predicted 0); 1.01: nothing
    # reaches it, the best predicted wins (cat: tie, cheaper first; dog: strong): one point (0.55, 1.0)
    assert {(round(p["cost"], 9), p["quality"]) for p in r["mine_cascade"]["points"]} == {(0.55, 1.0)}
    assert len(r["mine_cascade"]["points"]) == 12 and r["mine_cascade"]["setting_name"] == "threshold"
    assert r["mine_cascade"]["best_quality_setting"] == 0.05  # first of the tied validation points
    # best_single is one point at (1.0, 1.0): M = 1.0; one point (c, q) scores q (M - c) / M
    assert res.results["aiq_max_cost"] == pytest.approx(1.0)
    assert r["mine_cascade"]["aiq"] == pytest.approx(1.0 * (1.0 - 0.55) / 1.0)
    assert _protocol(r["mine_cascade"]) == _protocol(r["cascade"])
    assert r["mine_cascade"]["registered_as"] == "cascade"


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x", "type": "trained", "params": {"path": "nope.npz"}},
     r"router 'x' \(type: trained\): trained router file .*nope.npz does not exist"),
    ({"name": "x", "type": "cascade", "params": {"path": "nope.npz"}},
     r"router 'x' \(type: cascade\): trained router file .*nope.npz does not exist"),
    ({"name": "x", "type": "trained", "params": {"path": "."}}, r"router 'x' .* is a directory"),
    ({"name": "x", "type": "trained", "params": {"path": "train.jsonl"}},
     r"router 'x' .*train.jsonl is not a crossroads trained-router file .*crossroads train knn"),
    ({"name": "x", "type": "trained", "params": {"path": "empty_meta.npz"}},
     r"router 'x' .*empty_meta.npz is not a valid crossroads trained-router file"),
    ({"name": "x", "type": "trained"}, r"router 'x' \(type: trained\): give the file to score: params: \{path"),
    ({"name": "x", "type": "trained", "params": {"path": "mine.npz", "willingness": 0.3}},
     r"router 'x' .*unknown param\(s\) willingness .*sweeps the willingness"),
    ({"name": "mymf", "type": "mf", "params": {"path": "mine.npz"}},
     r"router 'mymf' \(type: mf\): type mf trains a new mf router .* use '\{name: mymf, type: trained, params: "
     r"\{path: mine.npz\}\}'"),
    ({"name": "k", "type": "knn", "params": {"kk": 3}}, r"router 'k' \(type: knn\): unknown param\(s\) kk; known: k"),
])
def test_bad_router_file_entries_are_refused_before_any_work(data: Path, monkeypatch: pytest.MonkeyPatch,
                                                             entry: dict[str, Any], message: str) -> None:
    monkeypatch.chdir(data)  # --router paths are relative to the current directory
    _knn_file(data / "mine.npz")
    np.savez(data / "empty_meta.npz", __meta__=np.array("{}"))
    with pytest.raises(ConfigError, match=message):
        _run(data, [{"name": "knn", "type": "knn", "params": {"k": 1}}], extra=[entry], embedder=NoEmbedding())


def test_cascade_file_as_type_trained_is_refused_before_embedding(data: Path) -> None:
    from crossroads.routers.cascade import CascadeRouter

    base = LearnedRouter.load(_knn_file(data / "mine.npz"))
    cas = CascadeRouter(predictor=base.predictor, targets=base.targets, costs=base.costs, threshold=0.7).save(
        data / "cas.npz")
    with pytest.raises(ConfigError, match=r"suite 'tiny': router 'x' \(type: trained\): .*cas.npz holds a cascade "
                                          r"router \(knn predictor, threshold 0.7.*load it with type: cascade"):
        _run(data, [{"name": "knn", "type": "knn"}], extra=[{"name": "x", "type": "trained", "params": {"path": str(cas)}}],
             embedder=NoEmbedding())


def test_file_trained_on_other_models_is_refused_before_embedding(data: Path) -> None:
    other = _knn_file(data / "other.npz")
    z = LearnedRouter.load(other)
    z.targets = ["cheap", "mid"]
    z.costs = {"cheap": 1.0, "mid": 10.0}
    other = z.save(data / "other.npz")
    with pytest.raises(ConfigError, match=r"suite 'tiny': router 'x': .*other.npz was trained on models cheap, mid; "
                                          r"the suite's data \(.*train.jsonl\) scores cheap, strong \(missing strong; "
                                          r"not in the suite mid\)"):
        _run(data, [{"name": "knn", "type": "knn"}], extra=[{"name": "x", "type": "trained", "params": {"path": str(other)}}],
             embedder=NoEmbedding())


def test_file_on_other_embeddings_is_refused_and_a_knn_file_that_saw_test_rows_is_flagged(data: Path,
                                                                                          tmp_path: Path) -> None:
    narrow = LearnedRouter.train("knn", np.eye(2, 3, dtype=np.float32), np.eye(2, dtype=np.float32),
                                 targets=["cheap", "strong"]).save(data / "narrow.npz")
    with pytest.raises(ConfigError, match=r"router 'x': .*narrow.npz was trained on 3-dimensional embeddings; the "
                                          rf"suite embeds prompts in {len(VOCAB)} dimensions"):
        _run(data, [{"name": "knn", "type": "knn"}], extra=[{"name": "x", "type": "trained", "params": {"path": str(narrow)}}])
    # a kNN file trained on two of the four test prompts ("cat green", "dog black") plus a train prompt
    emb = VocabEmbedder()
    leaky = LearnedRouter.train("knn", emb.embed(["cat green", "dog black", "cat alpha"]),
                                np.array([[1, 1], [0, 1], [1, 1]], dtype=np.float32), targets=["cheap", "strong"],
                                costs={"cheap": 1.0, "strong": 10.0}, params={"k": 1}).save(data / "leaky.npz")
    clean = _knn_file(data / "mine.npz")
    res = _run(data, [{"name": "knn", "type": "knn", "params": {"k": 1}}],
               extra=[{"name": "leaky", "type": "trained", "params": {"path": str(leaky)}},
                      {"name": "clean", "type": "trained", "params": {"path": str(clean)}}])
    r = res.results["routers"]
    assert r["leaky"]["test_rows_in_training_file"] == 2 and r["clean"]["test_rows_in_training_file"] == 0
    assert r["knn"].get("test_rows_in_training_file") is None  # trained in the run on the training rows
    from crossroads.evals.report import write_report

    run = {"id": res.id, "suite": "tiny", "kind": "query_routing", "code_version": "x", "duration_s": 1.0,
           "data_hashes": res.data_hashes, "results": res.results}
    text = write_report(run, tmp_path / "rep").read_text()
    assert f"leaky ← `{leaky.resolve()}`" in text and f"clean ← `{clean.resolve()}`" in text
    assert "**Warning:** leaky was trained on 2 of the 4 test rows" in text and "clean was trained" not in text


# -- eval compare: AIQ ceilings ----------------------------------------------------------------------------------

def _stored(res: Any, store: EvalStore) -> dict[str, Any]:
    run = {"id": res.id, "suite": res.spec.name, "kind": res.spec.kind, "created_at": res.created_at,
           "duration_s": res.duration_s, "code_version": res.code_version, "config": res.spec.model_dump(),
           "data_hashes": res.data_hashes, "summary": res.summary, "results": res.results}
    store.save(run, res.results["routers"])
    return store.get(res.id)


def test_compare_warns_when_the_aiq_ceilings_differ_hand_computed(data: Path, tmp_path: Path) -> None:
    store = EvalStore(TraceStore(str(tmp_path / "e.db")))
    knn = {"name": "knn", "type": "knn", "params": {"k": 1}}
    a = _stored(_run(data, [knn]), store)  # M = 0.55 (knn reaches quality 1 at cost 0.55)
    b = _stored(_run(data, [knn, {"name": "best_single", "type": "best_single"}]), store)  # M = 1.0
    assert a["summary"]["aiq_max_cost"] == pytest.approx(0.55) and b["summary"]["aiq_max_cost"] == pytest.approx(1.0)
    # the same knn router (same points) scores AIQ 0.3375 / 0.55 in A and (0.3375 + 0.45 x 1) / 1 in B
    rows = {(r["router"], r["metric"]): r for r in compare_runs(a, b)}
    assert rows[("knn", "aiq")]["a"] == pytest.approx(0.3375 / 0.55)
    assert rows[("knn", "aiq")]["b"] == pytest.approx(0.7875)
    assert rows[("knn", "best_quality")]["delta"] == 0.0
    w = compare_warnings(a, b)
    assert len(w) == 1
    assert f"run A ({a['id'][:8]}) integrates AIQ up to M = 0.550, run B ({b['id'][:8]}) up to M = 1.000" in w[0]
    assert "AIQ differences between these runs are not comparable" in w[0]
    full = comparison(a, b)
    assert full["warnings"] == w and full["test_set_differences"] == [] and full["rows"] == compare_runs(a, b)
    assert json.loads(json.dumps(full))["warnings"] == w  # what --json prints
    # same routers, same ceiling: no warning
    a2 = _stored(_run(data, [knn]), store)
    assert compare_warnings(a, a2) == []
    # the CLI prints it (text on stderr, and in --json)
    from typer.testing import CliRunner

    from crossroads.cli import app

    db = str(tmp_path / "e.db")
    res = CliRunner().invoke(app, ["eval", "compare", a["id"], b["id"], "--db", db, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["warnings"] == w
    res = CliRunner().invoke(app, ["eval", "compare", a["id"], b["id"], "--db", db])
    assert res.exit_code == 0 and "AIQ ceilings differ" in res.stderr
    assert "AIQ ceilings differ" not in CliRunner().invoke(app, ["eval", "compare", a["id"], a2["id"], "--db", db]).stderr


def test_aiq_ceiling_of_a_run_stored_without_it_is_recomputed_from_its_curves() -> None:
    # stored before the summary kept M: recomputed as the run did (the largest cost at which a router reaches its
    # best quality): r1 peaks at 0.8 (the later 0.9 point adds no quality but stays on the hull), r2 at 0.3
    old = {"id": "old", "kind": "query_routing", "summary": {"aiq": {}}, "results": {
        "r1": {"points": [{"cost": 0.2, "quality": 0.5}, {"cost": 0.8, "quality": 0.7}, {"cost": 0.9, "quality": 0.7}]},
        "r2": {"points": [{"cost": 0.3, "quality": 0.9}]}}}
    assert aiq_ceiling(old) == pytest.approx(0.9)
    new = {"id": "new", "kind": "query_routing", "summary": {"aiq_max_cost": 0.9}, "results": {}}
    assert compare_warnings(old, new) == []
    close = {**new, "summary": {"aiq_max_cost": 0.9004}}
    assert "M = 0.9000, run B (new) up to M = 0.9004" in compare_warnings(old, close)[0]  # decimals that tell them apart
    assert aiq_ceiling({"kind": "agent_selection", "summary": {}, "results": {}}) is None
    assert compare_warnings({"kind": "agent_selection"}, {"kind": "agent_selection"}) == []
