"""1,000 concurrent async runs of the quickstart flow: wall time, peak memory, and the trace.

Baseline in the same run: the same 1,000 requests run one after another (sync invoke).

    python benchmarks/concurrent_runs.py [--runs 1000] [--no-trace]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from crossroads import SQLRecorder, TraceStore, load_flow

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["what is 12 * (3 + 4)?", "convert 5 km to miles", "where are traces stored?", "100 F to C",
           "which routers are built in?", "2 ** 10 + 1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--no-trace", action="store_true")
    args = ap.parse_args()
    queries = [QUERIES[i % len(QUERIES)] for i in range(args.runs)]
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "conc.db"
        rec = None if args.no_trace else SQLRecorder(str(db))
        app = load_flow(str(ROOT / "examples" / "quickstart.yaml")).compile(recorder=rec)

        t0 = time.perf_counter()
        for q in queries:
            app.invoke(q)
        if rec:
            rec.flush()
        sequential = time.perf_counter() - t0

        async def all_runs():
            return await asyncio.gather(*(app.ainvoke(q) for q in queries))

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t1 = time.perf_counter()
        results = asyncio.run(all_runs())
        if rec:
            rec.flush()
        concurrent = time.perf_counter() - t1
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ok = sum(1 for r in results if r.status == "succeeded")
        runs_in_db = TraceStore(db).count("runs") if rec else 0
        if rec:
            rec.close()
    result = {"runs": args.runs, "succeeded": ok, "concurrent_s": round(concurrent, 3),
              "sequential_s": round(sequential, 3), "ratio_concurrent_vs_sequential": round(concurrent / sequential, 3),
              "runs_per_s": round(args.runs / concurrent), "max_rss_growth_mb": round(rss_after - rss_before, 1),
              "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "runs_in_trace": runs_in_db, "traced": rec is not None}
    print(f"{args.runs} concurrent async runs: {concurrent:.2f} s ({args.runs / concurrent:,.0f} runs/s), "
          f"sequential baseline {sequential:.2f} s, ratio {concurrent / sequential:.2f}x; "
          f"max RSS grew {rss_after - rss_before:.1f} MB during the concurrent runs, max RSS {result['process_max_rss_mb']} MB; "
          f"{ok} succeeded, {runs_in_db} runs in trace")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
