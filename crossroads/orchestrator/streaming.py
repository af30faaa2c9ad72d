"""Token streaming out of a compiled flow: :meth:`CompiledFlow.astream_chunks` yields :class:`StreamChunk`.

Kinds, in the order a consumer sees them:

- ``"decision"``: a routed edge decided (``decision`` holds id, router, source, chosen targets);
- ``"token"``: a text delta from target ``node`` (model targets stream their backend's tokens; other
  targets send their whole output as one delta). ``branch`` is true for the deltas of a fan-out
  branch, whose text is not the answer (the merge node's deltas are);
- ``"end"``: the last chunk: ``output`` (the run's answer), ``usage`` (tokens and cost of every call
  of the run, routers included) and ``result`` (the :class:`RunResult`, decisions included).

Example::

    async for chunk in app.astream_chunks("refund my order"):
        if chunk.kind == "token" and not chunk.branch:
            print(chunk.delta, end="", flush=True)
        elif chunk.kind == "end":
            print("\\n", chunk.usage)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .compiled import RunDecision, RunResult

__all__ = ["STREAM_EVENT_KEY", "StreamChunk", "StreamUsage"]

STREAM_EVENT_KEY = "crossroads"
"""Key marking crossroads' own items in LangGraph's ``custom`` stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamUsage:
    """Token and cost totals of a streamed run (every target call, plus routers' decision costs)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamChunk:
    """One item of a streamed run (see the module docstring for the kinds)."""

    kind: Literal["token", "decision", "end"]
    run_id: str
    delta: str = ""
    """``token``: the text delta."""
    node: str | None = None
    """``token``: the target that produced it; ``decision``: the routed edge's decision node."""
    branch: bool = False
    """``token``: the node runs as one branch of a fan-out (its text is merged later)."""
    decision: RunDecision | None = None
    """``decision``: what was decided."""
    output: str | None = None
    """``end``: the run's final output."""
    usage: StreamUsage | None = None
    """``end``: totals for the run."""
    result: RunResult | None = None
    """``end``: the run's result (status, decisions, state)."""
    metadata: Mapping[str, Any] | None = None
