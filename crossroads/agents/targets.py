"""Route targets: agents, tools and models behind one :class:`Target` type.

A target is a descriptor (:class:`~crossroads.types.TargetInfo`, what routers see) plus a runner
(what the orchestrator calls) plus a health tracker. Build them with :func:`agent`, :func:`tool`,
:func:`model` or :func:`llm_agent`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
from .models import ChatModel, ModelResponse, count_tokens_rough

__all__ = ["DEFAULT_MAX_TOOL_ROUNDS", "Target", "agent", "is_transport_error", "llm_agent", "model", "tool", "tool_schema"]

Runner = Callable[[TargetRequest], Any]


class Target:
    """A routable unit of work: descriptor + runner + health.

    Example::

        billing = agent("billing", lambda text: f"Billing here: {text}",
                        description="Refunds, invoices, charges")
        billing.invoke(TargetRequest(text="refund", input="refund")).output
    """

    __slots__ = ("info", "_runner", "_arunner", "_is_async", "health", "_health_source")

    def __init__(self, info: TargetInfo, runner: Runner, *, health_source: Callable[[], Health] | None = None,
                 arunner: Callable[[TargetRequest], Awaitable[Any]] | None = None) -> None:
        self.info = info
        self._runner = runner
        self._arunner = arunner
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
        except Exception as exc:
            self._failed(exc, start)
            raise
        latency = (time.perf_counter() - start) * 1e3
        self.health.record(True, latency)
        return self._normalise(raw, latency)

    async def ainvoke(self, request: TargetRequest) -> TargetResult:
        """Run the target asynchronously (sync runners run in a worker thread)."""
        start = time.perf_counter()
        try:
            if self._arunner is not None:
                raw = await self._arunner(request)
            elif self._is_async:
                raw = await self._runner(request)
            else:
                raw = await asyncio.to_thread(self._runner, request)
                if inspect.isawaitable(raw):
                    raw = await raw
        except Exception as exc:
            self._failed(exc, start)
            raise
        latency = (time.perf_counter() - start) * 1e3
        self.health.record(True, latency)
        return self._normalise(raw, latency)

    def _failed(self, exc: BaseException, start: float) -> None:
        # Availability comes from transport/provider failures only: a user function raising
        # ValueError on bad input says nothing about whether the target is up.
        if is_transport_error(exc):
            self.health.record(False, (time.perf_counter() - start) * 1e3)

    def _normalise(self, raw: Any, latency_ms: float) -> TargetResult:
        if isinstance(raw, TargetResult):
            if raw.calls or not self._records_own_call:
                return raw
            return dataclasses.replace(raw, calls=(self._own_call(latency_ms),))
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


def is_transport_error(exc: BaseException) -> bool:
    """True when ``exc`` is a transport or provider failure (connection, timeout, 429/5xx, every
    model of a fallback chain failed): the failures that count against a target's availability."""
    from .backends.failures import is_transport_error as classify  # the model layer's one classification

    return classify(exc)


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
    """An agent backed by any Python callable taking ``(text)``, ``(request)`` or ``(text, request)``,
    or by a LangGraph compiled graph (a prebuilt agent, a subgraph, another flow's ``app.graph``) that
    reads and writes ``messages``: its last message is the output."""
    info = _info(name, TargetKind.AGENT, description=description, tags=tags, cost=cost,
                 expected_latency_ms=expected_latency_ms, quality=quality, metadata=metadata)
    from .lc import is_runnable_graph

    if is_runnable_graph(fn):
        run, arun = _graph_runners(fn)
        return Target(info, run, arunner=arun)
    return Target(info, _adapt_callable(fn, name))


def _graph_runners(graph: Any) -> tuple[Runner, Callable[[TargetRequest], Awaitable[Any]]]:
    """Run a LangGraph graph as a target. The run's id, input and metadata are passed along, so a
    crossroads flow's graph nested this way records its steps and decisions under the outer run."""
    from .lc import _text, to_lc_message

    def payload(request: TargetRequest) -> dict[str, Any]:
        msgs = request.messages or (Message(role="user", content=request.text),)
        data: dict[str, Any] = {"messages": [to_lc_message(m) for m in msgs]}
        for key in ("run_id", "input", "metadata"):
            if key in request.state:
                data[key] = request.state[key]
        return data

    def output(final: Any) -> TargetResult:
        msgs = (final or {}).get("messages") or []
        text = _text(msgs[-1].content) if msgs else str((final or {}).get("output") or "")
        return TargetResult(output=text)

    def run(request: TargetRequest) -> TargetResult:
        return output(graph.invoke(payload(request)))

    async def arun(request: TargetRequest) -> TargetResult:
        return output(await graph.ainvoke(payload(request)))

    return run, arun


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


def _chat_model(chat_model: Any, cost: Any) -> Any:
    """A crossroads chat model, adapting a LangChain ``BaseChatModel`` when given one."""
    from .lc import LangChainChatModel, is_langchain_chat_model

    if is_langchain_chat_model(chat_model):
        return LangChainChatModel(chat_model, cost=cost if isinstance(cost, CostModel) else None)
    if not callable(getattr(chat_model, "complete", None)):
        raise ConfigError(
            f"{type(chat_model).__name__} is not a chat model: give a crossroads ChatModel (with complete()) "
            "or a LangChain BaseChatModel"
        )
    return chat_model


def model(
    name: str,
    chat_model: ChatModel | Any,
    *,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
    system: str | None = None,
) -> Target:
    """A model target: its node sends the run's messages (or the latest text) to ``chat_model``
    (a crossroads :class:`ChatModel` or a LangChain ``BaseChatModel``)."""
    chat = _chat_model(chat_model, cost)
    info = _info(name, TargetKind.MODEL, description=description, tags=tags, cost=cost,
                 expected_latency_ms=expected_latency_ms, quality=quality,
                 metadata={"model": getattr(chat, "name", name), **_generation_meta(chat, own_tools=False)})
    loop = _ChatLoop(name, TargetKind.MODEL, chat, system, tools=(), max_rounds=0)
    return Target(info, loop.run, arunner=loop.arun, health_source=getattr(chat, "health_snapshot", None))


DEFAULT_MAX_TOOL_ROUNDS = 8
"""Model calls an agent with tools may make per run of its node before it must answer."""


def llm_agent(
    name: str,
    chat_model: ChatModel | Any,
    instructions: str,
    *,
    tools: Iterable[Target | Callable[..., Any]] = (),
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    description: str = "",
    tags: Iterable[str] = (),
    cost: CostModel | Mapping[str, float] | None = None,
    expected_latency_ms: float | None = None,
    quality: float | None = None,
) -> Target:
    """An agent that is an LLM with instructions (a system prompt), optionally with ``tools``.

    With tools, its node runs the tool-calling loop: model -> tool calls -> tool results -> model,
    until the model answers without tool calls (at most ``max_tool_rounds`` model calls, then
    :class:`TargetError`). Each tool call is a traced call; a tool's error is sent back to the model
    as the tool's result. Tools are :func:`tool` targets (so the same tool can also be a route
    target) or plain functions (wrapped with :func:`tool`).
    """
    chat = _chat_model(chat_model, cost)
    if max_tool_rounds < 1:
        raise ConfigError(f"llm_agent {name!r}: max_tool_rounds must be at least 1, got {max_tool_rounds}")
    tool_targets = tuple(t if isinstance(t, Target) else tool(getattr(t, "__name__", "tool"), t) for t in tools)
    names = [t.name for t in tool_targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"llm_agent {name!r} has two tools with the same name: {names}")
    info = _info(name, TargetKind.AGENT, description=description or instructions[:200], tags=tags,
                 cost=cost, expected_latency_ms=expected_latency_ms, quality=quality,
                 metadata={"model": getattr(chat, "name", name), "tools": names,
                           **_generation_meta(chat, own_tools=bool(tool_targets))})
    loop = _ChatLoop(name, TargetKind.AGENT, chat, instructions, tools=tool_targets, max_rounds=max_tool_rounds)
    return Target(info, loop.run, arunner=loop.arun, health_source=getattr(chat, "health_snapshot", None))


def _generation_meta(chat: Any, *, own_tools: bool) -> dict[str, Any]:
    # The per-call generation parameters (temperature, max_tokens, stop, tools) the backend declares it
    # honours (its ``generation_params``); a run passes them as metadata["generation"] and `crossroads
    # serve` refuses the others. An agent with tools of its own does not take a caller's tools.
    params = set(getattr(chat, "generation_params", ()) or ())
    if own_tools:
        params.discard("tools")
    return {"generation_params": sorted(params)} if params else {}


def tool_schema(t: Target) -> dict[str, Any]:
    """The OpenAI ``tools`` entry describing a tool target."""
    return {"type": "function", "function": {
        "name": t.name, "description": t.info.description,
        "parameters": dict(t.info.metadata.get("parameters") or {"type": "object", "properties": {}}),
    }}


class _ChatLoop:
    """The runner of model targets and LLM agents (sync and async), tool-calling loop included."""

    def __init__(self, name: str, kind: TargetKind, chat: Any, system: str | None, *,
                 tools: tuple[Target, ...], max_rounds: int) -> None:
        self.name = name
        self.kind = kind
        self.chat = chat
        self.system = system
        self.tools = {t.name: t for t in tools}
        self.schemas = [tool_schema(t) for t in tools]
        self.max_rounds = max_rounds

    def _messages(self, request: TargetRequest) -> list[Message]:
        msgs: list[Message] = []
        if self.system:
            msgs.append(Message(role="system", content=self.system))
        if request.branch_outputs:
            joined = "\n\n".join(f"[{b['target']}]\n{b['output']}" for b in request.branch_outputs)
            msgs.append(Message(role="user", content=f"{request.input}\n\nCandidate answers:\n{joined}"))
        else:
            msgs.extend(request.messages or (Message(role="user", content=request.text),))
        return msgs

    def _call(self, resp: ModelResponse) -> CallUsage:
        return CallUsage(target=self.name, kind=self.kind, model=resp.model, input_tokens=resp.input_tokens,
                         output_tokens=resp.output_tokens, cost_usd=resp.cost_usd, latency_ms=resp.latency_ms)

    def _calls(self, resp: ModelResponse) -> list[CallUsage]:
        """The attempts that failed before this reply (retries, fallbacks: ``error`` filled), then the call."""
        failed = [dataclasses.replace(c, target=self.name, kind=self.kind) for c in resp.failed_attempts]
        return [*failed, self._call(resp)]

    def _kwargs(self, request: TargetRequest) -> dict[str, Any]:
        kw = self._generation(request)
        if self.schemas:
            kw["tools"] = self.schemas
        return kw

    @staticmethod
    def _generation(request: TargetRequest) -> dict[str, Any]:
        """The run's generation parameters (``metadata["generation"]``, e.g. set by ``crossroads serve``)."""
        return dict((request.metadata or {}).get("generation") or {})

    def _streamed(self, msgs: list[Message], text: str, final: ModelResponse | None, started: float) -> ModelResponse:
        if final is not None:
            return final if final.text else dataclasses.replace(final, text=text)
        tin = sum(count_tokens_rough(m.content) for m in msgs)
        tout = count_tokens_rough(text)
        cost = getattr(self.chat, "cost", None)
        return ModelResponse(text=text, model=getattr(self.chat, "name", self.name), input_tokens=tin,
                             output_tokens=tout, cost_usd=cost.estimate(tin, tout) if isinstance(cost, CostModel) else 0.0,
                             latency_ms=(time.perf_counter() - started) * 1e3)

    def _tool_request(self, request: TargetRequest, arguments: str) -> TargetRequest:
        return TargetRequest(text=arguments or "{}", input=request.input, metadata=request.metadata)

    def _unknown_tool(self, name: str) -> str:
        return f"error: there is no tool {name!r}; tools: {', '.join(self.tools) or '(none)'}"

    def _tool_result(self, tc: Mapping[str, Any], result: TargetResult | None, exc: BaseException | None,
                     calls: list[CallUsage]) -> Message:
        name = str(tc.get("name"))
        if result is not None:
            calls.extend(result.calls or (CallUsage(target=name, kind=TargetKind.TOOL),))
            content = result.output
        else:
            err = f"{type(exc).__name__}: {exc}" if exc is not None else self._unknown_tool(name)
            calls.append(CallUsage(target=name, kind=TargetKind.TOOL, error=err))
            content = f"error: {err}" if exc is not None else err
        return Message(role="tool", content=content, name=name, tool_call_id=tc.get("id"))

    def _result(self, resp: ModelResponse, calls: list[CallUsage], events: list[Any],
                exchanged: list[Message]) -> TargetResult:
        meta: dict[str, Any] = {"score": resp.score} if resp.score is not None else {}
        if resp.tool_calls and not self.tools:
            meta["tool_calls"] = list(resp.tool_calls)
        return TargetResult(output=resp.text, calls=tuple(calls), events=tuple(events), metadata=meta,
                            messages=tuple(exchanged))

    def _too_many(self) -> TargetError:
        return TargetError(
            f"agent {self.name!r} still asked for tools after {self.max_rounds} model calls; raise "
            "max_tool_rounds or give it tools that answer", target=self.name)

    def run(self, request: TargetRequest) -> TargetResult:
        msgs = self._messages(request)
        calls: list[CallUsage] = []
        events: list[Any] = []
        exchanged: list[Message] = []
        for _ in range(max(1, self.max_rounds)):
            if request.on_token is not None and not self.tools and callable(getattr(self.chat, "stream", None)) \
                    and "tools" not in self._generation(request):
                started = time.perf_counter()
                text, final = "", None
                for item in self.chat.stream(msgs, **self._generation(request)):
                    delta, final = _stream_item(item, final)
                    if delta:
                        text += delta
                        request.on_token(delta)
                resp = self._streamed(msgs, text, final, started)
            else:
                resp = self.chat.complete(msgs, **self._kwargs(request))
            calls.extend(self._calls(resp))
            events.extend(resp.events)
            if not (self.tools and resp.tool_calls):
                return self._result(resp, calls, events, exchanged)
            ask = Message(role="assistant", content=resp.text, name=self.name, tool_calls=tuple(resp.tool_calls))
            msgs.append(ask)
            exchanged.append(ask)
            for tc in resp.tool_calls:
                t = self.tools.get(str(tc.get("name")))
                result, error = None, None
                if t is not None:
                    try:
                        result = t.invoke(self._tool_request(request, str(tc.get("arguments") or "")))
                    except Exception as exc:  # noqa: BLE001 - the model sees the tool's error and may recover
                        error = exc
                reply = self._tool_result(tc, result, error, calls)
                msgs.append(reply)
                exchanged.append(reply)
        raise self._too_many()

    async def arun(self, request: TargetRequest) -> TargetResult:
        msgs = self._messages(request)
        calls: list[CallUsage] = []
        events: list[Any] = []
        exchanged: list[Message] = []
        for _ in range(max(1, self.max_rounds)):
            if request.on_token is not None and not self.tools and callable(getattr(self.chat, "astream", None)) \
                    and "tools" not in self._generation(request):
                started = time.perf_counter()
                text, final = "", None
                async for item in self.chat.astream(msgs, **self._generation(request)):
                    delta, final = _stream_item(item, final)
                    if delta:
                        text += delta
                        request.on_token(delta)
                resp = self._streamed(msgs, text, final, started)
            elif callable(getattr(self.chat, "acomplete", None)):
                resp = await self.chat.acomplete(msgs, **self._kwargs(request))
            else:
                resp = await asyncio.to_thread(self.chat.complete, msgs, **self._kwargs(request))
            calls.extend(self._calls(resp))
            events.extend(resp.events)
            if not (self.tools and resp.tool_calls):
                return self._result(resp, calls, events, exchanged)
            ask = Message(role="assistant", content=resp.text, name=self.name, tool_calls=tuple(resp.tool_calls))
            msgs.append(ask)
            exchanged.append(ask)
            for tc in resp.tool_calls:
                t = self.tools.get(str(tc.get("name")))
                result, error = None, None
                if t is not None:
                    try:
                        result = await t.ainvoke(self._tool_request(request, str(tc.get("arguments") or "")))
                    except Exception as exc:  # noqa: BLE001 - the model sees the tool's error and may recover
                        error = exc
                reply = self._tool_result(tc, result, error, calls)
                msgs.append(reply)
                exchanged.append(reply)
        raise self._too_many()


def _stream_item(item: Any, final: ModelResponse | None) -> tuple[str, ModelResponse | None]:
    """A streamed item as (text delta, final response): backends yield ``str`` deltas, chunk objects
    with ``delta``/``text``, and may end with a :class:`ModelResponse` carrying usage."""
    if isinstance(item, str):
        return item, final
    if isinstance(item, ModelResponse):
        return "", item
    usage_final = getattr(item, "response", None)
    delta = getattr(item, "delta", None)
    if delta is None:
        delta = getattr(item, "text", "")
    return str(delta or ""), usage_final if isinstance(usage_final, ModelResponse) else final
