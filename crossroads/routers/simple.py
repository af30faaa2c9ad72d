"""Routers that decide from descriptors alone: fixed, random, cheapest, most capable."""

from __future__ import annotations

import random as _random
import threading

from ..agents.models import count_tokens_rough
from ..errors import ConfigError
from ..types import Decision, RouteContext
from .base import Router
from .registry import register_router

__all__ = ["CheapestRouter", "FixedRouter", "MostCapableRouter", "RandomRouter"]

DOWN_PENALTY = 1e6
"""Subtracted from the score of a down target so that it is chosen only if all are down."""
DEFAULT_OUTPUT_TOKENS = 256
"""Output length assumed when estimating the cost of a call."""


def _penalise_down(ctx: RouteContext, scores: dict[str, float]) -> dict[str, float]:
    return {n: s - (0 if ctx.health_of(n).available else DOWN_PENALTY) for n, s in scores.items()}


@register_router()
class FixedRouter(Router):
    """Always chooses the same target(s)."""

    name = "fixed"
    blocking = False  # decides in microseconds: no worker thread in async runs

    def __init__(self, target: str | list[str], *, label: str | None = None) -> None:
        super().__init__(label=label)
        self.targets = (target,) if isinstance(target, str) else tuple(target)
        if not self.targets:
            raise ConfigError("fixed router needs at least one target")

    def referenced_targets(self) -> set[str]:
        return set(self.targets)

    def route(self, ctx: RouteContext) -> Decision:
        scores = {c.name: (1.0 if c.name in self.targets else 0.0) for c in ctx.candidates}
        return Decision(targets=self.targets, scores=scores, router=self.label,
                        rationale=f"fixed: {', '.join(self.targets)}")


@register_router()
class RandomRouter(Router):
    """Chooses uniformly at random among available candidates (seeded for reproducibility)."""

    name = "random"
    blocking = False  # decides in microseconds: no worker thread in async runs

    def __init__(self, seed: int | None = 0, k: int = 1, *, label: str | None = None) -> None:
        super().__init__(label=label)
        self._rng = _random.Random(seed)
        self._lock = threading.Lock()
        self.k = k

    def route(self, ctx: RouteContext) -> Decision:
        pool = [c.name for c in ctx.available_candidates()]
        with self._lock:
            chosen = self._rng.sample(pool, min(self.k, len(pool)))
        p = 1.0 / len(pool)
        scores = {c.name: (p if c.name in pool else 0.0) for c in ctx.candidates}
        return Decision(targets=tuple(chosen), scores=scores, router=self.label,
                        rationale=f"uniform over {len(pool)} available candidates")


@register_router()
class CheapestRouter(Router):
    """Chooses the available candidate with the lowest estimated cost for this query."""

    name = "cheapest"
    blocking = False  # decides in microseconds: no worker thread in async runs

    def __init__(self, output_tokens: int = DEFAULT_OUTPUT_TOKENS, *, label: str | None = None) -> None:
        super().__init__(label=label)
        self.output_tokens = output_tokens

    def route(self, ctx: RouteContext) -> Decision:
        tin = count_tokens_rough(ctx.query)
        costs = {c.name: c.cost.estimate(tin, self.output_tokens) for c in ctx.candidates}
        scores = _penalise_down(ctx, {n: -v for n, v in costs.items()})
        best = max(scores, key=lambda n: scores[n])
        return self.decide(scores, rationale=f"cheapest estimate: {best} at ${costs[best]:.6f}",
                           metadata={"estimated_cost_usd": costs})


@register_router()
class MostCapableRouter(Router):
    """Chooses the available candidate with the highest expected quality (ties: cheaper wins)."""

    name = "most_capable"
    blocking = False  # decides in microseconds: no worker thread in async runs

    def route(self, ctx: RouteContext) -> Decision:
        tin = count_tokens_rough(ctx.query)
        scores: dict[str, float] = {}
        for c in ctx.candidates:
            quality = c.quality if c.quality is not None else 0.0
            # cost breaks ties only: it can never outweigh a quality difference of 1e-6
            scores[c.name] = quality - 1e-9 * c.cost.estimate(tin, DEFAULT_OUTPUT_TOKENS)
        scores = _penalise_down(ctx, scores)
        best = max(scores, key=lambda n: scores[n])
        return self.decide(scores, rationale=f"highest expected quality: {best}")
