"""Router files given as the wrong type, files that are not router files, a prices file of the wrong shape, and
the train line of an agent-selection dataset without out-of-scope rows: each refused (or said) clearly.

Hand-made embeddings (one dimension per word) and tiny files: no embedding model loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossroads.agents.backends.replay import RecordedOutcomes, read_prices
from crossroads.errors import ConfigError
from crossroads.routers import create_router
from crossroads.routers.cascade import CascadeRouter
from crossroads.routers.intent import train_intent_router
from crossroads.routers.learned import LearnedRouter
from crossroads.training.light import train_light_router

VOCAB = ("cat", "dog", "apple", "pear", "plum", "kiwi")


class WordEmbedder:
    """One dimension per word of VOCAB, L2-normalised."""

    def embed(self, texts: Any) -> np.ndarray:
        out = np.zeros((len(texts), len(VOCAB)), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                if w in VOCAB:
                    out[i, VOCAB.index(w)] = 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class NoEmbedding(WordEmbedder):
    def embed(self, texts: Any) -> np.ndarray:
        raise AssertionError("embedded before the bad input was refused")


def _knn(path: Path) -> Path:
    """k=1 kNN on "cat" (both models right) and "dog" (only strong right); as 'crossroads train knn' writes it."""
    r = LearnedRouter.train("knn", WordEmbedder().embed(["cat", "dog"]), np.array([[1, 1], [0, 1]], np.float32),
                            targets=["cheap", "strong"], costs={"cheap": 1.0, "strong": 10.0}, params={"k": 1})
    return r.save(path)


def _cascade(path: Path, threshold: float = 0.7) -> Path:
    """The same predictor as 'crossroads train cascade' writes it, with its threshold."""
    base = LearnedRouter.load(_knn(path.with_name("base.npz")))
    return CascadeRouter(predictor=base.predictor, targets=base.targets, costs=base.costs,
                         threshold=threshold).save(path)


# -- 1. a file of another router type ---------------------------------------------------------------------------

def test_cascade_file_as_type_trained_is_refused_naming_type_cascade(tmp_path: Path) -> None:
    cas = _cascade(tmp_path / "cas.npz")
    with pytest.raises(ConfigError, match=r"cas.npz holds a cascade router \(knn predictor, threshold 0.7, written by "
                                          r"'crossroads train cascade'\): load it with type: cascade"):
        create_router("trained", {"path": str(cas)})
    with pytest.raises(ConfigError, match=r"holds a cascade router"):
        LearnedRouter.load(cas, as_type="trained")
    # as type: cascade it loads, with its own threshold; a plain load (no type) still reads it
    r = create_router("cascade", {"path": str(cas)})
    assert isinstance(r, CascadeRouter) and r.threshold == 0.7
    assert LearnedRouter.load(cas).extra_meta == {"router": "cascade", "threshold": 0.7}
    # a predictor file is still a valid type: trained (and type: cascade, documented) file
    knn = _knn(tmp_path / "knn.npz")
    assert create_router("trained", {"path": str(knn)}).targets == ["cheap", "strong"]
    assert create_router("cascade", {"path": str(knn)}).threshold == 0.5


@pytest.mark.parametrize("kind", ["classifier", "centroid", "nearest", "knn_intent"])
@pytest.mark.parametrize("as_type", ["trained", "cascade"])
def test_agent_selection_file_as_a_quality_predictor_is_refused_naming_its_type(tmp_path: Path, kind: str,
                                                                                as_type: str) -> None:
    params = {"epochs": 2, "hidden": 4} if kind == "classifier" else {"k": 1} if kind == "knn_intent" else {}
    path = tmp_path / f"{kind}.npz"
    train_intent_router(kind, ["apple", "pear", "plum", "kiwi"], ["a", "a", "b", "b"], embedder=WordEmbedder(),
                        params=params).save(path)
    with pytest.raises(ConfigError, match=rf"{kind}.npz holds a {kind} router for agent selection \(written by "
                                          rf"'crossroads train {kind}'\), not a quality predictor over models: load "
                                          rf"it with type: {kind}"):
        create_router(as_type, {"path": str(path)})


def test_legacy_classifier_file_as_type_trained_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"  # the format files had before the intent routers (no 'kind')
    np.savez(path, __meta__=np.array(json.dumps({"format": "crossroads.classifier/1", "classes": ["a", "b"],
                                                 "params": {}})), W0=np.zeros((2, 2), np.float32))
    with pytest.raises(ConfigError, match=r"old.npz holds a classifier router for agent selection .* load it with "
                                          r"type: classifier"):
        create_router("trained", {"path": str(path)})


# -- 2. not a router file at all --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "content"), [("router.json", '{"kind": "knn"}'), ("notes.txt", "hello"),
                                               ("arr.npy", None)])
def test_a_file_that_is_not_an_npz_is_refused_without_numpys_pickle_advice(tmp_path: Path, name: str,
                                                                           content: str | None) -> None:
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros(3))  # a single .npy array: np.load would return it, not an archive
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        create_router("trained", {"path": str(path)})
    msg = str(info.value)
    assert f"{path} is not a crossroads trained-router file (not an .npz archive): it is not a router file " \
           "written by 'crossroads train'; write one with 'crossroads train knn|mlp|mf|cascade" in msg
    assert "pickle" not in msg


def test_an_npz_without_crossroads_meta_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, X=np.zeros(3))
    with pytest.raises(ConfigError, match=r"plain.npz is not a crossroads trained-router file \(an .npz archive "
                                          r"without the '__meta__' entry"):
        create_router("cascade", {"path": str(path)})


# -- 3. prices of the wrong shape -------------------------------------------------------------------------------

def _outcomes(path: Path, row_prices: Any = None) -> Path:
    rows = [{"prompt": p, "scores": {"cheap": s, "strong": 1.0}} for p, s in (("cat", 1.0), ("dog", 0.0))]
    if row_prices is not None:
        for r in rows:
            r["price_per_1m_tokens"] = row_prices
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("prices", "shown"), [
    ({"cheap": 0.5, "strong": 2.0}, r"model 'cheap' has price 0.5"),
    ({"cheap": {"input": 1.0, "output": 1.0}, "strong": {"in": 2.0}}, r"model 'strong' has price \{'in': 2.0\}"),
    ({"cheap": {"input": "x", "output": 1}, "strong": {"input": 2, "output": 2}},
     r"model 'cheap' has price \{'input': 'x', 'output': 1\}: 'input' and 'output' must be numbers"),
    ({"cheap": {"input": -1, "output": 1}, "strong": {"input": 2, "output": 2}},
     r"model 'cheap' has price .*must be finite and >= 0"),
])
def test_prices_file_of_the_wrong_shape_names_file_model_and_shape(tmp_path: Path, prices: dict[str, Any],
                                                                    shown: str) -> None:
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps(prices))
    with pytest.raises(ConfigError) as info:
        RecordedOutcomes.load(_outcomes(tmp_path / "o.jsonl"), prices=pfile)
    msg = str(info.value)
    assert msg.startswith(f"prices file {pfile}: ")
    assert re.search(shown, msg), msg
    assert "expected one object per model with its USD price per 1M input and output tokens, e.g. " \
           '{"gpt-4o": {"input": 2.5, "output": 10.0}' in msg


def test_prices_file_not_an_object_or_not_json(tmp_path: Path) -> None:
    data = _outcomes(tmp_path / "o.jsonl")
    pfile = tmp_path / "p.json"
    pfile.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=rf"prices file {pfile}: expected a JSON object of models, got list"):
        RecordedOutcomes.load(data, prices=pfile)
    pfile.write_text("{cheap: 1")
    with pytest.raises(ConfigError, match=rf"prices file {pfile} is not readable JSON"):
        RecordedOutcomes.load(data, prices=pfile)
    with pytest.raises(ConfigError, match=r"prices file .*nope.json does not exist"):
        RecordedOutcomes.load(data, prices=tmp_path / "nope.json")


def test_row_prices_of_the_wrong_shape_name_the_line_and_model(tmp_path: Path) -> None:
    data = _outcomes(tmp_path / "o.jsonl", row_prices={"cheap": 1.0, "strong": 5.0})
    with pytest.raises(ConfigError, match=r"o.jsonl:1: field 'price_per_1m_tokens': model 'cheap' has price 1.0; "
                                          r"expected one object per model"):
        RecordedOutcomes.load(data)


def test_train_with_bad_prices_is_refused_before_embedding(tmp_path: Path) -> None:
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"cheap": 0.5, "strong": 2.0}))
    with pytest.raises(ConfigError, match=rf"prices file {pfile}: model 'cheap' has price 0.5"):
        train_light_router("mf", str(_outcomes(tmp_path / "o.jsonl")), tmp_path / "mf.npz", {}, NoEmbedding(),
                           prices=pfile)
    assert not (tmp_path / "mf.npz").exists()


def test_good_prices_still_load(tmp_path: Path) -> None:
    pfile = tmp_path / "p.json"
    pfile.write_text(json.dumps({"_note": "USD per 1M", "cheap": {"input": 1, "output": 2}, "strong": {"input": 5, "output": 15}}))
    o = RecordedOutcomes.load(_outcomes(tmp_path / "o.jsonl"), prices=pfile)
    assert (o.prices["cheap"].input_per_mtok, o.prices["cheap"].output_per_mtok) == (1.0, 2.0)
    assert o.prices["strong"].output_per_mtok == 15.0 and "_note" not in o.prices
    assert read_prices(pfile) == o.prices and read_prices({"m": {"input": 0, "output": 3}})["m"].output_per_mtok == 3.0


# -- 4. the train line of agent-selection data without out-of-scope rows -----------------------------------------

def test_agent_train_line_says_there_are_no_out_of_scope_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crossroads.evals as ev
    from crossroads.evals.suite import BUILTIN_DATA

    rows = tmp_path / "tiny.csv"  # banking77-style text,label rows: no out-of-scope label
    rows.write_text("text,label\n" + "".join(f"{w} x,agent{i // 2}\n" for i, w in enumerate(VOCAB[2:])))
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "tiny.yaml").write_text(json.dumps({
        "name": "tiny", "kind": "agent_selection", "description": "tiny",
        "data": {"dataset": "builtin:tiny", "test_fraction": 0.5, "seed": 0},
        "routers": [{"name": "nearest", "type": "nearest"}]}))
    monkeypatch.setattr(ev, "SUITES_DIR", suites)
    monkeypatch.setitem(BUILTIN_DATA, "tiny", ("banking77", rows, None))
    msg = train_light_router("nearest", "builtin:tiny", tmp_path / "n.npz", {}, WordEmbedder())
    assert msg == "2 agents; fit rows of the tiny suite's split: 2, no out-of-scope rows: no threshold; its 2 test " \
                  "rows never used"
    msg = train_light_router("nearest", str(rows), tmp_path / "all.npz", {}, WordEmbedder())
    assert msg == "2 agents; all 4 rows of tiny.csv (fit 4, no out-of-scope rows: no threshold): do not score it " \
                  "on these rows"
