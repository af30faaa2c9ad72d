"""Retries with backoff, fallbacks to other models and per-model cooldowns, by composition.

:class:`ResilientModel` is itself a chat model: wrap a primary and its fallbacks. Every retry,
fallback, cooldown, skip and deadline is reported as a :class:`~crossroads.agents.models.ModelEvent`
on the response (or on the error when every model failed), with the classified cause
(:func:`~crossroads.agents.backends.failures.classify_error`); every failed attempt is a call record
(``ModelResponse.failed_attempts``, ``AllModelsFailedError.calls``) so the trace keeps it.

The policy (which model, how many retries, how long to back off, when to cool down) is written once,
as a generator of actions; the sync and async drivers only execute them (``time.sleep`` vs
``asyncio.sleep``, ``complete`` vs ``acomplete``), so both paths behave identically.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...errors import DeadlineExceededError, TargetError
from ...types import CallUsage, Health, HealthStatus, Message
from ..health import HealthTracker
from ..models import (
    ChatModel,
    ModelChunk,
    ModelEvent,
    ModelResponse,
    acomplete_any,
    astream_any,
    failed_call,
    stream_any,
)
from .failures import Failure, FailureKind, classify_error, is_retryable

__all__ = ["AllModelsFailedError", "ResilientModel", "StreamBrokenError"]

DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
DEFAULT_COOLDOWN_S = 30.0
DEFAULT_FAILURES_FOR_COOLDOWN = 3
"""Consecutive transport failures (after retries) that put a model into cooldown."""


class AllModelsFailedError(TargetError):
    """Every model of a :class:`ResilientModel` failed.

    ``errors`` maps each model to its last error (or why it was skipped), ``events`` tells what was
    tried, ``calls`` holds one call record per failed attempt (``error`` filled) for the trace.
    """

    def __init__(self, message: str, *, target: str, events: Sequence[ModelEvent],
                 errors: Mapping[str, str] | None = None, calls: Sequence[CallUsage] = (),
                 failure: Failure | None = None) -> None:
        super().__init__(message, target=target)
        self.events = tuple(events)
        self.errors = dict(errors or {})
        self.calls = tuple(calls)
        self.failure = failure
        """The chain's cause for :func:`classify_error`: the last transport failure if any attempt had
        one (then the target is unavailable), else the last failure."""


class StreamBrokenError(TargetError):
    """A stream failed after its first chunk was delivered: it cannot be retried or fall back without
    repeating text, so it fails; ``events`` and ``calls`` as for :class:`AllModelsFailedError`."""

    def __init__(self, message: str, *, target: str, events: Sequence[ModelEvent], calls: Sequence[CallUsage],
                 failure: Failure | None = None) -> None:
        super().__init__(message, target=target)
        self.events = tuple(events)
        self.calls = tuple(calls)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class _Call:
    model: ChatModel
    seconds_left: float | None


@dataclass(frozen=True, slots=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class _Done:
    model: ChatModel
    events: tuple[ModelEvent, ...]
    failed: tuple[CallUsage, ...]


_Policy = Generator["_Call | _Sleep", "tuple[BaseException | None, float] | None", _Done]


class ResilientModel:
    """A primary model with retries, fallbacks and cooldowns.

    Example::

        model = ResilientModel([LiteLLMModel("openai/gpt-4o"), LiteLLMModel("anthropic/claude-3-5-haiku")],
                               retries=2, cooldown_s=30, deadline_s=60)

    ``retries`` applies to every model unless ``model_retries`` gives a model its own count.
    ``deadline_s`` bounds the whole call, retries and fallbacks included: the async path cancels an
    attempt at the deadline; the sync path passes the time left to models that take ``deadline_s``
    (litellm models) and checks it between attempts. Only transport/provider failures (see
    :func:`~crossroads.agents.backends.failures.is_transport_error`) count against a model's health.
    """

    def __init__(
        self,
        models: Sequence[ChatModel],
        *,
        name: str | None = None,
        retries: int = DEFAULT_RETRIES,
        model_retries: Mapping[str, int] | None = None,
        backoff_s: float = DEFAULT_BACKOFF_S,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        failures_for_cooldown: int = DEFAULT_FAILURES_FOR_COOLDOWN,
        deadline_s: float | None = None,
        retryable: Callable[[BaseException], bool] = is_retryable,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not models:
            raise ValueError("ResilientModel needs at least one model")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"ResilientModel: model names must be unique (health is kept per name), got {names}")
        unknown = set(model_retries or {}) - set(names)
        if unknown:
            raise ValueError(f"ResilientModel: model_retries names unknown model(s) {sorted(unknown)}; models: {names}")
        self.models = list(models)
        self.name = name or self.models[0].name
        self.retries = retries
        self.model_retries = dict(model_retries or {})
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self.failures_for_cooldown = failures_for_cooldown
        self.deadline_s = deadline_s
        self._retryable = retryable
        self._sleep = sleep
        self._asleep = asleep
        self.health = {m.name: HealthTracker() for m in self.models}
        self._streak = {m.name: 0 for m in self.models}

    @property
    def generation_params(self) -> frozenset[str]:
        """Generation parameters every model of the chain honours."""
        return frozenset.intersection(*(frozenset(getattr(m, "generation_params", ())) for m in self.models))

    @property
    def cost(self) -> Any:
        """The primary model's price (what the target is described with)."""
        return getattr(self.models[0], "cost", None)

    def health_snapshot(self) -> Health:
        """Down when every model cools down; degraded when the primary does."""
        snaps = [self.health[m.name].snapshot() for m in self.models]
        if all(not s.available for s in snaps):
            return Health(status=HealthStatus.DOWN, error_rate=snaps[0].error_rate)
        if not snaps[0].available or snaps[0].status is HealthStatus.DEGRADED:
            return Health(status=HealthStatus.DEGRADED, error_rate=snaps[0].error_rate)
        return snaps[0]

    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_S, self.backoff_s * (2 ** attempt)) * (0.5 + random.random() / 2)

    def _failed(self, model: ChatModel, latency_ms: float, transport: bool, events: list[ModelEvent]) -> None:
        if not transport:  # an application error says nothing about the model's availability
            return
        self.health[model.name].record(False, latency_ms)
        self._streak[model.name] += 1
        if self._streak[model.name] >= self.failures_for_cooldown:
            self.health[model.name].cool_down(self.cooldown_s)
            self._streak[model.name] = 0
            events.append(ModelEvent(kind="cooldown", target=model.name,
                                     detail={"seconds": self.cooldown_s, "after_failures": self.failures_for_cooldown}))

    def _policy(self, started: float) -> _Policy:
        """Which model to call next, when to back off, when to give up (shared by every driver)."""
        events: list[ModelEvent] = []
        failed: list[CallUsage] = []
        errors: dict[str, str] = {}
        seen: list[Failure] = []

        def left() -> float | None:
            return None if self.deadline_s is None else self.deadline_s - (time.perf_counter() - started)

        out_of_time = False
        for i, m in enumerate(self.models):
            if not self.health[m.name].snapshot().available:
                events.append(ModelEvent(kind="skip_cooldown", target=m.name))
                errors[m.name] = "skipped: cooling down after repeated failures"
                continue
            retries = self.model_retries.get(m.name, self.retries)
            for attempt in range(retries + 1):
                remaining = left()
                if remaining is not None and remaining <= 0:
                    out_of_time = True
                    break
                outcome = yield _Call(m, remaining)
                assert outcome is not None
                exc, latency = outcome
                if exc is None:
                    self.health[m.name].record(True, latency)
                    self._streak[m.name] = 0
                    return _Done(m, tuple(events), tuple(failed))
                f = classify_error(exc)
                seen.append(f)
                self._failed(m, latency, f.transport, events)
                failed.append(failed_call(m.name, exc, latency, cause=f.kind.value))
                errors[m.name] = f"{f.kind.value}: {type(exc).__name__}: {exc}"[:300]
                cooling = not self.health[m.name].snapshot().available
                if self._retryable(exc) and attempt < retries and not cooling:
                    delay = self._backoff(attempt)
                    remaining = left()
                    if remaining is not None and remaining <= delay:
                        out_of_time = True
                        break
                    events.append(ModelEvent(kind="retry", target=m.name, detail={
                        "attempt": attempt + 1, "cause": f.kind.value, "status": f.status, "error": f.error,
                        "backoff_s": round(delay, 3)}))
                    yield _Sleep(delay)
                    continue
                break
            if out_of_time:
                events.append(ModelEvent(kind="deadline", target=m.name, detail={"deadline_s": self.deadline_s}))
                break
            if i + 1 < len(self.models):
                events.append(ModelEvent(kind="fallback", target=self.models[i + 1].name, detail={"from": m.name}))
        for m in self.models:
            errors.setdefault(m.name, "not tried: the deadline passed first" if out_of_time else "not tried")
        listing = "; ".join(f"{n}: {e}" for n, e in errors.items())
        why = f"the {self.deadline_s:g} s deadline passed" if out_of_time else "every model failed"
        transport = [f for f in seen if f.transport]
        if transport or seen:
            cause = (transport or seen)[-1]
        else:  # nothing was tried: every model cools down, or no time was left
            cause = Failure(FailureKind.DEADLINE if out_of_time else FailureKind.UNAVAILABLE, None, "AllModelsFailedError")
        raise AllModelsFailedError(f"{why} for {self.name!r}: {listing}", target=self.name, events=events,
                                   errors=errors, calls=failed, failure=cause)

    def _kwargs(self, m: ChatModel, kwargs: Mapping[str, Any], left: float | None) -> dict[str, Any]:
        kw = dict(kwargs)
        own = getattr(m, "deadline_s", None)
        if left is not None and isinstance(own, (int, float)):  # the model enforces a deadline itself
            kw["deadline_s"] = min(float(own), left)
        return kw

    @staticmethod
    def _merge(resp: ModelResponse, done: _Done) -> ModelResponse:
        return replace(resp, events=done.events + tuple(resp.events), failed_attempts=done.failed + resp.failed_attempts)

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """Try each model in order, retrying retryable errors with exponential backoff."""
        policy = self._policy(time.perf_counter())
        resp: ModelResponse | None = None
        try:
            action = next(policy)
            while True:
                if isinstance(action, _Sleep):
                    self._sleep(action.seconds)
                    action = policy.send(None)
                    continue
                t0 = time.perf_counter()
                error: BaseException | None = None
                try:
                    resp = action.model.complete(messages, **self._kwargs(action.model, kwargs, action.seconds_left))
                except Exception as exc:  # noqa: BLE001 - classified by the policy
                    error = exc
                action = policy.send((error, (time.perf_counter() - t0) * 1e3))
        except StopIteration as stop:
            assert resp is not None
            return self._merge(resp, stop.value)

    async def acomplete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """:meth:`complete` without blocking the event loop; an attempt is cancelled at the deadline."""
        policy = self._policy(time.perf_counter())
        resp: ModelResponse | None = None
        try:
            action = next(policy)
            while True:
                if isinstance(action, _Sleep):
                    await self._asleep(action.seconds)
                    action = policy.send(None)
                    continue
                t0 = time.perf_counter()
                m, secs = action.model, action.seconds_left
                error: BaseException | None = None
                try:
                    call = acomplete_any(m, messages, **self._kwargs(m, kwargs, secs))
                    resp = await (call if secs is None else _within(call, secs, m.name))
                except Exception as exc:  # noqa: BLE001 - classified by the policy
                    error = exc
                action = policy.send((error, (time.perf_counter() - t0) * 1e3))
        except StopIteration as stop:
            assert resp is not None
            return self._merge(resp, stop.value)

    def _broken(self, m: ChatModel, exc: BaseException, latency_ms: float, done: _Done) -> StreamBrokenError:
        f = classify_error(exc)
        events = list(done.events)
        self._failed(m, latency_ms, f.transport, events)
        return StreamBrokenError(
            f"stream from {m.name!r} failed after its first chunk ({f.kind.value}: {type(exc).__name__}: {exc}); "
            "not retried: text was already delivered", target=self.name, events=events,
            calls=done.failed + (failed_call(m.name, exc, latency_ms, cause=f.kind.value),), failure=f)

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[ModelChunk]:
        """Stream from the first model that delivers a first chunk; retries and fallbacks happen before it."""
        policy = self._policy(time.perf_counter())
        opened: tuple[ChatModel, Iterator[ModelChunk], ModelChunk, float] | None = None
        try:
            action = next(policy)
            while True:
                if isinstance(action, _Sleep):
                    self._sleep(action.seconds)
                    action = policy.send(None)
                    continue
                t0 = time.perf_counter()
                error: BaseException | None = None
                try:
                    it = iter(stream_any(action.model, messages, **self._kwargs(action.model, kwargs, action.seconds_left)))
                    opened = (action.model, it, next(it), t0)
                except Exception as exc:  # noqa: BLE001 - classified by the policy
                    error = exc
                action = policy.send((error, (time.perf_counter() - t0) * 1e3))
        except StopIteration as stop:
            done: _Done = stop.value
        assert opened is not None
        m, it, chunk, t0 = opened
        while True:
            if chunk.response is not None:
                yield replace(chunk, response=self._merge(chunk.response, done))
                return
            yield chunk
            try:
                chunk = next(it)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - reported with its events and calls
                raise self._broken(m, exc, (time.perf_counter() - t0) * 1e3, done) from exc

    async def astream(self, messages: Sequence[Message], **kwargs: Any) -> AsyncIterator[ModelChunk]:
        """Async :meth:`stream`."""
        policy = self._policy(time.perf_counter())
        opened: tuple[ChatModel, AsyncIterator[ModelChunk], ModelChunk, float] | None = None
        try:
            action = next(policy)
            while True:
                if isinstance(action, _Sleep):
                    await self._asleep(action.seconds)
                    action = policy.send(None)
                    continue
                t0 = time.perf_counter()
                m, secs = action.model, action.seconds_left
                error: BaseException | None = None
                try:
                    ait = astream_any(m, messages, **self._kwargs(m, kwargs, secs)).__aiter__()
                    first = ait.__anext__()
                    opened = (m, ait, await (first if secs is None else _within(first, secs, m.name)), t0)
                except Exception as exc:  # noqa: BLE001 - classified by the policy
                    error = exc
                action = policy.send((error, (time.perf_counter() - t0) * 1e3))
        except StopIteration as stop:
            done: _Done = stop.value
        assert opened is not None
        m, ait, chunk, t0 = opened
        while True:
            if chunk.response is not None:
                yield replace(chunk, response=self._merge(chunk.response, done))
                return
            yield chunk
            try:
                chunk = await ait.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:  # noqa: BLE001 - reported with its events and calls
                raise self._broken(m, exc, (time.perf_counter() - t0) * 1e3, done) from exc


async def _within(aw: Awaitable[Any], seconds: float, name: str) -> Any:
    """Await ``aw`` for at most ``seconds`` (cancelling it after), else :class:`DeadlineExceededError`."""
    task = asyncio.ensure_future(aw)
    started = time.perf_counter()
    done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    if not done:
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - the cancelled attempt's own error is irrelevant now
            pass
        elapsed = time.perf_counter() - started
        raise DeadlineExceededError(f"model {name!r}: cancelled at the call's deadline after {elapsed:.1f} s",
                                    target=name, deadline_s=seconds, elapsed_s=elapsed)
    return task.result()
