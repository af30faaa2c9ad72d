"""A real OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on purpose.

Each request consumes the next mode from a script (then ``default``): ``ok``, ``500``, ``429``,
``400``, ``hang`` (sleeps ``hang_s``), ``garbage`` (invalid JSON), ``drop`` (a stream that breaks off),
``close`` (closes the connection without answering), ``trickle`` (sends the headers, then one byte of
leading whitespace every ``trickle_s`` for ``trickle_for_s``, then the reply: no read ever times out).
Streams send one chunk per word (``stream_delay_s`` before each) and, when the request asks for
``stream_options.include_usage``, a last chunk with the usage. :meth:`refused_url` is a URL where
nothing listens (connection refused). Every reply closes its connection (no keep-alive).

Example::

    with ScriptedOpenAIServer(script=["500", "429", "ok"]) as srv:
        model = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-test", cost=CostModel())
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedOpenAIServer"]


class Headers(dict[str, str]):
    """Request headers, looked up case-insensitively (HTTP header names are; clients differ in case)."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def _echo(messages: list[dict[str, Any]]) -> str:
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    return f"echo: {last}"


class ScriptedOpenAIServer:
    """Serve ``/v1/chat/completions`` and ``/v1/models`` with scripted failures."""

    def __init__(self, script: Iterable[str] = (), *, default: str = "ok", hang_s: float = 5.0,
                 reply: Callable[[list[dict[str, Any]]], Any] = _echo, model_names: Iterable[str] = ("fake",),
                 stream_delay_s: float = 0.0, trickle_s: float = 0.5, trickle_for_s: float = 20.0) -> None:
        self.script: deque[str] = deque(script)
        self.default = default
        self.hang_s = hang_s
        self.trickle_s = trickle_s
        self.trickle_for_s = trickle_for_s
        self.reply = reply
        self.model_names = list(model_names)
        self.stream_delay_s = stream_delay_s
        """Pause before each streamed word (a slow model: the first token comes well before the last)."""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[Headers] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL ending in ``/v1``."""
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    @staticmethod
    def refused_url() -> str:
        """A ``/v1`` URL on 127.0.0.1 where nothing listens: connecting is refused."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def next_mode(self) -> str:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def start(self) -> ScriptedOpenAIServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                # no keep-alive: a client's pooled connection must never outlive this server and reach
                # the next one that gets the same port (a spurious failure in someone else's test)
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "test"} for n in outer.model_names]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                try:
                    self._post()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a deadline): fine
                    self.close_connection = True

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append(payload)
                    outer.headers.append(Headers(self.headers.items()))
                mode = outer.next_mode()
                if mode in ("500", "429", "400"):
                    err = {"error": {"message": f"scripted {mode}", "type": "server_error", "code": mode}}
                    self._send(int(mode), json.dumps(err).encode())
                    return
                if mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "hang":
                    time.sleep(outer.hang_s)
                if mode == "garbage":
                    self._send(200, b'{"id": "x", "choices": [ {"message": tru')
                    return
                reply = outer.reply(payload.get("messages", []))
                # a reply may be a dict: {"content": ..., "tool_calls": [{"id", "name", "arguments"}]}
                tool_calls = reply.get("tool_calls") if isinstance(reply, dict) else None
                text = (reply.get("content") or "") if isinstance(reply, dict) else reply
                model = payload.get("model", "fake")
                if payload.get("stream"):
                    usage = bool((payload.get("stream_options") or {}).get("include_usage"))
                    self._stream(text, model, drop=(mode == "drop"), usage=usage)
                    return
                body = {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "finish_reason": "tool_calls" if tool_calls else "stop",
                                 "message": {"role": "assistant", "content": text,
                                             **({"tool_calls": [
                                                 {"id": c["id"], "type": "function",
                                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                                 for c in tool_calls]} if tool_calls else {})}}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": len(text.split()), "total_tokens": 11 + len(text.split())},
                }
                data = json.dumps(body).encode()
                if mode == "trickle":
                    pad = max(1, int(outer.trickle_for_s / outer.trickle_s))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(pad + len(data)))
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    self.end_headers()
                    for _ in range(pad):  # JSON allows leading whitespace: the body stays valid
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(outer.trickle_s)
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                self._send(200, data)

            def _stream(self, text: str, model: str, drop: bool, usage: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                for i, w in enumerate(words):
                    if outer.stream_delay_s:
                        time.sleep(outer.stream_delay_s)
                    if drop and i == len(words) // 2:
                        self.wfile.write(b"data: {\"choices\": [{\"delta\": {\"cont")
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
                             "choices": [{"index": 0, "delta": {"content": (w if i == 0 else " " + w)}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                end = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                if usage:  # OpenAI's stream_options.include_usage: a last chunk with no choices
                    last = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                            "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}}
                    self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
