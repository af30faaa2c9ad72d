"""What the orchestrator and routers hand to a :class:`~crossroads.tracing.Recorder`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._ids import new_id
from ..types import CallUsage, Decision

__all__ = ["CallRecord", "DecisionRecord", "EventRecord", "RunEnd", "RunStart", "StepRecord", "TraceRecord"]


def _now() -> float:
    return time.time()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    run_id: str
    flow: str
    thread_id: str
    input: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnd:
    run_id: str
    status: str
    output: str | None = None
    error: str | None = None
    ended_at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    run_id: str
    node: str
    started_at: float
    ended_at: float
    status: str = "succeeded"
    kind: str = "agent"
    graph_step: int = 0
    input_summary: str = ""
    output_summary: str = ""
    cost_usd: float = 0.0
    error: str | None = None
    step_id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    run_id: str
    source: str
    decision: Decision
    query: str = ""
    step_index: int = 0
    created_at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    run_id: str
    usage: CallUsage
    step_id: str | None = None
    created_at: float = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    kind: str
    run_id: str | None = None
    step_id: str | None = None
    decision_id: str | None = None
    target: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=_now)


TraceRecord = RunStart | RunEnd | StepRecord | DecisionRecord | CallRecord | EventRecord
