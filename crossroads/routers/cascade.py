"""A cost cascade over predicted quality: the cheapest candidate predicted to be good enough.

Candidates are tried in ascending cost order; the first whose predicted quality (from a trained
:class:`~crossroads.routers.learned.QualityPredictor`, kNN by default) reaches ``threshold`` is chosen;
when none does, the candidate with the highest predicted quality is. The decision is made before any
model is called, so only the chosen model is paid for (a FrugalGPT-style cascade that calls models in
turn and scores their answers needs the answers; this one needs only the query). Sweeping
``threshold`` traces a cost-quality curve.

YAML: ``type: cascade, params: {path: knn.npz, threshold: 0.6}`` with a file from
``crossroads train cascade --data ...`` (or any ``crossroads train knn|mlp|mf`` file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._names import name_list
from ..errors import ConfigError, RoutingError
from ..types import Decision, RouteContext
from .learned import LearnedRouter, QualityPredictor
from .registry import register_router

__all__ = ["CascadeRouter"]


@register_router()
class CascadeRouter(LearnedRouter):
    """Cheapest candidate whose predicted quality reaches ``threshold`` (else the best predicted)."""

    name = "cascade"

    def __init__(self, path: str | None = None, threshold: float | None = None, *,
                 predictor: QualityPredictor | None = None, targets: Sequence[str] | None = None,
                 costs: Mapping[str, float] | None = None, embedder: Any = None, label: str | None = None) -> None:
        meta_threshold: float | None = None
        if predictor is None:
            if path is None:
                raise ConfigError("cascade router needs a trained file: params: {path: ...} "
                                  "(crossroads train cascade --data FILE --out FILE)")
            loaded = LearnedRouter.load(path)
            predictor, targets, costs = loaded.predictor, loaded.targets, loaded.costs
            meta_threshold = loaded.extra_meta.get("threshold")
        if targets is None:
            raise ConfigError("cascade router: give targets with the predictor")
        super().__init__(predictor, targets, costs, embedder=embedder, label=label or "cascade")
        t = threshold if threshold is not None else meta_threshold if meta_threshold is not None else 0.5
        if not np.isfinite(t):
            raise ConfigError(f"cascade router: threshold must be a finite number, got {t!r}")
        self.threshold = float(t)

    def _decision(self, ctx: RouteContext, predicted: np.ndarray) -> Decision:
        unknown = [c for c in ctx.candidate_names if c not in self._col]
        if unknown:
            raise RoutingError(f"router {self.label!r} was trained on {name_list(self.targets)}; it cannot score "
                               f"{name_list(unknown)} (retrain with them)", router=self.label, candidates=ctx.candidate_names)
        pred = {c: float(predicted[self._col[c]]) for c in ctx.candidate_names}
        live = [c for c in ctx.candidate_names if ctx.health_of(c).available] or list(ctx.candidate_names)
        order = sorted(live, key=lambda c: (self.costs[c], ctx.candidate_names.index(c)))
        chosen = next((c for c in order if pred[c] >= self.threshold), None)
        why = f"cheapest with predicted quality >= {self.threshold:g}"
        if chosen is None:
            chosen = max(order, key=lambda c: pred[c])
            why = f"none predicted >= {self.threshold:g}; best predicted"
        # scores: the chosen candidate ranks first; others by predicted quality
        scores = {c: (1.0 + pred[c]) if c == chosen else pred[c] - 1.0 for c in ctx.candidate_names}
        return Decision(targets=(chosen,), scores=scores, router=self.label,
                        rationale=f"cascade: {chosen} ({why}; predicted {pred[chosen]:.3f})",
                        metadata={"predicted_quality": pred, "cascade_order": order, "threshold": self.threshold})

    def save_meta(self) -> dict[str, Any]:
        return {"router": "cascade", "threshold": self.threshold}
