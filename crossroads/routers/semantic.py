"""Embedding-prototype routing: routes defined by example utterances (like aurelio's semantic-router).

Each candidate is represented by its example utterances (or, without any, by its name and
description); a query goes to the candidate whose closest example is most similar (cosine on the
local MiniLM embeddings). Below ``threshold`` the ``default`` target is chosen instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..types import Decision, RouteContext, TargetInfo
from ._embedding import UsesEmbedder
from .base import Router
from .registry import register_router

__all__ = ["SemanticRouter"]


@register_router()
class SemanticRouter(UsesEmbedder, Router):
    """Nearest example utterance wins; scores are cosine similarities."""

    name = "semantic"

    def __init__(
        self,
        routes: Mapping[str, Sequence[str]] | None = None,
        *,
        threshold: float | None = None,
        default: str | None = None,
        top_k: int = 1,
        aggregate: str = "max",
        embedder: Any = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label=label)
        if aggregate not in ("max", "mean"):
            raise ConfigError(f"semantic router: aggregate must be 'max' or 'mean', not {aggregate!r}")
        if threshold is not None and default is None:
            raise ConfigError("semantic router: a threshold needs a default target for queries below it")
        self.routes = {k: list(v) for k, v in (routes or {}).items()}
        for name, utterances in self.routes.items():
            if not utterances or not all(isinstance(u, str) and u.strip() for u in utterances):
                raise ConfigError(f"semantic router: route {name!r} needs a non-empty list of example utterances")
        self.threshold = threshold
        self.default = default
        self.top_k = top_k
        self.aggregate = aggregate
        self._embedder = embedder
        self._index: dict[tuple[str, ...], tuple[list[str], Any, Any]] = {}
        self._lock = threading.Lock()

    def referenced_targets(self) -> set[str]:
        return set(self.routes) | ({self.default} if self.default else set())

    def _examples(self, c: TargetInfo) -> list[str]:
        return self.routes.get(c.name) or [f"{c.name.replace('_', ' ')}: {c.description}".strip(": ")]

    def _prototypes(self, candidates: Sequence[TargetInfo]) -> tuple[list[str], Any, Any]:
        key = tuple(c.name for c in candidates)
        with self._lock:
            hit = self._index.get(key)
        if hit is not None:
            return hit
        import numpy as np

        texts: list[str] = []
        owner: list[int] = []
        for i, c in enumerate(candidates):
            ex = self._examples(c)
            texts += ex
            owner += [i] * len(ex)
        vecs = self.embedder.embed(texts)
        built = (texts, np.asarray(owner), vecs)
        with self._lock:
            self._index[key] = built
        return built

    def _decide(self, ctx: RouteContext, qvec: Any) -> Decision:
        import numpy as np

        texts, owner, vecs = self._prototypes(ctx.candidates)
        sims = vecs @ qvec
        n = len(ctx.candidates)
        if self.aggregate == "max":
            per = np.full(n, -1.0)
            np.maximum.at(per, owner, sims)
        else:
            per = np.bincount(owner, weights=sims, minlength=n) / np.maximum(np.bincount(owner, minlength=n), 1)
        scores = {c.name: float(per[i]) for i, c in enumerate(ctx.candidates)}
        for c in ctx.candidates:  # steer away from down targets unless all are down
            if not ctx.health_of(c.name).available and any(ctx.health_of(o.name).available for o in ctx.candidates):
                scores[c.name] -= 2.0
        best_i = int(np.argmax([scores[c.name] for c in ctx.candidates]))
        best = ctx.candidates[best_i].name
        mine = [j for j in range(len(texts)) if owner[j] == best_i]
        example = texts[max(mine, key=lambda j: sims[j])]
        if self.threshold is not None and scores[best] < self.threshold:
            assert self.default is not None
            return Decision(targets=(self.default,), scores=scores, router=self.label,
                            rationale=f"best match {best!r} ({scores[best]:.3f}) below threshold {self.threshold}; default",
                            metadata={"closest_example": example})
        return self.decide(scores, k=self.top_k, rationale=f"closest example of {best!r}: {example!r} (cos {scores[best]:.3f})",
                           metadata={"closest_example": example})

    def route(self, ctx: RouteContext) -> Decision:
        return self._decide(ctx, self.embedder.embed_one(ctx.query))

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        qvecs = self.embedder.embed([c.query for c in contexts])
        return [self._decide(c, q) for c, q in zip(contexts, qvecs)]
