"""The LangGraph state every crossroads flow runs on, and its reducers.

Every key written by target nodes has a reducer, so fan-out branches running in the same
superstep can write concurrently.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

__all__ = ["BRANCH_KEY", "RESET_BRANCHES", "FlowState", "merge_branches"]

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


def _last(left: Any, right: Any) -> Any:
    return right if right is not None else left


class FlowState(TypedDict, total=False):
    """State of a crossroads run."""

    run_id: str
    input: str
    metadata: dict[str, Any]
    messages: Annotated[list[dict[str, Any]], operator.add]
    output: Annotated[str | None, _last]
    branches: Annotated[list[dict[str, Any]], merge_branches]
    steps: Annotated[int, operator.add]
    cost_usd: Annotated[float, operator.add]
