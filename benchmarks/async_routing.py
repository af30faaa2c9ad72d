"""Blocking routers off the event loop: 20 concurrent ``ainvoke``s through a router that blocks 50 ms.

Variants, all in the same run (same flow, same router work):
- ``sequential``: the 20 runs one after another (the floor for work that cannot overlap: 20 x 50 ms);
- ``on-loop``: 20 concurrent runs with the router deciding on the event loop (``blocking = False``,
  what every sync router did before): the loop is held for each decision, so they serialise;
- ``off-loop``: 20 concurrent runs with the default ``Router.aroute`` (a worker thread per decision);
- ``floor``: the same 20 concurrent runs with a router that does not block (0 ms): the framework's own
  cost on this machine, which off-loop adds the 50 ms wait to.

    python benchmarks/async_routing.py [--runs 20] [--router-ms 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from crossroads import START, Flow, Router, agent


class Blocking(Router):
    """Stands for an embedding or LLM router whose client blocks (50 ms per decision)."""

    name = "blocking"

    def __init__(self, ms: float, *, on_loop: bool) -> None:
        super().__init__(label="blocking")
        self.ms = ms
        self.blocking = not on_loop  # type: ignore[misc]  # instance override of the class flag

    def route(self, ctx):  # type: ignore[no-untyped-def]
        time.sleep(self.ms / 1e3)
        return self.decide({c: float(i == 0) for i, c in enumerate(ctx.candidate_names)})


def build(ms: float, on_loop: bool):  # type: ignore[no-untyped-def]
    flow = Flow("bench").add(agent("a", lambda t: "a"), agent("b", lambda t: "b"))
    flow.route(START, Blocking(ms, on_loop=on_loop), candidates=["a", "b"])
    return flow.compile()


async def concurrent(app, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    await asyncio.gather(*(app.ainvoke(f"q{i}") for i in range(n)))
    return time.perf_counter() - t0


async def sequential(app, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for i in range(n):
        await app.ainvoke(f"q{i}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--router-ms", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    off, on = build(args.router_ms, on_loop=False), build(args.router_ms, on_loop=True)
    floor = build(0.0, on_loop=False)
    asyncio.run(concurrent(off, 2))  # warm up imports and the thread pool
    results: dict[str, list[float]] = {"sequential": [], "on-loop": [], "off-loop": [], "floor": []}
    for _ in range(args.repeats):  # interleaved, so load drift hits every variant alike
        results["sequential"].append(asyncio.run(sequential(off, args.runs)))
        results["on-loop"].append(asyncio.run(concurrent(on, args.runs)))
        results["off-loop"].append(asyncio.run(concurrent(off, args.runs)))
        results["floor"].append(asyncio.run(concurrent(floor, args.runs)))
    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    print(json.dumps({
        "runs": args.runs, "router_ms": args.router_ms, "repeats": args.repeats,
        "median_wall_ms": {k: round(v, 1) for k, v in med.items()},
        "speedup_off_loop_vs_on_loop": round(med["on-loop"] / med["off-loop"], 1),
        "speedup_off_loop_vs_sequential": round(med["sequential"] / med["off-loop"], 1),
        "off_loop_minus_floor_ms": round(med["off-loop"] - med["floor"], 1),
    }, indent=2))


if __name__ == "__main__":
    main()
