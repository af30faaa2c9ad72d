"""Route targets: agents, tools and models behind one :class:`Target` type.

A target is a descriptor (:class:`~crossroads.types.TargetInfo`, what routers see) plus a runner
(what the orchestrator calls) plus a health tracker. Build them with :func:`agent`, :func:`tool`,
:func:`model` or :func:`llm_agent`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..errors import ConfigError, TargetError
from ..types import (
    CallUsage,
    CostModel,
    Health,
    HealthStatus,
    Message,
    TargetInfo,
    TargetKind,
    TargetRequest,
    TargetResult,
)
from .health import HealthTracker
from .models import ChatModel

__all__ = ["Target", "agent", "llm_agent", "model", "tool"]

Runner = Callable[[TargetRequest], Any]


class Target:
    """A routable unit of work: descriptor + runner + health.

    Example::

        billing = agent("billing", lambda text: f"Billing here: {text}",
                        description="Refunds, invoices, charges")
        billing.invoke(TargetRequest(text="refund", input="refund")).output
    """

    __slots__ = ("info", "_runner", "_is_async", "health", "_health_source")

    def __init__(self, info: TargetInfo, runner: Runner, *, health_source: Callable[[], Health] | None = None) -> None:
        self.info = info
        self._runner = runner
        self._is_async = inspect.iscoroutinefunction(runner)
        self.health = HealthTracker()
        self._health_source = health_source

    @property
    def name(self) -> str:
        """The target's unique name."""
        return self.info.name

    @property
    def kind(self) -> TargetKind:
        """Agent, tool or model."""
        return self.info.kind

    def health_snapshot(self) -> Health:
        """Current health: the target's own, or its backend's (e.g. a model in cooldown) when worse."""
        own = self.health.snapshot()
        if self._health_source is None:
            return own
        backend = self._health_source()
        order = {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1, HealthStatus.DOWN: 2}
        return backend if order[backend.status] > order[own.status] else own

    def invoke(self, request: TargetRequest) -> TargetResult:
        """Run the target synchronously."""
        start = time.perf_counter()
        try:
            raw = self._runner(request)
            if inspect.isawaitable(raw):
                raw = _run_coro_blocking(raw)
        except Exception:
            self.health.record(False, (time.perf_counter() - start) * 1e3)
            raise
        latency = (time.perf_counter() - start) * 1e3
        self.health.record(True, latency)
        return self._normalise(raw, latency)

    async def ainvoke(self, request: TargetRequest) -> TargetResult:
        """Run the target asynchronously (sync runners run in a worker thread)."""
        start = time.perf_counter()
        try:
            if self._is_async:
                raw = await self._runner(request)
            else:
                raw = await asyncio.to_thread(self._runner, request)
                if inspect.isawaitable(raw):
                    raw = await raw
        except Exception:
            self.health.record(False, (time.perf_counter() - start) * 1e3)
            raise
        latency = (time.perf_counter() - start) * 1e3
        self.health.record(True, latency)
        return self._normalise(raw, latency)

    def _normalise(self, raw: Any, latency_ms: float) -> TargetResult:
        if isinstance(raw, TargetResult):
            if raw.calls or not self._records_own_call:
                return raw
            return TargetResult(output=raw.output, calls=(self._own_call(latency_ms),), metadata=raw.metadata)
        if isinstance(raw, str):
            output = raw
        elif raw is None:
            raise TargetError(
                f"target {self.name!r} returned None; return a string or a TargetResult",
                target=self.name,
            )
        else:
            output = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        return TargetResult(output=output, calls=(self._own_call(latency_ms),) if self._records_own_call else ())

    @property
    def _records_own_call(self) -> bool:
        # A tool or model run is a call; a plain callable agent is one only when it is priced
        # (its step row already holds its latency).
        return self.kind is not TargetKind.AGENT or self.info.cost.per_call > 0

    def _own_call(self, latency_ms: float) -> CallUsage:
        return CallUsage(
            target=self.name,
            kind=self.kind,
            cost_usd=self.info.cost.per_call,
            latency_ms=latency_ms,
        )

    def __repr__(self) -> str:
        return f"Target({self.kind.value}:{self.name})"


def _run_coro_blocking(coro: Awaitable[Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    raise TargetError("an async target was invoked synchronously inside a running event loop; use ainvoke")


def _info(
    name: str,
    kind: TargetKind,
    *,
    description: str,
    tags: Iterable[str],
    cost: CostModel | Mapping[str, float] | None,
    expected_latency_ms: float | None,
    quality: float | None,
    metadata: Mapping[str, Any] | None,
) -> TargetInfo:
    if not name or not isinstance(name, str):
        raise ConfigError(f"a target needs a non-empty string name, got {name!r}")
    if name.startswith("__"):
        raise ConfigError(f"target name {name!r} is reserved (names starting with '__')")
    if isinstance(cost, Mapping):
        cost = CostModel(**cost)
    return TargetInfo(
        name=name,
        kind=kind,
        description=description,
        tags=tuple(tags),
        cost=cost or CostModel(),
        expected_latency_ms=expected_latency_ms,
        quality=quality,
        metadata=dict(metadata or {}),
    )


def _adapt_callable(fn: Callable[..., Any], name: str) -> Runner:
    """Accept ``fn(text)``, ``fn(request)`` or ``fn(text, request)`` and return a request runner."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    first = positional[0] if positional else None
    wants_request = first is not None and (
        first.name == "request" or first.annotation in (TargetRequest, "TargetRequest")
    )
    is_async = inspect.iscoroutinefunction(fn)
    if wants_request:
        return fn
    if len(positional) >= 2:
        if is_async:
            async def arun2(req: TargetRequest) -> Any:
                return await fn(req.text, req)
            return arun2
        return lambda req: fn(req.text, req)
    if len(positional) == 1 or any(p.kind is p.VAR_POSITIONAL for p in params):
        if is_async:
            async def arun1(req: TargetRequest) -> Any:
                return await fn(req.text)
            return arun1
        return lambda req: fn(req.text)
    raise ConfigError(
        f"callable for target {name!r} must take (text), (request) or (text, request); "
        f"got signature {inspect.signature(fn)}"
    )


def agent(
    name: str,
    fn: Callable[..., Any],
    *,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Target:
    """An agent backed by any Python callable taking ``(text)``, ``(request)`` or ``(text, request)``."""
    info = _info(name, TargetKind.AGENT, description=description, tags=tags, cost=cost,
                 expected_latency_ms=expected_latency_ms, quality=quality, metadata=metadata)
    return Target(info, _adapt_callable(fn, name))


def tool(
    name: str,
    fn: Callable[..., Any],
    *,
    parameters: Mapping[str, Any] | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
) -> Target:
    """A tool: a callable with a JSON-schema signature.

    When its node runs, a request text that is a JSON object is passed as keyword arguments;
    otherwise the text is passed as the single argument.
    """
    schema = dict(parameters) if parameters is not None else _schema_from_signature(fn)
    info = _info(name, TargetKind.TOOL, description=description or (fn.__doc__ or "").strip(),
                 tags=tags, cost=cost, expected_latency_ms=expected_latency_ms, quality=quality,
                 metadata={"parameters": schema})

    def run(request: TargetRequest) -> Any:
        text = request.text.strip()
        if text.startswith("{"):
            try:
                args = json.loads(text)
            except json.JSONDecodeError:
                args = None
            if isinstance(args, dict):
                return fn(**args)
        return fn(request.text)

    return Target(info, run)


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def _schema_from_signature(fn: Callable[..., Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        props[p.name] = {"type": _JSON_TYPES.get(p.annotation, "string")}
        if p.default is p.empty:
            required.append(p.name)
    return {"type": "object", "properties": props, "required": required}


def model(
    name: str,
    chat_model: ChatModel,
    *,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
    system: str | None = None,
) -> Target:
    """A model target: its node sends the run's messages (or the latest text) to ``chat_model``."""
    info = _info(name, TargetKind.MODEL, description=description, tags=tags, cost=cost,
                 expected_latency_ms=expected_latency_ms, quality=quality,
                 metadata={"model": getattr(chat_model, "name", name)})
    return Target(info, _chat_runner(name, TargetKind.MODEL, chat_model, system),
                  health_source=getattr(chat_model, "health_snapshot", None))


def llm_agent(
    name: str,
    chat_model: ChatModel,
    instructions: str,
    *,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
) -> Target:
    """An agent that is an LLM with instructions (a system prompt)."""
    info = _info(name, TargetKind.AGENT, description=description or instructions[:200], tags=tags,
                 cost=cost, expected_latency_ms=expected_latency_ms, quality=quality,
                 metadata={"model": getattr(chat_model, "name", name)})
    return Target(info, _chat_runner(name, TargetKind.AGENT, chat_model, instructions),
                  health_source=getattr(chat_model, "health_snapshot", None))


def _chat_runner(name: str, kind: TargetKind, chat_model: ChatModel, system: str | None) -> Runner:
    def run(request: TargetRequest) -> TargetResult:
        msgs: list[Message] = []
        if system:
            msgs.append(Message(role="system", content=system))
        if request.branch_outputs:
            joined = "\n\n".join(f"[{b['target']}]\n{b['output']}" for b in request.branch_outputs)
            msgs.append(Message(role="user", content=f"{request.input}\n\nCandidate answers:\n{joined}"))
        else:
            msgs.extend(request.messages or (Message(role="user", content=request.text),))
        resp = chat_model.complete(msgs)
        call = CallUsage(target=name, kind=kind, model=resp.model, input_tokens=resp.input_tokens,
                         output_tokens=resp.output_tokens, cost_usd=resp.cost_usd,
                         latency_ms=resp.latency_ms)
        meta = {"score": resp.score} if resp.score is not None else {}
        if resp.tool_calls:
            meta["tool_calls"] = list(resp.tool_calls)
        failed = tuple(replace(c, target=name, kind=kind) for c in resp.failed_attempts)  # retried/fallen-back attempts
        return TargetResult(output=resp.text, calls=(*failed, call), events=resp.events, metadata=meta)

    return run
