"""crossroads train encoder: fine-tune MiniLM, export to ONNX, load through the classifier router path.

The torch tests skip without the [train] extra; the router-file and suite checks run everywhere."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossroads import ConfigError, RouteContext, TargetInfo, create_router
from crossroads.errors import UnknownNameError
from crossroads.routers.intent import ClassifierRouter, load_intent_router

AGENTS = {
    "billing": ["refund my last payment", "why was I charged twice", "update my credit card", "cancel the invoice",
                "I want my money back", "the bill is wrong", "payment failed again", "charge on my statement",
                "how much do I owe", "pay my balance now", "dispute a charge", "billing address change",
                "send me a receipt"],
    "shipping": ["where is my parcel", "track my order", "the package is late", "change delivery address",
                 "when will it arrive", "courier lost my box", "shipping cost to canada", "express delivery please",
                 "my order never came", "delivery window tomorrow", "return label for the parcel",
                 "is it shipped yet", "pick up from the depot"],
    "tech": ["the app crashes on start", "cannot log in", "reset my password", "the website is down",
             "error 500 when saving", "bluetooth will not pair", "update failed to install", "screen stays black",
             "wifi keeps dropping", "two factor code never arrives", "sync is broken", "app is very slow",
             "my account is locked"],
}
OOS_ROWS = ["tell me a joke", "what is the capital of peru", "play some jazz", "how tall is everest",
            "recipe for pancakes", "who won the match", "translate hello to french", "what time is it in tokyo",
            "book a table for two", "is it going to rain", "sing me a song", "define serendipity"]


def _toy_csv(path: Path, *, oos: bool = True) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for agent, texts in AGENTS.items():
            w.writerows([t, agent] for t in texts)
        if oos:
            w.writerows([t, "oos"] for t in OOS_ROWS)
    return path


def _cands(*names: str) -> tuple[TargetInfo, ...]:
    return tuple(TargetInfo(name=n) for n in names)


# --- router file with its own encoder (no torch needed) --------------------------------------------

def _fake_router(tmp_path: Path) -> ClassifierRouter:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8)).astype(np.float32)
    return ClassifierRouter.fit(X, ["a", "b", "c"] * 10, hidden=4, epochs=2)


def test_router_file_refuses_a_missing_or_different_encoder(tmp_path):
    r = _fake_router(tmp_path)
    enc = tmp_path / "r.encoder.onnx"
    enc.write_bytes(b"not the trained encoder")
    import hashlib

    r.encoder = {"path": str(enc), "sha256": hashlib.sha256(b"the trained encoder").hexdigest()}
    r.save(tmp_path / "r.npz")
    meta = json.loads(str(np.load(tmp_path / "r.npz")["__meta__"]))
    assert meta["encoder"]["path"] == "r.encoder.onnx"  # stored relative to the router file
    with pytest.raises(ConfigError, match="sha256 .* not the .* its router was trained with"):
        load_intent_router(tmp_path / "r.npz")
    enc.unlink()
    with pytest.raises(ConfigError, match="r.encoder.onnx does not exist; keep the .onnx"):
        create_router("classifier", {"path": str(tmp_path / "r.npz")})


def test_suite_entry_with_a_path_loads_the_file_instead_of_retraining(tmp_path):
    from crossroads.evals.agent_selection import IntentData, SelectionData, build_agent_router

    class Emb:  # 2-d toy embedding: a/b on the axes; "zzz" far from both
        model_id = "toy"

        def embed(self, texts):
            table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "zzz": [-1.0, -1.0]}
            return np.array([table[t.split()[0]] for t in texts], np.float32)

        def embed_one(self, t):
            return self.embed([t])[0]

    fit = IntentData(["a 1", "a 2", "b 1", "b 2", "zzz 1"] * 4, ["a", "a", "b", "b", "oos"] * 4)
    router = ClassifierRouter.fit(Emb().embed(fit.texts), fit.labels, hidden=8, epochs=60, lr=0.01, embedder=Emb(),
                                  fallback="oos")
    path = router.save(tmp_path / "c.npz")
    val = IntentData(["a 3", "b 3", "zzz 2"], ["a", "b", "oos"])
    data = SelectionData(fit, val, val, "toy")
    loaded = build_agent_router("classifier", {"path": str(path), "oos_precision_target": 0.9}, data, Emb())
    assert np.allclose(loaded.classifier.W[0], router.classifier.W[0])  # the file's head, not a retrained one
    assert loaded.calibration["rows"] == 3 and loaded.threshold is not None  # recalibrated on the suite's validation
    assert loaded.route(RouteContext(query="zzz 9", candidates=_cands("a", "b", "oos"))).targets == ("oos",)
    with pytest.raises(ConfigError, match="hidden would be ignored"):
        build_agent_router("classifier", {"path": str(path), "hidden": 4}, data, Emb())
    with pytest.raises(ConfigError, match="takes no path"):
        build_agent_router("semantic", {"path": str(path)}, data, Emb())


def test_eval_entry_with_a_router_trained_on_other_agents_names_the_entry_and_lists_ten(tmp_path):
    """`eval run --router '{name: ft, type: classifier, params: {path: <router trained on 3 other labels>}}'`:
    the error names the entry (ft, not the type) and lists 10 candidates, then how many more."""
    from crossroads._names import name_list
    from crossroads.errors import RoutingError
    from crossroads.evals.agent_selection import IntentData, SelectionData, evaluate_agent_routers

    class Emb:  # any text -> a fixed 4-d vector from its first letter
        model_id = "toy"

        def embed(self, texts):
            return np.array([[ord(t[0]) % 7, ord(t[0]) % 5, 1.0, len(t) % 3] for t in texts], np.float32)

        def embed_one(self, t):
            return self.embed([t])[0]

    fit3 = IntentData(["apple pie", "big dog", "cold tea"] * 5, ["x_one", "x_two", "x_three"] * 5)
    router = ClassifierRouter.fit(Emb().embed(fit3.texts), fit3.labels, hidden=4, epochs=2, embedder=Emb())
    path = router.save(tmp_path / "three.npz")
    labels = [f"intent_{i:02d}" for i in range(14)]  # 14 agents, none of them the router's
    rows = IntentData([f"{chr(97 + i)} query {j}" for i in range(14) for j in range(2)], [lab for lab in labels for _ in range(2)])
    data = SelectionData(rows, IntentData([], []), rows, "toy")
    with pytest.raises(RoutingError) as exc:
        evaluate_agent_routers(data, [("ft", "classifier", {"path": str(path)})], Emb(), bootstrap=0, latency_samples=0)
    msg = str(exc.value)
    assert msg.startswith("router 'ft' knows none of the candidates (intent_00, intent_01, intent_02, intent_03, "
                          "intent_04, intent_05, intent_06, intent_07, intent_08, intent_09 … and 4 more): it was "
                          "trained on other agents (x_one, x_three, x_two)"), msg
    assert "intent_10" not in msg and "retrain it on these" in msg
    assert name_list(labels[:10]) == ", ".join(labels[:10])  # exactly the limit: all, no "more"
    assert name_list(labels[:11]) == ", ".join(labels[:10]) + " … and 1 more"
    assert name_list([]) == ""


# --- the trainer (torch) ---------------------------------------------------------------------------

@pytest.fixture
def torch_mod():
    pytest.importorskip("transformers")
    return pytest.importorskip("torch")


def test_cli_bad_input_errors_name_the_thing(tmp_path, torch_mod):
    from crossroads.cli import app

    runner = CliRunner()
    data = _toy_csv(tmp_path / "toy.csv")

    def run(*args):
        return runner.invoke(app, ["train", "encoder", *args]).exception

    e = run("--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r.npz"))
    assert isinstance(e, ConfigError) and "nope.csv: no such file" in str(e)
    e = run("--data", "builtin:banking78", "--out", str(tmp_path / "r.npz"))
    assert isinstance(e, UnknownNameError) and "builtin:banking77" in str(e)
    e = run("--data", str(data), "--out", str(tmp_path / "missing" / "r.npz"))
    assert isinstance(e, ConfigError) and "folder" in str(e) and "does not exist" in str(e)
    e = run("--data", str(data), "--out", str(tmp_path / "r.onnx"))
    assert isinstance(e, ConfigError) and "must end in .npz" in str(e)
    e = run("--data", str(data), "--out", str(tmp_path / "r.npz"), "-p", "lr=0.1")
    assert isinstance(e, ConfigError) and "unknown parameter(s) lr" in str(e)
    e = run("--data", str(data), "--out", str(tmp_path / "r.npz"), "--test", str(tmp_path / "t.csv"))
    assert isinstance(e, ConfigError) and "t.csv: no such file" in str(e)
    e = runner.invoke(app, ["train", "centroid", "--data", str(data), "--out", str(tmp_path / "c.npz"),
                            "--max-minutes", "3"]).exception
    assert isinstance(e, ConfigError) and "of 'crossroads train encoder'" in str(e)
    assert not list(tmp_path.glob("r.*"))  # nothing half written


@pytest.mark.slow
def test_export_of_the_base_model_matches_the_fp32_embedder(tmp_path, torch_mod):
    """The export is the embedder's model: the untouched base checkpoint exported to ONNX and run through
    MiniLMEmbedder(model_path=) gives the shipped fp32 numpy embedder's vectors."""
    from transformers import AutoModel

    from crossroads.agents.embeddings import MODEL_ID, MiniLMEmbedder
    from crossroads.training.encoder import base_model_dir, export_encoder

    model = AutoModel.from_pretrained(str(base_model_dir()), attn_implementation="sdpa")
    texts = ["refund my order please", "hi", "the card I ordered last week has still not arrived, can you check?"]
    check = export_encoder(model, tmp_path / "base.onnx", check_texts=texts)
    assert check["max_abs_diff_last_hidden"] < 1e-4
    onnx_emb = MiniLMEmbedder(model_path=tmp_path / "base.onnx")
    ref = MiniLMEmbedder(precision="fp32").embed(texts)
    assert np.abs(onnx_emb.embed(texts) - ref).max() < 1e-4
    assert onnx_emb.model_id != MODEL_ID and onnx_emb.model_id.startswith("all-MiniLM-L6-v2-onnx-")


def test_train_export_load_and_route(tmp_path, torch_mod):
    from crossroads.training.encoder import EncoderTrainConfig, selection_data_for, train_encoder_router

    data = _toy_csv(tmp_path / "toy.csv")
    sel, source = selection_data_for(str(data))
    # the suite's split: a seeded stratified 20% test hold-out, then a tenth of the rest for calibration
    assert len(sel.test) == 3 * 3 + 2 and not set(sel.test.texts) & set(sel.fit.texts + sel.validation.texts)
    cfg = EncoderTrainConfig(epochs=2, batch_size=8, train_layers=1, max_minutes=None, threads=2, warm_epochs=30)
    card = train_encoder_router(sel, tmp_path / "r.npz", cfg, data_source=source, progress=False, log=lambda m: None)
    assert card["training"]["steps"] == 2 * int(np.ceil(len(sel.fit) / 8))
    assert card["export_check"]["max_abs_diff_last_hidden"] < 1e-4
    assert (tmp_path / "r.encoder.onnx").exists() and (tmp_path / "r.card.md").exists()
    saved = json.loads((tmp_path / "r.card.json").read_text())
    assert saved["data"]["fit_rows"] == len(sel.fit) and saved["calibration"]["rows"] == len(sel.validation)
    assert saved["algorithm"].endswith("calibrated on the validation slice") and saved["budget_overrun_s"] is None
    router = create_router("classifier", {"path": str(tmp_path / "r.npz")})
    assert router.embedder.model_path.name == "r.encoder.onnx"  # its own encoder, not the default one
    assert router.threshold == card["threshold"]
    d = router.route(RouteContext(query="my parcel has not arrived", candidates=_cands("billing", "shipping", "tech", "oos")))
    assert d.targets and d.targets[0] in ("billing", "shipping", "tech", "oos")
    # the head in the file scores what the torch head scored: recompute the test metrics through route_batch
    from crossroads.training.encoder import score_router

    assert score_router(router, sel.test, True)["top1_accuracy"] == pytest.approx(card["metrics_test"]["top1_accuracy"])


@pytest.mark.slow
def test_fine_tuning_beats_the_frozen_classifier_on_a_banking77_slice(tmp_path, torch_mod):
    from crossroads.agents.embeddings import default_embedder
    from crossroads.evals.agent_selection import build_agent_router
    from crossroads.training.encoder import (
        EncoderTrainConfig,
        score_router,
        selection_data_for,
        train_encoder_router,
    )

    sel, source = selection_data_for("builtin:banking77", limit=3000)
    frozen = build_agent_router("classifier", {"hidden": 256, "epochs": 12, "batch": 128, "lr": 0.003}, sel,
                                default_embedder())
    base = score_router(frozen, sel.test, False)["top1_accuracy"]
    card = train_encoder_router(sel, tmp_path / "b.npz", EncoderTrainConfig(epochs=3, max_minutes=None, threads=2),
                                data_source=source, progress=False, log=lambda m: None)
    # measured: 0.8815 vs 0.8731 frozen (599 test rows; 3 rows = 0.005)
    assert card["metrics_test"]["top1_accuracy"] > base + 0.005, (card["metrics_test"], base)


def test_card_text_and_budget_overrun():
    from crossroads.training.encoder import algorithm_text, budget_overrun_s

    assert "calibrated" not in algorithm_text(contrastive=False, has_oos=False)
    assert "no threshold" in algorithm_text(contrastive=False, has_oos=False)
    assert algorithm_text(contrastive=True, has_oos=True).endswith("calibrated on the validation slice")
    assert "supervised contrastive" in algorithm_text(contrastive=True, has_oos=True)
    assert budget_overrun_s(202.0, 2) == 82.0 and budget_overrun_s(120.0, 2) is None and budget_overrun_s(9e9, None) is None
