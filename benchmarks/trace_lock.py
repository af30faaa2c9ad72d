"""Runs lost to a locked trace DB: another process holds the DB's write lock longer than the busy timeout
while a flow keeps running and recording.

Issue 10 measured 1 of 50 runs lost under a 35 s lock (busy timeout 10 s). Scaled down by default: busy
timeout 0.5 s, a 3 s lock taken after the 10th run, 50 runs of a one-step flow (runs are ~50 ms apart).
A run is lost when its run row, step row or final status is missing after the recorder is flushed
(and, where the store has it, after ``recover()`` imported the spill file).

    python benchmarks/trace_lock.py [--runs 50] [--lock-s 3] [--busy-ms 500]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sqlite3
import tempfile
import time
from pathlib import Path

import crossroads.tracing.store as store_mod
from crossroads import Flow, SQLRecorder, TraceStore, agent


def _hold(path: str, seconds: float, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--lock-s", type=float, default=3.0)
    ap.add_argument("--busy-ms", type=int, default=500)
    args = ap.parse_args()
    store_mod.SQLITE_BUSY_TIMEOUT_MS = args.busy_ms  # both the old and the new store read it when opening
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as d:
        db = str(Path(d) / "locked.db")
        store = TraceStore(db)
        rec = SQLRecorder(store)
        app = Flow("locked").add(agent("answer", lambda t: f"answer to {t}")).compile(recorder=rec)
        ids, errors = [], 0
        t0 = time.perf_counter()
        locker = None
        for i in range(args.runs):
            if i == 10:
                ready = ctx.Event()
                locker = ctx.Process(target=_hold, args=(db, args.lock_s, ready))
                locker.start()
                ready.wait()
            ids.append(app.invoke(f"q{i}").run_id)
            time.sleep(0.05)
        try:
            rec.flush()
        except Exception as exc:  # noqa: BLE001 - counted
            errors += 1
            print(f"flush: {type(exc).__name__}: {str(exc)[:200]}")
        rec.close()
        if locker is not None:
            locker.join()
        recovered = 0
        if hasattr(store, "recover"):
            recovered = store.recover()["imported"]
        elapsed = time.perf_counter() - t0
        conn = sqlite3.connect(db)
        complete = 0
        for rid in ids:
            run = conn.execute("select status from cr_runs where id=?", (rid,)).fetchone()
            steps = conn.execute("select count(*) from cr_steps where run_id=?", (rid,)).fetchone()[0]
            complete += bool(run and run[0] == "succeeded" and steps == 1)
        dropped = getattr(rec, "dropped", 0)
        spilled = getattr(rec, "spilled", 0)
    lost = args.runs - complete
    print(f"{lost} of {args.runs} runs lost under a {args.lock_s:g} s lock (busy timeout {args.busy_ms} ms); "
          f"rows dropped {dropped}, spilled {spilled}, recovered {recovered}; {elapsed:.1f} s")
    print(json.dumps({"runs": args.runs, "runs_lost": lost, "lock_s": args.lock_s, "busy_timeout_ms": args.busy_ms,
                      "rows_dropped": dropped, "rows_spilled": spilled, "rows_recovered": recovered,
                      "flush_errors": errors, "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
