"""Running one served request through a compiled flow, whole or as a token stream.

What a reply needs beyond the output (the decisions, the calls' token counts, which targets answered)
is read from the records the runtime itself emits, through :class:`ObservingRecorder`: serving keeps
no second copy of routing or recording.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..orchestrator.compiled import CompiledFlow
from ..tracing.recorder import Recorder
from ..tracing.records import (
    CallRecord,
    DecisionRecord,
    EventRecord,
    RunEnd,
    RunStart,
    StepRecord,
    TraceRecord,
)
from ..types import CallUsage, Decision

__all__ = ["ObservingRecorder", "RunTally", "StreamPiece", "run_request", "stream_request"]

REQUEST_KEY = "request_id"
"""Run-metadata key carrying the served request's id (also the error id of a failed request)."""


@dataclass
class RunTally:
    """What the runtime recorded for one served request's run."""

    run_id: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    calls: list[CallUsage] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    """Nodes that ran and succeeded, in order."""
    error: str | None = None

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls) + sum(d.cost_usd for d in self.decisions)


class ObservingRecorder:
    """A :class:`~crossroads.tracing.Recorder` that passes every record on and lets the server see the
    records of the runs it is watching (matched by the request id in the run's metadata)."""

    def __init__(self, inner: Recorder) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._by_request: dict[str, RunTally] = {}
        self._by_run: dict[str, RunTally] = {}

    def watch(self, request_id: str) -> RunTally:
        tally = RunTally()
        with self._lock:
            self._by_request[request_id] = tally
        return tally

    def release(self, request_id: str) -> None:
        with self._lock:
            tally = self._by_request.pop(request_id, None)
            if tally is not None and tally.run_id is not None:
                self._by_run.pop(tally.run_id, None)

    def record(self, item: TraceRecord) -> None:
        self._observe(item)
        self.inner.record(item)

    def _observe(self, item: TraceRecord) -> None:
        if isinstance(item, RunStart):
            rid = (item.metadata or {}).get(REQUEST_KEY)
            if rid is None:
                return
            with self._lock:
                tally = self._by_request.get(rid)
                if tally is not None:
                    tally.run_id = item.run_id
                    self._by_run[item.run_id] = tally
            return
        run_id = getattr(item, "run_id", None)
        if run_id is None:
            return
        tally = self._by_run.get(run_id)
        if tally is None:
            return
        if isinstance(item, DecisionRecord):
            tally.decisions.append(item.decision)
        elif isinstance(item, CallRecord):
            tally.calls.append(item.usage)
        elif isinstance(item, StepRecord):
            if item.status == "succeeded":
                tally.steps.append(item.node)
        elif isinstance(item, EventRecord):
            tally.events.append(item)
        elif isinstance(item, RunEnd) and item.error:
            tally.error = item.error

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class StreamPiece:
    """A text delta of the answer, or (``final`` set) the end of the run with its output."""

    text: str = ""
    final: bool = False
    output: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()


def _state_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(m) for m in messages]


async def run_request(compiled: CompiledFlow, text: str, messages: Sequence[Mapping[str, Any]],
                      metadata: Mapping[str, Any]) -> StreamPiece:
    """Run the flow to the end on a chat request; the final piece carries the output."""
    # TODO(merge): switch to the public API (CompiledFlow.ainvoke with the request's messages) once the
    # orchestrator's message-history input lands; until then the run is started with the runtime's own
    # bookkeeping (_start/_failure_recorded/_finish) and the request's whole conversation as its messages.
    run_id, payload, cfg = compiled._start(text, None, metadata, None)
    payload["messages"] = _state_messages(messages)
    with compiled._failure_recorded(run_id):
        final = await compiled.graph.ainvoke(payload, cfg)
    result = compiled._finish(run_id, cfg["configurable"]["thread_id"], final)
    last = (result.state.get("messages") or [{}])[-1]
    return StreamPiece(final=True, output=result.output, tool_calls=tuple(last.get("tool_calls") or ()))


async def stream_request(compiled: CompiledFlow, text: str, messages: Sequence[Mapping[str, Any]],
                         metadata: Mapping[str, Any]) -> AsyncGenerator[StreamPiece, None]:
    """Run the flow, yielding the answer's text deltas as model targets produce them, then the final piece."""
    # TODO(merge): relay CompiledFlow.astream_chunks (orchestrator/streaming.py StreamChunk) when it lands.
    final = await run_request(compiled, text, messages, metadata)
    if final.output:
        yield StreamPiece(text=final.output)
    await asyncio.sleep(0)
    yield final
