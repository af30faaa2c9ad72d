"""The trace database: opening it safely, bulk writes, and the queries the CLI runs.

SQLite by default (WAL journal, busy timeout); any SQLAlchemy URL works unchanged.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlmodel import SQLModel, create_engine

from ..errors import TraceSchemaVersionError, TraceStoreCorruptError, TraceStoreError
from .schema import SCHEMA_VERSION, CallRow, DecisionRow, EvalResultRow, EvalRunRow, EventRow, MetaRow, RunRow, StepRow

__all__ = ["DEFAULT_DB", "EvalStore", "TraceStore", "resolve_db_url"]

DEFAULT_DB = "crossroads.db"
"""Default trace file, in the working directory; overridden by ``--db`` or ``CROSSROADS_DB``."""
DB_ENV_VAR = "CROSSROADS_DB"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = [MetaRow, RunRow, StepRow, DecisionRow, CallRow, EventRow, EvalRunRow, EvalResultRow]


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """Turn ``--db`` / ``CROSSROADS_DB`` / the default into an SQLAlchemy URL."""
    value = str(db) if db is not None else os.environ.get(DB_ENV_VAR, DEFAULT_DB)
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):])
    return None


class TraceStore:
    """An open trace database.

    Example::

        store = TraceStore("crossroads.db")
        for run in store.list_runs(limit=10):
            print(run["id"], run["status"])
    """

    def __init__(self, db: str | os.PathLike[str] | None = None) -> None:
        self.url = resolve_db_url(db)
        path = _sqlite_path(self.url)
        self.path = path
        if path is not None:
            _check_sqlite_file(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        self._sqlite = self.url.startswith("sqlite")
        self.engine = self._make_engine()
        self._init_schema()

    # -- setup --------------------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def _init_schema(self) -> None:
        where = self.path or self.url
        try:
            tables = set(inspect(self.engine).get_table_names())
            ours = {t.__tablename__ for t in _TABLES}
            if "cr_meta" in tables:
                with self.engine.connect() as conn:
                    row = conn.execute(select(MetaRow.value).where(MetaRow.key == "schema_version")).first()
                if row is None:
                    raise TraceStoreCorruptError(
                        f"trace DB {where} has a cr_meta table without a schema_version; "
                        "it was not written by crossroads or is damaged. Move it aside or use --db"
                    )
                found = int(row[0])
                if found != SCHEMA_VERSION:
                    raise TraceSchemaVersionError(
                        f"trace DB {where} has schema version {found}, this crossroads writes version "
                        f"{SCHEMA_VERSION}; use a crossroads release that matches, or point --db / "
                        f"{DB_ENV_VAR} at a new file (the existing file is left untouched)"
                    )
                missing = ours - tables
                if missing:
                    raise TraceStoreCorruptError(
                        f"trace DB {where} lacks tables {sorted(missing)}; move it aside or use --db"
                    )
                return
            if tables & ours:
                raise TraceStoreCorruptError(
                    f"trace DB {where} has crossroads tables but no cr_meta; move it aside or use --db"
                )
            SQLModel.metadata.create_all(self.engine, tables=[t.__table__ for t in _TABLES])  # type: ignore[attr-defined]
            with self.engine.begin() as conn:
                conn.execute(MetaRow.__table__.insert(), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])  # type: ignore[attr-defined]
        except (TraceStoreError,):
            raise
        except DatabaseError as exc:
            raise TraceStoreCorruptError(
                f"trace DB {where} cannot be read ({exc.orig}); it is not a crossroads trace database or "
                "is damaged. Move it aside or pass --db / set CROSSROADS_DB to another file"
            ) from exc

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- writes -------------------------------------------------------------------------------
    def write_batch(
        self,
        inserts: Mapping[type, Sequence[Mapping[str, Any]]],
        run_updates: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Insert rows for several tables and apply run-end updates, in one transaction."""
        order = [RunRow, StepRow, DecisionRow, CallRow, EventRow]
        try:
            with self.engine.begin() as conn:
                for table in order:
                    rows = inserts.get(table)
                    if not rows:
                        continue
                    if self._sqlite:  # plain executemany: several times faster than Core's param processing
                        cols = _columns(table)
                        conn.exec_driver_sql(_insert_sql(table), [tuple(r.get(c) for c in cols) for r in rows])
                    else:
                        conn.execute(table.__table__.insert(), list(rows))  # type: ignore[attr-defined]
                for upd in run_updates:
                    values = {k: v for k, v in upd.items() if k != "id" and v is not None}
                    values["status"] = upd["status"]
                    conn.execute(update(RunRow).where(RunRow.id == upd["id"]).values(**values))
        except OperationalError as exc:
            raise TraceStoreError(f"writing traces to {self.path or self.url} failed: {exc.orig}") from exc

    def mark_run_running(self, run_id: str) -> bool:
        """Set an existing run back to running (on resume); returns whether it existed."""
        with self.engine.begin() as conn:
            res = conn.execute(update(RunRow).where(RunRow.id == run_id).values(status="running", ended_at=None))
            return bool(res.rowcount)

    # -- reads --------------------------------------------------------------------------------
    def list_runs(self, *, limit: int = 20, flow: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Most recent runs first, with their step/decision counts and total cost."""
        steps = (
            select(StepRow.run_id, func.count().label("n_steps"), func.sum(StepRow.cost_usd).label("cost"))
            .group_by(StepRow.run_id).subquery()
        )
        decisions = select(DecisionRow.run_id, func.count().label("n_decisions")).group_by(DecisionRow.run_id).subquery()
        q = (
            select(*RunRow.__table__.c, steps.c.n_steps, steps.c.cost, decisions.c.n_decisions)
            .outerjoin(steps, steps.c.run_id == RunRow.id)
            .outerjoin(decisions, decisions.c.run_id == RunRow.id)
            .order_by(RunRow.started_at.desc())
            .limit(limit)
        )
        if flow:
            q = q.where(RunRow.flow == flow)
        if status:
            q = q.where(RunRow.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        result = []
        for r in rows:
            d = {c: r[c] for c in r.keys() if c not in ("n_steps", "cost", "n_decisions")}
            d["metadata"] = json.loads(d.pop("metadata_json") or "{}")
            d["steps"] = r["n_steps"] or 0
            d["decisions"] = r["n_decisions"] or 0
            d["cost_usd"] = float(r["cost"] or 0.0)
            result.append(d)
        return result

    def find_run(self, run_id: str) -> str:
        """Resolve a full run id or a unique prefix of one."""
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(RunRow.id).where(RunRow.id.like(f"{run_id}%")).limit(2))]
        if not ids:
            raise TraceStoreError(f"no run {run_id!r} in {self.path or self.url}; list runs with 'crossroads trace list'")
        if len(ids) > 1 and run_id not in ids:
            raise TraceStoreError(f"run id prefix {run_id!r} is ambiguous; give more characters")
        return run_id if run_id in ids else ids[0]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with its steps, decisions, calls and events (attempt numbers derived)."""
        run_id = self.find_run(run_id)
        with self.engine.connect() as conn:
            run = conn.execute(select(RunRow.__table__).where(RunRow.id == run_id)).mappings().one()
            steps = conn.execute(select(StepRow.__table__).where(StepRow.run_id == run_id).order_by(StepRow.started_at)).mappings().all()
            decisions = conn.execute(select(DecisionRow.__table__).where(DecisionRow.run_id == run_id).order_by(DecisionRow.created_at)).mappings().all()
            calls = conn.execute(select(CallRow.__table__).where(CallRow.run_id == run_id).order_by(CallRow.created_at)).mappings().all()
            events = conn.execute(select(EventRow.__table__).where(EventRow.run_id == run_id).order_by(EventRow.created_at)).mappings().all()
        out = dict(run)
        out["metadata"] = json.loads(out.pop("metadata_json") or "{}")
        attempts: dict[tuple[str, int], int] = {}
        step_list = []
        for s in steps:
            d = dict(s)
            key = (d["node"], d["graph_step"])
            attempts[key] = attempts.get(key, 0) + 1
            d["attempt"] = attempts[key]
            step_list.append(d)
        out["steps"] = step_list
        out["decisions"] = [_decision_dict(d) for d in decisions]
        out["calls"] = [dict(c) for c in calls]
        out["events"] = [{**{k: v for k, v in e.items() if k != "detail_json"}, "detail": json.loads(e["detail_json"] or "{}")} for e in events]
        out["cost_usd"] = sum(s["cost_usd"] for s in step_list) + sum(d["cost_usd"] for d in out["decisions"])
        return out

    def count(self, table: str) -> int:
        """Row count of one of: runs, steps, decisions, calls, events."""
        model = {"runs": RunRow, "steps": StepRow, "decisions": DecisionRow, "calls": CallRow, "events": EventRow}[table]
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

    def events(self, *, kind: str | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """Events, optionally filtered by kind and run."""
        q = select(EventRow.__table__).order_by(EventRow.id)
        if kind:
            q = q.where(EventRow.kind == kind)
        if run_id:
            q = q.where(EventRow.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{**{k: v for k, v in e.items() if k != "detail_json"}, "detail": json.loads(e["detail_json"] or "{}")} for e in rows]


@functools.cache
def _columns(table: type) -> tuple[str, ...]:
    return tuple(c.name for c in table.__table__.columns)  # type: ignore[attr-defined]


@functools.cache
def _insert_sql(table: type) -> str:
    cols = _columns(table)
    return f"INSERT INTO {table.__tablename__} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"  # type: ignore[attr-defined]


def _decision_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(row)
    d["candidates"] = json.loads(d.pop("candidates_json") or "[]")
    d["chosen"] = json.loads(d.pop("chosen_json") or "[]")
    d["metadata"] = json.loads(d.pop("metadata_json") or "{}")
    return d


def _check_sqlite_file(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise TraceStoreCorruptError(f"trace DB path {path} is a directory; pass --db with a file path")
    with path.open("rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise TraceStoreCorruptError(
            f"trace DB {path} is not an SQLite database (bad header); it is corrupt or another kind of "
            "file. It was left untouched: move it aside or pass --db / set CROSSROADS_DB to another file"
        )


def _json_safe(obj: Any) -> Any:
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return _json_safe(obj.item())
    return obj


class EvalStore:
    """Eval runs and their per-router results, in the same database as the traces."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def save(self, run: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> None:
        """Write a run and all its results in one transaction (all or nothing)."""
        row = {k: run.get(k) for k in ("id", "suite", "kind", "created_at", "duration_s", "code_version", "report_path")}
        row["config_json"] = json.dumps(_json_safe(run.get("config", {})))
        row["data_hashes_json"] = json.dumps(_json_safe(run.get("data_hashes", {})))
        row["summary_json"] = json.dumps(_json_safe(run.get("summary", {})))
        with self.store.engine.begin() as conn:
            conn.execute(EvalRunRow.__table__.insert(), [row])  # type: ignore[attr-defined]
            conn.execute(EvalResultRow.__table__.insert(), [  # type: ignore[attr-defined]
                {"eval_run_id": run["id"], "router": r, "metrics_json": json.dumps(_json_safe(m))} for r, m in results.items()])

    def list(self, *, limit: int = 20, suite: str | None = None) -> list[dict[str, Any]]:
        """Most recent eval runs first."""
        q = select(EvalRunRow.__table__).order_by(EvalRunRow.created_at.desc()).limit(limit)
        if suite:
            q = q.where(EvalRunRow.suite == suite)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [self._run(r) for r in rows]

    def get(self, run_id: str) -> dict[str, Any]:
        """One eval run with its results (a unique id prefix works)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(EvalRunRow.__table__).where(EvalRunRow.id.like(f"{run_id}%")).limit(2)).mappings().all()
            if not rows:
                raise TraceStoreError(f"no eval run {run_id!r}; list them with 'crossroads eval list'")
            if len(rows) > 1 and rows[0]["id"] != run_id:
                raise TraceStoreError(f"eval run id prefix {run_id!r} is ambiguous; give more characters")
            run = self._run(rows[0])
            res = conn.execute(select(EvalResultRow.__table__).where(EvalResultRow.eval_run_id == run["id"])
                               .order_by(EvalResultRow.id)).mappings().all()
        run["results"] = {r["router"]: json.loads(r["metrics_json"]) for r in res}
        return run

    @staticmethod
    def _run(r: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(r)
        d["config"] = json.loads(d.pop("config_json") or "{}")
        d["data_hashes"] = json.loads(d.pop("data_hashes_json") or "{}")
        d["summary"] = json.loads(d.pop("summary_json") or "{}")
        return d
