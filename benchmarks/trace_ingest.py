"""Trace ingest: events/s written to SQLite by 4 concurrent writer threads, and rows lost.

Baseline in the same run: one thread doing plain sqlite3 executemany of the same rows (the floor
any recorder pays). Target: >= 40,000 events/s through SQLRecorder with zero rows lost.

    python benchmarks/trace_ingest.py [--events 200000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from crossroads.tracing import EventRecord, RunStart, SQLRecorder, TraceStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    per = args.events // args.threads
    total = per * args.threads
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "ingest.db"
        rec = SQLRecorder(str(db))
        rec.record(RunStart(run_id="bench", flow="ingest", thread_id="bench", input=""))
        rec.flush()

        def writer(i: int) -> None:
            for j in range(per):
                rec.record(EventRecord(kind="reroute", run_id="bench", target=f"t{j % 7}", detail={"w": i, "n": j}))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(args.threads)]
        t0 = time.perf_counter()
        c0 = time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec.flush()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        rec.close()
        stored = TraceStore(db).count("events")

        raw_db = Path(d) / "raw.db"
        conn = sqlite3.connect(raw_db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("create table ev (kind text, run_id text, target text, detail_json text, created_at real)")
        rows = [("reroute", "bench", f"t{j % 7}", json.dumps({"w": 0, "n": j}), time.time()) for j in range(total)]
        t1 = time.perf_counter()
        for k in range(0, total, 2000):
            conn.executemany("insert into ev values (?,?,?,?,?)", rows[k:k + 2000])
            conn.commit()
        raw_elapsed = time.perf_counter() - t1
    rate = total / elapsed
    raw_rate = total / raw_elapsed
    result = {"events": total, "threads": args.threads, "seconds": round(elapsed, 3), "events_per_s": round(rate),
              "rows_lost": total - stored, "raw_sqlite_events_per_s": round(raw_rate),
              "ratio_vs_raw_sqlite": round(rate / raw_rate, 3), "target_events_per_s": 40_000,
              "cpu_s": round(cpu, 3), "events_per_cpu_s": round(total / cpu)}
    print(f"{total} events from {args.threads} threads in {elapsed:.2f} s: {rate:,.0f} events/s, {total - stored} lost "
          f"(target >= 40,000/s, 0 lost)")
    print(f"CPU time of the whole process {cpu:.2f} s: {total / cpu:,.0f} events per CPU-second (less sensitive to a loaded machine)")
    print(f"baseline raw sqlite3 executemany (1 thread, pre-built rows): {raw_rate:,.0f} rows/s; ratio {rate / raw_rate:.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
