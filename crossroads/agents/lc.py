"""LangChain interop: crossroads messages <-> LangChain messages, and LangChain chat models / LangGraph
graphs as route targets.

The run state holds LangChain message objects (LangGraph's ``add_messages``); targets and routers see
crossroads :class:`~crossroads.types.Message` values converted here.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from ..types import Message
from .models import ModelResponse, count_tokens_rough

__all__ = ["LangChainChatModel", "from_lc_message", "is_langchain_chat_model", "is_runnable_graph", "to_lc_message"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "user": "user",
          "assistant": "assistant"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return "" if content is None else str(content)


def _arguments(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, default=str)


def from_lc_message(m: Any) -> Message:
    """A LangChain message (or an OpenAI-style dict) as a crossroads :class:`Message`."""
    if isinstance(m, Message):
        return m
    if isinstance(m, Mapping):
        role = _ROLES.get(str(m.get("role", "user")), "user")
        return Message(role=role, content=_text(m.get("content")), name=m.get("name"),  # type: ignore[arg-type]
                       tool_calls=tuple(m.get("tool_calls") or ()), tool_call_id=m.get("tool_call_id"))
    role = _ROLES.get(getattr(m, "type", ""), None) or _ROLES.get(str(getattr(m, "role", "user")), "user")
    calls = tuple(
        {"id": tc.get("id"), "name": tc.get("name"), "arguments": _arguments(tc.get("args", {}))}
        for tc in (getattr(m, "tool_calls", None) or ())
    )
    return Message(role=role, content=_text(m.content), name=getattr(m, "name", None),  # type: ignore[arg-type]
                   tool_calls=calls, tool_call_id=getattr(m, "tool_call_id", None))


def _args_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


def to_lc_message(m: Message | Mapping[str, Any] | BaseMessage) -> BaseMessage:
    """A crossroads :class:`Message` (or an OpenAI-style dict) as a LangChain message."""
    if isinstance(m, BaseMessage):
        return m
    msg = from_lc_message(m) if not isinstance(m, Message) else m
    if msg.role == "user":
        return HumanMessage(content=msg.content, name=msg.name)
    if msg.role == "system":
        return SystemMessage(content=msg.content, name=msg.name)
    if msg.role == "tool":
        return ToolMessage(content=msg.content, name=msg.name, tool_call_id=msg.tool_call_id or "")
    calls = [{"id": c.get("id"), "name": c.get("name"), "args": _args_dict(c.get("arguments")), "type": "tool_call"}
             for c in msg.tool_calls]
    return AIMessage(content=msg.content, name=msg.name, tool_calls=calls)


def is_langchain_chat_model(obj: Any) -> bool:
    """True for a LangChain ``BaseChatModel`` (without importing model integrations)."""
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:  # pragma: no cover - langchain_core is a dependency
        return False
    return isinstance(obj, BaseChatModel)


def is_runnable_graph(obj: Any) -> bool:
    """True for a LangGraph compiled graph (or any LangChain runnable over a ``messages`` state)."""
    try:
        from langgraph.pregel import Pregel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Pregel)


def _usage(msg: Any, messages: Sequence[Message], text: str) -> tuple[int, int]:
    meta = getattr(msg, "usage_metadata", None) or {}
    tin = int(meta.get("input_tokens") or 0) or sum(count_tokens_rough(m.content) for m in messages)
    tout = int(meta.get("output_tokens") or 0) or count_tokens_rough(text)
    return tin, tout


class LangChainChatModel:
    """A LangChain ``BaseChatModel`` behind crossroads' :class:`~crossroads.agents.models.ChatModel` seam.

    ``model(name, ChatOpenAI(...))`` and ``llm_agent(name, ChatAnthropic(...), ...)`` wrap it
    automatically. Tools are bound with ``bind_tools``; prices come from ``cost`` (LangChain models
    do not report them).
    """

    def __init__(self, chat_model: Any, *, name: str | None = None, cost: Any = None) -> None:
        from ..types import CostModel

        self.chat_model = chat_model
        self.name = name or str(getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
                                or type(chat_model).__name__)
        self.cost = cost or CostModel()

    def _bound(self, tools: Sequence[Mapping[str, Any]] | None) -> Any:
        return self.chat_model.bind_tools(list(tools)) if tools else self.chat_model

    def _response(self, msg: Any, messages: Sequence[Message], started: float) -> ModelResponse:
        text = _text(msg.content)
        tin, tout = _usage(msg, messages, text)
        converted = from_lc_message(msg)
        return ModelResponse(text=text, model=self.name, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             tool_calls=converted.tool_calls)

    def complete(self, messages: Sequence[Message], *, tools: Sequence[Mapping[str, Any]] | None = None) -> ModelResponse:
        started = time.perf_counter()
        msg = self._bound(tools).invoke([to_lc_message(m) for m in messages])
        return self._response(msg, messages, started)

    async def acomplete(self, messages: Sequence[Message], *,
                        tools: Sequence[Mapping[str, Any]] | None = None) -> ModelResponse:
        started = time.perf_counter()
        msg = await self._bound(tools).ainvoke([to_lc_message(m) for m in messages])
        return self._response(msg, messages, started)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        for chunk in self.chat_model.stream([to_lc_message(m) for m in messages]):
            text = _text(chunk.content)
            if text:
                yield text

    async def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        async for chunk in self.chat_model.astream([to_lc_message(m) for m in messages]):
            text = _text(chunk.content)
            if text:
                yield text
