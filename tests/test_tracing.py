"""The trace store: safe opening, batching without loss, redaction."""

import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from crossroads import (
    END,
    START,
    CallUsage,
    Flow,
    SQLRecorder,
    TraceSchemaVersionError,
    TraceStore,
    TraceStoreCorruptError,
    TraceStoreError,
    agent,
    run_cost,
)
from crossroads.errors import TraceStoreForeignError, TraceStoreReadOnlyError
from crossroads.tracing import CallRecord, EventRecord, RunEnd, RunStart, StepRecord
from crossroads.tracing.redact import redact, redact_obj
from crossroads.tracing.schema import HEAD_REVISION, SCHEMA_VERSION
from crossroads.types import TargetResult


def test_fresh_db_gets_schema_version_and_wal(db_path):
    TraceStore(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("select value from cr_meta where key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert conn.execute("select version_num from alembic_version").fetchone() == (HEAD_REVISION,)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_corrupt_file_is_refused_and_left_untouched(db_path):
    garbage = b"this is not a database at all" * 100
    db_path.write_bytes(garbage)
    with pytest.raises(TraceStoreCorruptError, match="not an SQLite database.*move it aside or pass --db"):
        TraceStore(db_path)
    assert db_path.read_bytes() == garbage


def test_damaged_sqlite_body_is_refused(db_path):
    TraceStore(db_path).close()
    data = bytearray(db_path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the magic header, wreck the schema page
    db_path.write_bytes(bytes(data))
    with pytest.raises(TraceStoreCorruptError, match="cannot be read"):
        TraceStore(db_path)


def test_other_schema_version_is_refused(db_path):
    TraceStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("update cr_meta set value='99' where key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(TraceSchemaVersionError, match=f"schema version 99.*writes version {SCHEMA_VERSION}"):
        TraceStore(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("select value from cr_meta").fetchone() == ("99",)  # not overwritten


def test_four_writer_threads_lose_nothing(db_path):
    rec = SQLRecorder(str(db_path))
    rec.record(RunStart(run_id="r", flow="f", thread_id="r", input="x"))
    per_thread = 5000

    def writer(i):
        for j in range(per_thread):
            rec.record(EventRecord(kind="tick", run_id="r", detail={"thread": i, "n": j}))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    store = TraceStore(db_path)
    assert store.count("events") == 4 * per_thread
    assert rec.dropped == 0


def test_one_bad_row_does_not_lose_its_batch(db_path):
    rec = SQLRecorder(str(db_path), flush_interval_s=10)  # everything lands in one batch
    rec.record(RunStart(run_id="r", flow="f", thread_id="r", input="x"))
    rec.record(RunStart(run_id="r", flow="f", thread_id="r", input="dup"))  # primary-key clash
    for i in range(10):
        rec.record(EventRecord(kind="tick", run_id="r", detail={"n": i}))
    with pytest.raises(Exception, match="trace writer failed.*1 trace rows were not written.*crossroads trace recover"):
        rec.flush()
    assert (rec.dropped, rec.spilled) == (0, 1)
    assert TraceStore(db_path).count("events") == 10
    spilled = [json.loads(line) for line in open(str(db_path) + ".spill.jsonl")]
    assert [(s["table"], s["row"]["input"]) for s in spilled] == [("cr_runs", "dup")]


def test_completed_steps_survive_a_failed_run(db_path):
    def boom(t):
        raise RuntimeError("crash")

    flow = Flow("crashy").add(agent("ok", lambda t: "fine"), agent("boom", boom))
    flow.edge(START, "ok").edge("ok", "boom").edge("boom", END)
    rec = SQLRecorder(str(db_path))
    with pytest.raises(RuntimeError):
        flow.compile(recorder=rec).invoke("go")
    rec.close()
    run = TraceStore(db_path).list_runs()[0]
    detail = TraceStore(db_path).get_run(run["id"])
    assert [(s["node"], s["status"]) for s in detail["steps"]] == [("ok", "succeeded"), ("boom", "failed")]
    assert detail["status"] == "failed"


def test_secrets_never_reach_the_trace(db_path, monkeypatch):
    secret_env = "zz-env-secret-value-123456"
    monkeypatch.setenv("MY_SERVICE_API_KEY", secret_env)
    key = "sk-abcdefghijklmnopqrstuvwxyz123456"

    def leaky(text):
        return TargetResult(output=f"used key {key} and Authorization: Bearer abc.def.ghi and {secret_env}",
                            calls=(CallUsage(target="leaky", error=f"401 for api_key={key}"),))

    flow = Flow("leak").add(agent("leaky", leaky))
    rec = SQLRecorder(str(db_path))
    app = flow.compile(recorder=rec)
    app.invoke(f"my password=hunter22 and key {key}", metadata={"api_key": key, "user": "ann"})
    rec.close()
    dump = b"".join(db_path.read_bytes() for _ in [0])
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():
        dump += wal.read_bytes()
    for s in (key.encode(), b"hunter22", b"abc.def.ghi", secret_env.encode()):
        assert s not in dump
    run = TraceStore(db_path).get_run(TraceStore(db_path).list_runs()[0]["id"])
    assert {k: v for k, v in run["metadata"].items() if k != "graph_mermaid"} == {"api_key": "[REDACTED]", "user": "ann"}
    assert "[REDACTED]" in run["steps"][0]["output_summary"]


def test_redact_helpers():
    assert redact("token: abcdefgh123") == "token: [REDACTED]"
    assert redact("nothing secret here") == "nothing secret here"
    assert redact_obj({"headers": {"Authorization": "Basic xyz"}, "n": 1}) == {"headers": {"Authorization": "[REDACTED]"}, "n": 1}


def test_run_id_prefix_lookup_and_unknown_run(db_path):
    rec = SQLRecorder(str(db_path))
    res = Flow("p").add(agent("a", lambda t: t)).compile(recorder=rec).invoke("x")
    rec.close()
    store = TraceStore(db_path)
    assert store.get_run(res.run_id[:8])["id"] == res.run_id
    with pytest.raises(Exception, match="no run 'zzzz'"):
        store.get_run("zzzz")


def test_step_record_latency_and_kind(db_path):
    rec = SQLRecorder(str(db_path))
    rec.record(RunStart(run_id="r", flow="f", thread_id="r", input="x"))
    rec.record(StepRecord(run_id="r", node="n", kind="tool", started_at=1.0, ended_at=1.5))
    rec.close()
    (step,) = TraceStore(db_path).get_run("r")["steps"]
    assert step["latency_ms"] == pytest.approx(500.0) and step["kind"] == "tool"


# -- migrations -------------------------------------------------------------------------------------
V1_FIXTURE = Path(__file__).parent / "data" / "trace_v1.db"  # written by tests/data/make_trace_v1.py at b7ae448


def _counts(path):
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table' order by name")]
        return {t: conn.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables if t != "alembic_version"}
    finally:
        conn.close()


def test_v1_db_is_upgraded_in_place_with_a_backup_and_no_row_lost(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(V1_FIXTURE, db)
    before = _counts(db)
    assert before["cr_runs"] == 5 and before["cr_steps"] == 5 and before["checkpoints"] > 0
    store = TraceStore(db)
    rep = store.upgraded
    assert (rep.from_version, rep.to_version) == (1, SCHEMA_VERSION)
    backup = tmp_path / "old.db.v1.bak"
    assert rep.backup == str(backup)
    assert _counts(backup) == before  # the backup is the v1 file as it was
    assert sqlite3.connect(backup).execute("select value from cr_meta").fetchone() == ("1",)
    after = _counts(db)
    assert {t: after[t] for t in before} == before and after["cr_spill_imports"] == 0
    assert rep.rows_before == {t: n for t, n in before.items() if t.startswith("cr_") or t in ("checkpoints", "writes")}
    assert rep.rows_after == {**rep.rows_before, "cr_spill_imports": 0}
    conn = sqlite3.connect(db)
    assert conn.execute("select version_num from alembic_version").fetchone() == (HEAD_REVISION,)
    assert conn.execute("select value from cr_meta").fetchone() == (str(SCHEMA_VERSION),)
    failed = [r for r in store.list_runs() if r["status"] == "failed"]
    assert [r["error"] for r in failed] == ["RuntimeError: flaky failed once"]
    support = [r for r in store.list_runs(flow="support")]
    assert sorted(r["cost_usd"] for r in support) == [0.25, 0.25, 0.5, 0.5]
    assert TraceStore(db).upgraded is None  # at head now: nothing to do


def test_read_only_open_of_a_v1_db_reads_it_and_changes_nothing(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(V1_FIXTURE, db)
    raw = db.read_bytes()
    store = TraceStore(db, read_only=True)
    assert len(store.list_runs()) == 5
    assert store.get_run(store.list_runs(flow="flaky")[0]["id"])["steps"][0]["status"] == "failed"
    assert db.read_bytes() == raw and not (tmp_path / "old.db.v1.bak").exists()


def test_migrations_create_exactly_the_models(db_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlmodel import SQLModel

    from crossroads.tracing.migrate import MIGRATIONS_DIR, alembic_config

    store = TraceStore(db_path)
    with store.engine.connect() as conn:
        assert ScriptDirectory.from_config(alembic_config(conn)).get_current_head() == HEAD_REVISION
        ctx = MigrationContext.configure(conn)
        diffs = [d for d in compare_metadata(ctx, SQLModel.metadata)
                 if "cr_" in str(d) and "checkpoints" not in str(d)]
    assert diffs == []
    assert (MIGRATIONS_DIR / "versions" / "0001_schema_v1.py").exists()


def test_downgrade_to_v1_and_upgrade_again_keeps_rows(tmp_path):
    from alembic import command

    from crossroads.tracing.migrate import alembic_config

    db = tmp_path / "t.db"
    shutil.copy(V1_FIXTURE, db)
    TraceStore(db).close()
    store = TraceStore(db)
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    assert "cr_spill_imports" not in _counts(db)
    assert sqlite3.connect(db).execute("select value from cr_meta").fetchone() == ("1",)
    again = TraceStore(db)
    assert again.upgraded.from_version == 1 and _counts(db)["cr_runs"] == 5


# -- first open race --------------------------------------------------------------------------------
def _open_at_barrier(path, barrier, results, i):
    barrier.wait()
    try:
        rec = SQLRecorder(TraceStore(path))
        rec.record(RunStart(run_id=f"run-{i}", flow="race", thread_id=f"t{i}", input="x"))
        rec.close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001
        results.put(f"{type(exc).__name__}: {exc}")


def test_twelve_processes_opening_a_fresh_db_at_once_all_succeed(tmp_path):
    ctx = mp.get_context("fork")
    for rnd in range(2):
        path = str(tmp_path / f"race{rnd}.db")
        barrier, results = ctx.Barrier(12), ctx.Queue()
        procs = [ctx.Process(target=_open_at_barrier, args=(path, barrier, results, i)) for i in range(12)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        assert outcomes == ["ok"] * 12
        assert sqlite3.connect(path).execute("select count(*) from cr_runs").fetchone() == (12,)


# -- answers and rows never lost --------------------------------------------------------------------
def test_lone_surrogates_in_any_field_never_break_the_writer(db_path):
    rec = SQLRecorder(str(db_path))
    bad = "caf\udce9 \ud83d\ude00"  # an undecodable byte (surrogateescape) and a split surrogate pair
    rec.record(RunStart(run_id="r", flow=f"f{bad}", thread_id="t", input=bad, metadata={"k": bad}))
    rec.record(StepRecord(run_id="r", node=bad, started_at=1.0, ended_at=2.0, input_summary=bad, output_summary=bad))
    rec.record(EventRecord(kind="tick", run_id="r", target=bad, detail={"x": bad}))
    rec.record(CallRecord(run_id="r", usage=CallUsage(target=bad, model=bad)))
    rec.flush()
    rec.close()
    assert (rec.dropped, rec.spilled) == (0, 0)
    run = TraceStore(db_path).get_run("r")
    assert run["input"] == "caf\ufffd \U0001f600" and run["flow"] == "fcaf\ufffd \U0001f600"
    assert run["steps"][0]["node"] == "caf\ufffd \U0001f600" and run["calls"][0]["target"] == "caf\ufffd \U0001f600"
    assert run["events"][0]["detail"] == {"x": "caf\udce9 \U0001f600"}  # JSON keeps the lone one as an escape


def _hold_lock(db, seconds, ready):
    conn = sqlite3.connect(db, timeout=5, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_db_locked_past_the_busy_timeout_is_retried_not_dropped(db_path):
    store = TraceStore(db_path, busy_timeout_s=0.05)
    rec = SQLRecorder(store, lock_retry_s=60)
    rec.record(RunStart(run_id="r", flow="f", thread_id="t", input="x"))
    rec.flush()
    ready = threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(str(db_path), 1.0, ready))
    locker.start()
    ready.wait()
    for i in range(50):
        rec.record(EventRecord(kind="tick", run_id="r", detail={"n": i}))
    rec.flush()  # no error: the writer waited out the lock
    locker.join()
    assert (store.count("events"), rec.spilled, rec.dropped) == (50, 0, 0)


def test_a_lock_past_the_retry_budget_spills_then_recover_imports_once(db_path):
    store = TraceStore(db_path, busy_timeout_s=0.05)
    rec = SQLRecorder(store, lock_retry_s=0.2)
    rec.record(RunStart(run_id="r", flow="f", thread_id="t", input="x"))
    rec.flush()
    ready = threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(str(db_path), 1.5, ready))
    locker.start()
    ready.wait()
    for i in range(30):
        rec.record(EventRecord(kind="tick", run_id="r", detail={"n": i}))
    rec.record(RunEnd(run_id="r", status="succeeded", output="the answer"))
    with pytest.raises(TraceStoreError, match=r"31 trace rows were not written .*locked.*spill\.jsonl.*crossroads trace recover"):
        rec.flush()
    locker.join()
    assert (rec.spilled, rec.dropped, store.count("events")) == (31, 0, 0)
    res = store.recover()
    assert (res["imported"], res["skipped"]) == (31, 0)
    run = store.get_run("r")
    assert len(run["events"]) == 30 and (run["status"], run["output"]) == ("succeeded", "the answer")
    assert not store.spill_path.exists()
    (archived,) = db_path.parent.glob("trace.db.spill.jsonl.recovered-*")
    assert store.recover(archived) == {"spill": str(archived), "imported": 0, "skipped": 31}  # idempotent
    assert store.count("events") == 30


def test_resumed_run_that_succeeds_clears_its_old_error(db_path):
    calls = {"n": 0}

    def flaky(text):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt works"

    flow = Flow("flaky").add(agent("step", flaky))
    rec = SQLRecorder(str(db_path))
    app = flow.compile(recorder=rec, checkpointer="memory")
    with pytest.raises(RuntimeError):
        app.invoke("go", thread_id="th")
    rec.flush()
    run_id = TraceStore(db_path).list_runs()[0]["id"]
    assert TraceStore(db_path).get_run(run_id)["error"] == "RuntimeError: first attempt fails"
    res = app.resume("th")
    rec.flush()
    run = TraceStore(db_path).get_run(run_id)
    assert (res.status, run["status"], run["error"], run["output"]) == ("succeeded", "succeeded", None, "second attempt works")


# -- files crossroads must not touch ----------------------------------------------------------------
def test_another_applications_sqlite_file_is_refused_untouched(tmp_path):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("create table users (id integer primary key, name text)")
    conn.execute("insert into users (name) values ('ann')")
    conn.commit()
    conn.close()
    raw = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(TraceStoreForeignError, match="another application.*users.*left untouched"):
            TraceStore(db, read_only=read_only)
    assert db.read_bytes() == raw  # no tables added, journal mode not switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_read_only_commands_never_create_a_db_or_a_folder(tmp_path):
    missing = tmp_path / "sub" / "trace.db"
    with pytest.raises(TraceStoreError, match="no trace DB at .*nothing was created"):
        TraceStore(missing, read_only=True)
    assert not (tmp_path / "sub").exists()


@pytest.fixture
def read_only_file():
    """Make a file read-only for this process: chmod for a normal user, the immutable attribute for root."""
    made = []

    def make(path):
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
            made.append(path)
        else:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("cannot make a file read-only for root here (no chattr +i)")
            made.append(path)

    yield make
    for p in reversed(made):
        if os.geteuid() != 0:
            p.chmod(0o755 if p.is_dir() else 0o644)
        else:
            subprocess.run(["chattr", "-i", str(p)], check=False)


def test_read_only_db_gets_a_clear_error_and_reads_still_work(db_path, read_only_file):
    rec = SQLRecorder(str(db_path))
    Flow("ro").add(agent("a", lambda t: "answer")).compile(recorder=rec).invoke("q")
    rec.close()
    rec.store.close()
    read_only_file(db_path)
    with pytest.raises(TraceStoreReadOnlyError, match="is read-only.*reading it still works.*--no-trace"):
        TraceStore(db_path)
    assert [r["output"] for r in TraceStore(db_path, read_only=True).list_runs()] == ["answer"]
    for suffix in ("-wal", "-shm"):  # left by the read-only reader (it may not delete them); empty
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    read_only_file(db_path.parent)  # a read-only folder too: SQLite cannot create its WAL index there
    with pytest.raises(TraceStoreReadOnlyError):
        TraceStore(db_path)
    assert [r["output"] for r in TraceStore(db_path, read_only=True).list_runs()] == ["answer"]


def test_in_memory_url_gets_the_schema_on_its_one_connection():
    store = TraceStore("sqlite://")
    rec = SQLRecorder(store)
    rec.record(RunStart(run_id="m", flow="f", thread_id="t", input="x"))
    rec.flush()
    assert store.get_run("m")["input"] == "x"


# -- cost -------------------------------------------------------------------------------------------
def test_run_cost_is_targets_plus_routers_the_same_in_list_and_show(db_path):
    from crossroads.routers.base import Router
    from crossroads.types import Decision

    class PaidRouter(Router):
        def route(self, ctx):
            return Decision(targets=("a",), scores={"a": 1.0, "b": 0.0}, cost_usd=0.0003, router=self.label)

    def a(text):
        return TargetResult(output="a", calls=(CallUsage(target="a", cost_usd=0.1),))

    def b(text):
        return TargetResult(output="b", calls=(CallUsage(target="b", cost_usd=0.2),))

    flow = Flow("paid").add(agent("a", a), agent("b", b)).edge("a", "b").edge("b", END)
    flow.route(START, PaidRouter(), candidates=["a", "b"])
    rec = SQLRecorder(str(db_path))
    result = flow.compile(recorder=rec).invoke("q")
    rec.close()
    store = TraceStore(db_path)
    listed = store.list_runs()[0]["cost_usd"]
    shown = store.get_run(result.run_id)["cost_usd"]
    assert listed == shown == run_cost([0.1, 0.2], [0.0003]) == pytest.approx(0.3003, abs=1e-15)
    assert result.cost_usd == pytest.approx(listed, abs=1e-15)  # RunResult sums the same parts in graph order
    assert f"{listed:.6f}" == f"{result.cost_usd:.6f}" == "0.300300"
