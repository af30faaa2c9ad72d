"""Embedding-prototype routing: routes defined by example utterances (like aurelio's semantic-router).

Each candidate is represented by its example utterances (or, without any, by its name and
description); a query goes to the candidate whose closest example is most similar (cosine on the
local MiniLM embeddings). Below ``threshold`` the ``default`` target is chosen instead; the default
target, when it has no examples of its own, is not matched (it is where out-of-scope queries go), and
:meth:`SemanticRouter.calibrate` sets the threshold for an out-of-scope precision target with the same
rule as the other agent-selection routers (:func:`crossroads.routers.intent.calibrate_oos_threshold`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..types import Decision, RouteContext, TargetInfo
from ._embedding import UsesEmbedder
from .base import Router
from .intent import OOS, calibrate_oos_threshold
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
        self.calibration: dict[str, Any] = {}

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

    def _per_candidate(self, owner: Any, sims: Any, n: int) -> Any:
        import numpy as np

        if self.aggregate == "max":
            per = np.full(sims.shape[:-1] + (n,), -1.0)
            for i in range(n):
                cols = owner == i
                if cols.any():
                    per[..., i] = sims[..., cols].max(axis=-1)
            return per
        counts = np.maximum(np.bincount(owner, minlength=n), 1)
        return np.stack([sims[..., owner == i].sum(axis=-1) for i in range(n)], axis=-1) / counts

    def _matched(self, candidates: Sequence[TargetInfo]) -> tuple[TargetInfo, ...]:
        """The candidates matched against examples: all but an example-less default."""
        return tuple(c for c in candidates if not (c.name == self.default and c.name not in self.routes))

    def confidences(self, texts: Sequence[str]) -> Any:
        """The best route score of each text (over ``routes``), what ``threshold`` is compared with."""
        import numpy as np

        if not self.routes:
            raise ConfigError("semantic router: calibrating needs routes with example utterances")
        cands = self._matched(tuple(TargetInfo(name=n) for n in self.routes))
        _, owner, vecs = self._prototypes(cands)
        sims = np.asarray(self.embedder.embed(list(texts))) @ np.asarray(vecs).T
        return self._per_candidate(owner, sims, len(cands)).max(axis=1)

    def calibrate(self, texts: Sequence[str], labels: Sequence[str], *, precision_target: float,
                  prior: float | None = None) -> float | None:
        """Set ``threshold`` from labelled validation rows (label ``oos`` = out of scope) for an
        out-of-scope precision target, as :meth:`crossroads.routers.intent.IntentRouter.calibrate` does."""
        import numpy as np

        if self.default is None:
            raise ConfigError("semantic router: calibrating a threshold needs a default target for queries below it")
        is_oos = np.array([lab == OOS for lab in labels])
        self.threshold = calibrate_oos_threshold(self.confidences(texts), is_oos, precision_target=precision_target,
                                                 prior=prior)
        self.calibration = {"oos_precision_target": precision_target, "oos_prior": prior, "rows": len(labels),
                            "oos_rows": int(is_oos.sum()), "threshold": self.threshold}
        return self.threshold

    def _decide(self, ctx: RouteContext, qvec: Any) -> Decision:
        import numpy as np

        matched = self._matched(ctx.candidates)
        if not matched:
            raise ConfigError(f"semantic router {self.label!r}: no candidate to match besides the default {self.default!r}")
        texts, owner, vecs = self._prototypes(matched)
        sims = vecs @ qvec
        per = self._per_candidate(owner, sims, len(matched))
        scores = {c.name: float(per[i]) for i, c in enumerate(matched)}
        for c in matched:  # steer away from down targets unless all are down
            if not ctx.health_of(c.name).available and any(ctx.health_of(o.name).available for o in matched):
                scores[c.name] -= 2.0
        best_i = int(np.argmax([scores[c.name] for c in matched]))
        best = matched[best_i].name
        mine = [j for j in range(len(texts)) if owner[j] == best_i]
        example = texts[max(mine, key=lambda j: sims[j])]
        if len(matched) < len(ctx.candidates) and self.default is not None:
            scores[self.default] = self.threshold if self.threshold is not None else -1.0
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
        return [self._decide(c, q) for c, q in zip(contexts, qvecs, strict=True)]
