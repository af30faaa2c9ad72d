"""Skill-router latency and memory at 1k, 10k and 100k skills.

The real BFCL pool (1,616 skills) is padded with generated distractor skills for the latency curve
only (quality is measured on real skills by ``crossroads eval run bfcl-skills``). A distractor's text
recombines words of real descriptions; its embedding is a real skill's vector plus noise, renormalised
(embedding 100k texts would take tens of minutes here and does not change the cost of a query).

Per pool size: index build time (lexical; dense vectors given), select() latency p50/p99 for real test
queries (query embedding + stage 1 + rerank: what a tool-calling agent calls), route() latency (the
same plus a score for every candidate, as the router protocol requires), the same for the baseline measured in the same run —
dense brute force only (embed + one matrix-vector product + top-k, no lexical, no rerank) — and the
process RSS.

    python benchmarks/skills_scale.py [--sizes 1000,10000,100000] [--queries 50]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from crossroads.agents.embeddings import MiniLMEmbedder
from crossroads.data import DATA_DIR
from crossroads.evals.skill_routing import load_skill_queries
from crossroads.skills import Skill, SkillIndex, SkillRegistry, SkillRouter, builtin_skills
from crossroads.skills.lexical import LexicalIndex
from crossroads.types import RouteContext


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--model", default=None, help="a fitted router directory (its reranker is used)")
    args = ap.parse_args()
    emb = MiniLMEmbedder()
    real = builtin_skills()
    real_router = SkillRouter(real, embedder=emb)
    real_index = real_router.build()
    reranker = SkillRouter.load(args.model, embedder=emb).reranker if args.model else None
    words = " ".join(s.description for s in real).split()
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    queries = [q.query for q in load_skill_queries(DATA_DIR / "skills" / "bfcl_queries.jsonl.gz", split="test")
               if q.gold]
    queries = rng.sample(queries, args.queries)
    print(f"{'skills':>8} {'build_s':>8} {'select_p50':>10} {'select_p99':>10} {'route_p50':>10} {'route_p99':>10} "
          f"{'dense_p50':>10} {'ratio':>6} {'rss_MB':>8}")
    for n in [int(x) for x in args.sizes.split(",")]:
        skills = list(real[:n])
        vecs = [real_index.vectors[v][: len(skills)] for v in real_index.views]
        extra = n - len(skills)
        for i in range(extra):
            desc = " ".join(rng.choices(words, k=rng.randint(8, 25)))
            skills.append(Skill(name=f"distractor_{i}_{rng.choice(words).strip('.,')}", description=desc))
        if extra:
            base = nrng.integers(0, len(real), extra)
            noisy = {}
            for v in real_index.views:
                x = real_index.vectors[v][base] + nrng.normal(0, 0.05, (extra, real_index.vectors[v].shape[1]))
                noisy[v] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
            vectors = {v: np.vstack([real_index.vectors[v][: n - extra], noisy[v]]) for v in real_index.views}
        else:
            vectors = {v: m.copy() for v, m in zip(real_index.views, vecs, strict=False)}
        reg = SkillRegistry(skills)
        router = SkillRouter(reg, embedder=emb)
        t0 = time.perf_counter()
        router._index = SkillIndex(reg.names, [s.content_hash for s in reg], vectors, model_id=emb.model_id)
        router._lexical = LexicalIndex([s.text("full") for s in reg])
        build_s = time.perf_counter() - t0
        router.reranker = reranker
        cands = reg.target_infos()
        route_ms, dense_ms, select_ms = [], [], []
        full = vectors["full"]
        for q in queries:  # interleaved: the baseline and the router see the same machine state
            t0 = time.perf_counter()
            qv = emb.embed_one(q)
            s = full @ qv
            top = np.argpartition(-s, 10)[:10]
            top[np.argsort(-s[top])]
            dense_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            router.select(q)
            select_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            router.route(RouteContext(query=q, candidates=cands))
            route_ms.append((time.perf_counter() - t0) * 1e3)
        print(f"{n:>8} {build_s:>8.2f} {pct(select_ms, 50):>10.1f} {pct(select_ms, 99):>10.1f} "
              f"{pct(route_ms, 50):>10.1f} {pct(route_ms, 99):>10.1f} {pct(dense_ms, 50):>10.1f} "
              f"{pct(select_ms, 50) / pct(dense_ms, 50):>6.2f} {rss_mb():>8.0f}", flush=True)


if __name__ == "__main__":
    main()
