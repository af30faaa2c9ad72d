"""An OpenAI-compatible HTTP API over a flow: its targets, its routers (``router:<label>``) and the
whole flow (``flow:<name>``) as models.

``POST /v1/chat/completions`` with ``model: "router:triage"`` asks that router to choose among its
route's candidates (a fan-out decision runs every chosen target and the route's merge) and answers with
the result, so any OpenAI client can call through a crossroads router. Each model is a small compiled
flow (:mod:`crossroads.serving.catalog`): routing, validation and recording happen in the runtime.
The reply carries the decisions under ``crossroads``.

Hardening: request bodies are parsed by strict pydantic models (a wrong shape is a 400 naming the
field), bodies over ``max_body_bytes`` get a 413, error bodies carry a stable message and an error id
(the exception text goes only to the redacted trace), and with an API key every endpoint except the
bare liveness probe ``/livez`` requires it.
"""

# no `from __future__ import annotations`: FastAPI resolves the handlers' annotations at definition time

import asyncio
import contextlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError

from ..errors import (
    BudgetExceededError,
    CrossroadsError,
    InputError,
    InputTooLargeError,
    RoutingError,
    StepLimitError,
    TargetError,
)
from ..orchestrator.compiled import RunDecision
from ..orchestrator.flow import Flow
from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import EventRecord
from .catalog import FLOW_PREFIX, ROUTER_PREFIX, ServedModel, build_catalog
from .runtime import REQUEST_KEY, RunIds, ServedRun, StreamPiece, stream_request
from .schemas import ChatCompletionRequest, ChatMessage, describe_validation_error

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENT_RUNS", "FLOW_PREFIX", "LIVENESS_PATH", "ROUTER_PREFIX", "ServeConfigError",
           "build_app", "check_bind", "is_loopback"]

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest request body accepted (bytes); larger bodies get a 413. ``crossroads serve --max-body-bytes``."""
DEFAULT_MAX_CONCURRENT_RUNS = 32
"""Runs in flight at once; further requests wait their turn (``crossroads serve --max-concurrent-runs``).
Bounding them keeps the event loop free for ``/health`` and short requests under a burst."""
LIVENESS_PATH = "/livez"
"""The one endpoint open without the API key: answers ``{"status": "ok"}`` and nothing else."""

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ServeConfigError(CrossroadsError):
    """The server cannot start as configured (e.g. a public bind without an API key)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address: an IP in 127.0.0.0/8 or ::1 (an IPv4-mapped one too), or a
    name that resolves only to such addresses. ``127.example.com`` is not loopback."""
    try:
        addrs = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            return False
        addrs = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
    if not addrs:
        return False
    for a in addrs:
        mapped = getattr(a, "ipv4_mapped", None)
        if not (a.is_loopback or (mapped is not None and mapped.is_loopback)):
            return False
    return True


OPEN_BIND_RISK = "could spend your model budget"
"""What anyone on the network could do with ``serve`` bound openly: its endpoints run flows that call models."""


def check_bind(host: str, api_key: str | None, *, exposes: str = OPEN_BIND_RISK) -> None:
    """Refuse a non-loopback bind without an API key; ``exposes`` says what anyone on the network could then
    do (the default is ``serve``'s risk: its endpoints run flows that call your models)."""
    if not api_key and not is_loopback(host):
        raise ServeConfigError(
            f"refusing to listen on {host} without an API key: anyone on the network {exposes}. "
            "Set one with --api-key-env NAME (the env var holding it), or bind 127.0.0.1"
        )


class _HTTPError(Exception):
    """An error reply: a stable message for the client; ``detail`` (exception text) only for the trace."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error", detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.detail = detail


# failures of a run, by exception type: (status, stable message, type)
_RUN_FAILURES: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (InputTooLargeError, 413, "the input is over the flow's size limit", "invalid_request_error"),
    (InputError, 400, "the input cannot be served (not valid text)", "invalid_request_error"),
    (BudgetExceededError, 402, "the run reached its cost budget", "budget_error"),
    (RoutingError, 502, "the router failed to choose a target", "routing_error"),
    (StepLimitError, 500, "the flow exceeded its step limit", "flow_error"),
    (TargetError, 502, "the target failed to answer", "upstream_error"),
    (CrossroadsError, 500, "the flow failed", "flow_error"),
)


def _run_failure(exc: BaseException) -> _HTTPError:
    status, message, type_ = 500, "internal error", "server_error"
    for cls, s, m, t in _RUN_FAILURES:
        if isinstance(exc, cls):
            status, message, type_ = s, m, t
            break
    return _HTTPError(status, message, type_=type_, detail=f"{type(exc).__name__}: {exc}")


def _state_messages(msgs: list[ChatMessage]) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        d: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text, "name": None}
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            d["tool_calls"] = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                               for c in m.tool_calls]
        out.append(d)
    return out


def _decision_info(d: RunDecision) -> dict[str, Any]:
    return {"router": d.router, "source": d.source, "chosen": list(d.targets), "decision_id": d.decision_id,
            "scores": dict(d.scores), "rationale": d.rationale}


def _openai_tool_calls(calls: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{"id": c.get("id"), "type": "function", "function": {"name": c.get("name"), "arguments": c.get("arguments") or ""}}
            for c in calls]


class _Guard:
    """ASGI middleware: request ids, the API key on every path but ``/livez``, the body size limit."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.key = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body_bytes
        self.fastapi: Any = None
        """The wrapped FastAPI application."""

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = f"req_{uuid.uuid4().hex[:24]}"
        scope.setdefault("state", {})["request_id"] = rid
        headers = dict(scope.get("headers") or [])
        if self.key is not None and scope.get("path") != LIVENESS_PATH:
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.key):
                await _send_error(send, rid, _HTTPError(401, "missing or wrong API key (send Authorization: Bearer <key>)",
                                                        type_="authentication_error"))
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _send_error(send, rid, _HTTPError(400, "invalid Content-Length header"))
                return
            if too_big:
                await _send_error(send, rid, _body_too_large(self.max_body))
                return

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _body_too_large(limit: int) -> _HTTPError:
    return _HTTPError(413, f"request body is over the server's limit of {limit:,} bytes "
                           "(raise it with crossroads serve --max-body-bytes)")


def _error_body(rid: str, err: _HTTPError) -> dict[str, Any]:
    return {"error": {"message": err.message, "type": err.type, "code": err.status, "id": rid}}


async def _send_error(send: Any, rid: str, err: _HTTPError) -> None:
    body = json.dumps(_error_body(rid, err)).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-request-id", rid.encode())]})
    await send({"type": "http.response.body", "body": body})


def build_app(flow: Flow, *, recorder: Recorder | None = None, api_key: str | None = None,
              max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
              max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS, metrics: bool = True) -> Any:
    """The ASGI application serving ``flow``'s targets, routers and the whole flow as OpenAI models.
    With ``metrics`` (default) every record is also counted into Prometheus metrics served at ``/metrics``
    (:class:`~crossroads.observability.MetricsRecorder`; the API key rule applies to it too)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if max_body_bytes < 1:
        raise ServeConfigError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    if max_concurrent_runs < 1:
        raise ServeConfigError(f"max_concurrent_runs must be at least 1, got {max_concurrent_runs}")
    slots = asyncio.Semaphore(max_concurrent_runs)
    metrics_rec = None
    if metrics:
        from ..observability.metrics import MetricsRecorder

        metrics_rec = MetricsRecorder(recorder or NullRecorder())
    rec = RunIds(metrics_rec or recorder or NullRecorder())
    catalog: dict[str, ServedModel] = build_catalog(flow, rec)
    targets = dict(flow.nodes)
    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        for served in catalog.values():  # on shutdown: flush the trace, stop router threads
            served.compiled.close()

    app = FastAPI(title=f"crossroads: {flow.name}", version="1", lifespan=lifespan)
    app.state.catalog = catalog
    app.state.recorder = rec

    def rid_of(request: Request) -> str:
        return str(getattr(request.state, "request_id", "") or f"req_{uuid.uuid4().hex[:24]}")

    def trace_error(rid: str, err: _HTTPError) -> None:
        if err.status < 500 and err.detail is None:
            return
        rec.record(EventRecord(kind="serve_error", run_id=rec.run_id(rid),
                               detail={"request_id": rid, "status": err.status, "message": err.message,
                                       "error": err.detail or ""}))

    def error_response(request: Request, err: _HTTPError) -> JSONResponse:
        rid = rid_of(request)
        trace_error(rid, err)
        return JSONResponse(_error_body(rid, err), status_code=err.status)

    @app.exception_handler(_HTTPError)
    async def _our_errors(request: Request, exc: _HTTPError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_errors(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, _HTTPError(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_errors(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, _HTTPError(400, "invalid request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, _HTTPError(500, "internal error", type_="server_error",
                                                  detail=f"{type(exc).__name__}: {exc}"))

    @app.get(LIVENESS_PATH)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    if metrics_rec is not None:
        from prometheus_client import CONTENT_TYPE_LATEST

        @app.get("/metrics")
        async def prometheus_metrics() -> Response:
            return Response(metrics_rec.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [m.describe() for m in catalog.values()]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "targets": {n: t.health_snapshot().status.value for n, t in targets.items()}}

    async def read_body(request: Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _body_too_large(max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        rid = rid_of(request)
        body = await read_body(request)
        try:
            req = ChatCompletionRequest.model_validate_json(body)
        except ValidationError as exc:
            raise _HTTPError(400, f"invalid request body: {describe_validation_error(exc)}") from None
        served = catalog.get(req.model)
        if served is None:
            raise _HTTPError(404, f"unknown model {req.model!r}; known: {', '.join(catalog)}", type_="not_found_error")
        gen = req.generation()
        bad = served.unsupported(gen)
        if bad:
            what = "; ".join(f"{p} (not taken by {', '.join(ts)})" for p, ts in bad.items())
            raise _HTTPError(400, f"model {served.id!r} cannot honour {what}; remove it from the request")
        messages = _state_messages(req.messages)
        text = next(m.text for m in reversed(req.messages) if m.role == "user")
        metadata: dict[str, Any] = {REQUEST_KEY: rid, "served_model": served.id}
        if gen:
            metadata["generation"] = gen
        if req.user:
            metadata["user"] = req.user
        created = int(time.time())
        cid = f"chatcmpl-{rid[4:]}"
        rec.watch(rid)

        async def admitted() -> AsyncGenerator[StreamPiece, None]:
            async with slots:
                inner = stream_request(served.compiled, text, messages, metadata, routed=served.routed, inner=served.inner)
                try:
                    async for p in inner:
                        yield p
                finally:
                    await inner.aclose()

        pieces = admitted()

        def extra(run: ServedRun) -> dict[str, Any]:
            return {"run_id": run.run_id, "served_by": run.served_by, "cost_usd": run.cost_usd,
                    "decisions": [_decision_info(d) for d in run.decisions]}

        def usage(run: ServedRun) -> dict[str, int]:
            return {"prompt_tokens": run.input_tokens, "completion_tokens": run.output_tokens,
                    "total_tokens": run.input_tokens + run.output_tokens}

        if not req.stream:
            try:
                run = ServedRun()
                async for piece in pieces:
                    run = piece.run or run
            except Exception as exc:
                return error_response(request, _run_failure(exc))
            finally:
                rec.release(rid)
            msg: dict[str, Any] = {"role": "assistant", "content": run.output or ""}
            if run.tool_calls:
                msg["tool_calls"] = _openai_tool_calls(run.tool_calls)
            return {"id": cid, "object": "chat.completion", "created": created, "model": served.id,
                    "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if run.tool_calls else "stop"}],
                    "usage": usage(run), "crossroads": extra(run)}

        try:  # wait for the first piece: a run that fails before any output still gets a real status code
            first = await pieces.__anext__()
        except Exception as exc:
            response = error_response(request, _run_failure(exc))
            rec.release(rid)
            await pieces.aclose()
            return response
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": served.id,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
            return f"data: {json.dumps(c)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            piece: StreamPiece = first
            role_sent = False
            try:
                while True:
                    if piece.run is not None:
                        run = piece.run
                        delta: dict[str, Any] = {} if role_sent else {"role": "assistant", "content": ""}
                        if run.tool_calls:
                            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(_openai_tool_calls(run.tool_calls))]
                        yield chunk(delta, "tool_calls" if run.tool_calls else "stop", crossroads=extra(run))
                        if include_usage:  # OpenAI's stream_options.include_usage: a last chunk with no choices
                            end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": served.id,
                                   "choices": [], "usage": usage(run)}
                            yield f"data: {json.dumps(end)}\n\n".encode()
                        break
                    if piece.text:
                        yield chunk({"role": "assistant", "content": piece.text} if not role_sent else {"content": piece.text})
                        role_sent = True
                    piece = await pieces.__anext__()
            except Exception as exc:  # the status line is sent: report the failure as an SSE error event
                err = _run_failure(exc)
                trace_error(rid, err)
                yield f"data: {json.dumps(_error_body(rid, err))}\n\n".encode()
            finally:
                rec.release(rid)
                await pieces.aclose()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    guarded = _Guard(app, api_key=api_key, max_body_bytes=max_body_bytes)
    guarded.fastapi = app
    return guarded
