"""Strict request bodies for the OpenAI-compatible API (pydantic).

A body that does not fit these models is a 400 naming the field, never a 500: wrong shapes
(``[1]``, ``"messages": "hi"``), invalid UTF-8, lone surrogates and deep nesting all fail here.
Parameters crossroads cannot honour are refused by name instead of being ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "GENERATION_PARAMS",
    "StreamOptions",
    "ToolSpec",
    "describe_validation_error",
]

GENERATION_PARAMS = ("temperature", "max_tokens", "stop", "tools")
"""Generation parameters passed to the backend of a model target (run metadata ``generation``)."""

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _no_lone_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate); send UTF-8 text") from None
    return text


class ContentPart(BaseModel):
    """An OpenAI content part; only text parts can be served."""

    model_config = _STRICT
    type: Literal["text"]
    text: str

    _check = field_validator("text")(_no_lone_surrogates)


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    """An OpenAI function tool (passed through to the backend as a generation parameter)."""

    model_config = _STRICT
    type: Literal["function"]
    function: ToolFunction


class ToolCallFunction(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str


class ToolCall(BaseModel):
    """A tool call of an earlier assistant message (sent back with the tool's result)."""

    model_config = _STRICT
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class ChatMessage(BaseModel):
    """One chat message; ``content`` is a string or a list of text parts."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None

    _check = field_validator("content")(lambda v: _no_lone_surrogates(v) if isinstance(v, str) else v)

    @property
    def text(self) -> str:
        """The message's text (text parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``. Unknown parameters are refused (400), not ignored."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None = None
    tools: Annotated[list[ToolSpec], Field(max_length=128)] | None = None
    tool_choice: Literal["auto", "none"] | None = None
    n: Literal[1] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @field_validator("temperature", mode="before")
    @classmethod
    def _int_temperature(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v  # JSON 0 is a valid temperature

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        if self.max_tokens is not None and self.max_completion_tokens is not None and self.max_tokens != self.max_completion_tokens:
            raise ValueError("max_tokens and max_completion_tokens disagree; send one")
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages need at least one user message")
        return self

    def generation(self) -> dict[str, Any]:
        """The generation parameters the client set (``GENERATION_PARAMS`` names)."""
        gen: dict[str, Any] = {}
        if self.temperature is not None:
            gen["temperature"] = self.temperature
        limit = self.max_tokens if self.max_tokens is not None else self.max_completion_tokens
        if limit is not None:
            gen["max_tokens"] = limit
        if self.stop is not None:
            gen["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if self.tools and self.tool_choice != "none":
            gen["tools"] = [t.model_dump(exclude_none=True) for t in self.tools]
        return gen


def describe_validation_error(exc: ValidationError, *, limit: int = 5) -> str:
    """A short message naming the bad fields, without echoing their values (they may hold secrets)."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = ".".join(str(p) for p in e.get("loc", ())) or "body"
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unsupported parameter: crossroads serve cannot honour it"
        parts.append(f"{loc}: {msg}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
