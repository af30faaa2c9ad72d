"""Learned quality predictors over query embeddings, and the routers built on them.

A predictor maps a query embedding to the expected quality of every target it was trained on
(``fit(X, Y)`` with Y the recorded scores). :class:`LearnedRouter` chooses the candidate maximising
``predicted quality - willingness * normalised cost``; sweeping ``willingness`` traces a
cost-quality curve. Predictors: kNN (cosine neighbours), an MLP and RouteLLM-style matrix
factorisation, all in numpy (no torch). Trained routers are ``.npz`` files that flows and suites load
by path.
"""

from __future__ import annotations

import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._names import name_list
from ..errors import ConfigError, RoutingError
from ..types import Decision, RouteContext
from ._embedding import UsesEmbedder
from .base import Router
from .registry import register_router

__all__ = ["KNNPredictor", "LearnedRouter", "MFPredictor", "MLPPredictor", "PREDICTORS", "QualityPredictor"]


class QualityPredictor(ABC):
    """Predicts per-target quality (one column per trained target) from embeddings."""

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, X: np.ndarray, Y: np.ndarray) -> QualityPredictor:
        """Train on embeddings ``X`` (n, d) and recorded scores ``Y`` (n, targets)."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Expected quality (n, targets)."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save."""

    @classmethod
    @abstractmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> QualityPredictor:
        """Rebuild from saved arrays."""

    def params(self) -> dict[str, Any]:
        """Hyper-parameters to save."""
        return {}

    def input_dim(self) -> int | None:
        """The embedding width it was trained on (None before fitting)."""
        return None


class KNNPredictor(QualityPredictor):
    """Mean recorded scores of the ``k`` most similar training queries (cosine; embeddings are unit length)."""

    kind = "knn"

    def __init__(self, k: int = 10) -> None:
        self.k = k
        self.X: np.ndarray | None = None
        self.Y: np.ndarray | None = None

    def fit(self, X: np.ndarray, Y: np.ndarray) -> KNNPredictor:
        self.X, self.Y = np.asarray(X, np.float32), np.asarray(Y, np.float32)
        return self

    def neighbours(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices and similarities of the k nearest training rows."""
        assert self.X is not None, "fit first"
        sims = np.asarray(X, np.float32) @ self.X.T
        k = min(self.k, self.X.shape[0])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return idx, np.take_along_axis(sims, idx, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        assert self.Y is not None, "fit first"
        idx, _ = self.neighbours(X)
        return self.Y[idx].mean(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        assert self.X is not None and self.Y is not None
        return {"X": self.X, "Y": self.Y}

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def input_dim(self) -> int | None:
        return None if self.X is None else int(self.X.shape[1])

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> KNNPredictor:
        return cls(**params).fit(arrays["X"], arrays["Y"])


def _adam(params: list[np.ndarray], grads: list[np.ndarray], m: list[np.ndarray], v: list[np.ndarray], t: int,
          lr: float) -> None:
    for p, g, mi, vi in zip(params, grads, m, v, strict=True):
        mi *= 0.9
        mi += 0.1 * g
        vi *= 0.999
        vi += 0.001 * g * g
        p -= lr * (mi / (1 - 0.9 ** t)) / (np.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)


def _train_adam(params: list[np.ndarray], n_rows: int, grads: Any, *, epochs: int, batch: int, lr: float,
                rng: np.random.Generator) -> None:
    """Minibatch Adam, in place: each epoch shuffles the rows; ``grads(rows)`` returns the gradients of
    ``params`` (in order) on those rows."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n_rows)
        for s in range(0, n_rows, batch):
            step += 1
            _adam(params, grads(order[s:s + batch]), m, v, step, lr)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class _WeightsPredictor(QualityPredictor):
    """A predictor whose state is its list of weight arrays ``W`` and whose params are its constructor's."""

    W: list[np.ndarray]

    def state(self) -> dict[str, np.ndarray]:
        return {f"W{i}": w for i, w in enumerate(self.W)}

    def input_dim(self) -> int | None:
        return int(self.W[0].shape[0]) if self.W else None

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> QualityPredictor:
        p = cls(**params)
        p.W = [arrays[f"W{i}"] for i in range(len(arrays))]
        return p


class MLPPredictor(_WeightsPredictor):
    """One hidden ReLU layer, sigmoid outputs, trained with Adam on binary cross-entropy against the scores."""

    kind = "mlp"

    def __init__(self, hidden: int = 128, epochs: int = 60, lr: float = 2e-3, weight_decay: float = 1e-4,
                 batch: int = 128, seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr, self.wd, self.batch, self.seed = hidden, epochs, lr, weight_decay, batch, seed
        self.W: list[np.ndarray] = []

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MLPPredictor:
        rng = np.random.default_rng(self.seed)
        X, Y = np.asarray(X, np.float32), np.clip(np.asarray(Y, np.float32), 0, 1)
        d, t = X.shape[1], Y.shape[1]
        W1 = rng.normal(0, np.sqrt(2 / d), (d, self.hidden)).astype(np.float32)
        b1 = np.zeros(self.hidden, np.float32)
        W2 = rng.normal(0, np.sqrt(1 / self.hidden), (self.hidden, t)).astype(np.float32)
        b2 = np.log(np.clip(Y.mean(0), 1e-3, 1 - 1e-3) / (1 - np.clip(Y.mean(0), 1e-3, 1 - 1e-3))).astype(np.float32)
        params = [W1, b1, W2, b2]

        def grads(i: np.ndarray) -> list[np.ndarray]:
            x, y = X[i], Y[i]
            h = np.maximum(x @ W1 + b1, 0)
            g = (_sigmoid(h @ W2 + b2) - y) / len(i)
            gh = (g @ W2.T) * (h > 0)
            return [x.T @ gh + self.wd * W1, gh.sum(0), h.T @ g + self.wd * W2, g.sum(0)]

        _train_adam(params, len(X), grads, epochs=self.epochs, batch=self.batch, lr=self.lr, rng=rng)
        self.W = params
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        W1, b1, W2, b2 = self.W
        return _sigmoid(np.maximum(np.asarray(X, np.float32) @ W1 + b1, 0) @ W2 + b2)

    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "epochs": self.epochs, "lr": self.lr, "weight_decay": self.wd,
                "batch": self.batch, "seed": self.seed}



class MFPredictor(_WeightsPredictor):
    """RouteLLM-style matrix factorisation: score(q, m) = sigmoid(w . (v_m * (P q)) + b_m), trained with
    Adam on binary cross-entropy against the recorded scores."""

    kind = "mf"

    def __init__(self, dim: int = 64, epochs: int = 60, lr: float = 3e-3, weight_decay: float = 1e-4,
                 batch: int = 128, seed: int = 0) -> None:
        self.dim, self.epochs, self.lr, self.wd, self.batch, self.seed = dim, epochs, lr, weight_decay, batch, seed
        self.W: list[np.ndarray] = []

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MFPredictor:
        rng = np.random.default_rng(self.seed)
        X, Y = np.asarray(X, np.float32), np.clip(np.asarray(Y, np.float32), 0, 1)
        d, t = X.shape[1], Y.shape[1]
        P = rng.normal(0, 1 / np.sqrt(d), (d, self.dim)).astype(np.float32)
        V = rng.normal(0, 1.0, (t, self.dim)).astype(np.float32)
        w = rng.normal(0, 1 / np.sqrt(self.dim), self.dim).astype(np.float32)
        mean = np.clip(Y.mean(0), 1e-3, 1 - 1e-3)
        b = np.log(mean / (1 - mean)).astype(np.float32)
        params = [P, V, w, b]

        def grads(i: np.ndarray) -> list[np.ndarray]:
            x, y = X[i], Y[i]
            z = x @ P                                  # (n, dim)
            inter = z[:, None, :] * V[None, :, :]      # (n, t, dim)
            g = (_sigmoid(inter @ w + b) - y) / len(i)  # (n, t)
            gz = np.einsum("nt,td->nd", g, V) * w[None, :]
            return [x.T @ gz + self.wd * P, np.einsum("nt,nd->td", g, z) * w[None, :] + self.wd * V,
                    np.einsum("nt,ntd->d", g, inter) + self.wd * w, g.sum(0)]

        _train_adam(params, len(X), grads, epochs=self.epochs, batch=self.batch, lr=self.lr, rng=rng)
        self.W = params
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        P, V, w, b = self.W
        z = np.asarray(X, np.float32) @ P
        return _sigmoid(np.einsum("nd,td,d->nt", z, V, w) + b)

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim, "epochs": self.epochs, "lr": self.lr, "weight_decay": self.wd,
                "batch": self.batch, "seed": self.seed}



PREDICTORS: dict[str, type[QualityPredictor]] = {"knn": KNNPredictor, "mlp": MLPPredictor, "mf": MFPredictor}


class LearnedRouter(UsesEmbedder, Router):
    """Routes to the candidate with the best ``predicted quality - willingness * cost / max cost``.

    Example::

        router = LearnedRouter.train("knn", X, Y, targets=models, costs=prices, params={"k": 10})
        router.save("knn.npz"); LearnedRouter.load("knn.npz")
    """

    name = "learned"

    def __init__(self, predictor: QualityPredictor, targets: Sequence[str], costs: Mapping[str, float] | None = None,
                 *, willingness: float = 0.0, embedder: Any = None, label: str | None = None) -> None:
        super().__init__(label=label or predictor.kind)
        self.predictor = predictor
        self.targets = list(targets)
        self.costs = {t: float((costs or {}).get(t, 0.0)) for t in self.targets}
        self.willingness = willingness
        self._embedder = embedder
        self._col = {t: i for i, t in enumerate(self.targets)}
        self.extra_meta: dict[str, Any] = {}
        """What :meth:`load` read beyond the predictor (e.g. a cascade's ``threshold``)."""

    @classmethod
    def train(cls, kind: str, X: np.ndarray, Y: np.ndarray, *, targets: Sequence[str],
              costs: Mapping[str, float] | None = None, params: Mapping[str, Any] | None = None,
              **kwargs: Any) -> LearnedRouter:
        """Fit a predictor of ``kind`` (knn, mlp, mf) and wrap it."""
        try:
            pcls = PREDICTORS[kind]
        except KeyError:
            from ..errors import UnknownNameError

            raise UnknownNameError("predictor", kind, PREDICTORS) from None
        return cls(pcls(**dict(params or {})).fit(X, Y), targets, costs, **kwargs)

    def scores_for(self, predicted: np.ndarray, names: Sequence[str], willingness: float | None = None) -> dict[str, float]:
        """Utility of each named target given one row of predicted qualities."""
        lam = self.willingness if willingness is None else willingness
        cmax = max(self.costs.values()) or 1.0
        return {n: float(predicted[self._col[n]] - lam * self.costs[n] / cmax) for n in names}

    def _decision(self, ctx: RouteContext, predicted: np.ndarray) -> Decision:
        unknown = [c for c in ctx.candidate_names if c not in self._col]
        if unknown:
            raise RoutingError(f"router {self.label!r} was trained on {name_list(self.targets)}; it cannot score "
                               f"{name_list(unknown)} (retrain with them)", router=self.label, candidates=ctx.candidate_names)
        scores = self.scores_for(predicted, ctx.candidate_names)
        for c in ctx.candidate_names:
            if not ctx.health_of(c).available:
                scores[c] -= 10.0
        best = max(scores, key=scores.__getitem__)
        return self.decide(scores, rationale=f"{self.predictor.kind}: predicted quality {predicted[self._col[best]]:.3f} "
                                             f"for {best} at willingness {self.willingness}",
                           metadata={"predicted_quality": {c: float(predicted[self._col[c]]) for c in ctx.candidate_names}})

    def route(self, ctx: RouteContext) -> Decision:
        return self._decision(ctx, self.predictor.predict(self.embedder.embed_one(ctx.query)[None])[0])

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        preds = self.predictor.predict(self.embedder.embed([c.query for c in contexts]))
        return [self._decision(c, p) for c, p in zip(contexts, preds, strict=True)]

    def referenced_targets(self) -> set[str]:
        return set()

    def save_meta(self) -> dict[str, Any]:
        """Extra fields a subclass stores with the predictor (e.g. the cascade's threshold)."""
        return {}

    def save(self, path: str | Path) -> Path:
        """Write the trained router as one ``.npz`` file."""
        path = Path(path)
        meta = {"format": "crossroads.learned_router/1", "kind": self.predictor.kind, "params": self.predictor.params(),
                "targets": self.targets, "costs": self.costs, "willingness": self.willingness, "label": self.label,
                **self.save_meta()}
        arrays: dict[str, Any] = {"__meta__": np.array(json.dumps(meta)), **self.predictor.state()}
        np.savez_compressed(path, **arrays)
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    @classmethod
    def load(cls, path: str | Path, *, as_type: str | None = None, **overrides: Any) -> LearnedRouter:
        """Read a router written by :meth:`save`. ``as_type`` is the router type the file is loaded as
        (``trained``: a cascade file is refused, since scoring it as ``trained`` would drop its threshold)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"trained router file {path} does not exist; create it with 'crossroads train'")
        if path.is_dir():
            raise ConfigError(f"trained router file {path} is a directory; give the .npz file 'crossroads train' wrote")
        how = "write one with 'crossroads train knn|mlp|mf|cascade --data FILE --out FILE.npz'"
        if not zipfile.is_zipfile(path):  # np.load would try it as a pickle and talk about allow_pickle
            raise ConfigError(f"{path} is not a crossroads trained-router file (not an .npz archive): it is not a "
                              f"router file written by 'crossroads train'; {how}")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "__meta__" not in z.files:
                    raise ConfigError(f"{path} is not a crossroads trained-router file (an .npz archive without the "
                                      f"'__meta__' entry 'crossroads train' writes); {how}")
                meta = json.loads(str(z["__meta__"]))
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
        except ConfigError:
            raise
        except Exception as exc:  # truncated zip, pickled data, bad JSON...: all "not our file"
            raise ConfigError(f"{path} is not a crossroads trained-router file ({type(exc).__name__}: {exc}); "
                              f"{how}") from exc
        _refuse_other_router_file(path, meta, as_type)
        try:
            predictor = PREDICTORS[meta["kind"]].from_state(arrays, meta["params"])
            targets, costs = list(meta["targets"]), dict(meta["costs"])
        except Exception as exc:
            raise ConfigError(f"{path} is not a valid crossroads trained-router file (format "
                              f"{meta.get('format') if isinstance(meta, dict) else None!r}; {type(exc).__name__}: "
                              f"{exc}); {how}") from exc
        kw = {"willingness": meta.get("willingness", 0.0), "label": meta.get("label"), **overrides}
        router = cls(predictor, targets, costs, **kw)
        router.extra_meta = {k: v for k, v in meta.items() if k in ("router", "threshold")}
        return router


_INTENT_FORMATS = ("crossroads.intent_router/1", "crossroads.classifier/1")
"""Formats of agent-selection files (``crossroads train classifier|centroid|knn_intent|nearest``)."""


def _refuse_other_router_file(path: Path, meta: Any, as_type: str | None) -> None:
    """Refuse a ``crossroads train`` file that holds another kind of router than ``as_type`` loads, naming the
    type that loads it: an agent-selection file (any quality-predictor type), a cascade file as ``trained``."""
    if not isinstance(meta, dict):
        return
    fmt = meta.get("format")
    if fmt in _INTENT_FORMATS:
        kind = str(meta.get("kind") or "classifier")
        raise ConfigError(f"{path} holds a {kind} router for agent selection (written by 'crossroads train {kind}'), "
                          f"not a quality predictor over models: load it with type: {kind} "
                          f"(params: {{path: {path}}}), in an agent-selection flow or suite")
    if as_type == "trained" and meta.get("router") == "cascade":
        thr = meta.get("threshold")
        raise ConfigError(f"{path} holds a cascade router ({meta.get('kind')} predictor, threshold "
                          f"{thr if thr is not None else 'unset'}, written by 'crossroads train cascade'): load it "
                          f"with type: cascade (params: {{path: {path}}}); as type: trained its threshold would be "
                          "ignored")


@register_router()
class TrainedRouter(LearnedRouter):
    """A trained router loaded from a file (``type: trained, params: {path: knn.npz}``)."""

    name = "trained"

    def __init__(self, path: str, willingness: float | None = None, *, label: str | None = None) -> None:
        loaded = LearnedRouter.load(path, as_type="trained")
        super().__init__(loaded.predictor, loaded.targets, loaded.costs,
                         willingness=loaded.willingness if willingness is None else willingness,
                         label=label or loaded.label)
