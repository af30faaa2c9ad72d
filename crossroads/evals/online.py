"""Online routing on a mixed workload: routers decide over a stream of interleaved tasks and learn from
the replayed outcomes (recorded score, recorded price) as they go. Learning curves of quality and cost
over the stream, and decision latency under concurrency with learning on vs off.

Every learner gets the same information: the training split's prompts and outcomes as a warm start
(the pheromone router replays it with feedback, the bandit warms up on it, kNN is fitted on it, the
best single model is chosen on it) and no task labels — the pheromone router's intents are k-means
clusters of the training prompts' embeddings, not the dataset's task names. Feedback costs are
normalised by the best single model's mean cost on the training split (nothing from the stream).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from ..errors import UnknownNameError
from ..routers.learned import LearnedRouter
from ..routers.pheromone import PheromoneRouter
from ..types import CostModel, Feedback, RouteContext, TargetInfo
from .metrics import percentile
from .query_routing import QueryData

__all__ = ["ONLINE_ROUTERS", "evaluate_online", "latency_learning_on_off"]

ONLINE_ROUTERS = ("pheromone", "random", "best_single", "bandit", "knn")


class _Embedder:
    """Serves precomputed vectors for the stream's prompts (the stream was embedded once up front)."""

    def __init__(self, texts: Sequence[str], X: np.ndarray, fallback: Any) -> None:
        self.index = {t: i for i, t in enumerate(texts)}
        self.X = X
        self.fallback = fallback
        self.cache = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.embed_one(t) for t in texts])

    def embed_one(self, text: str) -> np.ndarray:
        i = self.index.get(text)
        return self.X[i] if i is not None else self.fallback.embed_one(text)


def _candidates(train: QueryData) -> tuple[TargetInfo, ...]:
    q = train.Y.mean(axis=0)
    price = train.C.mean(axis=0)  # mean per-call cost on train
    return tuple(TargetInfo(name=m, quality=float(q[j]), cost=CostModel(per_call=float(price[j])))
                 for j, m in enumerate(train.models))


def _intents(train: QueryData, clusters: int, per_cluster: int, seed: int) -> dict[str, list[str]]:
    """Intent prototypes without task labels: k-means clusters of the training embeddings, each described
    by its ``per_cluster`` prompts nearest to the centroid."""
    from sklearn.cluster import KMeans

    k = max(1, min(clusters, len(train)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(train.X)
    d = km.transform(train.X)
    out: dict[str, list[str]] = {}
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        near = members[np.argsort(d[members, c])][:per_cluster]
        if len(near):
            out[f"cluster{c}"] = [train.prompts[i] for i in near]
    return out


def _pheromone(train: QueryData, emb: Any, cands: tuple[TargetInfo, ...], params: Mapping[str, Any], seed: int,
               col: Mapping[str, int], ref_train: float) -> PheromoneRouter:
    """A pheromone router with label-free intents, warm-started by replaying the training split."""
    own = {k: v for k, v in params.items() if k not in ("clusters", "examples_per_cluster")}
    router = PheromoneRouter(intents=_intents(train, int(params.get("clusters", 10)), int(params.get("examples_per_cluster", 8)), seed),
                             embedder=emb, seed=seed, **own)
    for i in range(len(train)):
        d = router.route(RouteContext(query=train.prompts[i], candidates=cands))
        j = col[d.target]
        router.feedback(Feedback(decision_id=d.decision_id, reward=float(train.Y[i, j]),
                                 cost_usd=float(train.C[i, j] / ref_train), target=d.target))
    router.flush(timeout=600)
    return router


def evaluate_online(train: QueryData, stream: QueryData, routers: Sequence[tuple[str, str, Mapping[str, Any]]],
                    embedder: Any, *, window: int = 200, seed: int = 0) -> dict[str, Any]:
    """Run each router over ``stream`` in order, feeding back recorded outcomes after every decision."""
    emb = _Embedder(train.prompts + stream.prompts, np.vstack([train.X, stream.X]), embedder)
    cands = _candidates(train)
    names = [c.name for c in cands]
    col = {m: j for j, m in enumerate(stream.models)}
    best = int(np.argmax(train.Y.mean(axis=0)))
    ref = float(stream.C[:, best].mean()) or 1.0  # for reporting only
    ref_train = float(train.C[:, best].mean()) or 1.0  # for the learners' feedback
    n = len(stream)
    out: dict[str, Any] = {"n": n, "window": window, "best_single_model": stream.models[best],
                           "best_single_quality": float(stream.Y[:, best].mean()), "n_train": len(train),
                           "information": "every router: the training split's outcomes as a warm start; no task labels",
                           "routers": {}}
    for label, kind, params in routers:
        rng = np.random.default_rng(seed)
        q = np.zeros(n)
        c = np.zeros(n)
        t0 = time.perf_counter()
        if kind == "pheromone":
            router = _pheromone(train, emb, cands, params, seed, col, ref_train)
            warm_updates, warm_gated = router.updates, router.gated_out
            for i in range(n):
                d = router.route(RouteContext(query=stream.prompts[i], candidates=cands))
                j = col[d.target]
                q[i], c[i] = stream.Y[i, j], stream.C[i, j]
                router.feedback(Feedback(decision_id=d.decision_id, reward=float(q[i]), cost_usd=float(c[i] / ref_train),
                                         target=d.target))
            router.close()
            router.updates -= warm_updates
            router.gated_out -= warm_gated
            extra = {"updates": router.updates, "gated_out": router.gated_out, "intents": len(router.intents)}
        elif kind == "random":
            picks = rng.integers(0, len(names), size=n)
            q, c = stream.Y[np.arange(n), picks], stream.C[np.arange(n), picks]
            extra = {}
        elif kind == "best_single":
            q, c = stream.Y[:, best], stream.C[:, best]
            extra = {}
        elif kind == "knn":
            r = LearnedRouter.train("knn", train.X, train.Y, targets=train.models, params={"k": params.get("k", 10)},
                                    willingness=float(params.get("willingness", 0.2)),
                                    costs=dict(zip(train.models, train.C.mean(axis=0), strict=True)), embedder=emb)
            for i, d in enumerate(r.route_batch([RouteContext(query=p, candidates=cands) for p in stream.prompts])):
                j = col[d.target]
                q[i], c[i] = stream.Y[i, j], stream.C[i, j]
            extra = {}
        elif kind == "bandit":
            from .query_routing import _bandit

            res = _bandit(train, stream, ref, {"lambdas": (float(params.get("willingness", 0.2)),),
                                               "dim": params.get("dim", 32), "warmup": True}, ())
            picks = next(iter(res.picks.values()))
            q, c = stream.Y[np.arange(n), picks], stream.C[np.arange(n), picks]
            extra = {}
        else:
            raise UnknownNameError("online router", kind, ONLINE_ROUTERS)
        k = max(1, min(window, n))
        curve_q = np.convolve(q, np.ones(k) / k, mode="valid")
        curve_c = np.convolve(c / ref, np.ones(k) / k, mode="valid")
        out["routers"][label] = {
            "quality": float(np.mean(q)), "cost": float(np.sum(c) / (ref * n)),
            "first_window_quality": float(curve_q[0]), "last_window_quality": float(curve_q[-1]),
            "last_window_cost": float(curve_c[-1]),
            "curve_quality": curve_q[:: max(1, len(curve_q) // 100)].tolist(),
            "curve_cost": curve_c[:: max(1, len(curve_c) // 100)].tolist(),
            "seconds": time.perf_counter() - t0, **extra,
        }
    return out


def latency_learning_on_off(train: QueryData, stream: QueryData, embedder: Any, *, requests: int = 1000,
                            threads: int = 32, seed: int = 0) -> dict[str, float]:
    """Decision latency of the pheromone router under ``requests`` concurrent requests, with every decision
    followed by feedback (learning on) or not (learning off)."""
    emb = _Embedder(train.prompts + stream.prompts, np.vstack([train.X, stream.X]), embedder)
    cands = _candidates(train)
    col = {m: j for j, m in enumerate(stream.models)}
    intents = _intents(train, 10, 8, seed)
    out: dict[str, list[float]] = {}

    def one(router: PheromoneRouter, learning: bool, i: int) -> float:
        row = i % len(stream)
        t = time.perf_counter()
        d = router.route(RouteContext(query=stream.prompts[row], candidates=cands))
        ms = (time.perf_counter() - t) * 1e3
        if learning:
            router.feedback(Feedback(decision_id=d.decision_id, reward=float(stream.Y[row, col[d.target]])))
        return ms

    for learning in (False, True, False, True):  # interleaved, to share the machine's noise
        router = PheromoneRouter(intents=intents, embedder=emb, seed=seed)
        router.route(RouteContext(query=stream.prompts[0], candidates=cands))  # build prototypes
        with ThreadPoolExecutor(max_workers=threads) as pool:
            lat = list(pool.map(partial(one, router, learning), range(requests)))
        router.close()
        key = "on" if learning else "off"
        out.setdefault(f"p50_ms_{key}", []).append(percentile(lat, 50))
        out.setdefault(f"p99_ms_{key}", []).append(percentile(lat, 99))
    return {k: float(np.median(v)) for k, v in out.items()}
