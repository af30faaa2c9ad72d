"""Retries with backoff, fallbacks to other models and per-model cooldowns, by composition.

:class:`ResilientModel` is itself a chat model: wrap a primary and its fallbacks. Every retry,
fallback, cooldown and skip is reported as a :class:`~crossroads.agents.models.ModelEvent` on the
response (or on the error when every model failed), and the orchestrator writes them to the trace.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ...errors import TargetError
from ...types import Health, HealthStatus, Message
from ..health import HealthTracker
from ..models import ChatModel, ModelEvent, ModelResponse
from .litellm_model import error_status, is_retryable

__all__ = ["AllModelsFailedError", "ResilientModel"]

DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
DEFAULT_COOLDOWN_S = 30.0
DEFAULT_FAILURES_FOR_COOLDOWN = 3
"""Consecutive failed calls (after retries) that put a model into cooldown."""


class AllModelsFailedError(TargetError):
    """Every model of a :class:`ResilientModel` failed; ``events`` tells what was tried."""

    def __init__(self, message: str, *, target: str, events: Sequence[ModelEvent]) -> None:
        super().__init__(message, target=target)
        self.events = tuple(events)


class ResilientModel:
    """A primary model with retries, fallbacks and cooldowns.

    Example::

        model = ResilientModel([LiteLLMModel("openai/gpt-4o"), LiteLLMModel("anthropic/claude-3-5-haiku")],
                               retries=2, cooldown_s=30)
    """

    def __init__(
        self,
        models: Sequence[ChatModel],
        *,
        name: str | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        failures_for_cooldown: int = DEFAULT_FAILURES_FOR_COOLDOWN,
        retryable: Callable[[BaseException], bool] = is_retryable,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not models:
            raise ValueError("ResilientModel needs at least one model")
        self.models = list(models)
        self.name = name or self.models[0].name
        self.retries = retries
        self.backoff_s = backoff_s
        self.cooldown_s = cooldown_s
        self.failures_for_cooldown = failures_for_cooldown
        self._retryable = retryable
        self._sleep = sleep
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

    def _failed(self, model: ChatModel, latency_ms: float, events: list[ModelEvent]) -> None:
        self.health[model.name].record(False, latency_ms)
        self._streak[model.name] += 1
        if self._streak[model.name] >= self.failures_for_cooldown:
            self.health[model.name].cool_down(self.cooldown_s)
            self._streak[model.name] = 0
            events.append(ModelEvent(kind="cooldown", target=model.name,
                                     detail={"seconds": self.cooldown_s, "after_failures": self.failures_for_cooldown}))

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """Try each model in order, retrying retryable errors with exponential backoff."""
        events: list[ModelEvent] = []
        errors: list[str] = []
        for i, m in enumerate(self.models):
            if not self.health[m.name].snapshot().available:
                events.append(ModelEvent(kind="skip_cooldown", target=m.name))
                continue
            for attempt in range(self.retries + 1):
                started = time.perf_counter()
                try:
                    resp = m.complete(messages, **kwargs)
                except Exception as exc:  # noqa: BLE001 - classified below
                    latency = (time.perf_counter() - started) * 1e3
                    self._failed(m, latency, events)
                    errors.append(f"{m.name}: {type(exc).__name__}: {exc}"[:300])
                    cooling = not self.health[m.name].snapshot().available
                    if self._retryable(exc) and attempt < self.retries and not cooling:
                        delay = self._backoff(attempt)
                        events.append(ModelEvent(kind="retry", target=m.name, detail={
                            "attempt": attempt + 1, "status": error_status(exc), "error": type(exc).__name__,
                            "backoff_s": round(delay, 3)}))
                        self._sleep(delay)
                        continue
                    break
                else:
                    self.health[m.name].record(True, (time.perf_counter() - started) * 1e3)
                    self._streak[m.name] = 0
                    return replace(resp, events=tuple(events) + tuple(resp.events))
            if i + 1 < len(self.models):
                events.append(ModelEvent(kind="fallback", target=self.models[i + 1].name, detail={"from": m.name}))
        raise AllModelsFailedError(
            f"every model failed for {self.name!r}: " + "; ".join(errors[-len(self.models):] or ["all cooling down"]),
            target=self.name, events=events)

    async def acomplete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """Async variant (sync models run in a worker thread)."""
        return await asyncio.to_thread(self.complete, messages, **kwargs)
