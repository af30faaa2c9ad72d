"""Tracing: one schema for every router, written through one :class:`Recorder` interface."""

from .recorder import MemoryRecorder, NullRecorder, Recorder, SQLRecorder
from .records import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, StepRecord, TraceRecord
from .redact import redact, redact_obj
from .schema import SCHEMA_VERSION
from .store import DEFAULT_DB, EvalStore, TraceStore, resolve_db_url

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "CallRecord",
    "DecisionRecord",
    "EvalStore",
    "EventRecord",
    "MemoryRecorder",
    "NullRecorder",
    "Recorder",
    "RunEnd",
    "RunStart",
    "SQLRecorder",
    "StepRecord",
    "TraceRecord",
    "TraceStore",
    "redact",
    "redact_obj",
    "resolve_db_url",
]
