"""LLM-router training: the agent-selection task's rows and reward, and the SFT → GRPO trainer.

Fast tests use a randomly initialised 2-layer Llama with a byte-level BPE tokenizer trained on the toy
rows (no model download, a few seconds); the slow test trains the real SmolLM2 on a tiny slice, exports it
to GGUF and routes with it in a flow.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from crossroads.agents.models import ModelResponse
from crossroads.errors import ConfigError
from crossroads.routers.reasoning import ReasoningRouter
from crossroads.training.agent_task import AgentSelectionTask, completion_text
from crossroads.types import Message, RouteContext

AGENTS = {
    "billing_refund": ["refund my order", "i want my money back", "give me a refund for the shoes",
                       "refund the last payment", "can i get a refund", "please refund me"],
    "tech_crash": ["the app crashed", "it keeps crashing on start", "app closes by itself",
                   "crash when i open settings", "the program crashed again", "app froze and crashed"],
    "travel_book_flight": ["book a flight to rome", "get me a plane ticket", "flight to paris tomorrow",
                           "reserve a seat on a flight", "i need to fly to oslo", "book me a flight"],
}
OOS_ROWS = ["what is the meaning of life", "tell me a joke", "how tall is everest", "sing a song"]


@pytest.fixture()
def toy_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for label, texts in AGENTS.items():
            for t in texts:
                w.writerow([t, label])
        for t in OOS_ROWS:
            w.writerow([t, "oos"])
    return path


class _Capture:
    """A chat model that records the prompts it is sent and answers a fixed JSON (outside-the-machine stand-in)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.seen: list[list[Message]] = []

    def complete(self, messages: list[Message], **_: Any) -> ModelResponse:
        self.seen.append(list(messages))
        return ModelResponse(text=self.answer, model="capture", input_tokens=1, output_tokens=1)


def test_sft_rows_are_the_routers_own_prompts_and_parse(toy_file: Path) -> None:
    task = AgentSelectionTask(str(toy_file), shortlist=None, examples=1, seed=0)
    rows = task.sft_rows(limit=None, seed=0)
    assert rows and all(r["completion"][0]["role"] == "assistant" for r in rows)
    texts = set(task.split.fit.texts)
    test_texts = set(task.split.test.texts) - texts
    # the run-time router, built the way the suite builds it, sends exactly the training prompt
    for r in rows[:5]:
        query = r["prompt"][-1]["content"]
        assert query in texts and query not in test_texts
        router = ReasoningRouter(model=_Capture(r["completion"][0]["content"]), out_of_scope="oos", k=3,
                                 label_scores=False)
        d = router.route(RouteContext(query=query, candidates=task.candidates))
        sent = router.model.seen[0]
        assert [{"role": m.role, "content": m.content} for m in sent] == r["prompt"]
        gold = json.loads(r["completion"][0]["content"])["agents"][0]
        assert d.targets == (("oos",) if gold == "out_of_scope" else (gold,))
        # label scoring reads exactly this prefix of the completion
        prefix = router.label_prefix(router.parse(r["completion"][0]["content"], task.candidates[:-1]))
        assert r["completion"][0]["content"].startswith(prefix)
    # every fit row but the card examples (one per agent) becomes a row; OOS answers out_of_scope
    n_fit = len(task.split.fit)
    assert len(rows) == n_fit - len(AGENTS)
    assert task.skipped == {"card_example": len(AGENTS), "gold_not_in_shortlist": 0}
    assert sum('["out_of_scope"]' in r["completion"][0]["content"] for r in rows) == task.split.fit.n_oos
    assert rows[0]["completion"][0]["content"] in {
        json.dumps({"reasoning": "", "agents": [a]}) for a in [*AGENTS, "out_of_scope"]}


def test_sft_rows_match_the_clinc150_suite_prompts_with_a_shortlist() -> None:
    """Same prompts as evaluate_reasoning_router sends on the shipped CLINC150 split (MiniLM shortlist m=10)."""
    from crossroads.evals.llm_routers import evaluate_reasoning_router

    task = AgentSelectionTask("builtin:clinc150", shortlist=10, examples=1, seed=0)
    rows = task.grpo_rows(limit=3, seed=0)
    assert len(rows) == 3 and all(len(r["candidates"]) == 10 and r["gold"] in [*r["candidates"], "oos"] for r in rows)
    fake = _Capture('{"reasoning": "", "agents": ["out_of_scope"]}')
    ev = evaluate_reasoning_router(task.split.fit, task.split.test, {"samples": 2, "model": fake, **task.router_params()},
                                   task.embedder, seed=0)
    assert ev["n_sampled"] == 2 and len(fake.seen) == 2
    for sent in fake.seen:
        msgs, _ = task.prompt(sent[-1].content)
        assert [{"role": m.role, "content": m.content} for m in sent] == msgs
    # training never sees a test row
    assert not set(task.split.test.texts) & {r["prompt"][-1]["content"] for r in task.sft_rows(limit=200)}


def test_reward_adapter_on_hand_made_completions(toy_file: Path) -> None:
    task = AgentSelectionTask(str(toy_file), shortlist=None, examples=1, size_penalty=0.25)
    (reward,) = task.reward_funcs()
    names = list(AGENTS)
    completions = [
        [{"role": "assistant", "content": '{"reasoning": "", "agents": ["billing_refund"]}'}],  # right, alone
        [{"role": "assistant", "content": '{"reasoning": "x", "agents": ["tech_crash", "billing_refund"]}'}],  # right + 1 extra
        [{"role": "assistant", "content": '{"reasoning": "", "agents": ["tech_crash"]}'}],  # wrong
        [{"role": "assistant", "content": 'billing_refund'}],  # garbled: not JSON
        [{"role": "assistant", "content": '{"reasoning": "", "agents": ["nope"]}'}],  # garbled: not a candidate
        '{"reasoning": "", "agents": ["out_of_scope"]}',  # a plain-string completion, out of scope, gold oos
        [{"role": "assistant", "content": '{"reasoning": "", "agents": ["out_of_scope"]}'}],  # oos for an in-scope gold
        [{"role": "assistant", "content": '{"agents": ["a", "b", "c", "d"]}'}],  # garbled
    ]
    gold = ["billing_refund"] * 5 + ["oos", "tech_crash", "billing_refund"]
    got = reward(prompts=[None] * 8, completions=completions, gold=gold, candidates=[names] * 7 + [["a", "b", "c", "d"]])
    assert got == [1.0, 0.75, 0.0, -1.0, -1.0, 1.0, 0.0, -1.0]
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"


def test_bad_input_errors(toy_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        AgentSelectionTask(str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match="builtin:banking77"):
        AgentSelectionTask("builtin:llmrouter-9models")
    task = AgentSelectionTask(str(toy_file), shortlist=None)
    with pytest.raises(ConfigError, match="seed"):
        task.evaluate({"provider": "llama_cpp"}, samples=1, seed=3)


# -- the trainer on a tiny random model ------------------------------------------------------------
torch_missing = [m for m in ("torch", "transformers", "trl", "peft", "datasets", "tokenizers")
                 if __import__("importlib").util.find_spec(m) is None]
needs_train = pytest.mark.skipif(bool(torch_missing), reason=f"[train] extra missing: {torch_missing}")

CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _tiny(task: AgentSelectionTask) -> tuple[Any, Any]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    corpus = [m["content"] for r in task.sft_rows() for m in [*r["prompt"], *r["completion"]]]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>")
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg), tok


@needs_train
def test_tiny_sft_writes_merged_checkpoint_curve_and_card(toy_file: Path, tmp_path: Path) -> None:
    from crossroads.training.llm_router import train_llm_router

    task = AgentSelectionTask(str(toy_file), shortlist=None, examples=1)
    model, tok = _tiny(task)
    out = tmp_path / "run"
    report = train_llm_router(task, out, stages=("sft",), sft_steps=2, batch=4, export=False, progress=False,
                              limit=None, model=model, tokenizer=tok)
    sft = report["stages"]["sft"]
    assert sft["done"] and sft["steps"] == 2 and sft["rows"] == len(task.sft_rows()) and "grpo" not in report["stages"]
    hist = json.loads((out / "report" / "sft_log_history.json").read_text())
    assert [h["step"] for h in hist if "loss" in h] == [1, 2]
    assert (out / "report" / "sft_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert report["gguf"] is None and (out / "model" / "config.json").exists()
    assert "| sft | " in (out / "model_card.md").read_text()
    # --resume with other settings than the run was started with is refused, naming each difference
    with pytest.raises(ConfigError, match=r"sft_steps: started with 2, now 3.*limit: started with None, now 5"):
        train_llm_router(task, out, stages=("sft",), sft_steps=3, batch=4, export=False, progress=False,
                         limit=5, resume=True, model=model, tokenizer=tok)


@needs_train
@pytest.mark.slow
def test_tiny_sft_then_grpo_with_checkpoint_and_resume(toy_file: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from crossroads.training.llm_router import train_llm_router

    task = AgentSelectionTask(str(toy_file), shortlist=None, examples=1)

    class Interrupt(TrainerCallback):  # Ctrl-C after the 3rd GRPO step (a checkpoint was saved at step 2)
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if Path(args.output_dir).name == "grpo" and state.global_step == 3:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    kw: dict[str, Any] = {"sft_steps": 4, "grpo_steps": 4, "num_generations": 2, "grpo_prompts": 2, "batch": 4,
                          "save_steps": 2, "max_completion": 12, "export": False, "progress": False, "limit": None}
    model, tok = _tiny(task)
    with pytest.raises(KeyboardInterrupt):
        train_llm_router(task, out, **dict(kw, callbacks=[Interrupt()], model=model, tokenizer=tok))
    assert (out / "sft" / "final" / "config.json").exists()  # SFT finished before the interruption
    assert (out / "grpo" / "checkpoint-2").exists() and not (out / "grpo" / "final").exists()
    state = json.loads((out / "run_state.json").read_text())
    assert state["stages"]["sft"]["done"] and not state["stages"]["grpo"].get("done")
    with pytest.raises(ConfigError, match="--resume"):
        train_llm_router(task, out, **dict(kw, model=model, tokenizer=tok))
    model2, tok2 = _tiny(task)
    report = train_llm_router(task, out, resume=True, **dict(kw, model=model2, tokenizer=tok2))
    grpo = report["stages"]["grpo"]
    assert grpo["done"] and grpo["steps"] == 4 and grpo["resumed_from"].endswith("checkpoint-2")
    assert report["stages"]["sft"]["steps"] == 4  # SFT was not re-run
    hist = json.loads((out / "report" / "grpo_log_history.json").read_text())
    assert any("reward" in h for h in hist)
    assert {p.name for p in (out / "report").glob("*.png")} >= {"sft_loss.png", "grpo_reward.png"}
    assert (out / "model" / "config.json").exists() and (out / "model_card.md").exists()
    card = json.loads((out / "model_card.json").read_text())
    assert card["data_sha256"] == task.data_hashes() and len(card["data_sha256"]["toy.csv"]) == 64
    assert card["config"]["lora"] is True and card["task"]["router_params"]["k"] == 3
    # the merged checkpoint holds plain (non-LoRA) weights
    from safetensors import safe_open

    with safe_open(str(out / "model" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "lora" in k]  # noqa: SIM118


@needs_train
def test_unknown_stage_and_small_group(toy_file: Path, tmp_path: Path) -> None:
    from crossroads.training.llm_router import train_llm_router

    task = AgentSelectionTask(str(toy_file), shortlist=None)
    with pytest.raises(ConfigError, match="stage"):
        train_llm_router(task, tmp_path / "a", stages=("dpo",), model=object(), tokenizer=object())
    with pytest.raises(ConfigError, match="num_generations"):
        train_llm_router(task, tmp_path / "b", num_generations=1, model=object(), tokenizer=object())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="afile is a file; llm-router writes a run folder"):
        train_llm_router(task, tmp_path / "afile", model=object(), tokenizer=object())
    assert (tmp_path / "afile").read_text() == "x"


SLOW_FLOW = """
name: trained-router
targets:
  "billing_refund": {callable: agents.py:refund, description: refunds}
  "tech_crash": {callable: agents.py:crash, description: crashes}
  "travel_book_flight": {callable: agents.py:flight, description: flights}
  "oos": {callable: agents.py:human, description: out of scope}
routers:
  triage:
    type: reasoning
    params: PARAMS
edges:
  - {from: START, route: triage, candidates: ["billing_refund", "tech_crash", "travel_book_flight", "oos"]}
"""


@needs_train
@pytest.mark.slow
def test_smollm2_few_steps_exported_to_gguf_routes_in_a_flow(toy_file: Path, tmp_path: Path) -> None:
    """What CI's smoke training runs: a few SFT + GRPO steps of SmolLM2 on a tiny slice, the GGUF loaded
    into a flow's reasoning router (llama.cpp), and the same run through the CLI's task builder."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    from crossroads import load_flow
    from crossroads.training.llm_router import train_llm_router_command

    out = tmp_path / "run"
    report = train_llm_router_command(str(toy_file), out, task=None, base=None, lora=True, sft_steps=3, grpo_steps=1,
                                      limit=8, resume=False, eval_samples=0,
                                      params={"shortlist": None, "num_generations": 2, "grpo_prompts": 1,
                                              "max_completion": 24, "threads": 2})
    gguf = Path(report["gguf"])
    assert gguf.exists() and report["stages"]["sft"]["steps"] == 3 and report["stages"]["grpo"]["steps"] == 1
    card = (out / "model_card.md").read_text()
    assert "type: reasoning" in card and str(gguf) in card
    (tmp_path / "agents.py").write_text("def refund(t): return 'R'\ndef crash(t): return 'C'\n"
                                        "def flight(t): return 'F'\ndef human(t): return 'H'\n")
    params = {**report["task"]["router_params"], "out_of_scope": "oos",
              "model": {"provider": "llama_cpp", "path": str(gguf), "max_tokens": 48},
              "fallback": {"type": "semantic"}}
    params.pop("examples")
    params["k"] = 1  # one agent per request: this route has no merge node to fan out to
    (tmp_path / "flow.yaml").write_text(SLOW_FLOW.replace("PARAMS", json.dumps(params)))
    res = load_flow(str(tmp_path / "flow.yaml")).compile().invoke("i want my money back for the order")
    assert res.output in {"R", "C", "F", "H"}
