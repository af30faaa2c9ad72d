"""The chat-model seam: one protocol every model backend implements, plus in-package test doubles.

Backends (litellm providers, local models, replay models) implement :class:`ChatModel`; an LLM
agent or a model target only ever calls ``complete``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..types import CostModel, Message, RunEvent

__all__ = ["ChatModel", "FunctionModel", "ModelEvent", "ModelResponse", "count_tokens_rough"]


ModelEvent = RunEvent
"""Something that happened while serving a call: a retry, a fallback, a cooldown."""


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
    """Retries, fallbacks and cooldowns that happened while serving this call."""


@runtime_checkable
class ChatModel(Protocol):
    """A chat model backend. ``name`` identifies the model in traces."""

    name: str

    def complete(self, messages: Sequence[Message]) -> ModelResponse:
        """Return the assistant's reply to ``messages``."""
        ...


def count_tokens_rough(text: str) -> int:
    """A tokenizer-free token estimate (about 4 characters per token) for local doubles."""
    return max(1, (len(text) + 3) // 4) if text else 0


class FunctionModel:
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

    def complete(self, messages: Sequence[Message]) -> ModelResponse:
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
