"""The trace database: opening it safely, bulk writes, recovery of spilled rows, and the queries the CLI runs.

SQLite by default (WAL journal, busy timeout); any SQLAlchemy URL works unchanged. Opening for writing creates
or upgrades the schema through :mod:`crossroads.tracing.migrate` (Alembic, under the write lock, backup
first); ``read_only=True`` never creates, upgrades or writes anything (``trace list/show/export``).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import NullPool, StaticPool
from sqlmodel import create_engine

from ..errors import (
    TraceStoreCorruptError,
    TraceStoreError,
    TraceStoreLockedError,
    TraceStoreReadOnlyError,
)
from ..types import run_cost
from .migrate import (
    DB_ENV_VAR,
    HEAD_TABLES,
    V1_TABLES,
    UpgradeReport,
    classify,
    connect_read_only,
    ensure_schema,
    peek_sqlite,
)
from .schema import (
    CallRow,
    DecisionRow,
    EvalResultRow,
    EvalRunRow,
    EventRow,
    RunRow,
    SpillImportRow,
    StepRow,
)
from .spill import SpillFile

__all__ = ["DEFAULT_DB", "EvalStore", "TraceStore", "resolve_db_url"]


def _t(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined]


RUNS, STEPS, DECISIONS, CALLS, EVENTS = (_t(m) for m in (RunRow, StepRow, DecisionRow, CallRow, EventRow))
EVAL_RUNS, EVAL_RESULTS, SPILL_IMPORTS = (_t(m) for m in (EvalRunRow, EvalResultRow, SpillImportRow))
_TABLES_BY_NAME = {t.name: t for t in (RUNS, STEPS, DECISIONS, CALLS, EVENTS)}
_STRING_PK = {"cr_runs", "cr_steps", "cr_decisions"}

DEFAULT_DB = "crossroads.db"
"""Default trace file, in the working directory; overridden by ``--db`` or ``CROSSROADS_DB``."""
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long one SQLite statement waits for another process's lock (env ``CROSSROADS_TRACE_BUSY_TIMEOUT_S``)."""
_SQLITE_MAGIC = b"SQLite format 3\x00"


def resolve_db_url(db: str | os.PathLike[str] | None = None) -> str:
    """Turn ``--db`` / ``CROSSROADS_DB`` / the default into an SQLAlchemy URL."""
    value = str(db) if db is not None else (os.environ.get(DB_ENV_VAR) or DEFAULT_DB)
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):])
    return None


def _busy_timeout_s(value: float | None) -> float:
    if value is not None:
        return float(value)
    env = os.environ.get("CROSSROADS_TRACE_BUSY_TIMEOUT_S")
    return float(env) if env else SQLITE_BUSY_TIMEOUT_MS / 1000


def is_lock_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is SQLite's "database is locked"/"busy" after the busy timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TraceStoreLockedError):
            return True
        if isinstance(seen, (sqlite3.OperationalError, OperationalError)):
            msg = str(seen).lower()
            if "locked" in msg or "busy" in msg:
                return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _is_read_only_error(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "readonly" in msg or "read-only" in msg


def run_update_values(upd: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a run-end record sets. A terminal status always sets ``error`` (``None`` clears the error
    of an earlier failed attempt: a resumed run that succeeds is not shown with its old error)."""
    status = upd["status"]
    if status == "running":  # a resume started: the run is open again
        return {"status": "running", "ended_at": None}
    values: dict[str, Any] = {"status": status, "ended_at": upd.get("ended_at"), "error": upd.get("error")}
    if upd.get("output") is not None:
        values["output"] = upd["output"]
    return values


class TraceStore:
    """An open trace database.

    Example::

        store = TraceStore("crossroads.db")
        for run in store.list_runs(limit=10):
            print(run["id"], run["status"])

    ``read_only=True`` opens an existing DB without creating, upgrading or writing anything (a missing
    file is an error, not a new DB). Opening for writing a DB written by an older schema upgrades it in
    place after copying it to ``<db>.v<N>.bak``; :attr:`upgraded` then says what happened.
    """

    def __init__(self, db: str | os.PathLike[str] | None = None, *, read_only: bool = False,
                 busy_timeout_s: float | None = None) -> None:
        self.url = resolve_db_url(db)
        path = _sqlite_path(self.url)
        self.path = path
        self.read_only = read_only
        self.busy_timeout_s = _busy_timeout_s(busy_timeout_s)
        self.upgraded: UpgradeReport | None = None
        self.created_folder: Path | None = None
        """The folder this open created for a new DB file (``None`` when it existed), for callers to say so."""
        self._sqlite = self.url.startswith("sqlite")
        where = path or self.url
        if path is not None:
            if path.is_dir():
                raise TraceStoreCorruptError(f"trace DB path {path} is a directory; pass --db with a file path")
            if read_only and not path.exists():
                raise TraceStoreError(
                    f"no trace DB at {path} (nothing was created); record a run first with 'crossroads run', or "
                    f"pass --db / set {DB_ENV_VAR} to the trace file")
            _check_sqlite_file(path)
        if read_only:
            self.engine = self._make_read_only_engine()
            self._check_readable()
            return
        state = None
        if path is not None:
            try:
                state = peek_sqlite(path, self.busy_timeout_s)  # classify before writing a single byte
            except sqlite3.OperationalError as exc:
                if is_lock_error(exc):
                    raise TraceStoreLockedError(f"trace DB {where} is locked by another process (waited "
                                                f"{self.busy_timeout_s:g} s); retry in a moment") from exc
                raise TraceStoreError(f"cannot open trace DB {where}: {exc}; check the path and its permissions, "
                                      f"or pass --db / set {DB_ENV_VAR} to another file") from exc
            classify(state, str(where))
            _check_writable(path)
            if not path.parent.exists():
                top = path.parent
                while not top.parent.exists():
                    top = top.parent
                path.parent.mkdir(parents=True, exist_ok=True)
                self.created_folder = top
        memory = self._sqlite and path is None
        if memory:  # one shared connection, or every connection would see its own empty DB
            self.engine = create_engine(self.url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        try:
            self.upgraded = ensure_schema(self.url, path, timeout_s=self.busy_timeout_s, state=state,
                                          peeked=path is not None, engine=self.engine if memory else None)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if _is_read_only_error(exc):
                raise self._read_only_error(exc) from exc
            if is_lock_error(exc):
                raise TraceStoreLockedError(
                    f"trace DB {where} is locked by another process (waited {self.busy_timeout_s:g} s); retry, or "
                    "pass --db / --no-trace") from exc
            raise
        if memory:
            return
        self.engine = self._make_engine()
        try:
            with self.engine.connect():  # switches the journal to WAL once, now rather than mid-run
                pass
        except OperationalError as exc:
            if is_lock_error(exc):
                raise TraceStoreLockedError(
                    f"trace DB {where} is locked by another process (waited {self.busy_timeout_s:g} s); retry, or "
                    "pass --db / --no-trace") from exc
            raise

    # -- setup --------------------------------------------------------------------------------
    @property
    def spill_path(self) -> Path:
        """Where rows the DB would not take are appended: ``<db>.spill.jsonl``."""
        if self.path is not None:
            return self.path.with_name(self.path.name + ".spill.jsonl")
        return Path.cwd() / "crossroads-trace.spill.jsonl"

    def _read_only_error(self, exc: BaseException | None = None) -> TraceStoreReadOnlyError:
        why = f" ({getattr(exc, 'orig', exc)})" if exc is not None else ""
        return TraceStoreReadOnlyError(
            f"trace DB {self.path or self.url} is read-only{why}; reading it still works ('crossroads trace list'). "
            f"To record runs pass --db / set {DB_ENV_VAR} to a writable file, or use --no-trace")

    def _make_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            timeout = self.busy_timeout_s
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": timeout})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def _make_read_only_engine(self) -> Engine:
        path = self.path
        if path is None:
            return create_engine(self.url, pool_pre_ping=True)
        timeout = self.busy_timeout_s
        return create_engine("sqlite://", creator=lambda: connect_read_only(path, timeout), poolclass=NullPool)

    def _check_readable(self) -> None:
        from .migrate import read_state

        where = str(self.path or self.url)
        try:
            with self.engine.connect() as conn:
                state = read_state(conn)
        except DatabaseError as exc:
            if is_lock_error(exc):
                raise TraceStoreLockedError(f"trace DB {where} is locked by another process (waited "
                                            f"{self.busy_timeout_s:g} s); retry in a moment") from exc
            raise TraceStoreCorruptError(
                f"trace DB {where} cannot be read ({exc.orig}); it is not a crossroads trace database or is "
                f"damaged. Move it aside or pass --db / set {DB_ENV_VAR} to another file") from exc
        if "cr_meta" not in state.tables:
            classify(state, where)  # another application's file / damaged: its own error
            raise TraceStoreError(f"{where} holds no crossroads traces yet; record a run first with 'crossroads run'")
        action = classify(state, where)
        needed = HEAD_TABLES if action == "head" else V1_TABLES
        if not needed <= state.tables:
            raise TraceStoreCorruptError(f"trace DB {where} lacks tables {sorted(needed - state.tables)}")
        self.schema_version = state.schema_version

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    # -- writes -------------------------------------------------------------------------------
    def write_batch(
        self,
        inserts: Mapping[type, Sequence[Mapping[str, Any]]],
        run_updates: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Insert rows for several tables and apply run-end updates, in one transaction.

        Raises :class:`TraceStoreLockedError` when another process held the DB past the busy timeout,
        :class:`TraceStoreReadOnlyError` when the file cannot be written, :class:`TraceStoreError` otherwise.
        """
        if self.read_only:
            raise self._read_only_error()
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
                    _apply_run_update(conn, upd)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if is_lock_error(exc):
                raise TraceStoreLockedError(f"trace DB {self.path or self.url} is locked: {getattr(exc, 'orig', exc)}") from exc
            if _is_read_only_error(exc):
                raise self._read_only_error(exc) from exc
            raise TraceStoreError(f"writing traces to {self.path or self.url} failed: {getattr(exc, 'orig', exc)}") from exc

    def mark_run_running(self, run_id: str) -> bool:
        """Set an existing run back to running (on resume); returns whether it existed."""
        with self.engine.begin() as conn:
            res = conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="running", ended_at=None))
            return bool(res.rowcount)

    def recover(self, spill: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Import the rows spilled to :attr:`spill_path` (or ``spill``) in one transaction, then archive the
        file. Lines already imported (``cr_spill_imports``) and rows already present are skipped, so running
        it twice adds nothing."""
        if self.read_only:
            raise self._read_only_error()
        spill_file = SpillFile(spill if spill is not None else self.spill_path)
        imported = skipped = 0
        with spill_file.claim() as entries:
            if not entries:
                return {"spill": str(spill_file.path), "imported": 0, "skipped": 0}
            with self.engine.begin() as conn:
                ids = [str(e["spill_id"]) for e in entries]
                done: set[str] = set()
                for k in range(0, len(ids), 500):
                    chunk = ids[k:k + 500]
                    done |= {r[0] for r in conn.execute(select(SPILL_IMPORTS.c.spill_id).where(SPILL_IMPORTS.c.spill_id.in_(chunk)))}
                now = time.time()
                marks = []
                for entry in entries:
                    sid = str(entry["spill_id"])
                    if sid in done:
                        skipped += 1
                        continue
                    if "run_update" in entry:
                        _apply_run_update(conn, entry["run_update"])
                    else:
                        table = _TABLES_BY_NAME.get(entry.get("table", ""))
                        if table is None:
                            raise TraceStoreError(f"spill file {spill_file.path}: unknown table {entry.get('table')!r}")
                        row = dict(entry["row"])
                        if entry["table"] in _STRING_PK:
                            exists = conn.execute(select(table.c.id).where(table.c.id == row["id"])).first()
                            if exists:
                                skipped += 1
                                marks.append({"spill_id": sid, "imported_at": now})
                                done.add(sid)
                                continue
                        else:
                            row.pop("id", None)
                        conn.execute(table.insert(), [row])
                    imported += 1
                    marks.append({"spill_id": sid, "imported_at": now})
                    done.add(sid)
                if marks:
                    conn.execute(SPILL_IMPORTS.insert(), marks)
        return {"spill": str(spill_file.path), "imported": imported, "skipped": skipped}

    # -- reads --------------------------------------------------------------------------------
    def list_runs(self, *, limit: int = 20, flow: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Most recent runs first, with their step/decision counts and total cost (:func:`run_cost`)."""
        q = select(RUNS).order_by(RUNS.c.started_at.desc()).limit(limit)
        if flow:
            q = q.where(RUNS.c.flow == flow)
        if status:
            q = q.where(RUNS.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
            ids = [r["id"] for r in rows]
            step_costs: dict[str, list[float]] = {i: [] for i in ids}
            decision_costs: dict[str, list[float]] = {i: [] for i in ids}
            for k in range(0, len(ids), 500):
                chunk = ids[k:k + 500]
                for rid, cost in conn.execute(select(STEPS.c.run_id, STEPS.c.cost_usd).where(STEPS.c.run_id.in_(chunk))):
                    step_costs[rid].append(cost)
                for rid, cost in conn.execute(select(DECISIONS.c.run_id, DECISIONS.c.cost_usd).where(DECISIONS.c.run_id.in_(chunk))):
                    decision_costs[rid].append(cost)
        result = []
        for r in rows:
            d = dict(r)
            d["metadata"] = json.loads(d.pop("metadata_json") or "{}")
            d["steps"] = len(step_costs[d["id"]])
            d["decisions"] = len(decision_costs[d["id"]])
            d["cost_usd"] = run_cost(step_costs[d["id"]], decision_costs[d["id"]])
            result.append(d)
        return result

    def find_run(self, run_id: str) -> str:
        """Resolve a full run id or a unique prefix of one."""
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(RUNS.c.id).where(RUNS.c.id.like(f"{run_id}%")).limit(2))]
        if not ids:
            raise TraceStoreError(f"no run {run_id!r} in {self.path or self.url}; list runs with 'crossroads trace list'")
        if len(ids) > 1 and run_id not in ids:
            raise TraceStoreError(f"run id prefix {run_id!r} is ambiguous; give more characters")
        return run_id if run_id in ids else ids[0]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with its steps, decisions, calls and events (attempt numbers derived)."""
        run_id = self.find_run(run_id)
        with self.engine.connect() as conn:
            run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().one()
            steps = conn.execute(select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.started_at)).mappings().all()
            decisions = conn.execute(select(DECISIONS).where(DECISIONS.c.run_id == run_id).order_by(DECISIONS.c.created_at)).mappings().all()
            calls = conn.execute(select(CALLS).where(CALLS.c.run_id == run_id).order_by(CALLS.c.created_at)).mappings().all()
            events = conn.execute(select(EVENTS).where(EVENTS.c.run_id == run_id).order_by(EVENTS.c.created_at)).mappings().all()
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
        out["decisions"] = [_decision_dict(dict(d)) for d in decisions]
        out["calls"] = [dict(c) for c in calls]
        out["events"] = [{**{k: v for k, v in e.items() if k != "detail_json"}, "detail": json.loads(e["detail_json"] or "{}")} for e in events]
        out["cost_usd"] = run_cost((s["cost_usd"] for s in step_list), (d["cost_usd"] for d in out["decisions"]))
        return out

    def count(self, table: str) -> int:
        """Row count of one of: runs, steps, decisions, calls, events."""
        model = {"runs": RunRow, "steps": StepRow, "decisions": DecisionRow, "calls": CallRow, "events": EventRow}[table]
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

    def events(self, *, kind: str | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """Events, optionally filtered by kind and run."""
        q = select(EVENTS).order_by(EVENTS.c.id)
        if kind:
            q = q.where(EVENTS.c.kind == kind)
        if run_id:
            q = q.where(EVENTS.c.run_id == run_id)
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


def _apply_run_update(conn: Connection, upd: Mapping[str, Any]) -> None:
    conn.execute(update(RUNS).where(RUNS.c.id == upd["id"]).values(**run_update_values(upd)))


def _check_writable(path: Path) -> None:
    """Refuse before running anything when the trace file or its folder cannot be written."""
    from ..errors import TraceStoreReadOnlyError

    fix = f"reading it still works ('crossroads trace list'); to record runs pass --db / set {DB_ENV_VAR} to a " \
          "writable file, or use --no-trace"
    if path.exists():
        if not os.access(path, os.W_OK):
            raise TraceStoreReadOnlyError(f"trace DB {path} is read-only; {fix}")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise TraceStoreReadOnlyError(
                f"trace DB {path} is in a read-only folder (SQLite needs to create its journal beside it); {fix}")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TraceStoreReadOnlyError(f"cannot create trace DB {path}: folder {parent} is read-only; pass --db / set "
                                      f"{DB_ENV_VAR} to a writable location, or use --no-trace")


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
            conn.execute(EVAL_RUNS.insert(), [row])
            conn.execute(EVAL_RESULTS.insert(), [
                {"eval_run_id": run["id"], "router": r, "metrics_json": json.dumps(_json_safe(m))} for r, m in results.items()])

    def list(self, *, limit: int = 20, suite: str | None = None) -> list[dict[str, Any]]:
        """Most recent eval runs first."""
        q = select(EVAL_RUNS).order_by(EVAL_RUNS.c.created_at.desc()).limit(limit)
        if suite:
            q = q.where(EVAL_RUNS.c.suite == suite)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [self._run(dict(r)) for r in rows]

    def get(self, run_id: str) -> dict[str, Any]:
        """One eval run with its results (a unique id prefix works)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(EVAL_RUNS).where(EVAL_RUNS.c.id.like(f"{run_id}%")).limit(2)).mappings().all()
            if not rows:
                raise TraceStoreError(f"no eval run {run_id!r}; list them with 'crossroads eval list'")
            if len(rows) > 1 and rows[0]["id"] != run_id:
                raise TraceStoreError(f"eval run id prefix {run_id!r} is ambiguous; give more characters")
            run = self._run(dict(rows[0]))
            res = conn.execute(select(EVAL_RESULTS).where(EVAL_RESULTS.c.eval_run_id == run["id"])
                               .order_by(EVAL_RESULTS.c.id)).mappings().all()
        run["results"] = {r["router"]: json.loads(r["metrics_json"]) for r in res}
        return run

    @staticmethod
    def _run(r: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(r)
        d["config"] = json.loads(d.pop("config_json") or "{}")
        d["data_hashes"] = json.loads(d.pop("data_hashes_json") or "{}")
        d["summary"] = json.loads(d.pop("summary_json") or "{}")
        return d
