"""Create or upgrade a trace DB's schema with Alembic: once, under the database's write lock, backup first.

Opening a trace DB for writing goes through :func:`ensure_schema`:

* a quick look without writing (read-only connection) classifies the file: fresh, at head, older (upgrade),
  newer (refused), another application's SQLite file (refused untouched) or damaged (refused);
* creation and upgrades run inside one ``BEGIN IMMEDIATE`` transaction, and the file is classified again
  inside it, so twelve processes opening a fresh file at once create the schema exactly once and none of
  them sees a half-made schema;
* before an upgrade the file is copied to ``<db>.v<N>.bak`` (SQLite's online backup API) and the rows of
  every table are counted before and after: a count that changed rolls the upgrade back.

Migrations live in ``crossroads/tracing/migrations`` (revision 0001 = schema v1, frozen) and are written
with Alembic's dialect-neutral operations.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import NullPool

from ..errors import TraceSchemaVersionError, TraceStoreCorruptError, TraceStoreError, TraceStoreForeignError
from .schema import HEAD_REVISION, SCHEMA_VERSION

__all__ = ["MIGRATIONS_DIR", "DbState", "UpgradeReport", "classify", "ensure_schema", "peek_sqlite"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LANGGRAPH_TABLES = frozenset({"checkpoints", "writes"})
"""LangGraph's SqliteSaver tables: a file holding only these is a checkpoint file crossroads may add to."""
V1_TABLES = frozenset({"cr_meta", "cr_runs", "cr_steps", "cr_decisions", "cr_calls", "cr_events", "cr_eval_runs",
                       "cr_eval_results"})
HEAD_TABLES = V1_TABLES | {"cr_spill_imports"}
DB_ENV_VAR = "CROSSROADS_DB"


@dataclass(frozen=True)
class DbState:
    """What a look at a database found."""

    tables: frozenset[str]
    schema_version: int | None = None
    """``cr_meta.schema_version``; ``None`` when there is no cr_meta table."""
    revision: str | None = None
    """Alembic's ``alembic_version``; ``None`` for a v1 DB (written before migrations existed)."""
    meta_row_missing: bool = False


@dataclass
class UpgradeReport:
    """What an upgrade did: versions, the backup, and the row counts of every table before and after."""

    path: str
    from_version: int
    to_version: int
    backup: str | None
    rows_before: dict[str, int] = field(default_factory=dict)
    rows_after: dict[str, int] = field(default_factory=dict)


def _where(path: Path | None, url: str) -> str:
    return str(path) if path is not None else url


def classify(state: DbState | None, where: str) -> str:
    """``fresh`` (create), ``head`` (nothing to do) or ``upgrade``; raises for files crossroads must not touch."""
    if state is None:
        return "fresh"
    tables = state.tables
    ours = {t for t in tables if t.startswith("cr_")}
    if "cr_meta" not in tables:
        if ours:
            raise TraceStoreCorruptError(
                f"trace DB {where} has crossroads tables but no cr_meta; move it aside or use --db")
        foreign = sorted(t for t in tables if t not in LANGGRAPH_TABLES and not t.startswith("sqlite_"))
        if foreign:
            shown = ", ".join(foreign[:6]) + (", ..." if len(foreign) > 6 else "")
            raise TraceStoreForeignError(
                f"{where} is an SQLite database of another application (tables: {shown}), not a crossroads trace "
                f"DB; it was left untouched. Pass --db / set {DB_ENV_VAR} to a new file")
        return "fresh"
    if state.meta_row_missing or state.schema_version is None:
        raise TraceStoreCorruptError(
            f"trace DB {where} has a cr_meta table without a schema_version; it was not written by crossroads "
            "or is damaged. Move it aside or use --db")
    found = state.schema_version
    if found > SCHEMA_VERSION:
        raise TraceSchemaVersionError(
            f"trace DB {where} has schema version {found}, this crossroads writes version {SCHEMA_VERSION}; "
            f"use a crossroads release that matches, or point --db / {DB_ENV_VAR} at a new file "
            "(the existing file is left untouched)")
    if found == SCHEMA_VERSION and state.revision == HEAD_REVISION:
        missing = HEAD_TABLES - tables
        if missing:
            raise TraceStoreCorruptError(f"trace DB {where} lacks tables {sorted(missing)}; move it aside or use --db")
        return "head"
    if found == 1 and state.revision is None:
        missing = V1_TABLES - tables
        if missing:
            raise TraceStoreCorruptError(f"trace DB {where} lacks tables {sorted(missing)}; move it aside or use --db")
        return "upgrade"
    if state.revision is not None and found < SCHEMA_VERSION:
        return "upgrade"
    raise TraceStoreCorruptError(
        f"trace DB {where} says schema version {found} but migration revision {state.revision!r}; it is damaged "
        "or was edited by hand. Move it aside or use --db")


def _sqlite_uri(path: Path, mode: str = "ro") -> str:
    return f"{path.as_uri()}?mode={mode}" if mode != "immutable" else f"{path.as_uri()}?immutable=1"


def connect_read_only(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A read-only connection that never creates the file; falls back to ``immutable`` when the file and its
    folder are read-only (SQLite cannot create the WAL index there)."""
    conn = sqlite3.connect(_sqlite_uri(path, "ro"), uri=True, timeout=timeout_s, check_same_thread=False)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc) or os.access(path.parent, os.W_OK):
            raise
    return sqlite3.connect(_sqlite_uri(path, "immutable"), uri=True, timeout=timeout_s, check_same_thread=False)


def peek_sqlite(path: Path, timeout_s: float) -> DbState | None:
    """Look at a SQLite file through a read-only connection (writes nothing); ``None`` if missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = connect_read_only(path, timeout_s)
    except sqlite3.DatabaseError as exc:
        if is_contention(exc):
            raise
        raise _unreadable(str(path), exc) from exc
    try:
        return _state_from_dbapi(conn)
    except sqlite3.DatabaseError as exc:
        if is_contention(exc):
            raise
        raise _unreadable(str(path), exc) from exc
    finally:
        conn.close()


def is_contention(exc: BaseException) -> bool:
    """SQLite's "database is locked"/"busy": another process holds the file, it is not damaged."""
    orig = getattr(exc, "orig", None)
    msg = str(orig if orig is not None else exc).lower()
    return isinstance(exc, (sqlite3.OperationalError, OperationalError)) and ("locked" in msg or "busy" in msg)


def _state_from_dbapi(conn: sqlite3.Connection) -> DbState:
    tables = frozenset(r[0] for r in conn.execute("select name from sqlite_master where type='table'"))
    version: int | None = None
    missing = False
    revision = None
    if "cr_meta" in tables:
        row = conn.execute("select value from cr_meta where key='schema_version'").fetchone()
        missing = row is None
        version = None if row is None else int(row[0])
    if "alembic_version" in tables:
        rev = conn.execute("select version_num from alembic_version").fetchone()
        revision = None if rev is None else str(rev[0])
    return DbState(tables=tables, schema_version=version, revision=revision, meta_row_missing=missing)


def read_state(conn: Connection) -> DbState:
    """The same look through an SQLAlchemy connection (any dialect)."""
    tables = frozenset(inspect(conn).get_table_names())
    version: int | None = None
    missing = False
    revision = None
    if "cr_meta" in tables:
        row = conn.execute(text("select value from cr_meta where key = 'schema_version'")).first()
        missing = row is None
        version = None if row is None else int(row[0])
    if "alembic_version" in tables:
        rev = conn.execute(text("select version_num from alembic_version")).first()
        revision = None if rev is None else str(rev[0])
    if not tables:
        return DbState(tables=tables)
    return DbState(tables=tables, schema_version=version, revision=revision, meta_row_missing=missing)


def _unreadable(where: str, exc: BaseException) -> TraceStoreCorruptError:
    reason = getattr(exc, "orig", None) or exc
    return TraceStoreCorruptError(
        f"trace DB {where} cannot be read ({reason}); it is not a crossroads trace database or is damaged. "
        f"Move it aside or pass --db / set {DB_ENV_VAR} to another file")


def alembic_config(conn: Connection) -> Any:
    """An Alembic config that runs the shipped migrations on ``conn`` (no alembic.ini)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def _counts(conn: Connection, tables: frozenset[str]) -> dict[str, int]:
    keep = sorted(t for t in tables if t.startswith("cr_") or t in LANGGRAPH_TABLES)
    return {t: int(conn.execute(text(f'select count(*) from "{t}"')).scalar_one()) for t in keep}


def _backup_sqlite(path: Path, version: int, timeout_s: float) -> Path:
    """Copy the committed state of ``path`` to ``<db>.v<version>.bak`` through SQLite's backup API (a reader:
    it runs while this process holds the write lock, and no other writer can change the file meanwhile)."""
    dest = path.with_name(f"{path.name}.v{version}.bak")
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = connect_read_only(path, timeout_s)
    try:
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            out.close()
    finally:
        src.close()
    os.replace(tmp, dest)
    return dest


def _locking_engine(url: str, timeout_s: float) -> Any:
    if not url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool,
                           connect_args={"isolation_level": None, "timeout": timeout_s, "check_same_thread": False})

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:  # take SQLite's write lock before looking
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


SCHEMA_LOCK_WAIT_S = 120.0
"""How long opening waits in all for another process that is creating or upgrading the schema."""


def ensure_schema(url: str, path: Path | None, *, timeout_s: float, state: DbState | None = None,
                  peeked: bool = False, engine: Any = None) -> UpgradeReport | None:
    """Bring the DB at ``url`` to the head revision; returns a report when an upgrade ran.

    ``state``/``peeked``: a look already taken without the lock (skips the lock when the DB is at head).
    ``engine``: run on this engine instead of a locking one (an in-memory DB lives on its one connection).
    Another process creating or upgrading the schema holds the write lock for as long as that takes (an
    upgrade copies the file first): the lock is waited for up to :data:`SCHEMA_LOCK_WAIT_S`, not only
    one busy timeout.
    """
    deadline = time.monotonic() + max(SCHEMA_LOCK_WAIT_S, timeout_s)
    while True:
        try:
            return _ensure_schema_once(url, path, timeout_s=timeout_s, state=state, peeked=peeked, engine=engine)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not is_contention(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            if path is not None:  # look again: the other process may have finished the job
                state, peeked = peek_sqlite(path, timeout_s), True


def _ensure_schema_once(url: str, path: Path | None, *, timeout_s: float, state: DbState | None = None,
                  peeked: bool = False, engine: Any = None) -> UpgradeReport | None:
    where = _where(path, url)
    if peeked and classify(state, where) == "head":
        return None
    if path is not None and state is None:  # a new file is ours: WAL first, so readers never block the creator
        conn0 = sqlite3.connect(path, timeout=timeout_s)
        try:
            conn0.execute("PRAGMA journal_mode=WAL")
        finally:
            conn0.close()
    own_engine = engine is None
    engine = engine if engine is not None else _locking_engine(url, timeout_s)
    report: UpgradeReport | None = None
    try:
        with engine.connect() as conn:
            try:
                with conn.begin():
                    now = read_state(conn)
                    action = classify(None if not now.tables else now, where)
                    if action == "head":
                        return None
                    from alembic import command  # only the process that creates or upgrades pays for it

                    cfg = alembic_config(conn)
                    if action == "fresh":
                        command.upgrade(cfg, "head")
                        return None
                    old = int(now.schema_version or 1)
                    before = _counts(conn, now.tables)
                    backup = _backup_sqlite(path, old, timeout_s) if path is not None else None
                    if now.revision is None:
                        command.stamp(cfg, "0001")
                    command.upgrade(cfg, "head")
                    after = _counts(conn, read_state(conn).tables)
                    lost = {t: (n, after.get(t, 0)) for t, n in before.items() if after.get(t, 0) != n}
                    if lost:
                        raise TraceStoreError(
                            f"upgrading trace DB {where} changed row counts {lost}; the upgrade was rolled back "
                            f"and the file is unchanged (backup: {backup})")
                    report = UpgradeReport(path=where, from_version=old, to_version=SCHEMA_VERSION,
                                           backup=str(backup) if backup else None, rows_before=before,
                                           rows_after=after)
            except (TraceStoreError, OSError):
                raise
            except DatabaseError as exc:
                if is_contention(exc) or "readonly" in str(exc.orig).lower():
                    raise  # contention or permissions, not damage: the caller says which
                raise _unreadable(where, exc) from exc
    finally:
        if own_engine:
            engine.dispose()
    return report


def count_rows(conn: Connection) -> Mapping[str, int]:
    """Row counts of crossroads' and LangGraph's tables (for reports)."""
    return _counts(conn, read_state(conn).tables)
