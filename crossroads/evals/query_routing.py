"""Query-level routing on recorded outcomes: every baseline on one split, with the field's metrics.

Quality is the mean recorded score of the picks; cost is the sum of prompt tokens x input price of
the picks (tokens counted with ``cl100k_base``), reported relative to the best single model's cost
on the same test rows (the best single model is chosen on the training split).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..agents.backends.replay import RecordedOutcomes
from ..agents.tokens import count_tokens
from ..errors import ConfigError, UnknownNameError
from ..routers.learned import PREDICTORS, LearnedRouter
from ..types import TargetInfo
from .metrics import (
    CurvePoint,
    aiq,
    apgr,
    bootstrap_ci,
    cost_to_reach,
    decision_latencies_ms,
    percentile,
    strong_share_for_pgr,
    upper_hull,
)

__all__ = ["QUERY_ROUTERS", "QueryData", "RouterOutcome", "evaluate_query_routers", "prepare_query_data"]

DEFAULT_LAMBDAS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)
DEFAULT_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01)


@dataclass
class QueryData:
    """Prompts with embeddings X, recorded scores Y and per-call costs C (USD), one column per model."""

    prompts: list[str]
    tasks: list[str]
    models: list[str]
    X: np.ndarray
    Y: np.ndarray
    C: np.ndarray

    def subset(self, idx: np.ndarray) -> QueryData:
        return QueryData([self.prompts[i] for i in idx], [self.tasks[i] for i in idx], self.models,
                         self.X[idx], self.Y[idx], self.C[idx])

    def __len__(self) -> int:
        return len(self.prompts)


def prepare_query_data(data: RecordedOutcomes, embedder: Any, *, limit: int | None = None, seed: int = 0) -> QueryData:
    """Embed prompts and build the score and cost matrices (optionally a seeded random subset)."""
    rows = data.rows
    if limit is not None and limit < len(rows):
        idx = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
        rows = [rows[i] for i in idx]
    models = data.models
    prompts = [r.prompt for r in rows]
    Y = np.array([[r.scores.get(m, np.nan) for m in models] for r in rows], dtype=np.float32)
    if np.isnan(Y).any():
        bad = int(np.argwhere(np.isnan(Y))[0][0])
        raise ConfigError(f"{data.source}:{rows[bad].line}: row lacks a score for some model of {', '.join(models)}")
    tokens = np.array([count_tokens(p) for p in prompts], dtype=np.float64)
    prices = np.array([data.prices[m].input_per_mtok for m in models], dtype=np.float64)
    C = tokens[:, None] * prices[None, :] / 1e6
    X = np.asarray(embedder.embed(prompts), dtype=np.float32)
    return QueryData(prompts, [r.task for r in rows], models, X, Y, C)


@dataclass
class RouterOutcome:
    """One router's results on the test split."""

    router: str
    points: list[CurvePoint]
    """(cost relative to the best single model, mean quality) per willingness setting."""
    picks: dict[float, np.ndarray] = field(default_factory=dict)
    """Chosen model index per test row, per setting (for bootstrap and strong-call shares)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    train_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)


def _point(test: QueryData, picks: np.ndarray, ref_cost: float, setting: float | None,
           extra_cost: np.ndarray | None = None) -> CurvePoint:
    rows = np.arange(len(test))
    cost = test.C[rows, picks].sum() + (extra_cost.sum() if extra_cost is not None else 0.0)
    return CurvePoint(cost=float(cost / ref_cost), quality=float(test.Y[rows, picks].mean()), setting=setting)


def _utility_picks(Q: np.ndarray, C: np.ndarray, lam: float) -> np.ndarray:
    cmax = C.max(axis=1, keepdims=True)
    cmax[cmax == 0] = 1.0
    return np.argmax(Q - lam * C / cmax, axis=1)


def _learned(kind: str) -> Callable[..., RouterOutcome]:
    def run(train: QueryData, test: QueryData, ref: float, params: Mapping[str, Any], lambdas: Sequence[float]) -> RouterOutcome:
        t = time.perf_counter()
        router = LearnedRouter.train(kind, train.X, train.Y, targets=train.models, params=params,
                                     costs=dict(zip(train.models, train.C.mean(axis=0))))
        out = RouterOutcome(kind, [], train_s=time.perf_counter() - t)
        Q = router.predictor.predict(test.X)
        for lam in lambdas:
            picks = _utility_picks(Q, test.C, lam)
            out.picks[lam] = picks
            out.points.append(_point(test, picks, ref, lam))
        out.metrics["_router"] = router
        return out
    return run


def _fixed_picks(name: str, picks_fn: Callable[[QueryData, QueryData], np.ndarray]) -> Callable[..., RouterOutcome]:
    def run(train: QueryData, test: QueryData, ref: float, params: Mapping[str, Any], lambdas: Sequence[float]) -> RouterOutcome:
        picks = picks_fn(train, test)
        return RouterOutcome(name, [_point(test, picks, ref, None)], picks={0.0: picks})
    return run


def _random(train: QueryData, test: QueryData) -> np.ndarray:
    return np.random.default_rng(0).integers(0, len(test.models), size=len(test))


def _cheapest(train: QueryData, test: QueryData) -> np.ndarray:
    return np.argmin(test.C, axis=1)


def _best_single(train: QueryData, test: QueryData) -> np.ndarray:
    return np.full(len(test), int(np.argmax(train.Y.mean(axis=0))))


def _oracle(train: QueryData, test: QueryData) -> np.ndarray:
    best = test.Y.max(axis=1, keepdims=True)
    cost = np.where(test.Y >= best - 1e-9, test.C, np.inf)
    return np.argmin(cost, axis=1)


def _cascade(train: QueryData, test: QueryData, ref: float, params: Mapping[str, Any], lambdas: Sequence[float]) -> RouterOutcome:
    """Try models from cheapest up; stop at the first whose kNN-predicted quality reaches the threshold.
    Every tried model is paid for."""
    t = time.perf_counter()
    router = LearnedRouter.train("knn", train.X, train.Y, targets=train.models, params={"k": params.get("k", 10)})
    Q = router.predictor.predict(test.X)
    order = np.argsort(train.C.mean(axis=0))
    out = RouterOutcome("cascade", [], train_s=time.perf_counter() - t)
    for tau in params.get("thresholds", DEFAULT_THRESHOLDS):
        picks = np.empty(len(test), dtype=int)
        paid = np.zeros(len(test))
        for i in range(len(test)):
            for j, m in enumerate(order):
                if Q[i, m] >= tau or j == len(order) - 1:
                    picks[i] = m
                    break
                paid[i] += test.C[i, m]
        out.picks[float(tau)] = picks
        out.points.append(_point(test, picks, ref, float(tau), extra_cost=paid))
    return out


def _bandit(train: QueryData, test: QueryData, ref: float, params: Mapping[str, Any], lambdas: Sequence[float]) -> RouterOutcome:
    """LinUCB over PCA-reduced embeddings (projection fitted on train): learns online from reward = score -
    lambda * cost / max cost, first over the training stream (unless ``warmup: false``), then (still
    learning) over the test stream, which is what is scored."""
    dim = int(params.get("dim", 32))
    alpha = float(params.get("alpha", 0.5))
    mean = train.X.mean(axis=0)
    _, _, vt = np.linalg.svd(train.X[: min(len(train), 3000)] - mean, full_matrices=False)
    proj = vt[:dim].T

    def feats(X: np.ndarray) -> np.ndarray:
        z = (X - mean) @ proj
        return np.hstack([z, np.ones((len(z), 1))])

    Ftr, Fte = feats(train.X), feats(test.X)
    out = RouterOutcome("bandit", [])
    t = time.perf_counter()
    m = len(train.models)
    for lam in params.get("lambdas", (0.0, 0.05, 0.2, 0.5, 1.0, 3.0)):
        Ainv = np.stack([np.eye(dim + 1) for _ in range(m)])
        b = np.zeros((m, dim + 1))
        picks = np.empty(len(test), dtype=int)
        phases = ((Ftr, train, False), (Fte, test, True)) if params.get("warmup", True) else ((Fte, test, True),)
        for F, data, scored in phases:
            cmax = np.maximum(data.C.max(axis=1), 1e-12)
            for i in range(len(F)):
                x = F[i]
                theta = np.einsum("mij,mj->mi", Ainv, b)
                ucb = theta @ x + alpha * np.sqrt(np.einsum("i,mij,j->m", x, Ainv, x))
                a = int(np.argmax(ucb))
                r = data.Y[i, a] - lam * data.C[i, a] / cmax[i]
                Ax = Ainv[a] @ x
                Ainv[a] -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
                b[a] += r * x
                if scored:
                    picks[i] = a
        out.picks[float(lam)] = picks
        out.points.append(_point(test, picks, ref, float(lam)))
    out.train_s = time.perf_counter() - t
    return out


QUERY_ROUTERS: dict[str, Callable[..., RouterOutcome]] = {
    "random": _fixed_picks("random", _random),
    "cheapest": _fixed_picks("cheapest", _cheapest),
    "best_single": _fixed_picks("best_single", _best_single),
    "oracle": _fixed_picks("oracle", _oracle),
    "knn": _learned("knn"),
    "mlp": _learned("mlp"),
    "mf": _learned("mf"),
    "cascade": _cascade,
    "bandit": _bandit,
}
"""Query-level routers by suite name; ``oracle`` is an upper bound for evals only."""


def _latency(outcome: RouterOutcome, test: QueryData, embedder: Any, n: int) -> list[float]:
    router = outcome.metrics.get("_router")
    if router is None:
        return []
    router._embedder = embedder
    return decision_latencies_ms(router, test.prompts[:n], [TargetInfo(name=m) for m in test.models], embedder)


def evaluate_query_routers(
    train: QueryData,
    test: QueryData,
    routers: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    bootstrap: int = 1000,
    latency_embedder: Any = None,
    latency_samples: int = 100,
    strong_weak: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Run each (label, kind, params) router; return per-router curves and metrics plus references."""
    best = int(np.argmax(train.Y.mean(axis=0)))
    rows = np.arange(len(test))
    ref_cost = float(test.C[:, best].sum()) or 1.0
    best_quality = float(test.Y[:, best].mean())
    results: dict[str, Any] = {"best_single_model": test.models[best], "best_single_quality": best_quality,
                               "reference_cost_usd": ref_cost, "n_train": len(train), "n_test": len(test),
                               "models": test.models, "routers": {}}
    for label, kind, params in routers:
        try:
            fn = QUERY_ROUTERS[kind]
        except KeyError:
            raise UnknownNameError("query router", kind, QUERY_ROUTERS) from None
        out = fn(train, test, ref_cost, params, lambdas)
        out.router = label
        if latency_embedder is not None:
            out.latency_ms = _latency(out, test, latency_embedder, latency_samples)
        hull = upper_hull(out.points)
        under_half = [p for p in out.points if p.cost <= 0.5 + 1e-9]
        best_half = max(under_half, key=lambda p: p.quality) if under_half else None
        headline = max(out.points, key=lambda p: p.quality)
        setting = headline.setting if headline.setting is not None else 0.0
        picks = out.picks.get(setting, next(iter(out.picks.values())))
        ci = bootstrap_ci(test.Y[rows, picks], n=bootstrap) if bootstrap else (float("nan"), float("nan"))
        m: dict[str, Any] = {
            "points": [{"cost": p.cost, "quality": p.quality, "setting": p.setting} for p in out.points],
            "aiq": aiq(out.points),
            "aiq_common_range": aiq(out.points, cost_range=(0.0, 1.0)),
            "best_quality": headline.quality, "best_quality_cost": headline.cost, "best_quality_ci95": ci,
            "quality_at_half_cost": best_half.quality if best_half else float("nan"),
            "quality_at_half_cost_cost": best_half.cost if best_half else float("nan"),
            "cost_to_95pct_best_single": cost_to_reach(hull or out.points, 0.95 * best_quality),
            "cost_to_100pct_best_single": cost_to_reach(hull or out.points, best_quality),
            "train_s": out.train_s,
            "latency_p50_ms": percentile(out.latency_ms, 50), "latency_p99_ms": percentile(out.latency_ms, 99),
        }
        if strong_weak is not None:
            s_i, w_i = test.models.index(strong_weak[0]), test.models.index(strong_weak[1])
            q_s, q_w = float(test.Y[:, s_i].mean()), float(test.Y[:, w_i].mean())
            shares = [float((out.picks[k] == s_i).mean()) for k in out.picks]
            quals = [float(test.Y[rows, out.picks[k]].mean()) for k in out.picks]
            m.update({"apgr": apgr(shares, quals, q_w, q_s),
                      "strong_share_for_50pct_pgr": strong_share_for_pgr(shares, quals, q_w, q_s, 0.5),
                      "strong_share_for_80pct_pgr": strong_share_for_pgr(shares, quals, q_w, q_s, 0.8),
                      "strong_quality": q_s, "weak_quality": q_w})
        results["routers"][label] = m
    return results
