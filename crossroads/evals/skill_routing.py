"""The ``bfcl-skills`` suite: retrieval quality, abstention and latency of a skill router.

Metrics (binary relevance; a query's gold is its set of gold skill names):

- recall@k = |gold ∩ top-k| / |gold|, averaged over queries that have gold (for one gold skill,
  recall@1 is the top-1 hit rate);
- MRR = mean of 1 / rank of the first gold skill (0 when none is ranked);
- nDCG@10 = DCG@10 / IDCG@10 with DCG = Σ_i rel_i / log2(i + 1) over ranks i = 1..10 and
  IDCG the DCG of the ideal ranking (min(|gold|, 10) relevant items first) — Järvelin & Kekäläinen
  (2002), the form BEIR and the SkillRouter paper report;
- abstaining: precision and recall of "select nothing" against the queries that have no gold.

The router is driven through the protocol (``route_batch`` over the registry's targets); rankings
come from the decision's scores for every candidate.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..types import RouteContext, TargetInfo
from .metrics import decision_latencies_ms

__all__ = ["SkillQuery", "abstain_precision_recall", "evaluate_skill_router", "load_skill_queries", "mrr",
           "ndcg_at_k", "recall_at_k"]


@dataclass(frozen=True, slots=True)
class SkillQuery:
    id: str
    query: str
    gold: tuple[str, ...]
    category: str = ""
    split: str = ""


def load_skill_queries(path: str | Path, *, split: str | None = None) -> list[SkillQuery]:
    """Queries from JSONL (optionally gzip): ``{"id", "query", "gold": [names], "split"?, "category"?}``."""
    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{i}: not JSON ({exc.msg})") from None
            if not isinstance(d, dict) or not isinstance(d.get("query"), str) or not isinstance(d.get("gold", []), list):
                raise ConfigError(f"{path}:{i}: a skill query needs 'query' (string) and 'gold' (list of skill names)")
            if split is not None and d.get("split", _hash_split(str(d.get("id", i)))) != split:
                continue  # rows without a split field: halves by a hash of the id (never in both)
            out.append(SkillQuery(str(d.get("id", i)), d["query"], tuple(d.get("gold", [])), d.get("category", ""),
                                  d.get("split", "")))
    return out


def _hash_split(qid: str) -> str:
    import hashlib

    return "test" if int(hashlib.sha256(qid.encode()).hexdigest(), 16) % 2 else "train"


def recall_at_k(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    g = set(gold)
    return len(g & set(ranked[:k])) / len(g) if g else 0.0


def mrr(ranked: Sequence[str], gold: Sequence[str]) -> float:
    g = set(gold)
    for i, name in enumerate(ranked, 1):
        if name in g:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], gold: Sequence[str], k: int = 10) -> float:
    g = set(gold)
    if not g:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, name in enumerate(ranked[:k], 1) if name in g)
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(g), k) + 1))
    return dcg / idcg


def abstain_precision_recall(abstained: Sequence[bool], irrelevant: Sequence[bool]) -> tuple[float, float]:
    a, r = np.asarray(abstained, bool), np.asarray(irrelevant, bool)
    tp = int((a & r).sum())
    return (tp / int(a.sum()) if a.any() else 0.0), (tp / int(r.sum()) if r.any() else 0.0)


def evaluate_skill_router(router: Any, queries: Sequence[SkillQuery], *, latency_samples: int = 100,
                          batch: int = 64, seed: int = 0) -> dict[str, Any]:
    """Quality (on queries with gold), abstention (all queries) and per-query decision latency
    (``latency_samples`` queries drawn across the set, routed one at a time, the embedding cache off)."""
    candidates = router.registry.target_infos()
    default = getattr(router, "default", None)
    if default is not None and default not in router.registry:
        candidates = (*candidates, TargetInfo(name=default, description="no skill fits"))
    ranked: list[list[str]] = []
    abstained: list[bool] = []
    for s in range(0, len(queries), batch):
        part = queries[s:s + batch]
        decisions = router.route_batch([RouteContext(query=q.query, candidates=candidates) for q in part])
        for d in decisions:  # the skills' ranking (a default target's score is not a skill)
            order = sorted((n for n in d.scores if n in router.registry), key=lambda n: -d.scores[n])
            shortlist = int(d.metadata.get("shortlist", len(order)))
            ranked.append(order[:shortlist])
            abstained.append(bool(d.metadata.get("abstained", False)))
    rel = [i for i, q in enumerate(queries) if q.gold]
    out: dict[str, Any] = {"queries": len(queries), "with_gold": len(rel), "irrelevant": len(queries) - len(rel)}
    for k in (1, 5, 10):
        out[f"recall@{k}"] = float(np.mean([recall_at_k(ranked[i], queries[i].gold, k) for i in rel])) if rel else 0.0
    out["mrr"] = float(np.mean([mrr(ranked[i], queries[i].gold) for i in rel])) if rel else 0.0
    out["ndcg@10"] = float(np.mean([ndcg_at_k(ranked[i], queries[i].gold, 10) for i in rel])) if rel else 0.0
    irrelevant = [not q.gold for q in queries]
    if router.abstain_threshold is not None and any(irrelevant):
        p, r = abstain_precision_recall(abstained, irrelevant)
        out["abstain_precision"], out["abstain_recall"] = p, r
        correct = [(not a) and ranked[i][:1] and ranked[i][0] in queries[i].gold if queries[i].gold else a
                   for i, a in enumerate(abstained)]
        out["decision_accuracy"] = float(np.mean([bool(c) for c in correct]))
    rng = np.random.default_rng(seed)
    pick: Any = rng.choice(len(queries), size=min(latency_samples, len(queries)), replace=False) if queries else []
    # cold decisions: the query's embedding is computed, not read from the cache
    lat = decision_latencies_ms(router, [queries[int(i)].query for i in pick], candidates, router.embedder)
    if lat:
        out["latency_p50_ms"] = float(np.percentile(lat, 50))
        out["latency_p99_ms"] = float(np.percentile(lat, 99))
    return out


def summarize(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: {k: r[k] for k in ("recall@1", "recall@10", "mrr") if k in r} for name, r in results.items()}


def run_skill_suite(skills_path: Path | None, queries_path: Path, routers: Sequence[tuple[str, str, Mapping[str, Any]]],
                    embedder: Any, *, train_path: Path | None = None, test_path: Path | None = None,
                    latency_samples: int = 100, limit: int | None = None, seed: int = 0,
                    progress: Any = None) -> dict[str, Any]:
    """Run the ``skill_routing`` suite kind.

    The pool is ``skills_path`` (any format :func:`~crossroads.skills.load_skills` reads; the
    built-in BFCL pool when None). Queries come from ``queries_path`` split by its ``split`` field, or
    from the user's ``train_path``/``test_path`` (no re-split then). A router entry's ``fit: true``
    fits its reranker and abstain threshold on the training queries; everything else in ``params``
    goes to :class:`~crossroads.skills.SkillRouter`. Quality is reported on the test queries once.
    """
    from ..skills import SkillRegistry, SkillRouter, builtin_skills, load_skills

    registry = SkillRegistry(builtin_skills() if skills_path is None else load_skills(skills_path))
    if test_path is not None:  # the user's test file as given; train: their train file or every dataset row
        train = load_skill_queries(train_path or queries_path)
        test = load_skill_queries(test_path)
    else:
        train = load_skill_queries(train_path or queries_path, split="train")
        test = load_skill_queries(train_path or queries_path, split="test")
    if limit is not None:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.choice(len(train), size=min(limit, len(train)), replace=False))]
        test = [test[i] for i in sorted(rng.choice(len(test), size=min(limit, len(test)), replace=False))]
    missing = sorted({g for q in [*train, *test] for g in q.gold if g not in registry})
    if missing:
        raise ConfigError(f"skill queries name gold skills that are not in the pool: {missing[:5]} "
                          f"({len(missing)} in all); check the skills file")
    results: dict[str, Any] = {"routers": {}, "n_skills": len(registry), "n_train": len(train), "n_test": len(test)}
    index_s = None
    for label, kind, params in routers:
        if kind != "skills":
            raise ConfigError(f"skill_routing suite: router {label!r} has type {kind!r}; only 'skills' routers "
                              "are evaluated here")
        if progress is not None:
            progress(label)
        p = dict(params)
        fit = bool(p.pop("fit", False))
        router = SkillRouter(registry, embedder=embedder, label=label, **p)
        t0 = time.perf_counter()
        router.build()
        build_s = time.perf_counter() - t0
        if index_s is None:
            index_s = build_s
        fitted: dict[str, Any] = {}
        if fit:
            t0 = time.perf_counter()
            fitted = router.fit([q.query for q in train], [q.gold for q in train], seed=seed)
            fitted["fit_s"] = time.perf_counter() - t0
        m = evaluate_skill_router(router, test, latency_samples=latency_samples, seed=seed)
        m.update(index_build_s=build_s, **fitted)
        results["routers"][label] = m
    results["index_build_s"] = index_s
    return results
