"""Router-R1 training: the model-routing task, its replay reward, and running a trained policy in a shipped suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.errors import ConfigError
from crossroads.evals import SUITES_DIR
from crossroads.evals.suite import load_suite, with_routers

TRAINED = {"name": "r1_trained", "type": "router_r1",
           "params": {"samples": 5, "model": {"provider": "llama_cpp", "path": "r1.gguf"}}}


def test_a_trained_router_joins_a_shipped_suite_run() -> None:
    spec, _ = load_suite(SUITES_DIR / "llmrouter-9models.yaml")
    both = with_routers(spec, [TRAINED], only=["knn", "r1_trained"])
    assert [(r.name, r.type) for r in both.routers] == [("knn", "knn"), ("r1_trained", "router_r1")]
    assert both.routers[1].params["model"] == {"provider": "llama_cpp", "path": "r1.gguf"}
    assert len(spec.routers) == 10  # the shipped spec is not changed
    assert [r.name for r in with_routers(spec, [TRAINED]).routers][-2:] == ["router_r1_smollm2", "r1_trained"]
    with pytest.raises(ConfigError, match="no router named 'knnn'.*routers: random"):
        with_routers(spec, [], only=["knnn"])
    with pytest.raises(ConfigError, match="added router #1.*invalid"):
        with_routers(spec, [{"name": "x", "typ": "knn"}])


def test_cli_router_option_parses_a_yaml_mapping() -> None:
    from crossroads.cli import _router_entry

    got = _router_entry("{name: r1_trained, type: router_r1, params: {samples: 5, model: {provider: llama_cpp, "
                        "path: r1.gguf}}}")
    assert got == TRAINED
    with pytest.raises(ConfigError, match="must be a mapping"):
        _router_entry("router_r1")
    with pytest.raises(ConfigError, match="not valid YAML"):
        _router_entry("{name: [")


# -- the replay reward (hand-computed) -----------------------------------------------------------
SCORES = {"cheap": 1.0, "mid": 0.0, "strong": 1.0}
COSTS = {"cheap": 1e-6, "mid": 2e-6, "strong": 9e-6}
POOL = ["cheap", "mid", "strong"]


def replay(text: str, c: float = 0.4, **kw: object) -> float:
    from crossroads.routers.rewards import router_r1_replay_reward

    args = {"scores": SCORES, "costs": COSTS, "cost_scale_usd": 9e-6, "c": c, "pool": POOL, **kw}
    return router_r1_replay_reward(text, **args)  # type: ignore[arg-type]


def test_replay_reward_on_hand_made_completions() -> None:
    # (outcome + format) x (1 - c) + (1 - cost / scale) x c, c = 0.4, scale = the strong model's 9e-6
    assert replay("<think>easy</think><search>cheap: what is 2+2</search>") == pytest.approx(0.6 + 0.4 * (1 - 1 / 9))
    assert replay("<think>hard</think><search>strong: what is 2+2</search>") == pytest.approx(0.6)
    assert replay("<think>x</think><search>mid: what is 2+2</search>") == pytest.approx(0.4 * (1 - 2 / 9))
    # an answer without consulting: outcome 0 (no recorded outcome to stand in), cost 0 -> the cost reward alone
    assert replay("<think>I know it</think><answer>4</answer>") == pytest.approx(0.4)
    # c = 0: only the outcome counts, so cheap-correct and expensive-correct tie; c = 1: only the cost
    assert replay("<think>a</think><search>cheap: q</search>", c=0.0) == replay("<think>a</think><search>strong: q</search>", c=0.0) == 1.0
    assert replay("<think>a</think><search>strong: q</search>", c=1.0) == pytest.approx(0.0)
    # a cost above the scale is clipped (the cost reward never goes negative)
    assert replay("<think>a</think><search>strong: q</search>", cost_scale_usd=3e-6) == pytest.approx(0.6)


@pytest.mark.parametrize("garbled", [
    "route to cheap please",                                            # no tags at all
    "<search>cheap: q</search>",                                        # no think block (the grammar requires one)
    "<think>x</think><search>gpt-9: q</search>",                        # not a pool model
    "<think>x</think><search>cheap:   </search>",                       # empty sub-query
    "<think>x</think><search>cheap q</search>",                         # no 'model: query'
    "<think>x</think><search>cheap: q</search><search>strong: q</search>",  # two actions in one turn
    "<think>x</think><search>cheap: q</search> and then I will answer",     # text after the action
    "<think>x</think><search>cheap: q",                                 # never closed
])
def test_replay_reward_format_violation(garbled: str) -> None:
    assert replay(garbled) == pytest.approx(-0.6)  # format -1 x (1 - c); outcome and cost rewards zeroed
    assert replay(garbled, c=1.0) == pytest.approx(0.0)


def test_replay_reward_refuses_bad_weights() -> None:
    with pytest.raises(ValueError, match="c \\(the cost weight\\)"):
        replay("<think>x</think><answer>4</answer>", c=1.5)
    with pytest.raises(ValueError, match="cost_scale_usd"):
        replay("<think>x</think><answer>4</answer>", cost_scale_usd=0.0)


def test_best_replay_model_ties_and_cost_weight() -> None:
    from crossroads.training.r1_task import best_replay_model

    # both cheap and strong are right: the cheaper wins for any c > 0, and at c = 0 (a reward tie) too
    assert best_replay_model([1, 0, 1], [1e-6, 2e-6, 9e-6], POOL, c=0.4) == "cheap"
    assert best_replay_model([1, 0, 1], [1e-6, 2e-6, 9e-6], POOL, c=0.0) == "cheap"
    # only strong is right: worth it at c = 0.4 (0.6 > 0.4 x 8/9) but not at c = 0.9 (0.1 < 0.9 x 8/9)
    assert best_replay_model([0, 0, 1], [1e-6, 2e-6, 9e-6], POOL, c=0.4) == "strong"
    assert best_replay_model([0, 0, 1], [1e-6, 2e-6, 9e-6], POOL, c=0.9) == "cheap"
    # same score and cost: the higher mean training score, then pool order
    assert best_replay_model([1, 1, 0], [2e-6, 2e-6, 9e-6], POOL, c=0.4, quality=[0.3, 0.5, 0.9]) == "mid"
    assert best_replay_model([1, 1, 0], [2e-6, 2e-6, 9e-6], POOL, c=0.4) == "cheap"


# -- the task on a small outcome file ------------------------------------------------------------
PRICES = {"cheap": {"input": 1, "output": 1}, "mid": {"input": 2, "output": 2}, "strong": {"input": 9, "output": 9}}
# per row: which models are right; the reward-best model at c = 0.4 is the cheapest right one (cheap if none)
RIGHT = [("cheap", "strong"), ("strong",), ("mid", "strong"), (), ("cheap", "mid", "strong"), ("strong",),
         ("mid",), ("cheap",), ("strong",), ("mid", "strong"), ("cheap", "strong"), ()]
BEST = ["cheap", "strong", "mid", "cheap", "cheap", "strong", "mid", "cheap", "strong", "mid", "cheap", "cheap"]


@pytest.fixture
def outcome_file(tmp_path: object) -> object:
    import json

    path = tmp_path / "mine.jsonl"  # type: ignore[operator]
    with open(path, "w") as fh:
        for i, right in enumerate(RIGHT):
            fh.write(json.dumps({"prompt": f"question number {i}: what is {i} + {i}?", "task": "t",
                                 "scores": {m: float(m in right) for m in POOL}, "price_per_1m_tokens": PRICES}) + "\n")
    return path


def test_task_split_targets_and_rows(outcome_file: object) -> None:
    from crossroads.training.r1_task import ModelRoutingTask

    task = ModelRoutingTask(str(outcome_file), test_fraction=0.25, seed=0, answer_share=0.5)
    train_q, test_q = set(task.train.prompts), set(task.test.prompts)
    assert len(train_q) == 9 and len(test_q) == 3 and not train_q & test_q  # the test rows never reach training
    idx = {f"question number {i}: what is {i} + {i}?": i for i in range(len(RIGHT))}
    assert task.targets == [BEST[idx[p]] for p in task.train.prompts]
    rows = task.sft_rows(seed=3)
    assert len(rows) == 9 and sum(len(r["prompt"]) == 4 for r in rows) == 4  # round(0.5 x 9) second turns
    for r in rows:
        q = r["prompt"][1]["content"]
        best = BEST[idx[q]]
        text = r["completion"][0]["content"]
        if len(r["prompt"]) == 2:
            # the sub-query: the query's first 6 words (the replayed pool answers the original query anyway)
            assert text == f"<think>{task.think}</think><search>{best}: {' '.join(q.split()[:6])} ...</search>"
        else:  # the reply of the routed model comes back, then the answer
            assert r["prompt"][2]["content"].startswith(f"<think>{task.think}</think><search>{best}: ")
            assert r["prompt"][3]["content"].startswith(f"<information>[recorded outcome of {best}: score ")
            assert text.startswith("<think>") and "<answer>[recorded outcome of" in text
    fn = task.reward_funcs()[0]
    g = task.grpo_rows()
    for m in POOL:  # the SFT target is the completion the GRPO reward ranks highest
        got = fn(None, [[{"role": "assistant", "content": f"<think>t</think><search>{m}: q</search>"}] for _ in g],
                 **{k: [row[k] for row in g] for k in ("pool", "scores", "costs", "cost_scale_usd")})
        for row, r in zip(g, got, strict=True):
            best = BEST[idx[row["prompt"][1]["content"]]]
            assert (r == max(fn(None, [[{"role": "assistant", "content": f"<think>t</think><search>{x}: q</search>"}]
                                       for x in POOL], pool=[row["pool"]] * 3, scores=[row["scores"]] * 3,
                                 costs=[row["costs"]] * 3, cost_scale_usd=[row["cost_scale_usd"]] * 3))) == (m == best)
    assert fn(None, ["garbled"], **{k: [g[0][k]] for k in ("pool", "scores", "costs", "cost_scale_usd")}) == [-0.6]


def test_training_prompts_are_the_suite_evaluation_prompts(outcome_file: object) -> None:
    """Drive evaluate_router_r1 (the suite's Router-R1 eval) with a scripted policy through the task: the
    first-turn messages it receives are the ones the task trains on, and its figures follow from the data."""
    from crossroads.agents import FunctionModel
    from crossroads.training.r1_task import ModelRoutingTask

    task = ModelRoutingTask(str(outcome_file), test_fraction=0.25, seed=0)
    idx = {f"question number {i}: what is {i} + {i}?": i for i in range(len(RIGHT))}
    seen: list[list[tuple[str, str]]] = []

    def policy(msgs: object) -> str:
        msgs = list(msgs)  # type: ignore[call-overload]
        if len(msgs) == 2:
            seen.append([(m.role, m.content) for m in msgs])
            return f"<think>t</think><search>{BEST[idx[msgs[1].content]]}: q</search>"
        return "<think>t</think><answer>done</answer>"

    res = task.evaluate(FunctionModel(policy), samples=10)
    assert len(seen) == res["n_sampled"] == 3
    system = task.messages(0)[0]
    for msgs in seen:
        assert msgs[0] == (system["role"], system["content"]) and msgs[1][0] == "user"
    test_best = [BEST[idx[p]] for p in task.test.prompts]
    assert res["best_quality"] == pytest.approx(sum(float(m in RIGHT[idx[p]]) for p, m in zip(task.test.prompts, test_best,
                                                                                          strict=True)) / 3)
    price = {"cheap": 1, "mid": 2, "strong": 9}
    assert res["best_quality_cost"] == pytest.approx(sum(price[m] for m in test_best) / (9 * 3), rel=0.05)
    assert res["format_errors_per_query"] == 0 and res["mean_models_consulted"] == 1.0


def test_task_refuses_bad_settings(outcome_file: object) -> None:
    from crossroads.training.r1_task import ModelRoutingTask

    with pytest.raises(ConfigError, match="c \\(the cost weight\\)"):
        ModelRoutingTask(str(outcome_file), c=2.0)
    with pytest.raises(ConfigError, match="needs recorded outcomes"):
        ModelRoutingTask("builtin:clinc150")
    with pytest.raises(ConfigError, match="does not exist"):
        ModelRoutingTask("missing.jsonl")


def test_suite_runs_router_r1_next_to_a_baseline_on_the_test_rows(tmp_path: object) -> None:
    """The suite's Router-R1 entry answers the TEST prompts from the replayed pool (its outcomes must hold
    them), and joins the run's shared-max AIQ next to the other routers."""
    import json

    import numpy as np

    from crossroads.agents import FunctionModel
    from crossroads.evals.suite import SuiteSpec, query_outcomes, resolve_data, run_suite

    path = tmp_path / "mine.jsonl"  # type: ignore[operator]
    prompts = [f"row {i}: what is {i} + {i}?" for i in range(2 * len(RIGHT))]
    with open(path, "w") as fh:
        for i, p in enumerate(prompts):
            fh.write(json.dumps({"prompt": p, "task": "t", "scores": {m: float(m in RIGHT[i % 12]) for m in POOL},
                                 "price_per_1m_tokens": PRICES}) + "\n")
    idx = {p: i % 12 for i, p in enumerate(prompts)}

    class Hash:  # embeddings for the baseline's bookkeeping only (no model download)
        def embed(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), t.count("1")] for t in texts], dtype=np.float32)

    def policy(msgs: object) -> str:
        msgs = list(msgs)  # type: ignore[call-overload]
        if len(msgs) == 2:
            return f"<think>t</think><search>{BEST[idx[msgs[1].content]]}: q</search>"
        return "<think>t</think><answer>done</answer>"

    spec = SuiteSpec.model_validate({
        "name": "mine", "kind": "query_routing",
        "data": {"dataset": str(path), "format": "outcomes", "test_fraction": 0.25, "seed": 0},
        "routers": [{"name": "cheapest", "type": "cheapest"},
                    {"name": "r1", "type": "router_r1", "params": {"samples": 50, "model": FunctionModel(policy)}}],
        "settings": {"bootstrap": 0, "latency_samples": 0}})
    res = run_suite(spec, embedder=Hash()).results
    r1, cheap = res["routers"]["r1"], res["routers"]["cheapest"]
    _, test_o = query_outcomes(resolve_data(spec.data, Path("/")), spec.data, "mine")
    test = [r.prompt for r in test_o.rows]
    assert r1["n_sampled"] == len(test) == 6 and r1["format_errors_per_query"] == 0
    assert r1["best_quality"] == pytest.approx(np.mean([float(BEST[idx[p]] in RIGHT[idx[p]]) for p in test]))
    assert cheap["best_quality"] == pytest.approx(np.mean([float("cheap" in RIGHT[idx[p]]) for p in test]))
    # one point each; AIQ = q (M - c) / M with the run's shared M
    m = res["aiq_max_cost"]
    for v in (r1, cheap):
        (p,) = v["points"]
        assert v["aiq"] == pytest.approx(p["quality"] * (m - p["cost"]) / m)


def _tiny_model(texts: list[str]) -> tuple[object, object]:
    """A 2-layer random llama and a byte-level BPE trained on the task's own texts (no download)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("peft")
    pytest.importorskip("datasets")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>")
    tok.chat_template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
                         "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                         "{% endif %}")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg), tok


@pytest.mark.slow  # ~40 s on a busy 2-core machine
def test_trainer_runs_sft_then_grpo_on_the_model_routing_task(outcome_file: object, tmp_path: object) -> None:
    """llmtrain's trainer, task-agnostic, on this task: SFT rows train, GRPO reads the reward columns and logs
    router_r1_replay's reward."""
    import json

    from crossroads.training.r1_task import ModelRoutingTask

    task = ModelRoutingTask(str(outcome_file), test_fraction=0.25, seed=0)
    texts = [m["content"] for r in task.sft_rows() for m in [*r["prompt"], *r["completion"]]]
    model, tok = _tiny_model(texts)
    from crossroads.training.llm_router import train_llm_router

    out = tmp_path / "run"  # type: ignore[operator]
    report = train_llm_router(task, out, stages=("sft", "grpo"), sft_steps=2, grpo_steps=1, num_generations=2,
                              grpo_prompts=2, batch=4, max_completion=16, export=False, progress=False, limit=None,
                              model=model, tokenizer=tok)
    assert report["stages"]["sft"]["steps"] == 2 and report["stages"]["grpo"]["steps"] == 1
    hist = json.loads((out / "report" / "grpo_log_history.json").read_text())
    rewards = [h["rewards/router_r1_replay/mean"] for h in hist if "rewards/router_r1_replay/mean" in h]
    assert rewards and -0.6 - 1e-6 <= rewards[0] <= 1.0  # a random tiny model: mostly garbled turns (-(1 - c) = -0.6)
    assert report["task"]["router_params"] == {"max_rounds": 3} and report["task"]["c"] == 0.4
