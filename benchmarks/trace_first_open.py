"""First-open race: N processes open the same fresh trace DB at the same instant, R rounds.

Each process waits on a barrier, then opens ``TraceStore(path)`` (creating the schema if it is the first)
and writes one run through ``SQLRecorder``. Reports failures by error type and rows expected vs stored.
Issue 10 measured 19 of 72 opens failing (12 processes x 6 rounds) with a false "corrupt DB" error.

    python benchmarks/trace_first_open.py [--procs 12] [--rounds 6]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import sqlite3
import tempfile
import time
from pathlib import Path

from crossroads.tracing import RunStart, SQLRecorder, TraceStore


def _open(path: str, barrier: mp.synchronize.Barrier, results: mp.queues.Queue, i: int) -> None:  # type: ignore[name-defined]
    barrier.wait()
    try:
        rec = SQLRecorder(TraceStore(path))
        rec.record(RunStart(run_id=f"run-{i}", flow="race", thread_id=f"t{i}", input="x"))
        rec.close()
        results.put((i, "ok", ""))
    except Exception as exc:  # noqa: BLE001 - counted, not raised
        results.put((i, type(exc).__name__, str(exc)[:160]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    failures: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    stored = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            path = str(Path(d) / f"race{r}.db")
            barrier = ctx.Barrier(args.procs)
            results = ctx.Queue()
            procs = [ctx.Process(target=_open, args=(path, barrier, results, i)) for i in range(args.procs)]
            for p in procs:
                p.start()
            outcomes = [results.get(timeout=120) for _ in procs]
            for p in procs:
                p.join()
            for _, kind, msg in outcomes:
                if kind != "ok":
                    failures[kind] += 1
                    examples.setdefault(kind, msg)
            try:
                stored += sqlite3.connect(path).execute("select count(*) from cr_runs").fetchone()[0]
            except sqlite3.Error:
                pass
    total = args.procs * args.rounds
    print(f"{sum(failures.values())} of {total} opens failed ({args.procs} processes x {args.rounds} rounds, "
          f"{time.perf_counter() - t0:.1f} s); runs stored {stored} of {total}")
    for kind, n in failures.items():
        print(f"  {n} x {kind}: {examples[kind]}")
    print(json.dumps({"opens": total, "failed": sum(failures.values()), "by_error": dict(failures),
                      "runs_expected": total, "runs_stored": stored}))


if __name__ == "__main__":
    main()
