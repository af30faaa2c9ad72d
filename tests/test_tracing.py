"""The trace store: safe opening, batching without loss, redaction."""

import json
import sqlite3
import threading

import pytest

from crossroads import (
    END,
    START,
    CallUsage,
    Flow,
    RulesRouter,
    SQLRecorder,
    TraceSchemaVersionError,
    TraceStore,
    TraceStoreCorruptError,
    agent,
)
from crossroads.tracing import EventRecord, RunStart, StepRecord
from crossroads.tracing.schema import HEAD_REVISION, SCHEMA_VERSION
from crossroads.tracing.redact import redact, redact_obj
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
    assert run["metadata"] == {"api_key": "[REDACTED]", "user": "ann"}
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
