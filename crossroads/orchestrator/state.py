"""The LangGraph state every crossroads flow runs on, and its reducers.

Every key written by target nodes has a reducer, so fan-out branches running in the same
superstep can write concurrently. ``messages`` uses LangGraph's own ``add_messages`` (LangChain
message objects), so prebuilt LangGraph agents and LangChain tools read the same conversation.

A thread is a conversation: each new input on it starts a *turn* that resets the per-run keys
(``output``, ``steps``, ``cost_usd``, ``decisions``, ``branches``) and keeps ``messages``.
Users extend the state with their own keys by subclassing :class:`FlowState`
(``Flow(state_schema=MyState)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypedDict, get_type_hints

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError

__all__ = ["BRANCH_KEY", "RESET", "RESET_BRANCHES", "FlowState", "FlowStateModel", "check_state_schema", "merge_branches"]

BRANCH_KEY = "__branch__"
"""Key of the Send payload that tells a target node it runs as one branch of a fan-out."""
RESET_BRANCHES: list[dict[str, Any]] = [{"__reset__": True}]
"""Written by a merge node to clear the collected branch outputs."""


def merge_branches(left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Append branch outputs; a reset marker clears them."""
    out = list(left or [])
    for item in right or []:
        if item.get("__reset__"):
            out = []
        else:
            out.append(item)
    return out


RESET: dict[str, Any] = {"__reset__": True}
"""Written at the start of a turn to reset a per-run counter (steps, cost)."""


def _is_reset(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__reset__") is True


def _last(left: Any, right: Any) -> Any:
    # the latest write wins (fan-out branches write in one superstep); a turn starts with None
    return right


def _add(left: Any, right: Any) -> Any:
    if _is_reset(right):
        return 0
    return (left or 0) + right


class FlowState(TypedDict, total=False):
    """State of a crossroads run (a thread's latest turn plus its whole conversation)."""

    run_id: str
    input: str
    metadata: dict[str, Any]
    messages: Annotated[list[AnyMessage], add_messages]
    output: Annotated[str | None, _last]
    branches: Annotated[list[dict[str, Any]], merge_branches]
    steps: Annotated[int, _add]
    cost_usd: Annotated[float, _add]
    """What this run spent so far: target calls plus routers' own decision costs."""
    decisions: Annotated[list[dict[str, Any]], merge_branches]
    """Every routing decision of this run: id, router, source, chosen targets, scores, rationale, cost."""


class FlowStateModel(BaseModel):
    """:class:`FlowState` as a pydantic model: subclass it for a pydantic state
    (``class Ticket(FlowStateModel): ticket: str = ""``; ``Flow(state_schema=Ticket)``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    run_id: str = ""
    input: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    messages: Annotated[list[AnyMessage], add_messages] = Field(default_factory=list)
    output: Annotated[str | None, _last] = None
    branches: Annotated[list[dict[str, Any]], merge_branches] = Field(default_factory=list)
    steps: Annotated[int, _add] = 0
    cost_usd: Annotated[float, _add] = 0.0
    decisions: Annotated[list[dict[str, Any]], merge_branches] = Field(default_factory=list)


def check_state_schema(schema: Any) -> type:
    """Accept ``FlowState``, a user TypedDict that extends it (every base key with the same type), or
    a pydantic model extending :class:`FlowStateModel`."""
    if schema is None:
        return FlowState
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        if not issubclass(schema, FlowStateModel):
            raise ConfigError(f"state_schema {schema.__name__} must extend crossroads.FlowStateModel "
                              f"(class {schema.__name__}(FlowStateModel): ...)")
        return schema
    if not isinstance(schema, type) or not issubclass(schema, Mapping) and not hasattr(schema, "__annotations__"):
        raise ConfigError(f"state_schema must be a TypedDict class extending crossroads.FlowState, got {schema!r}")
    try:
        hints = get_type_hints(schema, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - unresolvable annotations are the user's to fix
        raise ConfigError(f"state_schema {schema.__name__}: cannot read its annotations ({exc})") from exc
    base = get_type_hints(FlowState, include_extras=True)
    missing = [k for k in base if k not in hints]
    changed = [k for k in base if k in hints and hints[k] != base[k]]
    if missing or changed:
        raise ConfigError(
            f"state_schema {schema.__name__} must extend crossroads.FlowState "
            f"(class {schema.__name__}(FlowState, total=False): ...); "
            + (f"missing keys: {', '.join(missing)}" if missing else f"keys redefined: {', '.join(changed)}")
        )
    return schema
