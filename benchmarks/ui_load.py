"""Page load time of ``crossroads ui`` on a trace DB of 100k decisions (issue 14).

Builds a SQLite trace DB with N decisions (default 100,000: 25,000 runs x 4 decisions, one step and one call
each per decision; scores for 5 candidates; every run stores its flow's Mermaid graph as the runtime does) and
40 stored eval runs (7 routers, cost-quality points), then times GET requests through FastAPI's TestClient (the
whole server-side path: SQL, templates, SVG; no network): the runs list (default and with a router filter), the
live poll (/api/runs?since=), a run page, the routers page, the evals list, one eval run (metrics and plots) and a
side-by-side compare. Reports p50 / p90 over repetitions; then the routers page's queries alone against the
previous version of them (exact percentiles over every decision's latency), alternating in the same run.

    python benchmarks/ui_load.py                 # 100k decisions
    python benchmarks/ui_load.py --decisions 20000 --reps 10
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crossroads.tracing.schema import CallRow, DecisionRow, RunRow, StepRow  # noqa: E402
from crossroads.tracing.store import EvalStore, TraceStore  # noqa: E402
from crossroads.ui.queries import (  # noqa: E402
    DECISIONS,
    EVENTS,
    _percentile,
    router_stats,
    top2_margin,
)

GRAPH = ("graph TD;\n\t__start__([<p>__start__</p>]):::first\n" + "".join(f"\t{t}({t})\n" for t in
         ["calc", "faq", "billing", "tech", "sales", "start_decide"]) + "\t__end__([<p>__end__</p>]):::last\n"
         "\t__start__ --> start_decide;\n" + "".join(f"\tstart_decide -.-> {t};\n\t{t} --> __end__;\n" for t in
                                                        ["calc", "faq", "billing", "tech", "sales"]))


def add_evals(store: TraceStore, n: int = 40, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    ev = EvalStore(store)
    ids = []
    for i in range(n):
        rid = f"eval{i:04d}"
        results = {r: {"best_quality": rng.random(), "quality_at_half_cost": rng.random(), "aiq": rng.random(),
                       "apgr": rng.random(), "cost_to_95pct_best_single": rng.random(), "latency_p50_ms": rng.uniform(0, 5),
                       "points": [{"cost": c / 10, "quality": rng.random()} for c in range(1, 11)]}
                   for r in ("random", "best_single", "oracle", "knn", "mlp", "mf", "bandit")}
        ev.save({"id": rid, "suite": "routellm-2models", "kind": "query_routing", "created_at": time.time() - n + i,
                 "duration_s": 30.0, "code_version": "bench", "config": {}, "data_hashes": {}, "summary": {}}, results)
        ids.append(rid)
    return ids


def build_db(path: Path, decisions: int, per_run: int = 4, seed: int = 0) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    store = TraceStore(str(path))
    targets = ["calc", "faq", "billing", "tech", "sales"]
    routers = ["triage", "bandit", "cascade"]
    runs = decisions // per_run
    t0 = time.time() - runs
    batch: dict[type, list[dict]] = {RunRow: [], StepRow: [], DecisionRow: [], CallRow: []}
    last = ""
    for r in range(runs):
        rid = f"run{r:08d}"
        last = rid
        start = t0 + r
        batch[RunRow].append({"id": rid, "flow": f"flow{r % 3}", "thread_id": rid, "status": "failed" if r % 17 == 0 else "succeeded",
                              "input": f"question number {r} about {targets[r % 5]}", "output": "answer", "error": None,
                              "started_at": start, "ended_at": start + 0.5,
                              "metadata_json": json.dumps({"graph_mermaid": GRAPH})})
        for k in range(per_run):
            scores = [rng.random() for _ in targets]
            chosen = targets[max(range(5), key=scores.__getitem__)]
            sid = f"{rid}s{k}"
            batch[StepRow].append({"id": sid, "run_id": rid, "node": chosen, "kind": "agent", "graph_step": k, "status": "succeeded",
                                   "input_summary": "", "output_summary": "", "started_at": start + k * 0.1,
                                   "ended_at": start + k * 0.1 + 0.08, "latency_ms": 80.0, "cost_usd": 0.001, "error": None})
            batch[DecisionRow].append({"id": f"{rid}d{k}", "run_id": rid, "source": "__start__", "router": routers[k % 3],
                                       "step_index": k, "query": "q", "candidates_json": json.dumps(
                                           [{"name": n, "score": s} for n, s in zip(targets, scores, strict=True)]),
                                       "chosen_json": json.dumps([chosen]), "rationale": "best score",
                                       "latency_ms": rng.uniform(0.2, 5.0), "cost_usd": 0.0, "created_at": start + k * 0.1,
                                       "metadata_json": "{}"})
            batch[CallRow].append({"run_id": rid, "step_id": sid, "target": chosen, "kind": "model", "model": "gpt-x",
                                   "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.001, "latency_ms": 70.0, "error": None,
                                   "created_at": start + k * 0.1 + 0.07})
        if len(batch[DecisionRow]) >= 20_000:
            store.write_batch(batch)
            batch = {t: [] for t in batch}
    store.write_batch(batch)
    evals = add_evals(store)
    store.close()
    return last, evals


def previous_router_stats(store: TraceStore, *, margin_below: float = 0.1, low_limit: int = 50) -> list[dict[str, Any]]:
    """The routers page's queries before this benchmark's change (commit 5ca8e4f), kept as the baseline: exact
    percentiles over every decision's latency, low-confidence decisions among the 20,000 most recent."""
    with store.engine.connect() as conn:
        per_target: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        totals: dict[str, int] = defaultdict(int)
        for router, chosen_json, n in conn.execute(select(DECISIONS.c.router, DECISIONS.c.chosen_json, func.count())
                                                   .group_by(DECISIONS.c.router, DECISIONS.c.chosen_json)):
            totals[router] += n
            for t in json.loads(chosen_json or "[]"):
                per_target[router][t] += n
        latencies: dict[str, list[float]] = defaultdict(list)
        for router, lat in conn.execute(select(DECISIONS.c.router, DECISIONS.c.latency_ms).order_by(DECISIONS.c.router, DECISIONS.c.latency_ms)):
            latencies[router].append(lat)
        errors: dict[str, int] = dict(conn.execute(select(DECISIONS.c.router, func.count()).select_from(
            EVENTS.join(DECISIONS, EVENTS.c.decision_id == DECISIONS.c.id)).where(EVENTS.c.kind == "routing_error")
            .group_by(DECISIONS.c.router)).all())
        routed = select(DECISIONS.c.router, DECISIONS.c.run_id).distinct().subquery()
        fallbacks: dict[str, int] = dict(conn.execute(select(routed.c.router, func.count()).select_from(
            EVENTS.join(routed, EVENTS.c.run_id == routed.c.run_id)).where(EVENTS.c.kind == "fallback")
            .group_by(routed.c.router)).all())
        recent = conn.execute(select(DECISIONS.c.id, DECISIONS.c.run_id, DECISIONS.c.router, DECISIONS.c.candidates_json,
                                     DECISIONS.c.chosen_json, DECISIONS.c.created_at)
                              .order_by(DECISIONS.c.created_at.desc()).limit(20_000)).mappings().all()
    low: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in recent:
        if len(low[d["router"]]) >= low_limit:
            continue
        m = top2_margin([c.get("score") for c in json.loads(d["candidates_json"] or "[]")])
        if m is not None and m < margin_below:
            low[d["router"]].append({"id": d["id"], "run_id": d["run_id"], "margin": m,
                                     "chosen": json.loads(d["chosen_json"] or "[]"), "created_at": d["created_at"]})
    out = []
    for router in sorted(totals):
        n = totals[router]
        lat = latencies[router]
        out.append({"router": router, "decisions": n,
                    "targets": sorted(per_target[router].items(), key=lambda kv: (-kv[1], kv[0])),
                    "p50_ms": _percentile(lat, 50), "p99_ms": _percentile(lat, 99),
                    "error_rate": errors.get(router, 0) / n, "fallback_rate": fallbacks.get(router, 0) / n,
                    "low_confidence": low.get(router, [])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from crossroads.ui import build_ui_app

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ui_bench.db"
        t = time.perf_counter()
        run_id, evals = build_db(db, args.decisions)
        print(f"built {args.decisions:,} decisions in {time.perf_counter() - t:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
        client = TestClient(build_ui_app(str(db)))
        since = client.get("/api/runs").json()["runs"][4]["started_at"]
        pages = {"runs list": "/", "runs list, router+target filter": "/?router=triage&target=calc",
                 "live poll (/api/runs?since=, 5 new runs)": f"/api/runs?since={since}",
                 "run page": f"/runs/{run_id}", "routers page": "/routers", "evals list": "/evals",
                 "eval run page": f"/evals/{evals[-1]}", "evals compare": f"/evals/compare?a={evals[0]}&b={evals[-1]}"}
        for name, url in pages.items():
            assert client.get(url).status_code == 200  # warm-up (and a check)
            times = []
            reps = args.reps
            for _ in range(reps):
                t = time.perf_counter()
                resp = client.get(url)
                times.append((time.perf_counter() - t) * 1e3)
                assert resp.status_code == 200
            times.sort()
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            print(f"{name:34s} p50 {statistics.median(times):8.1f} ms   p90 {p90:8.1f} ms   ({reps} reps)")
        # the routers page's queries alone, now vs before (same DB, same process, alternating)
        store = TraceStore(str(db), read_only=True)
        now: list[float] = []
        before: list[float] = []
        for _ in range(args.reps):
            for fn, out in ((router_stats, now), (previous_router_stats, before)):
                t = time.perf_counter()
                fn(store)
                out.append((time.perf_counter() - t) * 1e3)
        a, b = statistics.median(now), statistics.median(before)
        print(f"routers page queries: now p50 {a:.1f} ms, before (exact percentiles over every decision) p50 {b:.1f} ms: "
              f"{b / a:.1f}x faster")
        store.close()


if __name__ == "__main__":
    main()
