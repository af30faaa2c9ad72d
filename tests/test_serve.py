"""The OpenAI-compatible server, through FastAPI's test client and a real uvicorn + openai client."""

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from crossroads import (
    END,
    START,
    CostModel,
    Decision,
    Flow,
    LiteLLMModel,
    ResilientModel,
    Router,
    SQLRecorder,
    TraceStore,
    agent,
    load_flow,
    model,
)
from crossroads.routers import FixedRouter
from crossroads.serving import ServeConfigError, build_app, check_bind, is_loopback
from crossroads.testing import ScriptedOpenAIServer

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

USER = [{"role": "user", "content": "x"}]


@pytest.fixture(scope="module")
def flow():
    return load_flow("examples/quickstart.yaml")


def _fanout_flow() -> Flow:
    f = Flow("panel")
    f.add(agent("a", lambda t: f"A:{t}"), agent("b", lambda t: f"B:{t}"))
    f.route(START, FixedRouter(["a", "b"], label="both"), candidates=["a", "b"], merge="concat")
    return f


def _records(db_path, run_id):
    return TraceStore(db_path).get_run(run_id)


def test_models_list_targets_routers_and_the_flow(flow):
    client = TestClient(build_app(flow))
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["calculator", "converter", "faq", "router:triage", "flow:quickstart"]
    assert data[3]["candidates"] == ["calculator", "converter", "faq"] and data[4]["kind"] == "flow"


def test_chat_through_router_records_decision(flow, db_path):
    rec = SQLRecorder(str(db_path))
    client = TestClient(build_app(flow, recorder=rec))
    r = client.post("/v1/chat/completions", json={"model": "router:triage",
                                                  "messages": [{"role": "user", "content": "convert 5 km to miles"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "5 km = 3.10686 miles"
    assert body["crossroads"]["decisions"][0]["chosen"] == ["converter"]
    assert body["crossroads"]["served_by"] == ["converter"]
    rec.flush()
    run = _records(db_path, body["crossroads"]["run_id"])
    assert run["decisions"][0]["chosen"] == ["converter"] and run["status"] == "succeeded"
    assert run["decisions"][0]["id"] == body["crossroads"]["decisions"][0]["decision_id"]


def test_fan_out_is_served_whole_for_router_and_flow(db_path):
    """Today's serve kept only the first target of a multi-target decision; now every branch runs and merges."""
    rec = SQLRecorder(str(db_path))
    client = TestClient(build_app(_fanout_flow(), recorder=rec))
    for mid in ("router:both", "flow:panel"):
        body = client.post("/v1/chat/completions", json={"model": mid, "messages": [{"role": "user", "content": "hi"}]}).json()
        assert body["choices"][0]["message"]["content"] == "[a] A:hi\n\n[b] B:hi", mid
        assert body["crossroads"]["decisions"][0]["chosen"] == ["a", "b"]
        assert sorted(body["crossroads"]["served_by"]) == ["a", "b", "merge"]
    rec.flush()
    run = _records(db_path, body["crossroads"]["run_id"])
    assert sorted(s["node"] for s in run["steps"]) == ["a", "b", "merge"]


def test_direct_target_streaming_and_errors(flow):
    client = TestClient(build_app(flow))
    with client.stream("POST", "/v1/chat/completions", json={"model": "calculator", "stream": True,
                                                            "stream_options": {"include_usage": True},
                                                            "messages": [{"role": "user", "content": "2 + 2"}]}) as r:
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "2 + 2 = 4"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0  # a tool call has no tokens
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    bad = client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    assert bad.status_code == 404 and "unknown model 'nope'" in bad.json()["error"]["message"]


@pytest.mark.parametrize("body", [
    b"[1]",
    b'{"model": "faq", "messages": "hi"}',
    b'{"model": "faq"}',
    b'{"model": "faq", "messages": []}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "\xff\xfe bad utf-8"}]}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "\\ud800 lone surrogate"}]}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "x"}], "a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"model": "faq", "messages": [{"role": "wizard", "content": "x"}]}',
    b'{"model": "faq", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "x"}], "logprobs": true}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "x"}], "n": 3}',
    b'{"model": "faq", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
    b"not json at all",
])
def test_wrong_shapes_get_400_with_an_error_id(flow, body):
    client = TestClient(build_app(flow), raise_server_exceptions=False)
    r = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["id"].startswith("req_") and err["id"] == r.headers["x-request-id"]
    assert err["type"] == "invalid_request_error"


def test_error_messages_name_the_field_without_echoing_values(flow):
    client = TestClient(build_app(flow))
    r = client.post("/v1/chat/completions", json={"model": "faq", "messages": [{"role": "user", "content": 7}],
                                                  "logprobs": True})
    msg = r.json()["error"]["message"]
    assert "messages.0.content" in msg and "logprobs: unsupported parameter" in msg
    r = client.post("/v1/chat/completions", json={"model": "faq", "messages": [{"role": "user", "content": "sk-supersecret"}],
                                                  "temperature": "sk-supersecret"})
    assert r.status_code == 400 and "sk-supersecret" not in r.text


def test_body_size_limit_is_413_with_and_without_content_length(flow):
    client = TestClient(build_app(flow, max_body_bytes=300))
    big = {"model": "faq", "messages": [{"role": "user", "content": "y" * 400}]}
    r = client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and "300 bytes" in r.json()["error"]["message"] and r.json()["error"]["id"]
    chunked = client.post("/v1/chat/completions", content=iter([json.dumps(big).encode()[:200], json.dumps(big).encode()[200:]]))
    assert chunked.status_code == 413
    assert client.post("/v1/chat/completions", json={"model": "faq", "messages": USER}).status_code == 200
    with pytest.raises(ServeConfigError):
        build_app(flow, max_body_bytes=0)


def test_failure_body_is_stable_and_the_exception_goes_to_the_trace(db_path):
    def leaky(text):
        raise ValueError("cannot open /home/alice/.secrets for key sk-live-123")

    f = Flow("leaks").add(agent("leaky", leaky))
    rec = SQLRecorder(str(db_path))
    client = TestClient(build_app(f, recorder=rec))
    r = client.post("/v1/chat/completions", json={"model": "leaky", "messages": USER})
    assert r.status_code >= 500
    assert "alice" not in r.text and "sk-live" not in r.text and "ValueError" not in r.text
    err = r.json()["error"]
    assert err["message"] == "the flow failed" or err["message"] == "internal error"
    rec.flush()
    store = TraceStore(db_path)
    runs = store.list_runs(limit=5)
    assert runs[0]["status"] == "failed"
    run = store.get_run(runs[0]["id"])
    assert run["metadata"]["request_id"] == err["id"]
    assert "ValueError" in (run["error"] or "")
    events = [e for e in run["events"] if e["kind"] == "serve_error"]
    assert events and events[0]["detail"]["request_id"] == err["id"]


def test_api_key_guards_every_endpoint_but_livez(flow):
    client = TestClient(build_app(flow, api_key="s3cret-key"))
    for path in ("/v1/models", "/health", "/docs", "/openapi.json", "/redoc"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
    assert client.post("/v1/chat/completions", json={"model": "faq", "messages": USER}).status_code == 401
    auth = {"Authorization": "Bearer s3cret-key"}
    assert client.get("/v1/models", headers=auth).status_code == 200
    assert client.get("/health", headers=auth).status_code == 200
    assert client.get("/openapi.json", headers=auth).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret-kez"}).status_code == 401
    live = client.get("/livez")
    assert live.status_code == 200 and live.json() == {"status": "ok"}


def test_loopback_is_an_ip_not_a_name_prefix():
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "10.0.0.1", "::", "128.0.0.1", "127.0.0.1.nip.invalid", "127.attacker.invalid"):
        assert not is_loopback(host), host
    check_bind("127.0.0.1", None)
    for host in ("0.0.0.0", "127.attacker.invalid"):
        with pytest.raises(ServeConfigError, match="without an API key"):
            check_bind(host, None)
    check_bind("0.0.0.0", "key")


# -- model targets: generation parameters, events, token relay ----------------------------------------

def _llm_flow(srv: ScriptedOpenAIServer, *, retries: int = 0) -> Flow:
    llm = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-test", cost=CostModel(input_per_mtok=1.0, output_per_mtok=2.0))
    chat_model = ResilientModel([llm], retries=retries, backoff_s=0.01) if retries else llm
    f = Flow("llm")
    f.add(model("gpt", chat_model), agent("calc", lambda t: "4"))
    f.route(START, FixedRouter("gpt", label="pick"), candidates=["gpt", "calc", END])
    return f


def test_generation_params_reach_the_backend_and_unhonourable_ones_are_refused():
    with ScriptedOpenAIServer() as srv:
        client = TestClient(build_app(_llm_flow(srv)))
        tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
        r = client.post("/v1/chat/completions", json={"model": "gpt", "messages": USER, "temperature": 0.2,
                                                      "max_tokens": 7, "stop": ["\n\n"], "tools": tools})
        assert r.status_code == 200, r.text
        sent = srv.requests[-1]
        assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.2, 7, ["\n\n"])
        assert sent["tools"][0]["function"]["name"] == "lookup"
        assert r.json()["usage"]["prompt_tokens"] == 11  # the backend's usage, not an estimate
        n = len(srv.requests)
        refused = client.post("/v1/chat/completions", json={"model": "calc", "messages": USER, "temperature": 0.2})
        assert refused.status_code == 400 and "cannot honour temperature" in refused.json()["error"]["message"]
        # the router may reach 'calc', which cannot honour max_tokens: refused before any backend call
        refused = client.post("/v1/chat/completions", json={"model": "router:pick", "messages": USER, "max_tokens": 5})
        assert refused.status_code == 400 and "calc" in refused.json()["error"]["message"]
        assert len(srv.requests) == n


def test_retry_events_of_a_target_are_recorded_by_serve(db_path):
    rec = SQLRecorder(str(db_path))
    with ScriptedOpenAIServer(script=["500"]) as srv:
        client = TestClient(build_app(_llm_flow(srv, retries=1), recorder=rec))
        r = client.post("/v1/chat/completions", json={"model": "gpt", "messages": USER})
        assert r.status_code == 200, r.text
    rec.flush()
    run = _records(db_path, r.json()["crossroads"]["run_id"])
    assert [e["kind"] for e in run["events"]].count("retry") == 1


def test_router_may_end_the_run_with_an_empty_answer():
    f = Flow("ender").add(agent("a", lambda t: "A"))
    f.route(START, FixedRouter(END, label="stop"), candidates=["a", END])
    body = TestClient(build_app(f)).post("/v1/chat/completions", json={"model": "router:stop", "messages": USER}).json()
    assert body["choices"][0]["message"]["content"] == "" and body["crossroads"]["decisions"][0]["chosen"] == [END]


# -- a real server ----------------------------------------------------------------------------------

@contextmanager
def _served(app):
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=5)


def test_real_server_with_openai_client(flow):
    openai = pytest.importorskip("openai")
    with _served(build_app(flow)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        out = client.chat.completions.create(model="router:triage", messages=[{"role": "user", "content": "what is 6 * 7"}])
        assert out.choices[0].message.content == "6 * 7 = 42"
        stream = client.chat.completions.create(model="flow:quickstart", stream=True,
                                                messages=[{"role": "user", "content": "what is 6 * 7"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "6 * 7 = 42"
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="faq", messages=[{"role": "user", "content": "x"}], logprobs=True)


class _SlowRouter(Router):
    """A blocking router (like an embedding or LLM router doing CPU/network work)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(label="slow")
        self.delay_s = delay_s

    def route(self, ctx):
        time.sleep(self.delay_s)
        return Decision(targets=("a",), scores={"a": 1.0}, router=self.label)


def test_health_answers_while_a_blocking_router_decides():
    httpx = pytest.importorskip("httpx")
    f = Flow("slow").add(agent("a", lambda t: "A"))
    f.route(START, _SlowRouter(1.5), candidates=["a"])

    async def scenario(base: str) -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            started = time.perf_counter()
            slow = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "router:slow", "messages": USER}))
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            assert (await c.get("/health")).status_code == 200
            health_s = time.perf_counter() - t0
            assert (await slow).status_code == 200
            return health_s, time.perf_counter() - started

    with _served(build_app(f)) as base:
        health_s, total_s = asyncio.run(scenario(base))
    assert total_s >= 1.5 and health_s < 1.0, (health_s, total_s)


def test_stream_relays_backend_tokens_before_the_answer_is_complete():
    """Time to first token served vs total: the first SSE chunk leaves before the backend has finished."""
    httpx = pytest.importorskip("httpx")
    words = "one two three four five six"

    async def scenario(base: str) -> tuple[float, float, list[str], dict]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            t0 = time.perf_counter()
            first = None
            deltas, usage = [], {}
            async with c.stream("POST", "/v1/chat/completions", json={
                    "model": "gpt", "stream": True, "stream_options": {"include_usage": True}, "messages": USER}) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if not line.startswith("data: {"):
                        continue
                    ch = json.loads(line[6:])
                    if ch["choices"] and ch["choices"][0]["delta"].get("content"):
                        first = first if first is not None else time.perf_counter() - t0
                        deltas.append(ch["choices"][0]["delta"]["content"])
                    if ch.get("usage"):
                        usage = ch["usage"]
            return first, time.perf_counter() - t0, deltas, usage

    with ScriptedOpenAIServer(reply=lambda msgs: words, stream_delay_s=0.25) as srv:
        with _served(build_app(_llm_flow(srv))) as base:
            first, total, deltas, usage = asyncio.run(scenario(base))
    assert "".join(deltas) == words and len(deltas) == 6
    assert total >= 6 * 0.25 and first < total - 0.75, (first, total)
    assert usage == {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}


def test_tool_calls_for_the_callers_tools_come_back_to_the_caller():
    """``tools`` is honoured end to end: the backend's tool calls are the reply (finish_reason tool_calls),
    and the caller's next request carries the tool result back to the model."""
    call = {"id": "call_1", "name": "lookup", "arguments": '{"q": "x"}'}
    replies = [{"content": "", "tool_calls": [call]}, "the answer is 42"]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    with ScriptedOpenAIServer(reply=lambda msgs: replies.pop(0)) as srv:
        client = TestClient(build_app(_llm_flow(srv)))
        r = client.post("/v1/chat/completions", json={"model": "gpt", "messages": USER, "tools": tools})
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        tc = choice["message"]["tool_calls"][0]
        assert (tc["id"], tc["type"], tc["function"]["name"], json.loads(tc["function"]["arguments"])) == \
            ("call_1", "function", "lookup", {"q": "x"})
        follow = [*USER, {"role": "assistant", "content": None, "tool_calls": [tc]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "42"}]
        r = client.post("/v1/chat/completions", json={"model": "gpt", "messages": follow, "tools": tools})
        assert r.json()["choices"][0]["message"]["content"] == "the answer is 42"
        sent = srv.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
        assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[2]["tool_call_id"] == "call_1"


def test_shutdown_flushes_the_trace_and_closes_routers(db_path):
    closed = []

    class Closing(FixedRouter):
        def close(self):
            closed.append(self.label)

    f = Flow("closing").add(agent("a", lambda t: "A"))
    f.route(START, Closing("a", label="c"), candidates=["a"])
    rec = SQLRecorder(str(db_path), flush_interval_s=60)
    with TestClient(build_app(f, recorder=rec)) as client:  # the context runs the app's lifespan
        run_id = client.post("/v1/chat/completions", json={"model": "router:c", "messages": USER}).json()["crossroads"]["run_id"]
    assert closed and set(closed) == {"c"}
    assert TraceStore(db_path).get_run(run_id)["status"] == "succeeded"


def test_runs_in_flight_are_bounded():
    httpx = pytest.importorskip("httpx")
    lock, now, peak = threading.Lock(), [0], [0]

    class Counting(_SlowRouter):
        def route(self, ctx):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            try:
                return super().route(ctx)
            finally:
                with lock:
                    now[0] -= 1

    f = Flow("bounded").add(agent("a", lambda t: "A"))
    f.route(START, Counting(0.2), candidates=["a"])

    async def scenario(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json={"model": "router:slow", "messages": USER})
                                        for _ in range(6)))
            return [r.status_code for r in rs]

    with _served(build_app(f, max_concurrent_runs=2)) as base:
        assert asyncio.run(scenario(base)) == [200] * 6
    assert peak[0] == 2
    with pytest.raises(ServeConfigError):
        build_app(f, max_concurrent_runs=0)
