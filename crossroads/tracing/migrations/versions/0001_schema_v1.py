"""Schema v1, frozen: the tables crossroads 0.1.0 (commit b7ae448) created with SQLModel.

Never edit this file: later changes are new revisions. A v1 DB already has these tables; it is stamped
at this revision (after a backup) and upgraded from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _idx(table: str, *cols: str) -> None:
    for c in cols:
        op.create_index(f"ix_{table}_{c}", table, [c])


def upgrade() -> None:
    op.create_table(
        "cr_meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    op.create_table(
        "cr_runs",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("thread_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("input", sa.String(), nullable=False),
        sa.Column("output", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("metadata_json", sa.String(), nullable=False),
    )
    _idx("cr_runs", "flow", "started_at", "status", "thread_id")
    op.create_table(
        "cr_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("decision_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("detail_json", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    _idx("cr_events", "decision_id", "run_id", "kind")
    op.create_table(
        "cr_eval_runs",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("suite", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("config_json", sa.String(), nullable=False),
        sa.Column("code_version", sa.String(), nullable=False),
        sa.Column("data_hashes_json", sa.String(), nullable=False),
        sa.Column("summary_json", sa.String(), nullable=False),
        sa.Column("report_path", sa.String(), nullable=True),
    )
    _idx("cr_eval_runs", "created_at", "suite")
    op.create_table(
        "cr_steps",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("cr_runs.id"), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("graph_step", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("input_summary", sa.String(), nullable=False),
        sa.Column("output_summary", sa.String(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
    )
    _idx("cr_steps", "run_id", "started_at")
    op.create_table(
        "cr_decisions",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("cr_runs.id"), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("router", sa.String(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("query", sa.String(), nullable=False),
        sa.Column("candidates_json", sa.String(), nullable=False),
        sa.Column("chosen_json", sa.String(), nullable=False),
        sa.Column("rationale", sa.String(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("metadata_json", sa.String(), nullable=False),
    )
    _idx("cr_decisions", "router", "created_at", "run_id")
    op.create_table(
        "cr_calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("cr_runs.id"), nullable=False),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    _idx("cr_calls", "run_id", "step_id")
    op.create_table(
        "cr_eval_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("eval_run_id", sa.String(), sa.ForeignKey("cr_eval_runs.id"), nullable=False),
        sa.Column("router", sa.String(), nullable=False),
        sa.Column("metrics_json", sa.String(), nullable=False),
    )
    _idx("cr_eval_results", "eval_run_id")
    meta = sa.table("cr_meta", sa.column("key", sa.String()), sa.column("value", sa.String()))
    op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    for table in ("cr_eval_results", "cr_calls", "cr_decisions", "cr_steps", "cr_eval_runs", "cr_events", "cr_runs",
                  "cr_meta"):
        op.drop_table(table)
