"""200 concurrent chat requests through the quickstart's semantic router (``router:triage``), served.

A blocking router that runs on the event loop serves them one at a time; off the loop they overlap
(the embedding model releases the GIL). Reported: p50/p99 latency, wall time, and how long ``/health``
took while the burst was in flight. Baseline in the same run: the same requests sent one after another
(the cost of one request without queueing). Then one large request (``--large-chars``) with a
``/health`` probe while it is routed.

    python benchmarks/serve_concurrent.py [--requests 200] [--src PATH_TO_A_CHECKOUT]

``--src`` measures another version of the server (e.g. a worktree of the code before a change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
from _serve_harness import ROOT, percentile, serve


def _query(i: int) -> str:
    kinds = [f"what is {i} * {i + 3}", f"convert {i} km to miles", f"where are traces stored, question {i}?"]
    return kinds[i % 3]


async def _burst(base: str, n: int, offset: int) -> tuple[list[float], float, float, int]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c:
        async def one(i: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = await c.post("/v1/chat/completions", json={"model": "router:triage",
                                                           "messages": [{"role": "user", "content": _query(offset + i)}]})
            return time.perf_counter() - t0, r.status_code

        async def health_probe() -> float:
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            await c.get("/health")
            return time.perf_counter() - t0

        t0 = time.perf_counter()
        probe = asyncio.create_task(health_probe())
        results = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
        health_s = await probe
    ok = sum(1 for _, s in results if s == 200)
    return [lat for lat, _ in results], wall, health_s, ok


async def _large(base: str, chars: int) -> tuple[float, float, int]:
    """One large request through the router, and how long ``/health`` takes meanwhile."""
    async with httpx.AsyncClient(base_url=base, timeout=600) as c:
        text = ("what is 12 * 7 and how many km is that in miles " * (chars // 48 + 1))[:chars]
        t0 = time.perf_counter()
        big = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "router:triage",
                                                                       "messages": [{"role": "user", "content": text}]}))
        await asyncio.sleep(0.3)
        h0 = time.perf_counter()
        await c.get("/health")
        health_s = time.perf_counter() - h0
        status = (await big).status_code
        return time.perf_counter() - t0, health_s, status


async def _sequential(base: str, n: int, offset: int) -> list[float]:
    lats = []
    async with httpx.AsyncClient(base_url=base, timeout=600) as c:
        for i in range(n):
            t0 = time.perf_counter()
            await c.post("/v1/chat/completions", json={"model": "router:triage",
                                                       "messages": [{"role": "user", "content": _query(offset + i)}]})
            lats.append(time.perf_counter() - t0)
    return lats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--sequential", type=int, default=20, help="requests of the one-at-a-time baseline")
    ap.add_argument("--src", type=Path, default=ROOT)
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for crossroads serve (repeatable)")
    ap.add_argument("--large-chars", type=int, default=900_000, help="size of the one large request (0: skip)")
    args = ap.parse_args()
    src = args.src.resolve()
    with tempfile.TemporaryDirectory() as d:
        # a fresh embedding cache: every query is embedded for real
        env = {"CROSSROADS_EMBEDDING_CACHE": str(Path(d) / "emb.sqlite")}
        with serve(src, src / "examples" / "quickstart.yaml", Path(d) / "t.db", env=env, log=Path(d) / "log",
                   extra=tuple(args.serve_arg)) as (base, _):
            asyncio.run(_sequential(base, 3, 10_000))  # warm-up (model load)
            seq = asyncio.run(_sequential(base, args.sequential, 20_000))
            lats, wall, health_s, ok = asyncio.run(_burst(base, args.requests, 0))
            large = asyncio.run(_large(base, args.large_chars)) if args.large_chars else None
    report = {
        "src": str(src), "serve_args": args.serve_arg, "requests": args.requests, "ok": ok,
        "concurrent_p50_s": round(percentile(lats, 50), 3), "concurrent_p99_s": round(percentile(lats, 99), 3),
        "concurrent_wall_s": round(wall, 3), "health_during_burst_s": round(health_s, 3),
        "sequential_p50_s": round(percentile(seq, 50), 4),
        "throughput_req_per_s": round(args.requests / wall, 1),
        "large_request": None if large is None else {"chars": args.large_chars, "status": large[2],
                                                     "total_s": round(large[0], 3), "health_meanwhile_s": round(large[1], 3)},
        "note": "2 shared, loaded CPU cores: compare runs of the same session only",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
