"""The one trace schema every router writes: runs, steps, decisions, calls, events.

Tables are prefixed ``cr_`` so they can share a file with LangGraph's checkpoint tables.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel

__all__ = ["HEAD_REVISION", "SCHEMA_VERSION", "CallRow", "DecisionRow", "EvalResultRow", "EvalRunRow", "EventRow",
           "MetaRow", "RunRow", "SpillImportRow", "StepRow"]

SCHEMA_VERSION = 2
"""Bumped with every Alembic revision that changes a table (``crossroads/tracing/migrations``). An older DB is
upgraded in place (backup first); a DB of a newer version is refused, never rewritten."""
HEAD_REVISION = "0002"
"""The Alembic revision that creates exactly these models (a test checks it against the migrations)."""


class MetaRow(SQLModel, table=True):
    """Key/value facts about the store itself (``schema_version``)."""

    __tablename__ = "cr_meta"
    key: str = Field(primary_key=True)
    value: str


class RunRow(SQLModel, table=True):
    """One run of a flow (a thread; resuming it continues the same run)."""

    __tablename__ = "cr_runs"
    id: str = Field(primary_key=True)
    flow: str = Field(index=True)
    thread_id: str = Field(index=True)
    status: str = Field(index=True)  # running | succeeded | failed | interrupted
    input: str = ""
    output: str | None = None
    error: str | None = None
    started_at: float = Field(index=True)
    ended_at: float | None = None
    metadata_json: str = "{}"


class StepRow(SQLModel, table=True):
    """One node execution; a re-run after resume is a second row with the same graph_step."""

    __tablename__ = "cr_steps"
    id: str = Field(primary_key=True)
    run_id: str = Field(index=True, foreign_key="cr_runs.id")
    node: str
    kind: str = "agent"
    graph_step: int = 0
    status: str = "succeeded"  # succeeded | failed
    input_summary: str = ""
    output_summary: str = ""
    started_at: float = Field(index=True)
    ended_at: float = 0.0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None


class DecisionRow(SQLModel, table=True):
    """A routing decision: every candidate with its score, the chosen target(s), the rationale."""

    __tablename__ = "cr_decisions"
    id: str = Field(primary_key=True)
    run_id: str = Field(index=True, foreign_key="cr_runs.id")
    source: str
    router: str = Field(index=True)
    step_index: int = 0
    query: str = ""
    candidates_json: str = "[]"  # [{"name":..., "score":...}, ...]
    chosen_json: str = "[]"
    rationale: str = ""
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    created_at: float = Field(index=True)
    metadata_json: str = "{}"


class CallRow(SQLModel, table=True):
    """A model or tool call made by a target or a router."""

    __tablename__ = "cr_calls"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, foreign_key="cr_runs.id")
    step_id: str | None = Field(default=None, index=True)
    target: str
    kind: str = "model"
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    created_at: float = 0.0


class EventRow(SQLModel, table=True):
    """Retry, reroute, escalation, fallback, routing error, resume, learning update, ..."""

    __tablename__ = "cr_events"
    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, index=True)
    step_id: str | None = None
    decision_id: str | None = Field(default=None, index=True)
    kind: str = Field(index=True)
    target: str | None = None
    detail_json: str = "{}"
    created_at: float = 0.0


class EvalRunRow(SQLModel, table=True):
    """One run of an eval suite, with everything needed to reproduce it."""

    __tablename__ = "cr_eval_runs"
    id: str = Field(primary_key=True)
    suite: str = Field(index=True)
    kind: str
    created_at: float = Field(index=True)
    duration_s: float = 0.0
    config_json: str = "{}"
    code_version: str = ""
    data_hashes_json: str = "{}"
    summary_json: str = "{}"
    report_path: str | None = None


class EvalResultRow(SQLModel, table=True):
    """One router's metrics in an eval run."""

    __tablename__ = "cr_eval_results"
    id: int | None = Field(default=None, primary_key=True)
    eval_run_id: str = Field(index=True, foreign_key="cr_eval_runs.id")
    router: str
    metrics_json: str = "{}"


class SpillImportRow(SQLModel, table=True):
    """A spilled trace line already imported by ``crossroads trace recover`` (so a second recover adds nothing)."""

    __tablename__ = "cr_spill_imports"
    spill_id: str = Field(primary_key=True)
    imported_at: float = 0.0
