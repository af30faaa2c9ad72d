"""Provider calls through litellm against a real local server that misbehaves on purpose."""

import pytest

from crossroads import (
    START,
    ConfigError,
    CostModel,
    Flow,
    HealthStatus,
    Message,
    SQLRecorder,
    TargetError,
    TraceStore,
)
from crossroads.agents import model as model_target
from crossroads.agents.backends.catalogue import ModelCatalogue
from crossroads.agents.backends.litellm_model import LiteLLMModel
from crossroads.agents.backends.resilience import AllModelsFailedError, ResilientModel
from crossroads.testing import ScriptedOpenAIServer

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz"
MSGS = [Message(role="user", content="hello there")]
PRICE = CostModel(input_per_mtok=1.0, output_per_mtok=2.0)


def fake(srv, name="fake", timeout_s=5.0):
    return LiteLLMModel("openai/fake", name=name, api_base=srv.url, api_key=KEY, cost=PRICE, timeout_s=timeout_s)


def resilient(models, **kw):
    return ResilientModel(models, sleep=lambda s: None, **kw)


def test_completion_tokens_cost_and_key_sent_but_not_kept():
    with ScriptedOpenAIServer() as srv:
        r = fake(srv).complete(MSGS)
    assert r.text == "echo: hello there" and r.input_tokens == 11 and r.output_tokens == 3
    assert r.cost_usd == pytest.approx(11 * 1e-6 + 3 * 2e-6)
    assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(fake.__defaults__) and KEY not in repr(LiteLLMModel("openai/fake", api_key=KEY, cost=PRICE))


def test_catalogue_prices_and_unknown_models():
    cat = ModelCatalogue()
    d = cat.describe("openai/gpt-4o-mini")
    assert d.provider == "openai" and d.cost.input_per_mtok > 0 and d.context_window and "function_calling" in d.capabilities
    with pytest.raises(ConfigError, match="give its price explicitly"):
        LiteLLMModel("my-private-model")
    with pytest.raises(ConfigError, match="give its price explicitly"):
        cat.add_from_mapping("my-private-model", {"provider": "openai"})
    cat.add_from_mapping("my-private-model", {"cost": {"input_per_mtok": 0.5}})
    assert LiteLLMModel("my-private-model", catalogue=cat).cost.input_per_mtok == 0.5
    cat.add_from_mapping("gpt-4o-mini", {"cost": {"input_per_mtok": 9.0}})  # override wins
    assert cat.describe("gpt-4o-mini").cost.input_per_mtok == 9.0


def test_retries_500_429_and_garbage_then_succeeds():
    with ScriptedOpenAIServer(script=["500", "429", "garbage", "ok"]) as srv:
        r = resilient([fake(srv)], retries=3, failures_for_cooldown=10).complete(MSGS)
    assert r.text == "echo: hello there"
    assert [(e.kind, e.detail["status"]) for e in r.events] == [("retry", 500), ("retry", 429), ("retry", 500)]


def test_hang_times_out_and_is_retried():
    with ScriptedOpenAIServer(script=["hang", "ok"], hang_s=2.0) as srv:
        r = resilient([fake(srv, timeout_s=0.3)], retries=1).complete(MSGS)
    assert r.text.startswith("echo") and r.events[0].detail["status"] == 408


def test_client_errors_are_not_retried_but_fall_back():
    with ScriptedOpenAIServer(default="400") as bad, ScriptedOpenAIServer() as good:
        r = resilient([fake(bad, "primary"), fake(good, "backup")], retries=3).complete(MSGS)
    assert len(bad.requests) == 1  # a 400 is not worth retrying
    assert [(e.kind, e.target) for e in r.events] == [("fallback", "backup")]


def test_cooldown_after_failure_spike_then_skip():
    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        m = resilient([fake(bad, "primary"), fake(good, "backup")], retries=2, failures_for_cooldown=3, cooldown_s=60)
        first = m.complete(MSGS)
        assert [e.kind for e in first.events] == ["retry", "retry", "cooldown", "fallback"]
        assert m.health_snapshot().status is HealthStatus.DEGRADED
        second = m.complete(MSGS)
        assert [e.kind for e in second.events] == ["skip_cooldown"] and len(bad.requests) == 3


def test_every_model_failing_raises_with_events():
    with ScriptedOpenAIServer(default="500") as a, ScriptedOpenAIServer(default="429") as b:
        m = resilient([fake(a, "a"), fake(b, "b")], retries=1, failures_for_cooldown=99)
        with pytest.raises(AllModelsFailedError, match="every model failed") as e:
            m.complete(MSGS)
    assert [ev.kind for ev in e.value.events] == ["retry", "fallback", "retry"]


def test_dropped_stream_is_an_error_and_good_stream_works():
    with ScriptedOpenAIServer(script=["drop", "ok"]) as srv:
        m = fake(srv)
        with pytest.raises(TargetError, match="broke off|dropped connection"):
            list(m.stream([Message(role="user", content="one two three four")]))
        assert "".join(m.stream(MSGS)) == "echo: hello there"


def test_flow_records_calls_and_events_without_secrets(db_path):
    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        chat = resilient([fake(bad, "primary"), fake(good, "backup")], retries=1, failures_for_cooldown=2)
        flow = Flow("models").add(model_target("assistant", chat, description="answers"))
        rec = SQLRecorder(str(db_path))
        app = flow.compile(recorder=rec)
        res = app.invoke(f"my key is {KEY}")
        rec.close()
    assert res.output.startswith("echo: my key is")
    run = TraceStore(db_path).get_run(res.run_id)
    assert [e["kind"] for e in run["events"]] == ["retry", "cooldown", "fallback"]
    (call,) = run["calls"]
    assert call["model"] == "backup" and call["tokens_in"] == 11 and call["cost_usd"] > 0
    data = db_path.read_bytes() + db_path.with_name(db_path.name + "-wal").read_bytes()
    assert KEY.encode() not in data


def test_model_health_reaches_the_router():
    from crossroads import create_router

    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        broken = resilient([fake(bad, "bad")], retries=0, failures_for_cooldown=1)
        ok = resilient([fake(good, "good")])
        flow = Flow("h").add(
            model_target("cheap_but_broken", broken, cost=CostModel(input_per_mtok=0.01)),
            model_target("pricier", ok, cost=CostModel(input_per_mtok=5.0)),
        )
        flow.route(START, create_router("cheapest"), candidates=["cheap_but_broken", "pricier"])
        app = flow.compile()
        with pytest.raises(AllModelsFailedError):
            app.invoke("x")  # the cheap model fails once and cools down
        assert app.invoke("x").output == "echo: x"  # the router now avoids it
