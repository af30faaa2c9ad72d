"""Provider models through litellm (OpenAI, Anthropic, Azure, Bedrock, any OpenAI-compatible server).

litellm is imported on first use, never at import time. Prices come from the
:class:`~crossroads.agents.backends.catalogue.ModelCatalogue` (or an explicit ``cost``), so an unknown
model is an error instead of a silent zero cost. Retries are off here: wrap models in
:class:`~crossroads.agents.backends.resilience.ResilientModel` for retries, fallbacks and cooldowns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ...errors import TargetError
from ...types import CostModel, Message
from ..models import ModelResponse, count_tokens_rough
from .catalogue import ModelCatalogue

__all__ = ["LiteLLMModel", "OpenAIClientModel", "to_openai_messages"]

DEFAULT_TIMEOUT_S = 60.0
GENERATION_PARAMS = frozenset({"temperature", "max_tokens", "stop", "tools"})
"""Per-call generation parameters these models pass to the provider (``complete(..., temperature=...)``)."""


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


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


class LiteLLMModel:
    """A chat model served through ``litellm.completion``.

    Example::

        m = LiteLLMModel("openai/gpt-4o-mini")                      # key from OPENAI_API_KEY
        local = LiteLLMModel("openai/qwen", api_base="http://127.0.0.1:8000/v1",
                             cost=CostModel(input_per_mtok=0, output_per_mtok=0))
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
        catalogue: ModelCatalogue | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.name = name or model
        self.api_base = api_base
        self._api_key = api_key  # never logged or traced
        self.timeout_s = timeout_s
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

    def _response(self, resp: Any, messages: Sequence[Message], started: float) -> ModelResponse:
        try:
            choice = resp.choices[0]
            message = choice.message
            text = message.content or ""
        except (AttributeError, IndexError, TypeError) as exc:
            raise TargetError(f"model {self.name!r} returned a malformed response: {exc}", target=self.name) from exc
        usage = getattr(resp, "usage", None)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0) or sum(count_tokens_rough(m.content) for m in messages)
        tout = int(getattr(usage, "completion_tokens", 0) or 0) or count_tokens_rough(text)
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             tool_calls=_tool_calls(message))

    def complete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                 **params: Any) -> ModelResponse:
        """One chat completion (``params``: temperature, max_tokens, stop)."""
        litellm = _litellm()
        started = time.perf_counter()
        resp = litellm.completion(**self._kwargs(messages, tools, params))
        return self._response(resp, messages, started)

    async def acomplete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None,
                        **params: Any) -> ModelResponse:
        """Async chat completion."""
        litellm = _litellm()
        started = time.perf_counter()
        resp = await litellm.acompletion(**self._kwargs(messages, tools, params))
        return self._response(resp, messages, started)

    def stream(self, messages: Sequence[Message], **params: Any) -> Iterator[str]:
        """Yield text deltas; a stream that breaks off raises :class:`TargetError`."""
        litellm = _litellm()
        try:
            stream = litellm.completion(**self._kwargs(messages, None, params), stream=True)
            for chunk in stream:
                delta = chunk.choices[0].delta
                if getattr(delta, "content", None):
                    yield delta.content
        except Exception as exc:
            raise TargetError(f"stream from {self.name!r} broke off: {type(exc).__name__}: {exc}", target=self.name) from exc
        # litellm closes a truncated stream with a synthetic "stop"; what the provider really sent is here:
        if not (getattr(stream, "received_finish_reason", None) or getattr(stream, "intermittent_finish_reason", None)):
            raise TargetError(f"stream from {self.name!r} ended without a finish reason (dropped connection)",
                              target=self.name)

    def __repr__(self) -> str:
        return f"LiteLLMModel({self.model!r}, api_base={self.api_base!r})"


class OpenAIClientModel:
    """A chat model over a user-supplied ``openai.OpenAI``-compatible client object."""

    def __init__(self, client: Any, model: str, *, cost: CostModel, name: str | None = None) -> None:
        self.client = client
        self.model = model
        self.name = name or model
        self.cost = cost

    def complete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None) -> ModelResponse:
        started = time.perf_counter()
        kw: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages)}
        if tools:
            kw["tools"] = list(tools)
        resp = self.client.chat.completions.create(**kw)
        msg = resp.choices[0].message
        text = msg.content or ""
        tin = int(getattr(resp.usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(resp.usage, "completion_tokens", 0) or 0)
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             tool_calls=_tool_calls(msg))


def error_status(exc: BaseException) -> int | None:
    """The HTTP status behind a provider error, if any."""
    for attr in ("status_code", "status", "http_status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    return None


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts, connection failures and unparseable replies are worth retrying."""
    status = error_status(exc)
    if status is not None:
        return status in (408, 409, 429) or status >= 500
    name = type(exc).__name__.lower()
    return any(k in name for k in ("timeout", "connection", "json", "decode", "serviceunavailable", "internalserver"))
