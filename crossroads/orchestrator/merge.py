"""Built-in merge strategies for fan-out decisions (a refiner agent can be used instead)."""

from __future__ import annotations

from collections import Counter

from ..agents.targets import Target, agent
from ..errors import UnknownNameError
from ..types import TargetRequest

__all__ = ["MERGE_STRATEGIES", "merge_target"]


def _concat(request: TargetRequest) -> str:
    return "\n\n".join(f"[{b['target']}] {b['output']}" for b in request.branch_outputs)


def _vote(request: TargetRequest) -> str:
    outputs = [b["output"].strip() for b in request.branch_outputs]
    if not outputs:
        return ""
    counts = Counter(outputs)
    best = max(counts.values())
    return next(o for o in outputs if counts[o] == best)  # ties: first branch in decision order


def _first(request: TargetRequest) -> str:
    return request.branch_outputs[0]["output"] if request.branch_outputs else ""


MERGE_STRATEGIES = {"concat": _concat, "vote": _vote, "first": _first}
"""Merge strategies usable by name: ``merge="vote"``."""


def merge_target(strategy: str, name: str) -> Target:
    """A merge node target for a named strategy."""
    try:
        fn = MERGE_STRATEGIES[strategy]
    except KeyError:
        raise UnknownNameError("merge strategy", strategy, MERGE_STRATEGIES) from None
    return agent(name, fn, description=f"merge fan-out outputs by {strategy}")
