"""An OpenAI-compatible HTTP API over a flow: its targets as models, its routers as ``router:<name>``.

``POST /v1/chat/completions`` with ``model: "router:triage"`` asks that router to choose among its
route's candidates and answers with the chosen target, so any OpenAI client can call through a
crossroads router (as RouteLLM's server does). The reply carries the decision under ``crossroads``.
Decisions and calls go to the trace like any run's.
"""

# no `from __future__ import annotations`: FastAPI resolves the handlers' annotations at definition time

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..agents.targets import Target
from ..errors import CrossroadsError, RoutingError
from ..orchestrator.flow import Flow
from ..routers.base import Router
from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, StepRecord
from ..types import END, Message, RouteContext, TargetRequest, TargetResult

__all__ = ["LOOPBACK_HOSTS", "ServeConfigError", "build_app", "check_bind"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ROUTER_PREFIX = "router:"


class ServeConfigError(CrossroadsError):
    """The server cannot start as configured (e.g. a public bind without an API key)."""


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse a non-loopback bind without an API key."""
    if host not in LOOPBACK_HOSTS and not host.startswith("127.") and not api_key:
        raise ServeConfigError(
            f"refusing to listen on {host} without an API key: anyone on the network could spend your "
            "model budget. Set one with --api-key-env NAME (the env var holding it), or bind 127.0.0.1"
        )


@dataclass
class _RouterModel:
    router: Router
    candidates: list[Target]


def _messages(payload: Mapping[str, Any]) -> list[Message]:
    out = []
    for m in payload.get("messages") or []:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
        role = m.get("role", "user")
        out.append(Message(role=role if role in ("user", "assistant", "system", "tool") else "user", content=str(content or "")))
    return out


def build_app(flow: Flow, *, recorder: Recorder | None = None, api_key: str | None = None) -> Any:
    """The FastAPI application for ``flow``."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    rec = recorder or NullRecorder()
    targets = dict(flow.nodes)
    routers: dict[str, _RouterModel] = {}
    for r in flow.routes.values():
        routers[f"{ROUTER_PREFIX}{r.router.label}"] = _RouterModel(r.router, [targets[c] for c in r.candidates if c != END])
    app = FastAPI(title=f"crossroads: {flow.name}", version="1")

    @app.exception_handler(HTTPException)
    async def _openai_errors(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": {"message": exc.detail, "type": "invalid_request_error", "code": exc.status_code}},
                            status_code=exc.status_code)

    def _auth(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong API key (Authorization: Bearer ...)")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        _auth(request)
        data = [{"id": n, "object": "model", "owned_by": "crossroads", "kind": t.kind.value,
                 "description": t.info.description} for n, t in targets.items()]
        data += [{"id": n, "object": "model", "owned_by": "crossroads", "kind": "router",
                  "candidates": [c.name for c in rm.candidates]} for n, rm in routers.items()]
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "targets": {n: t.health_snapshot().status.value for n, t in targets.items()}}

    async def _serve(model_id: str, msgs: list[Message]) -> tuple[TargetResult, str, dict[str, Any] | None, str]:
        run_id = uuid.uuid4().hex
        query = next((m.content for m in reversed(msgs) if m.role == "user"), "")
        rec.record(RunStart(run_id=run_id, flow=f"serve:{flow.name}", thread_id=run_id, input=query,
                            metadata={"model": model_id}))
        decision_info = None
        try:
            if model_id in routers:
                rm = routers[model_id]
                ctx = RouteContext(query=query, candidates=tuple(t.info for t in rm.candidates), input=query,
                                   messages=tuple(msgs), health={t.name: t.health_snapshot() for t in rm.candidates},
                                   run_id=run_id)
                started = time.perf_counter()
                decision = await rm.router.aroute(ctx)
                if not decision.latency_ms:
                    from dataclasses import replace

                    decision = replace(decision, latency_ms=(time.perf_counter() - started) * 1e3)
                try:
                    decision.validate(ctx.candidate_names)
                except RoutingError as exc:
                    rec.record(EventRecord(kind="routing_error", run_id=run_id, target=exc.target,
                                           detail={"router": exc.router, "message": str(exc)}))
                    raise
                rec.record(DecisionRecord(run_id=run_id, source="serve", decision=decision, query=query))
                target = targets[decision.targets[0]]
                decision_info = {"router": decision.router, "chosen": decision.targets[0], "decision_id": decision.decision_id,
                                 "scores": dict(decision.scores), "rationale": decision.rationale}
            elif model_id in targets:
                target = targets[model_id]
            else:
                raise HTTPException(status_code=404, detail=f"unknown model {model_id!r}; known: {', '.join([*targets, *routers])}")
            request = TargetRequest(text=msgs[-1].content if msgs else "", input=query, messages=tuple(msgs))
            started_at = time.time()
            result = await target.ainvoke(request)
            step = StepRecord(run_id=run_id, node=target.name, kind=target.kind.value, started_at=started_at,
                              ended_at=time.time(), input_summary=query, output_summary=result.output,
                              cost_usd=result.cost_usd)
            rec.record(step)
            for call in result.calls:
                rec.record(CallRecord(run_id=run_id, step_id=step.step_id, usage=call))
            rec.record(RunEnd(run_id=run_id, status="succeeded", output=result.output))
            return result, target.name, decision_info, run_id
        except HTTPException:
            rec.record(RunEnd(run_id=run_id, status="failed", error="unknown model"))
            raise
        except Exception as exc:
            rec.record(RunEnd(run_id=run_id, status="failed", error=f"{type(exc).__name__}: {exc}"))
            raise HTTPException(status_code=502, detail=f"{type(exc).__name__}: {exc}") from exc

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        _auth(request)
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            raise HTTPException(status_code=400, detail="request body is not valid JSON") from None
        model_id = payload.get("model")
        if not isinstance(model_id, str):
            raise HTTPException(status_code=400, detail="'model' is required")
        msgs = _messages(payload)
        if not msgs:
            raise HTTPException(status_code=400, detail="'messages' must be a non-empty list")
        result, served_by, decision, run_id = await _serve(model_id, msgs)
        created = int(time.time())
        cid = f"chatcmpl-{run_id}"
        tin = sum(c.input_tokens for c in result.calls)
        tout = sum(c.output_tokens for c in result.calls)
        extra = {"served_by": served_by, "run_id": run_id, "cost_usd": result.cost_usd, "decision": decision}
        if payload.get("stream"):
            async def events() -> AsyncIterator[bytes]:
                words = result.output.split(" ")
                for i, w in enumerate(words):
                    chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                             "choices": [{"index": 0, "delta": ({"role": "assistant"} if i == 0 else {}) | {"content": w if i == 0 else " " + w},
                                          "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                    await asyncio.sleep(0)
                end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "crossroads": extra}
                yield f"data: {json.dumps(end)}\n\n".encode()
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": cid, "object": "chat.completion", "created": created, "model": model_id,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": result.output}}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
            "crossroads": extra,
        }

    return app
