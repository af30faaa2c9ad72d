"""LinUCB (Li et al., 2010, "A contextual-bandit approach to personalized news article
recommendation", disjoint model): one ridge-regression arm per candidate over the query's embedding
(optionally PCA-reduced), choosing the arm with the highest upper confidence bound
``theta_a . x + alpha * sqrt(x' A_a^-1 x)`` and learning online from :class:`~crossroads.types.Feedback`.

The reward it learns from is ``feedback.reward - willingness * cost_a / max cost`` where ``cost_a`` is
the chosen candidate's relative cost (``costs`` given, else its input price per 1M tokens), so the
willingness to pay trades quality for cost exactly as in :class:`~crossroads.routers.learned.LearnedRouter`.

YAML: ``type: linucb, params: {alpha: 0.5, willingness: 0.2}`` (learns from the flow's feedback).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, FeedbackError
from ..types import Decision, Feedback, RouteContext
from ._embedding import UsesEmbedder
from .base import Router
from .registry import register_router

__all__ = ["LinUCBRouter"]

PENDING_LIMIT = 100_000
"""Decisions awaiting feedback that are remembered (oldest forgotten first)."""


@register_router()
class LinUCBRouter(UsesEmbedder, Router):
    """Disjoint LinUCB over query embeddings; learns from feedback.

    Example::

        r = LinUCBRouter(alpha=0.5, willingness=0.2)
        r.fit_projection(train_embeddings, dim=32)   # optional: PCA to 32 dims
        d = r.route(ctx); r.feedback(Feedback(decision_id=d.decision_id, reward=1.0))
    """

    name = "linucb"
    learns = True

    def __init__(self, alpha: float = 0.5, willingness: float = 0.0, costs: Mapping[str, float] | None = None, *,
                 embedder: Any = None, label: str | None = None) -> None:
        super().__init__(label=label)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ConfigError(f"linucb router: alpha must be a finite number >= 0, got {alpha!r}")
        if not np.isfinite(willingness):
            raise ConfigError(f"linucb router: willingness must be finite, got {willingness!r}")
        self.alpha = float(alpha)
        self.willingness = float(willingness)
        self.costs = {k: float(v) for k, v in (costs or {}).items()}
        self._embedder = embedder
        self._mean: np.ndarray | None = None
        self._proj: np.ndarray | None = None
        self._ainv: dict[str, np.ndarray] = {}
        self._b: dict[str, np.ndarray] = {}
        self._pending: OrderedDict[str, tuple[str, np.ndarray, float]] = OrderedDict()
        self._lock = threading.Lock()

    def fit_projection(self, X: np.ndarray, dim: int = 32, *, max_rows: int = 3000) -> LinUCBRouter:
        """Reduce embeddings to ``dim`` principal components of ``X`` (its first ``max_rows`` rows).
        Resets the arms (their dimension changes)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise ConfigError("linucb router: fit_projection needs a 2-D array of at least two embeddings")
        self._mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X[:max_rows] - self._mean, full_matrices=False)
        self._proj = vt[: min(dim, vt.shape[0])].T
        self._ainv.clear()
        self._b.clear()
        return self

    def features(self, emb: np.ndarray) -> np.ndarray:
        """The arm features of one embedding: projected (if a projection is fitted) plus a bias term."""
        z = np.asarray(emb, dtype=np.float64)
        if self._proj is not None and self._mean is not None:
            z = (z - self._mean) @ self._proj
        return np.append(z, 1.0)

    def _arm(self, name: str, d: int) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._ainv:
            self._ainv[name] = np.eye(d)
            self._b[name] = np.zeros(d)
        return self._ainv[name], self._b[name]

    def _cost(self, ctx: RouteContext, name: str) -> float:
        if name in self.costs:
            return self.costs[name]
        c = next(c for c in ctx.candidates if c.name == name)
        return c.cost.input_per_mtok + c.cost.per_call

    def _decide(self, ctx: RouteContext, x: np.ndarray) -> Decision:
        names = ctx.candidate_names
        if not names:
            raise ConfigError("linucb router: no candidates to choose from")
        with self._lock:
            ucb: dict[str, float] = {}
            for n in names:
                ainv, b = self._arm(n, len(x))
                ax = ainv @ x
                ucb[n] = float((ainv @ b) @ x + self.alpha * np.sqrt(max(float(x @ ax), 0.0)))
                if not ctx.health_of(n).available:
                    ucb[n] -= 1e6
            best = max(names, key=lambda n: ucb[n])
            costs = {n: self._cost(ctx, n) for n in names}
            cmax = max(costs.values()) or 1.0
            d = self.decide(ucb, rationale=f"linucb: {best} has the highest upper confidence bound {ucb[best]:.3f}",
                            metadata={"ucb": ucb})
            self._pending[d.decision_id] = (best, x, costs[best] / cmax)
            while len(self._pending) > PENDING_LIMIT:
                self._pending.popitem(last=False)
        return d

    def route(self, ctx: RouteContext) -> Decision:
        return self._decide(ctx, self.features(self.embedder.embed_one(ctx.query)))

    def feedback(self, feedback: Feedback) -> None:
        """Update the chosen arm with ``reward - willingness * relative cost`` (Sherman-Morrison)."""
        if not np.isfinite(feedback.reward):
            raise FeedbackError(f"linucb router {self.label!r}: reward must be finite, got {feedback.reward!r}")
        with self._lock:
            try:
                arm, x, rel_cost = self._pending.pop(feedback.decision_id)
            except KeyError:
                raise FeedbackError(f"linucb router {self.label!r}: unknown or already-answered decision "
                                    f"{feedback.decision_id!r}") from None
            if feedback.target is not None and feedback.target != arm:
                raise FeedbackError(f"linucb router {self.label!r}: decision {feedback.decision_id} chose {arm}, "
                                    f"feedback is for {feedback.target}")
            r = float(feedback.reward) - self.willingness * rel_cost
            ainv, b = self._arm(arm, len(x))
            ax = ainv @ x
            ainv -= np.outer(ax, ax) / (1.0 + x @ ax)
            b += r * x
