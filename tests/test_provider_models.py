"""Provider calls through litellm against a real local server that misbehaves on purpose."""

import asyncio
import time

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
from crossroads.agents.backends.failures import FailureKind, classify_error, is_retryable, is_transport_error
from crossroads.agents.backends.litellm_model import LiteLLMModel
from crossroads.agents.backends.resilience import AllModelsFailedError, ResilientModel
from crossroads.agents.models import (
    ChatModel,
    FunctionModel,
    ModelResponse,
    acomplete_any,
    astream_any,
    stream_any,
)
from crossroads.errors import DeadlineExceededError
from crossroads.testing import ScriptedOpenAIServer

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz"
MSGS = [Message(role="user", content="hello there")]
PRICE = CostModel(input_per_mtok=1.0, output_per_mtok=2.0)


def fake(srv, name="fake", timeout_s=5.0):
    """A litellm model on the scripted server (deadline_s defaults to 2 x timeout_s)."""
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


def causes(events):
    return [(e.kind, e.detail.get("cause"), e.detail.get("status")) for e in events]


def test_retries_500_429_and_garbage_then_succeeds_with_the_real_causes():
    with ScriptedOpenAIServer(script=["500", "429", "garbage", "ok"]) as srv:
        r = resilient([fake(srv)], retries=3, failures_for_cooldown=10).complete(MSGS)
    assert r.text == "echo: hello there"
    # a garbage body is not a 500: the provider sent 200 with unreadable JSON
    assert causes(r.events) == [("retry", "server", 500), ("retry", "rate_limit", 429), ("retry", "malformed", None)]
    # each failed attempt is a call record with its error, for the trace
    assert [c.error.split(":")[0] for c in r.failed_attempts] == ["server", "rate_limit", "malformed"]
    assert all(c.model == "fake" and c.latency_ms > 0 and c.input_tokens == 0 for c in r.failed_attempts)


def test_connection_refused_and_closed_connections_are_not_500():
    refused = LiteLLMModel("openai/fake", name="refused", api_base=ScriptedOpenAIServer.refused_url(), api_key=KEY,
                           cost=PRICE)
    with ScriptedOpenAIServer(script=["close"]) as srv:
        r = resilient([refused, fake(srv, "closing")], retries=1, failures_for_cooldown=99).complete(MSGS)
    assert r.text == "echo: hello there"
    assert causes(r.events) == [("retry", "connection", None), ("fallback", None, None),
                                ("retry", "connection", None)]
    assert [c.model for c in r.failed_attempts] == ["refused", "refused", "closing"]


def test_hang_times_out_and_is_retried():
    with ScriptedOpenAIServer(script=["hang", "ok"], hang_s=2.0) as srv:
        r = resilient([fake(srv, timeout_s=0.3)], retries=1).complete(MSGS)
    assert r.text.startswith("echo")
    # a plain stall trips the read timeout (0.3 s) before the total deadline (0.6 s); no HTTP status came
    assert causes(r.events) == [("retry", "timeout", None)]


def test_client_errors_are_not_retried_but_fall_back():
    with ScriptedOpenAIServer(default="400") as bad, ScriptedOpenAIServer() as good:
        m = resilient([fake(bad, "primary"), fake(good, "backup")], retries=3)
        r = m.complete(MSGS)
    assert len(bad.requests) == 1  # a 400 is not worth retrying
    assert [(e.kind, e.target) for e in r.events] == [("fallback", "backup")]
    assert [c.error.split(":")[0] for c in r.failed_attempts] == ["client"]
    # a bad request says nothing about the provider's availability
    assert m.health["primary"].snapshot().error_rate == 0.0


def test_cooldown_after_failure_spike_then_skip():
    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        m = resilient([fake(bad, "primary"), fake(good, "backup")], retries=2, failures_for_cooldown=3, cooldown_s=60)
        first = m.complete(MSGS)
        assert [e.kind for e in first.events] == ["retry", "retry", "cooldown", "fallback"]
        assert m.health_snapshot().status is HealthStatus.DEGRADED
        second = m.complete(MSGS)
        assert [e.kind for e in second.events] == ["skip_cooldown"] and len(bad.requests) == 3


def test_every_model_failing_lists_every_models_error():
    with ScriptedOpenAIServer(default="500") as a, ScriptedOpenAIServer(default="429") as b:
        m = resilient([fake(a, "a"), fake(b, "b")], retries=1, failures_for_cooldown=99)
        with pytest.raises(AllModelsFailedError, match="every model failed") as e:
            m.complete(MSGS)
    assert [ev.kind for ev in e.value.events] == ["retry", "fallback", "retry"]
    assert list(e.value.errors) == ["a", "b"]
    assert e.value.errors["a"].startswith("server: InternalServerError") and "a: server" in str(e.value)
    assert e.value.errors["b"].startswith("rate_limit: RateLimitError") and "b: rate_limit" in str(e.value)
    assert [(c.model, c.error.split(":")[0]) for c in e.value.calls] == [("a", "server")] * 2 + [("b", "rate_limit")] * 2
    assert is_transport_error(e.value) and classify_error(e.value).kind is FailureKind.RATE_LIMIT


def test_application_errors_do_not_count_against_availability():
    def broken(msgs):
        raise ValueError("bug in my prompt builder")

    m = resilient([FunctionModel(broken, name="mine")], retries=2, failures_for_cooldown=1)
    for _ in range(3):
        with pytest.raises(AllModelsFailedError, match="mine: application: ValueError: bug in my prompt builder"):
            m.complete(MSGS)
    assert m.health_snapshot().status is HealthStatus.HEALTHY  # never cooled down, never DOWN
    with pytest.raises(AllModelsFailedError) as e:
        m.complete(MSGS)
    assert not is_transport_error(e.value)  # the orchestrator does not mark the target DOWN either
    assert not is_transport_error(ValueError("x")) and not is_retryable(ValueError("x"))


def test_failure_classification_walks_the_exception_chain():
    def wrapped(inner):
        try:
            raise inner
        except Exception as exc:
            err = RuntimeError("provider said 500")
            err.status_code = 500
            err.__cause__ = exc
            return err

    refused = wrapped(ConnectionRefusedError(111, "Connection refused"))
    f = classify_error(refused)
    assert (f.kind, f.status, f.transport, f.retryable) == (FailureKind.CONNECTION, None, True, True)
    assert classify_error(wrapped(TimeoutError())).kind is FailureKind.TIMEOUT
    assert classify_error(DeadlineExceededError("late")).kind is FailureKind.DEADLINE
    plain500 = RuntimeError("boom")
    plain500.status_code = 503
    assert (classify_error(plain500).kind, classify_error(plain500).status) == (FailureKind.SERVER, 503)
    auth = RuntimeError("bad key")
    auth.status_code = 401
    assert (classify_error(auth).kind, is_transport_error(auth), is_retryable(auth)) == (FailureKind.AUTH, False, False)


def test_trickling_server_fails_at_the_deadline_with_an_event():
    """Before: one byte every 0.5 s never trips a read timeout, so a timeout_s=2 call was held ~20 s."""
    with ScriptedOpenAIServer(default="trickle", trickle_s=0.25, trickle_for_s=8.0) as srv:
        m = fake(srv, timeout_s=2.0)
        m.deadline_s = 1.0
        t = time.perf_counter()
        with pytest.raises(DeadlineExceededError, match="passed its 1 s deadline") as e:
            m.complete(MSGS)
        assert time.perf_counter() - t < 4.0  # not the 8 s the trickle lasts
        assert e.value.deadline_s == 1.0 and e.value.elapsed_s >= 1.0
        r = resilient([m], retries=1, failures_for_cooldown=99)
        t = time.perf_counter()
        with pytest.raises(AllModelsFailedError) as e2:
            r.complete(MSGS)
        assert time.perf_counter() - t < 6.0
    assert causes(e2.value.events) == [("retry", "deadline", None)]
    assert [c.error.split(":")[0] for c in e2.value.calls] == ["deadline", "deadline"]


def test_total_deadline_across_retries_and_fallbacks():
    with ScriptedOpenAIServer(default="trickle", trickle_s=0.25, trickle_for_s=8.0) as slow, \
            ScriptedOpenAIServer() as good:
        m = ResilientModel([fake(slow, "slow", timeout_s=30), fake(good, "never-reached")], retries=3,
                           deadline_s=1.0, sleep=lambda s: None, failures_for_cooldown=99)
        with pytest.raises(AllModelsFailedError, match="the 1 s deadline passed") as e:
            m.complete(MSGS)
    assert [ev.kind for ev in e.value.events][-1] == "deadline"
    assert e.value.errors["never-reached"] == "not tried: the deadline passed first"
    assert len(good.requests) == 0


async def test_async_path_matches_the_sync_path():
    script = ["500", "429", "garbage", "ok"]
    sleeps: list[float] = []

    async def asleep(s):
        sleeps.append(s)

    with ScriptedOpenAIServer(script=script) as srv:
        sync = resilient([fake(srv)], retries=3, failures_for_cooldown=10).complete(MSGS)
    with ScriptedOpenAIServer(script=script) as srv:
        m = ResilientModel([fake(srv)], retries=3, failures_for_cooldown=10, asleep=asleep,
                           sleep=lambda s: pytest.fail("the async path must not block in time.sleep"))
        r = await m.acomplete(MSGS)
    assert r.text == sync.text and causes(r.events) == causes(sync.events) and len(sleeps) == 3
    assert [c.error.split(":")[0] for c in r.failed_attempts] == [c.error.split(":")[0] for c in sync.failed_attempts]


async def test_async_deadline_cancels_any_model():
    async def slow_model_call(*a, **k):
        await asyncio.sleep(10)

    slow = FunctionModel(lambda m: "late", name="slow")
    slow.acomplete = slow_model_call  # an async backend that never answers
    m = ResilientModel([slow, FunctionModel(lambda m: "fast", name="fast")], retries=0, deadline_s=0.5)
    t = time.perf_counter()
    with pytest.raises(AllModelsFailedError) as e:
        await m.acomplete(MSGS)
    assert time.perf_counter() - t < 3.0 and e.value.errors["slow"].startswith("deadline: DeadlineExceededError")


def test_stream_chunks_usage_and_time_to_first_chunk():
    with ScriptedOpenAIServer(stream_delay_s=0.1, reply=lambda m: "one two three four five six") as srv:
        list(fake(srv).stream(MSGS))  # warm up litellm's lazy imports, which would dominate the first chunk
        chunks = list(fake(srv).stream(MSGS, max_tokens=20))
    assert srv.requests[1]["stream_options"] == {"include_usage": True} and srv.requests[1]["max_tokens"] == 20
    *texts, last = chunks
    assert [c.text for c in texts] == ["one", " two", " three", " four", " five", " six"]
    r = last.response
    assert r.text == "one two three four five six" and r.finish_reason == "stop"
    assert (r.input_tokens, r.output_tokens) == (11, 6)  # the server's usage chunk
    assert r.cost_usd == pytest.approx(11e-6 + 6 * 2e-6)
    assert r.first_chunk_ms < r.latency_ms - 400  # five 0.1 s gaps come after the first chunk


async def test_astream_and_resilient_stream_fall_back_before_the_first_chunk():
    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        m = resilient([fake(bad, "primary"), fake(good, "backup")], retries=0, failures_for_cooldown=99)
        sync = list(m.stream(MSGS))

        async def asleep(s):
            pass

        am = ResilientModel([fake(bad, "primary"), fake(good, "backup")], retries=0, failures_for_cooldown=99,
                            asleep=asleep)
        chunks = [c async for c in am.astream(MSGS)]
    for got in (sync, chunks):
        assert "".join(c.text for c in got) == "echo: hello there"
        final = got[-1].response
        assert [e.kind for e in final.events] == ["fallback"] and final.model == "backup"
        assert [c.error.split(":")[0] for c in final.failed_attempts] == ["server"]


def test_dropped_stream_is_an_error_and_good_stream_works():
    with ScriptedOpenAIServer(script=["drop", "ok"]) as srv:
        m = fake(srv)
        with pytest.raises(TargetError, match="broke off|dropped connection") as e:
            list(m.stream([Message(role="user", content="one two three four")]))
        assert classify_error(e.value).kind is FailureKind.CONNECTION
        assert "".join(c.text for c in m.stream(MSGS)) == "echo: hello there"


async def test_every_backend_has_the_async_and_streaming_methods():
    fm = FunctionModel(lambda m: "hi there", name="f")
    assert isinstance(fm, ChatModel)
    assert (await fm.acomplete(MSGS)).text == "hi there"
    assert [c.text for c in fm.stream(MSGS)] == ["hi there", ""] and list(fm.stream(MSGS))[-1].response.text == "hi there"
    assert [c.text async for c in fm.astream(MSGS)] == ["hi there", ""]

    class OnlyComplete:  # a user's duck-typed model
        name = "duck"

        def complete(self, messages, **kw):
            return ModelResponse(text="quack", model="duck")

    assert (await acomplete_any(OnlyComplete(), MSGS)).text == "quack"
    assert [c.text async for c in astream_any(OnlyComplete(), MSGS)] == ["quack", ""]

    class OldStream(OnlyComplete):  # streams plain strings, as backends did before ModelChunk
        def stream(self, messages, **kw):
            yield from ["qu", "ack"]

    got = list(stream_any(OldStream(), MSGS))
    assert [c.text for c in got[:-1]] == ["qu", "ack"] and got[-1].response.text == "quack"


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
    failed1, failed2, call = run["calls"]  # the two failed attempts are call rows too, with their error
    assert call["model"] == "backup" and call["tokens_in"] == 11 and call["cost_usd"] > 0 and call["error"] is None
    assert [(c["target"], c["model"], c["error"].split(":")[0]) for c in (failed1, failed2)] == [
        ("assistant", "primary", "server")] * 2
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


def test_a_failed_call_keeps_its_call_rows(db_path):
    with ScriptedOpenAIServer(default="500") as bad:
        chat = resilient([fake(bad, "only")], retries=1, failures_for_cooldown=99)
        rec = SQLRecorder(str(db_path))
        app = Flow("down").add(model_target("assistant", chat)).compile(recorder=rec)
        with pytest.raises(AllModelsFailedError):
            app.invoke("hello")
        rec.close()
    (run_id,) = [r["id"] for r in TraceStore(db_path).list_runs()]
    run = TraceStore(db_path).get_run(run_id)
    assert [(c["model"], c["error"].split(":")[0]) for c in run["calls"]] == [("only", "server")] * 2
    assert [e["kind"] for e in run["events"]] == ["retry"]


def test_missing_credentials_are_an_auth_problem_not_a_500(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedOpenAIServer() as srv:
        m = resilient([LiteLLMModel("openai/fake", api_base=srv.url, cost=PRICE)], retries=2)
        with pytest.raises(AllModelsFailedError, match="openai/fake: auth: ") as e:
            m.complete(MSGS)
    assert len(srv.requests) == 0 and e.value.events == ()  # not retried, and nothing was sent
    assert m.health_snapshot().status is HealthStatus.HEALTHY


def test_yaml_fallbacks_with_their_own_cost_and_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_KEY", KEY)
    with ScriptedOpenAIServer(default="500") as bad, ScriptedOpenAIServer() as good:
        y = tmp_path / "f.yaml"
        y.write_text(f"""
targets:
  assistant:
    kind: model
    model:
      provider: litellm
      name: openai/my-private-model
      api_base: {bad.url}
      api_key_env: TEST_KEY
      cost: {{input_per_mtok: 1.0}}
      retries: 2
      deadline_s: 5
      fallbacks:
        - {{provider: litellm, name: openai/my-other-private-model, api_base: {good.url}, api_key_env: TEST_KEY,
            cost: {{input_per_mtok: 3.0, output_per_mtok: 4.0}}, retries: 0}}
""")
        import yaml

        from crossroads import load_flow
        from crossroads.agents.backends.factory import build_chat_model
        from crossroads.orchestrator.config import ModelSpec

        chat = build_chat_model(ModelSpec.model_validate(yaml.safe_load(y.read_text())["targets"]["assistant"]["model"]))
        assert isinstance(chat, ResilientModel) and chat.model_retries == {"openai/my-other-private-model": 0}
        primary, backup = chat.models
        assert primary.deadline_s == 5 and backup.deadline_s == 120.0  # 2 x its timeout_s (60 s)
        assert backup.cost == CostModel(input_per_mtok=3.0, output_per_mtok=4.0)
        res = load_flow(str(y)).compile().invoke("hi")
    assert res.output == "echo: hi" and len(bad.requests) == 3  # the primary's own 2 retries
    assert res.cost_usd == pytest.approx(11 * 3e-6 + 2 * 4e-6)  # priced at the fallback's own price
