"""Running one served request through a compiled flow's own streaming API.

Every request, streamed or not, is one :meth:`~crossroads.orchestrator.CompiledFlow.astream_chunks`
run: decisions, token deltas and the final usage come from the runtime, so serving keeps no copy of
routing, validation or recording. :class:`RunIds` only notes which run a request started (from the
run's own start record), so a failed request's error id leads to its trace.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..orchestrator.compiled import CompiledFlow, RunDecision
from ..tracing.recorder import Recorder
from ..tracing.records import RunStart, TraceRecord
from ..types import END

__all__ = ["REQUEST_KEY", "RunIds", "ServedRun", "StreamPiece", "stream_request"]

REQUEST_KEY = "request_id"
"""Run-metadata key carrying the served request's id (also the error id of a failed request)."""


class RunIds:
    """A :class:`~crossroads.tracing.Recorder` passing every record on, noting the run id of each watched request."""

    def __init__(self, inner: Recorder) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._runs: dict[str, str | None] = {}

    def watch(self, request_id: str) -> None:
        with self._lock:
            self._runs[request_id] = None

    def release(self, request_id: str) -> str | None:
        """Stop watching; the run id the request started, if any."""
        with self._lock:
            return self._runs.pop(request_id, None)

    def run_id(self, request_id: str) -> str | None:
        return self._runs.get(request_id)

    def record(self, item: TraceRecord) -> None:
        if isinstance(item, RunStart):
            rid = (item.metadata or {}).get(REQUEST_KEY)
            if rid is not None:
                with self._lock:
                    if rid in self._runs:
                        self._runs[rid] = item.run_id
        self.inner.record(item)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@dataclass
class ServedRun:
    """What a finished run gives the reply."""

    run_id: str = ""
    output: str | None = None
    decisions: tuple[RunDecision, ...] = ()
    served_by: list[str] = field(default_factory=list)
    """Targets that produced output, in order (fan-out branches and the merge included)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class StreamPiece:
    """A text delta of the answer, or (``run`` set) the end of the run."""

    text: str = ""
    run: ServedRun | None = None


def _tool_calls(state: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    msgs = state.get("messages") or []
    if not msgs:
        return ()
    from ..agents.lc import from_lc_message

    return tuple(from_lc_message(msgs[-1]).tool_calls)


async def stream_request(compiled: CompiledFlow, text: str, messages: Sequence[Mapping[str, Any]],
                         metadata: Mapping[str, Any], *, routed: frozenset[str] = frozenset(),
                         inner: frozenset[str] = frozenset()) -> AsyncGenerator[StreamPiece, None]:
    """Run the flow on a chat request: the answer's text deltas as targets produce them, then a last
    piece with the run.

    Only the answer is relayed: a fan-out branch's deltas are not (the merge's are), nor those of an
    ``inner`` node (one with a fixed edge to another node). A ``routed`` node's deltas (its router may
    end the run or go on) are held until its decision: relayed if it chose ``END``, dropped otherwise.
    """
    run = ServedRun()
    held: dict[str, list[str]] = {}
    sent: list[str] = []
    async for chunk in compiled.astream_chunks(text, metadata=metadata, messages=messages):
        if chunk.kind == "token":
            node = chunk.node or ""
            if node and node not in run.served_by:
                run.served_by.append(node)
            if not chunk.delta or chunk.branch or node in inner:
                continue
            if node in routed:
                held.setdefault(node, []).append(chunk.delta)
                continue
            sent.append(chunk.delta)
            yield StreamPiece(text=chunk.delta)
        elif chunk.kind == "decision" and chunk.decision is not None:
            pending = held.pop(chunk.decision.source, [])
            if pending and END in chunk.decision.targets:
                sent.extend(pending)
                yield StreamPiece(text="".join(pending))
        elif chunk.kind == "end":
            result = chunk.result
            run.run_id = chunk.run_id
            run.output = chunk.output
            if result is not None:
                run.decisions = result.decisions
                run.tool_calls = _tool_calls(result.state)
            if chunk.usage is not None:
                run.input_tokens = chunk.usage.input_tokens
                run.output_tokens = chunk.usage.output_tokens
                run.cost_usd = chunk.usage.cost_usd
    streamed = "".join(sent)
    if run.output and streamed != run.output and run.output.startswith(streamed):
        yield StreamPiece(text=run.output[len(streamed):])  # e.g. a target that produced no delta
    yield StreamPiece(run=run)
