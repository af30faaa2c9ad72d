"""The chat-model seam: one protocol every model backend implements, plus in-package test doubles.

Backends (litellm providers, local models, replay models) implement :class:`ChatModel`: ``complete``
and ``acomplete`` return a :class:`ModelResponse`; ``stream`` and ``astream`` yield
:class:`ModelChunk` s whose text deltas arrive as the model produces them and whose last chunk carries
the whole response (usage, cost, latency, events). :class:`ChatModelBase` derives the async and
streaming methods from ``complete`` for a backend that has only that; :func:`acomplete_any`,
:func:`stream_any` and :func:`astream_any` accept any object with a ``complete`` method.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from ..types import CallUsage, CostModel, Message, RunEvent, TargetKind

__all__ = [
    "ChatModel",
    "ChatModelBase",
    "FunctionModel",
    "ModelEvent",
    "ModelResponse",
    "ModelChunk",
    "acomplete_any",
    "astream_any",
    "count_tokens_rough",
    "failed_call",
    "iterate_in_thread",
    "stream_any",
]


ModelEvent = RunEvent
"""Something that happened while serving a call: a retry, a fallback, a cooldown, a deadline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResponse:
    """One completion: text (and tool calls), token counts, cost and latency."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    """OpenAI-style tool calls: ``{"id", "name", "arguments"}`` (arguments as a JSON string)."""
    score: float | None = None
    """A recorded outcome (replay models), when known."""
    events: tuple[ModelEvent, ...] = ()
    """Retries, fallbacks, cooldowns and deadlines that happened while serving this call."""
    failed_attempts: tuple[CallUsage, ...] = ()
    """One call record (``error`` filled) per attempt that failed before this reply: the trace writes
    them as call rows, so a retried or fallen-back call is never invisible."""
    finish_reason: str | None = None
    """Why generation stopped (``stop``, ``length``, ``tool_calls``), when the backend says."""
    first_chunk_ms: float | None = None
    """Streams only: time from the request to the first text chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelChunk:
    """One piece of a streamed reply: a text delta, or (last chunk only) the whole response."""

    text: str = ""
    response: ModelResponse | None = None
    """Set on the last chunk: the full text, token usage, cost, latency and events of the call."""

    @property
    def final(self) -> bool:
        return self.response is not None


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend. ``name`` identifies the model in traces.

    Keyword arguments (``tools=``, ``max_tokens=``, ...) are passed through to the backend, which
    ignores what it does not support.
    """

    name: str

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """Return the assistant's reply to ``messages``."""
        ...

    async def acomplete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """The same reply, without blocking the event loop."""
        ...

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[ModelChunk]:
        """Text deltas as they are produced; the last chunk carries the whole :class:`ModelResponse`."""
        ...

    def astream(self, messages: Sequence[Message], **kwargs: Any) -> AsyncIterator[ModelChunk]:
        """Async :meth:`stream`."""
        ...


def count_tokens_rough(text: str) -> int:
    """A tokenizer-free token estimate (about 4 characters per token) for local doubles."""
    return max(1, (len(text) + 3) // 4) if text else 0


def failed_call(model: str, exc: BaseException, latency_ms: float, *, cause: str | None = None) -> CallUsage:
    """The call record of a failed attempt (``error`` filled with the cause and the exception)."""
    prefix = f"{cause}: " if cause else ""
    return CallUsage(target=model, kind=TargetKind.MODEL, model=model, latency_ms=latency_ms,
                     error=f"{prefix}{type(exc).__name__}: {exc}"[:500])


def _final_chunks(resp: ModelResponse) -> Iterator[ModelChunk]:
    if resp.text:
        yield ModelChunk(text=resp.text)
    yield ModelChunk(response=resp)


_BACKGROUND: set[asyncio.Future[Any]] = set()


async def iterate_in_thread(make: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking iterator in a worker thread and yield its items on the event loop.

    Closing the async iterator early stops the worker at its next item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop closed: nobody is listening any more
            stop.set()

    def pump() -> None:
        try:
            it = make()
            try:
                for item in it:
                    put("item", item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the loop
            put("error", exc)
        else:
            put("done", None)

    worker = asyncio.ensure_future(asyncio.to_thread(pump))
    _BACKGROUND.add(worker)  # a strong reference until the thread ends, even if we stop listening
    worker.add_done_callback(_BACKGROUND.discard)
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                break
    finally:
        stop.set()  # an early close stops the worker at its next item


class ChatModelBase:
    """Defaults for the async and streaming methods of a backend that implements ``complete`` only.

    ``acomplete`` runs ``complete`` in a worker thread (the event loop never blocks); ``stream`` and
    ``astream`` yield the whole reply as one chunk, then the final chunk. Override them for real
    async I/O or token streaming.
    """

    name: str

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        raise NotImplementedError

    async def acomplete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        return await asyncio.to_thread(self.complete, messages, **kwargs)

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[ModelChunk]:
        yield from _final_chunks(self.complete(messages, **kwargs))

    async def astream(self, messages: Sequence[Message], **kwargs: Any) -> AsyncIterator[ModelChunk]:
        for chunk in _final_chunks(await self.acomplete(messages, **kwargs)):
            yield chunk


async def acomplete_any(model: Any, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
    """``model.acomplete`` when it has one, else its ``complete`` in a worker thread."""
    if hasattr(model, "acomplete"):
        return await model.acomplete(messages, **kwargs)
    return await asyncio.to_thread(model.complete, messages, **kwargs)


def _normalise(model: Any, items: Iterator[Any], started: float) -> Iterator[ModelChunk]:
    """Accept streams of plain strings (older backends): wrap them and add the final chunk."""
    parts: list[str] = []
    first: float | None = None
    for item in items:
        if isinstance(item, ModelChunk):
            if item.final:
                yield item
                return
            chunk = item
        else:
            chunk = ModelChunk(text=str(item))
        if chunk.text and first is None:
            first = (time.perf_counter() - started) * 1e3
        parts.append(chunk.text)
        yield chunk
    text = "".join(parts)
    yield ModelChunk(response=ModelResponse(text=text, model=getattr(model, "name", "model"),
                                             output_tokens=count_tokens_rough(text),
                                             latency_ms=(time.perf_counter() - started) * 1e3, first_chunk_ms=first))


def stream_any(model: Any, messages: Sequence[Message], **kwargs: Any) -> Iterator[ModelChunk]:
    """``model.stream`` when it has one (plain-string streams are wrapped), else one chunk from ``complete``."""
    started = time.perf_counter()
    if hasattr(model, "stream"):
        yield from _normalise(model, iter(model.stream(messages, **kwargs)), started)
        return
    resp = model.complete(messages, **kwargs)
    yield from _final_chunks(replace(resp, first_chunk_ms=resp.latency_ms))


async def astream_any(model: Any, messages: Sequence[Message], **kwargs: Any) -> AsyncIterator[ModelChunk]:
    """``model.astream`` when it has one; else ``stream`` in a worker thread; else one chunk."""
    if hasattr(model, "astream"):
        async for chunk in model.astream(messages, **kwargs):
            yield chunk
        return
    async for chunk in iterate_in_thread(lambda: stream_any(model, messages, **kwargs)):
        yield chunk


class FunctionModel(ChatModelBase):
    """A chat model whose reply is computed by a Python function: the test double for LLMs.

    Example::

        model = FunctionModel(lambda msgs: "billing", name="fake-router-llm")
        model.complete([Message(role="user", content="refund?")]).text  # 'billing'
    """

    def __init__(
        self,
        fn: Callable[[Sequence[Message]], str],
        *,
        name: str = "function-model",
        cost: CostModel | None = None,
    ) -> None:
        self.name = name
        self._fn = fn
        self._cost = cost or CostModel()

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        start = time.perf_counter()
        text = self._fn(messages)
        tin = sum(count_tokens_rough(m.content) for m in messages)
        tout = count_tokens_rough(text)
        return ModelResponse(
            text=text,
            model=self.name,
            input_tokens=tin,
            output_tokens=tout,
            cost_usd=self._cost.estimate(tin, tout),
            latency_ms=(time.perf_counter() - start) * 1e3,
        )
