"""Replay models serve recorded outcomes and prices; bad data gets errors naming file, line and field."""

import gzip
import json

import pytest

from crossroads import START, ConfigError, Flow, Message, TargetError, load_flow
from crossroads.agents import model as model_target
from crossroads.agents.backends.replay import RecordedOutcomes
from crossroads.agents.tokens import count_tokens


@pytest.fixture(scope="module")
def nine():
    return RecordedOutcomes.builtin("llmrouter-9models")


@pytest.fixture(scope="module")
def two():
    return RecordedOutcomes.builtin("routellm-2models")


def test_builtin_datasets_load_with_prices(nine, two):
    assert len(nine) == 5090 and len(nine.models) == 9
    assert nine.prices["llama-3.1-nemotron-51b-instruct"].input_per_mtok == 0.9
    assert len(two) == 12191 and set(two.models) == {"gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"}
    assert sum(1 for r in two.rows if r.responses) == 1029  # GSM8K rows carry both responses


def test_known_prompt_returns_recorded_response_score_and_price(two):
    row = next(r for r in two.rows if r.responses)
    resp = two.model("gpt-4-1106-preview").complete([Message(role="user", content=row.prompt)])
    assert resp.text == row.responses["gpt-4-1106-preview"]
    assert resp.score == row.scores["gpt-4-1106-preview"]
    assert resp.input_tokens == count_tokens(row.prompt) and resp.output_tokens == count_tokens(resp.text)
    assert resp.cost_usd == pytest.approx(resp.input_tokens * 10e-6 + resp.output_tokens * 30e-6)


def test_outcome_only_rows_say_so(nine):
    row = nine.rows[0]
    resp = nine.model("qwen2.5-7b-instruct").complete([Message(role="user", content=row.prompt)])
    assert resp.score == row.scores["qwen2.5-7b-instruct"] and "no response text recorded" in resp.text


def test_unknown_prompt_and_unknown_model_are_clear_errors(nine):
    with pytest.raises(TargetError, match="no recorded outcome for prompt 'never asked'"):
        nine.model("qwen2.5-7b-instruct").complete([Message(role="user", content="never asked")])
    with pytest.raises(ConfigError, match="unknown model .* 'gpt-5'"):
        nine.model("gpt-5")


def test_bad_rows_name_file_line_and_field(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "a", "scores": {"m": 1}, "price_per_1m_tokens": {"m": {"input": 1, "output": 1}}})
                 + "\n" + json.dumps({"prompt": "", "scores": {"m": 1}}) + "\n")
    with pytest.raises(ConfigError, match=r"d.jsonl:2: missing or empty field 'prompt'"):
        RecordedOutcomes.load(p)
    p.write_text(json.dumps({"prompt": "a", "answers": {}}) + "\n")
    with pytest.raises(ConfigError, match=r"d.jsonl:1: a row needs 'scores'"):
        RecordedOutcomes.load(p)
    p.write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"d.jsonl:1: not valid JSON"):
        RecordedOutcomes.load(p)
    p.write_text(json.dumps({"prompt": "a", "correct": "{'m': True}"}) + "\n")
    with pytest.raises(ConfigError, match="no price for model"):
        RecordedOutcomes.load(p)
    p.write_text("")
    with pytest.raises(ConfigError, match="no rows"):
        RecordedOutcomes.load(p)


def test_user_dataset_gz_with_price_file(tmp_path):
    p = tmp_path / "mine.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(json.dumps({"prompt": "2+2?", "correct": {"small": False, "big": True}, "responses": {"small": "5", "big": "4"}}) + "\n")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"small": {"input": 0.1, "output": 0.1}, "big": {"input": 5, "output": 15}}))
    data = RecordedOutcomes.load(p, prices=prices)
    assert data.model("big").complete([Message(role="user", content="2+2?")]).text == "4"


def test_replay_models_in_a_flow_and_yaml(two):
    row = next(r for r in two.rows if r.responses)
    flow = Flow("pool").add(model_target("gpt4", two.model("gpt-4-1106-preview"), cost=two.prices["gpt-4-1106-preview"]),
                            model_target("mixtral", two.model("mistralai/Mixtral-8x7B-Instruct-v0.1")))
    from crossroads import create_router

    flow.route(START, create_router("cheapest"), candidates=["gpt4", "mixtral"])
    res = flow.compile().invoke(row.prompt)
    assert res.output == row.responses["mistralai/Mixtral-8x7B-Instruct-v0.1"] and res.cost_usd > 0
    app = load_flow("examples/replay_pool.yaml").compile()
    assert app.invoke(row.prompt).output in row.responses.values()
