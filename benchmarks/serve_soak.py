"""Soak: ``crossroads serve`` under 200 concurrent clients for 60 s with mixed valid and invalid requests.

Each client loops over a seeded mix: valid chats (``router:triage``, a target, a streamed chat through
the router: models every version of ``serve`` offers) and invalid ones (``[1]``, ``"messages": "hi"``, invalid UTF-8, deep nesting, an unknown
parameter, an unknown model, an oversized body). Reported:

- success rate: valid requests answered 200 with the right answer; invalid ones answered with the
  expected 4xx (a 5xx or a dropped connection is a failure);
- p50/p99 latency of the valid requests;
- the server's RSS every 5 s;
- trace rows: runs expected (one per valid 200) vs runs stored as succeeded after a clean shutdown.

    python benchmarks/serve_soak.py [--clients 200] [--duration 60] [--src PATH_TO_A_CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from _serve_harness import ROOT, percentile, rss_mb, serve

BODY_LIMIT = 1_048_576
Q = [("what is 12 * (3 + 4)", "12 * (3 + 4) = 84"), ("convert 5 km to miles", "5 km = 3.10686 miles"),
     ("what is 6 * 7", "6 * 7 = 42")]


def _chat(model: str, text: str, **more: object) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}], **more}).encode()


INVALID: list[tuple[str, bytes, tuple[int, ...]]] = [
    ("list_body", b"[1]", (400,)),
    ("messages_str", b'{"model": "router:triage", "messages": "hi"}', (400,)),
    ("bad_utf8", b'{"model": "faq", "messages": [{"role": "user", "content": "\xff\xfe"}]}', (400,)),
    ("deep_nesting", b'{"model": "faq", "messages": ' + b"[" * 3000 + b"]" * 3000 + b"}", (400,)),
    ("unknown_param", _chat("faq", "hi", logprobs=True), (400,)),
    ("unknown_model", _chat("nope", "hi"), (404,)),
    ("oversized", _chat("faq", "x" * (BODY_LIMIT + 10)), (413,)),
]


async def _client(base: str, seed: int, until: float, stats: Counter[str], lats: list[float],
                  failures: Counter[str]) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=120) as c:
        while time.perf_counter() < until:
            if rng.random() < 0.6:  # valid
                q, answer = rng.choice(Q)
                model = rng.choice(["router:triage", "router:triage", "calculator", "stream"])  # all served before too
                t0 = time.perf_counter()
                try:
                    if model == "stream":
                        text = ""
                        async with c.stream("POST", "/v1/chat/completions",
                                            content=_chat("router:triage", q, stream=True)) as r:
                            status = r.status_code
                            async for line in r.aiter_lines():
                                if line.startswith("data: {"):
                                    ch = json.loads(line[6:])
                                    if ch.get("choices"):
                                        text += ch["choices"][0]["delta"].get("content") or ""
                    else:
                        if model == "calculator":
                            q, answer = "2 + 2", "2 + 2 = 4"
                        r = await c.post("/v1/chat/completions", content=_chat(model, q))
                        status = r.status_code
                        text = r.json()["choices"][0]["message"]["content"] if status == 200 else ""
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    failures[f"valid:{type(exc).__name__}"] += 1
                    stats["valid_total"] += 1
                    continue
                lats.append(time.perf_counter() - t0)
                stats["valid_total"] += 1
                if status == 200 and text == answer:
                    stats["valid_ok"] += 1
                else:
                    failures[f"valid:{model}:{status}"] += 1
            else:
                name, body, expected = rng.choice(INVALID)
                stats["invalid_total"] += 1
                try:
                    r = await c.post("/v1/chat/completions", content=body,
                                     headers={"content-type": "application/json"})
                except httpx.HTTPError as exc:
                    failures[f"invalid:{name}:{type(exc).__name__}"] += 1
                    continue
                if r.status_code in expected:
                    stats["invalid_ok"] += 1
                else:
                    failures[f"invalid:{name}:{r.status_code}"] += 1


async def _soak(base: str, pid: int, clients: int, duration: float) -> tuple[Counter[str], list[float], Counter[str], list[str]]:
    stats: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    lats: list[float] = []
    rss: list[str] = []
    t0 = time.perf_counter()
    until = t0 + duration

    def sample() -> None:  # a thread: the clients' busy event loop must not delay the samples
        while time.perf_counter() < until:
            rss.append(f"{time.perf_counter() - t0:.0f}s:{rss_mb(pid):.0f}MB")
            time.sleep(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    await asyncio.gather(*(_client(base, i, until, stats, lats, failures) for i in range(clients)))
    sampler.join()
    rss.append(f"{time.perf_counter() - t0:.0f}s:{rss_mb(pid):.0f}MB")
    return stats, lats, failures, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--src", type=Path, default=ROOT)
    args = ap.parse_args()
    src = args.src.resolve()
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "soak.db"
        with serve(src, src / "examples" / "quickstart.yaml", db, log=Path(d) / "log") as (base, proc):
            httpx.post(f"{base}/v1/chat/completions", content=_chat("router:triage", "warm up"), timeout=120)
            rss_start = rss_mb(proc.pid)
            stats, lats, failures, rss = asyncio.run(_soak(base, proc.pid, args.clients, args.duration))
        con = sqlite3.connect(db)
        stored_ok = con.execute("SELECT count(*) FROM cr_runs WHERE status = 'succeeded'").fetchone()[0] - 1  # warm-up
        stored_all = con.execute("SELECT count(*) FROM cr_runs").fetchone()[0] - 1
        con.close()
    total = stats["valid_total"] + stats["invalid_total"]
    report = {
        "src": str(src), "clients": args.clients, "duration_s": args.duration, "requests": total,
        "success_rate": round((stats["valid_ok"] + stats["invalid_ok"]) / max(total, 1), 4),
        "valid_ok": f"{stats['valid_ok']}/{stats['valid_total']}",
        "invalid_answered_4xx": f"{stats['invalid_ok']}/{stats['invalid_total']}",
        "failures": dict(failures.most_common(12)),
        "valid_p50_s": round(percentile(lats, 50), 3), "valid_p99_s": round(percentile(lats, 99), 3),
        "rss_mb_start": round(rss_start, 1), "rss_mb_over_time": rss,
        "runs_expected": stats["valid_ok"], "runs_stored_succeeded": stored_ok, "runs_stored_all": stored_all,
        "note": "2 shared, loaded CPU cores: compare runs of the same session only",
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
