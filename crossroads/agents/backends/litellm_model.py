"""Provider models through litellm (OpenAI, Anthropic, Azure, Bedrock, any OpenAI-compatible server).

litellm is imported on first use, never at import time. Prices come from the
:class:`~crossroads.agents.backends.catalogue.ModelCatalogue` (or an explicit ``cost``), so an unknown
model is an error instead of a silent zero cost. Retries are off here: wrap models in
:class:`~crossroads.agents.backends.resilience.ResilientModel` for retries, fallbacks and cooldowns.

Every call goes through litellm's async API (``acompletion``); the sync methods run it on a background
event loop (:mod:`._aio`), so both share one code path. ``timeout_s`` bounds each read; ``deadline_s``
bounds the whole call (a server trickling one byte at a time never trips a read timeout): past it the
request is cancelled, its connection closed, and :class:`~crossroads.errors.DeadlineExceededError`
raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ...errors import DeadlineExceededError, MalformedResponseError, TargetError
from ...types import CostModel, Message
from ..models import ChatModelBase, ModelChunk, ModelResponse, count_tokens_rough
from ._aio import aiterate_on_loop, iterate_sync, on_loop, run_sync
from .catalogue import ModelCatalogue
from .failures import error_status, is_retryable

__all__ = ["LiteLLMModel", "OpenAIClientModel", "error_status", "is_retryable", "to_openai_messages"]

DEFAULT_TIMEOUT_S = 60.0
DEADLINE_PER_TIMEOUT = 2.0
"""The default total deadline of a call, in multiples of its per-read timeout."""
GENERATION_PARAMS = frozenset({"temperature", "max_tokens", "stop", "tools", "tool_choice", "response_format",
                               "top_p", "seed"})
"""Per-call generation parameters these models pass to the provider (``complete(..., temperature=...)``);
others are not sent (``crossroads serve`` refuses a request parameter a target's model does not honour)."""
T = TypeVar("T")


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


_warm_lock: asyncio.Lock | None = None
_warmed = False


async def _warm_up(litellm: Any) -> None:
    """Once per process, run litellm's request pipeline on a mocked reply (``mock_response``: nothing is
    sent), plain and streamed. litellm imports much of itself lazily on the first call (1-4 s on a busy
    machine); done here, that one-off local work is not charged to the first real call's deadline."""
    global _warm_lock, _warmed
    if _warmed:
        return
    _warm_lock = _warm_lock or asyncio.Lock()  # the background loop is the only loop that gets here
    async with _warm_lock:
        if _warmed:
            return
        msgs = [{"role": "user", "content": "warm-up"}]
        with contextlib.suppress(Exception):
            await litellm.acompletion(model="openai/gpt-4o-mini", messages=msgs, mock_response="ok")
            stream = await litellm.acompletion(model="openai/gpt-4o-mini", messages=msgs, mock_response="ok",
                                               stream=True)
            async for _ in stream:
                pass
        _warmed = True


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """crossroads messages → OpenAI chat messages (tool calls and tool results included)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if getattr(m, "tool_calls", None):
            d["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                "function": {"name": c.get("name"), "arguments": c.get("arguments") or "{}"}}
                               for c in m.tool_calls]
        if getattr(m, "tool_call_id", None):
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def _tool_calls(message: Any) -> tuple[dict[str, Any], ...]:
    calls = getattr(message, "tool_calls", None) or []
    out = []
    for c in calls:
        fn = getattr(c, "function", None)
        out.append({"id": getattr(c, "id", None), "name": getattr(fn, "name", None),
                    "arguments": getattr(fn, "arguments", None)})
    return tuple(out)


class _ToolCallAccumulator:
    """Stream deltas of tool calls (by index: id and name once, arguments in pieces) → whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: Any) -> None:
        for i, c in enumerate(getattr(delta, "tool_calls", None) or []):
            idx = getattr(c, "index", None)
            slot = self._calls.setdefault(idx if isinstance(idx, int) else i, {"id": None, "name": None, "arguments": ""})
            if getattr(c, "id", None):
                slot["id"] = c.id
            fn: Any = getattr(c, "function", None)
            if getattr(fn, "name", None):
                slot["name"] = fn.name
            if getattr(fn, "arguments", None):
                slot["arguments"] += fn.arguments

    def calls(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._calls[k] for k in sorted(self._calls))


async def _before(aw: Awaitable[T], seconds: float | None, on_timeout: Any) -> T:
    """Await ``aw`` for at most ``seconds``; past that, cancel it (closing its connection) and raise ``on_timeout()``."""
    if seconds is None:
        return await aw
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise on_timeout()
    return task.result()


class LiteLLMModel(ChatModelBase):
    """A chat model served through litellm.

    Example::

        m = LiteLLMModel("openai/gpt-4o-mini")                      # key from OPENAI_API_KEY
        local = LiteLLMModel("openai/qwen", api_base="http://127.0.0.1:8000/v1",
                             cost=CostModel(input_per_mtok=0, output_per_mtok=0), deadline_s=30)
        await m.acomplete(msgs); [c.text for c in m.stream(msgs)]

    Keyword arguments of a call named in :data:`GENERATION_PARAMS` (``temperature``, ``max_tokens``,
    ``stop``, ``tool_choice``, ``response_format``, ...) go to the provider as OpenAI parameters.
    """

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        cost: CostModel | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        deadline_s: float | None = None,
        stream_deadline_s: float | None = None,
        catalogue: ModelCatalogue | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if timeout_s <= 0 or (deadline_s is not None and deadline_s <= 0):
            raise ValueError(f"model {name or model!r}: timeout_s and deadline_s must be positive seconds")
        self.model = model
        self.name = name or model
        self.api_base = api_base
        self._api_key = api_key  # never logged or traced
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s if deadline_s is not None else DEADLINE_PER_TIMEOUT * timeout_s
        """Total time for a ``complete`` call, and for a stream's first chunk (default: 2 x ``timeout_s``:
        a plain stall still trips the read timeout first; a reply trickling in trips this)."""
        self.stream_deadline_s = stream_deadline_s
        """Total time for a whole stream (default: unbounded; each read still has ``timeout_s``)."""
        self.cost = cost if cost is not None else (catalogue or ModelCatalogue()).describe(model).cost
        self.extra = dict(extra or {})

    generation_params = GENERATION_PARAMS

    def _kwargs(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None,
                params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages),
                              "timeout": self.timeout_s, "num_retries": 0, "max_retries": 0, **self.extra}
        kw.update({k: v for k, v in (params or {}).items() if k in GENERATION_PARAMS and v is not None})
        if self.api_base:
            kw["api_base"] = self.api_base
        if self._api_key:
            kw["api_key"] = self._api_key
        if tools:
            kw["tools"] = list(tools)
        return kw

    def _deadline_error(self, started: float, deadline: float, what: str = "call") -> DeadlineExceededError:
        elapsed = time.perf_counter() - started
        return DeadlineExceededError(
            f"model {self.name!r}: {what} passed its {deadline:g} s deadline ({elapsed:.1f} s elapsed); "
            "raise deadline_s if replies are legitimately that slow", target=self.name, deadline_s=deadline,
            elapsed_s=elapsed)

    def _usage(self, usage: Any, messages: Sequence[Message], text: str) -> tuple[int, int]:
        tin = int(getattr(usage, "prompt_tokens", 0) or 0) or sum(count_tokens_rough(m.content) for m in messages)
        tout = int(getattr(usage, "completion_tokens", 0) or 0) or count_tokens_rough(text)
        return tin, tout

    def _response(self, resp: Any, messages: Sequence[Message], started: float) -> ModelResponse:
        try:
            choice = resp.choices[0]
            message = choice.message
            text = message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise MalformedResponseError(f"model {self.name!r} returned a malformed response: {exc}",
                                         target=self.name) from exc
        tin, tout = self._usage(getattr(resp, "usage", None), messages, text)
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             tool_calls=_tool_calls(message), finish_reason=getattr(choice, "finish_reason", None))

    async def acomplete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                        deadline_s: float | None = None, **params: Any) -> ModelResponse:
        """One chat completion, within ``deadline_s`` (default: the model's); the caller's loop never blocks."""
        return await on_loop(self._acomplete(messages, tools, deadline_s, params))

    async def _acomplete(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None,
                         deadline_s: float | None, params: Mapping[str, Any]) -> ModelResponse:
        litellm = _litellm()
        await _warm_up(litellm)
        started = time.perf_counter()
        deadline = deadline_s if deadline_s is not None else self.deadline_s
        resp = await _before(litellm.acompletion(**self._kwargs(messages, tools, params)), deadline,
                             lambda: self._deadline_error(started, deadline))
        return self._response(resp, messages, started)

    def complete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                 deadline_s: float | None = None, **params: Any) -> ModelResponse:
        """Sync :meth:`acomplete` (same code path, run on the background loop)."""
        return run_sync(self._acomplete(messages, tools, deadline_s, params))

    async def astream(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                      deadline_s: float | None = None, **params: Any) -> AsyncIterator[ModelChunk]:
        """Text deltas as the provider sends them; the last chunk carries usage (``include_usage``), cost,
        latency and the finish reason. A stream that breaks off raises :class:`TargetError`.
        ``deadline_s`` (default: the model's) bounds the time to the first chunk; ``stream_deadline_s``
        the whole stream."""
        async for chunk in aiterate_on_loop(self._astream(messages, tools, deadline_s, params)):
            yield chunk

    async def _astream(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None,
                       deadline_s: float | None, params: Mapping[str, Any]) -> AsyncIterator[ModelChunk]:
        litellm = _litellm()
        await _warm_up(litellm)
        started = time.perf_counter()
        first_deadline = deadline_s if deadline_s is not None else self.deadline_s
        whole = self.stream_deadline_s

        def remaining(first: bool) -> float | None:
            left = [d - (time.perf_counter() - started) for d in ((first_deadline if first else None), whole)
                    if d is not None]
            return min(left) if left else None

        def on_timeout(first: bool) -> Any:
            return lambda: self._deadline_error(started, first_deadline if first else whole or 0.0,
                                                "first chunk" if first else "stream")

        kw = self._kwargs(messages, tools, params)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True, **(kw.get("stream_options") or {})}
        parts: list[str] = []
        tools_acc = _ToolCallAccumulator()
        usage: Any = None
        finish: str | None = None
        first_ms: float | None = None
        try:
            stream = await _before(litellm.acompletion(**kw), remaining(True), on_timeout(True))
            it = stream.__aiter__()
            while True:
                first = first_ms is None
                try:
                    chunk = await _before(it.__anext__(), remaining(first), on_timeout(first))
                except StopAsyncIteration:
                    break
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    finish = getattr(choice, "finish_reason", None) or finish
                    delta = getattr(choice, "delta", None)
                    tools_acc.add(delta)
                    text = getattr(delta, "content", None)
                    if text:
                        if first_ms is None:
                            first_ms = (time.perf_counter() - started) * 1e3
                        parts.append(text)
                        yield ModelChunk(text=text)
        except (DeadlineExceededError, GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise TargetError(f"stream from {self.name!r} broke off after {len(parts)} chunks: "
                              f"{type(exc).__name__}: {exc}", target=self.name) from exc
        # litellm closes a truncated stream with a synthetic "stop"; what the provider really sent is here:
        real = (getattr(stream, "received_finish_reason", None) or getattr(stream, "intermittent_finish_reason", None)
                if hasattr(stream, "received_finish_reason") else finish)
        if not real:
            raise TargetError(f"stream from {self.name!r} ended without a finish reason (dropped connection)",
                              target=self.name) from ConnectionError("stream ended without a finish reason")
        text = "".join(parts)
        tin, tout = self._usage(usage, messages, text)
        yield ModelChunk(response=ModelResponse(
            text=text, model=self.name, input_tokens=tin, output_tokens=tout, cost_usd=self.cost.estimate(tin, tout),
            latency_ms=(time.perf_counter() - started) * 1e3, tool_calls=tools_acc.calls(), finish_reason=finish,
            first_chunk_ms=first_ms))

    def stream(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
               deadline_s: float | None = None, **params: Any) -> Iterator[ModelChunk]:
        """Sync :meth:`astream`."""
        return iterate_sync(self._astream(messages, tools, deadline_s, params))

    def __repr__(self) -> str:
        return f"LiteLLMModel({self.model!r}, api_base={self.api_base!r})"


class OpenAIClientModel(ChatModelBase):
    """A chat model over a user-supplied ``openai.OpenAI``-compatible (sync) client object.

    ``acomplete`` runs the client in a worker thread; ``stream`` uses the client's own streaming.
    """

    def __init__(self, client: Any, model: str, *, cost: CostModel, name: str | None = None) -> None:
        self.client = client
        self.model = model
        self.name = name or model
        self.cost = cost

    def _kw(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None,
            params: Mapping[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages)}
        kw.update({k: v for k, v in params.items() if v is not None})
        if tools:
            kw["tools"] = list(tools)
        return kw

    def complete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                 **params: Any) -> ModelResponse:
        started = time.perf_counter()
        resp = self.client.chat.completions.create(**self._kw(messages, tools, params))
        try:
            choice = resp.choices[0]
            msg = choice.message
        except (AttributeError, IndexError, TypeError) as exc:
            raise MalformedResponseError(f"model {self.name!r} returned a malformed response: {exc}",
                                         target=self.name) from exc
        text = msg.content or ""
        tin = int(getattr(resp.usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(resp.usage, "completion_tokens", 0) or 0)
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             tool_calls=_tool_calls(msg), finish_reason=getattr(choice, "finish_reason", None))

    def stream(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
               **params: Any) -> Iterator[ModelChunk]:
        started = time.perf_counter()
        kw = self._kw(messages, tools, params)
        stream = self.client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        tools_acc = _ToolCallAccumulator()
        usage: Any = None
        finish: str | None = None
        first_ms: float | None = None
        for chunk in stream:
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or []:
                finish = getattr(choice, "finish_reason", None) or finish
                tools_acc.add(choice.delta)
                if getattr(choice.delta, "content", None):
                    first_ms = first_ms if first_ms is not None else (time.perf_counter() - started) * 1e3
                    parts.append(choice.delta.content)
                    yield ModelChunk(text=choice.delta.content)
        text = "".join(parts)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(usage, "completion_tokens", 0) or 0) or count_tokens_rough(text)
        yield ModelChunk(response=ModelResponse(
            text=text, model=self.name, input_tokens=tin, output_tokens=tout, cost_usd=self.cost.estimate(tin, tout),
            latency_ms=(time.perf_counter() - started) * 1e3, tool_calls=tools_acc.calls(), finish_reason=finish,
            first_chunk_ms=first_ms))
