"""The OpenAI-compatible server, through FastAPI's test client and a real uvicorn + openai client."""

import json
import socket
import threading
import time

import pytest

from crossroads import SQLRecorder, TraceStore, load_flow
from crossroads.serving import ServeConfigError, build_app, check_bind

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def flow():
    return load_flow("examples/quickstart.yaml")


def test_models_list_targets_and_virtual_router(flow):
    client = TestClient(build_app(flow))
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["calculator", "converter", "faq", "router:triage"]


def test_chat_through_router_records_decision(flow, db_path):
    rec = SQLRecorder(str(db_path))
    client = TestClient(build_app(flow, recorder=rec))
    r = client.post("/v1/chat/completions", json={"model": "router:triage",
                                                  "messages": [{"role": "user", "content": "convert 5 km to miles"}]})
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "5 km = 3.10686 miles"
    assert body["crossroads"]["decision"]["chosen"] == "converter" and body["crossroads"]["served_by"] == "converter"
    rec.flush()
    run = TraceStore(db_path).get_run(body["crossroads"]["run_id"])
    assert run["decisions"][0]["chosen"] == ["converter"] and run["status"] == "succeeded"


def test_direct_target_streaming_and_errors(flow):
    client = TestClient(build_app(flow))
    with client.stream("POST", "/v1/chat/completions", json={"model": "calculator", "stream": True,
                                                            "messages": [{"role": "user", "content": "2 + 2"}]}) as r:
        lines = [l for l in r.iter_lines() if l.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(json.loads(l[6:])["choices"][0]["delta"].get("content", "") for l in lines[:-1])
    assert text == "2 + 2 = 4"
    bad = client.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 404 and "unknown model 'nope'" in bad.json()["error"]["message"]
    assert client.post("/v1/chat/completions", json={"model": "faq"}).status_code == 400


def test_api_key_required_when_set(flow):
    client = TestClient(build_app(flow, api_key="s3cret-key"))
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200


def test_public_bind_without_key_is_refused():
    check_bind("127.0.0.1", None)
    with pytest.raises(ServeConfigError, match="without an API key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "key")


def test_real_server_with_openai_client(flow):
    uvicorn = pytest.importorskip("uvicorn")
    openai = pytest.importorskip("openai")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(build_app(flow), host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        out = client.chat.completions.create(model="router:triage", messages=[{"role": "user", "content": "what is 6 * 7"}])
        assert out.choices[0].message.content == "6 * 7 = 42"
        stream = client.chat.completions.create(model="router:triage", stream=True,
                                                messages=[{"role": "user", "content": "what is 6 * 7"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "6 * 7 = 42"
    finally:
        server.should_exit = True
        t.join(timeout=5)
