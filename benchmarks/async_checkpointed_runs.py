"""Async runs on a file checkpointer, and what a large input costs in checkpoint bytes.

Part 1: ``--runs`` concurrent ``ainvoke``s (own thread each) on ``compile(checkpointer="file.db")``.
  ``before``: the checkpointer crossroads used to build for a file, LangGraph's sync ``SqliteSaver``
  (passed as an object, exactly what ``compile`` used to do); ``after``: today's ``compile`` (the
  ``AsyncSqliteSaver`` in async runs). Failures, wall time, checkpoints written.
Part 2: one run of a two-step flow on a ``--big-mb`` input; growth of the checkpoint file(s).
  ``before``: plain ``SqliteSaver`` (every checkpoint and write holds its own copy of the input);
  ``after``: crossroads' checkpointer (large strings stored once by hash).

    python benchmarks/async_checkpointed_runs.py [--runs 1000] [--big-mb 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from crossroads import START, Flow, RulesRouter, agent


def flow(max_input_chars: int | None = 1_000_000) -> Flow:
    f = Flow("ckpt", max_input_chars=max_input_chars)
    f.add(agent("billing", lambda t: f"billing:{t[:40]}"), agent("general", lambda t: f"general:{t[:40]}"),
          agent("review", lambda t: f"reviewed {len(t)} chars"))
    f.route(START, RulesRouter(rules=[{"when": {"keyword": "refund"}, "route": "billing"}], default="general"),
            candidates=["billing", "general"])
    f.edge("billing", "review").edge("general", "review")
    return f


def sync_saver(path: Path):  # type: ignore[no-untyped-def]
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    return SqliteSaver(conn)


async def many(app, n: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = await asyncio.gather(*(app.ainvoke(f"refund order {i}", thread_id=f"t{i}") for i in range(n)),
                               return_exceptions=True)
    wall = time.perf_counter() - t0
    errors = [o for o in out if isinstance(o, BaseException)]
    ok = [o for o in out if not isinstance(o, BaseException) and (o.output or "").startswith("reviewed")]
    first = f"{type(errors[0]).__name__}: {str(errors[0])[:120]}" if errors else None
    if hasattr(app, "aclose"):
        await app.aclose()
    return {"runs": n, "failed": len(errors), "succeeded": len(ok), "wall_s": round(wall, 2), "first_error": first}


def db_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def part1(n: int) -> dict[str, object]:
    res = {}
    with tempfile.TemporaryDirectory() as d:
        app = flow().compile(checkpointer=sync_saver(Path(d) / "before.db"))
        res["before"] = asyncio.run(many(app, n))
    with tempfile.TemporaryDirectory() as d:
        app = flow().compile(checkpointer=str(Path(d) / "after.db"))
        res["after"] = asyncio.run(many(app, n))
        con = sqlite3.connect(str(Path(d) / "after.db"))
        res["after"]["threads_checkpointed"] = con.execute("select count(distinct thread_id) from checkpoints").fetchone()[0]
    return res


def part2(mb: float) -> dict[str, object]:
    big = ("refund " + "x" * 63 + "\n") * int(mb * 1024 * 1024 / 71)
    res: dict[str, object] = {"input_bytes": len(big)}
    for name in ("before", "after"):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"{name}.db"
            f = flow(max_input_chars=None)
            app = f.compile(checkpointer=sync_saver(path) if name == "before" else str(path))
            app.invoke("warm up", thread_id="w")
            base = db_bytes(Path(d))
            t0 = time.perf_counter()
            app.invoke(big, thread_id="big")
            wall = time.perf_counter() - t0
            app.graph.checkpointer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            grew = db_bytes(Path(d)) - base
            res[name] = {"db_growth_mb": round(grew / 1e6, 1), "growth_x_input": round(grew / len(big), 2),
                         "wall_s": round(wall, 2)}
            app.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--big-mb", type=float, default=10.0)
    args = ap.parse_args()
    print(json.dumps({"async_runs": part1(args.runs), "large_input": part2(args.big_mb)}, indent=2))


if __name__ == "__main__":
    main()
