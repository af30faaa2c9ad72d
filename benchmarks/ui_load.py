"""Page load time of ``crossroads ui`` on a trace DB of 100k decisions (issue 14).

Builds a SQLite trace DB with N decisions (default 100,000: 25,000 runs x 4 decisions, one step and one call
each per decision; scores for 5 candidates; every run stores its flow's Mermaid graph as the runtime does) and
40 stored eval runs (7 routers, cost-quality points), then times GET requests through FastAPI's TestClient (the
whole server-side path: SQL, templates, SVG; no network): the runs list (default and with a router filter), the
live poll (/api/runs?since=), a run page, the routers page, the evals list, one eval run (metrics and plots) and a
side-by-side compare. Reports p50 / p90 over repetitions.

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crossroads.tracing.schema import CallRow, DecisionRow, RunRow, StepRow  # noqa: E402
from crossroads.tracing.store import EvalStore, TraceStore  # noqa: E402

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


if __name__ == "__main__":
    main()
