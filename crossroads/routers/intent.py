"""Agent-selection routers over query embeddings, with one calibrated out-of-scope rule.

Each router scores every agent it was trained on from the query's MiniLM embedding:

* ``centroid`` - cosine to the mean embedding of an agent's training utterances;
* ``knn_intent`` - similarity-weighted vote of the ``k`` nearest training utterances (sum of the
  similarities of an agent's neighbours, divided by ``k``);
* ``nearest`` - cosine to the agent's single nearest training utterance (1-NN);
* ``classifier`` - a softmax MLP head (:class:`SoftmaxClassifier`); scores are class probabilities and
  out-of-scope rows (label ``oos``) train a class of their own.

The out-of-scope rule is the same for all of them (and for :class:`~crossroads.routers.semantic.SemanticRouter`):
a query is out of scope when its best in-scope score (the router's *confidence*) is below ``threshold``;
it then goes to the ``fallback`` target. :meth:`IntentRouter.calibrate` sets the threshold on labelled
validation rows for a stated out-of-scope precision target (:func:`calibrate_oos_threshold`). For the
classifier the confidence is the maximum in-scope softmax probability, the baseline of Hendrycks & Gimpel
(2017, "A baseline for detecting misclassified and out-of-distribution examples").

``crossroads train centroid|knn_intent|nearest|classifier`` writes one ``.npz`` file; a flow loads it
with ``type: centroid, params: {path: agents.npz, fallback: general}``; the agent-selection suites score
the same objects through :meth:`Router.route_batch`.

A router file may name its own encoder (``crossroads train encoder``: a fine-tuned MiniLM exported to
ONNX next to the ``.npz``, meta key ``encoder: {path, sha256}``, the path relative to the ``.npz``). Loading
it embeds with that encoder (:func:`~crossroads.agents.embeddings.encoder_embedder`, sha256 checked), never
with the default one: the head is only valid for the encoder it was trained with.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._names import name_list
from ..errors import ConfigError, RoutingError
from ..types import Decision, RouteContext
from ._embedding import UsesEmbedder
from .base import Router
from .learned import _train_adam
from .registry import register_router

__all__ = ["INTENT_ROUTERS", "OOS", "CentroidRouter", "ClassifierRouter", "IntentRouter", "KNNIntentRouter",
           "NearestRouter", "SoftmaxClassifier", "calibrate_oos_threshold", "load_intent_router", "train_intent_router"]

OOS = "oos"
"""The training label of out-of-scope utterances."""

FORMAT = "crossroads.intent_router/1"


def calibrate_oos_threshold(confidence: Sequence[float] | np.ndarray, is_oos: Sequence[bool] | np.ndarray, *,
                            precision_target: float, prior: float | None = None) -> float | None:
    """The out-of-scope threshold (a row is out of scope when its confidence is below it) with the highest
    out-of-scope recall whose out-of-scope precision on these rows is at least ``precision_target``.

    With ``prior`` the precision is the one expected when a share ``prior`` of the traffic is out of
    scope: ``prior*R / (prior*R + (1-prior)*F)`` with R the recall on the out-of-scope rows and F the
    share of in-scope rows flagged (both independent of the rows' own mix); without it, the precision
    of these rows as they are. Thresholds are midpoints between distinct confidences, so tied rows are
    flagged together. Returns ``None`` when no threshold reaches the target (never flag).
    """
    conf = np.asarray(confidence, dtype=float)
    oos = np.asarray(is_oos, dtype=bool)
    if conf.shape != oos.shape or conf.ndim != 1:
        raise ConfigError("out-of-scope calibration: confidence and is_oos must be 1-d and of equal length")
    if not 0 < precision_target <= 1:
        raise ConfigError(f"oos_precision_target must be in (0, 1], not {precision_target!r}")
    if prior is not None and not 0 < prior < 1:
        raise ConfigError(f"oos_prior must be in (0, 1), not {prior!r}")
    n_oos, n_in = int(oos.sum()), int((~oos).sum())
    if n_oos == 0:
        raise ConfigError("out-of-scope calibration needs validation rows labelled 'oos'; add some or drop the target")
    order = np.argsort(conf, kind="stable")
    c, o = conf[order], oos[order]
    tp, fp = np.cumsum(o), np.cumsum(~o)
    best: float | None = None
    for k in range(1, len(c) + 1):  # flag the k lowest
        if k < len(c) and c[k] == c[k - 1]:
            continue  # a threshold cannot split tied confidences
        if prior is None:
            precision = tp[k - 1] / k
        else:
            r, f = tp[k - 1] / n_oos, (fp[k - 1] / n_in if n_in else 0.0)
            precision = prior * r / (prior * r + (1 - prior) * f) if r > 0 else 0.0
        if tp[k - 1] > 0 and precision >= precision_target - 1e-12:
            best = float((c[k - 1] + c[k]) / 2) if k < len(c) else float(np.nextafter(c[-1], np.inf))
    return best


class SoftmaxClassifier:
    """An MLP (one hidden ReLU layer, dropout) with a softmax over classes, trained with Adam on
    cross-entropy with label smoothing: the agent-selection head over query embeddings."""

    def __init__(self, hidden: int = 512, epochs: int = 40, lr: float = 1e-3, weight_decay: float = 1e-4,
                 dropout: float = 0.2, smoothing: float = 0.05, batch: int = 64, seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr, self.wd = hidden, epochs, lr, weight_decay
        self.dropout, self.smoothing, self.batch, self.seed = dropout, smoothing, batch, seed
        self.classes: list[str] = []
        self.W: list[np.ndarray] = []

    def fit(self, X: np.ndarray, labels: Sequence[str]) -> SoftmaxClassifier:
        rng = np.random.default_rng(self.seed)
        self.classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.array([index[lab] for lab in labels])
        X = np.asarray(X, np.float32)
        d, k = X.shape[1], len(self.classes)
        W1 = rng.normal(0, np.sqrt(2 / d), (d, self.hidden)).astype(np.float32)
        b1 = np.zeros(self.hidden, np.float32)
        W2 = rng.normal(0, np.sqrt(1 / self.hidden), (self.hidden, k)).astype(np.float32)
        b2 = np.zeros(k, np.float32)
        params = [W1, b1, W2, b2]

        def grads(i: np.ndarray) -> list[np.ndarray]:
            x = X[i]
            h = np.maximum(x @ W1 + b1, 0)
            mask = (rng.random(h.shape) >= self.dropout).astype(np.float32) / (1 - self.dropout)
            hd = h * mask
            logits = hd @ W2 + b2
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            target = np.full_like(p, self.smoothing / k)
            target[np.arange(len(i)), y[i]] += 1 - self.smoothing
            g = (p - target) / len(i)
            gh = (g @ W2.T) * mask * (h > 0)
            return [x.T @ gh + self.wd * W1, gh.sum(0), hd.T @ g + self.wd * W2, g.sum(0)]

        _train_adam(params, len(X), grads, epochs=self.epochs, batch=self.batch, lr=self.lr, rng=rng)
        self.W = params
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes), columns in ``self.classes`` order."""
        W1, b1, W2, b2 = self.W
        logits = np.maximum(np.asarray(X, np.float32) @ W1 + b1, 0) @ W2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "epochs": self.epochs, "lr": self.lr, "weight_decay": self.wd,
                "dropout": self.dropout, "smoothing": self.smoothing, "batch": self.batch, "seed": self.seed}


class IntentRouter(UsesEmbedder, Router):
    """Base of the embedding agent-selection routers: subclasses give :meth:`agent_scores` (one column
    per agent in ``self.agents``); this class applies the out-of-scope rule, the multi-agent set and
    candidate health, calibrates the threshold, and saves/loads the router as one ``.npz`` file."""

    kind: ClassVar[str] = ""

    def __init__(self, *, agents: Sequence[str], threshold: float | None = None, fallback: str | None = None,
                 set_margin: float = 0.0, max_set: int = 3, embedder: Any = None, label: str | None = None) -> None:
        super().__init__(label=label)
        if set_margin < 0 or max_set < 1:
            raise ConfigError(f"{self.name} router: set_margin must be >= 0 and max_set >= 1 "
                              f"(got {set_margin}, {max_set})")
        self.agents = [a for a in agents if a != OOS]
        if not self.agents:
            raise ConfigError(f"{self.name} router: no in-scope agents to choose from")
        self._col = {a: i for i, a in enumerate(self.agents)}
        self.threshold = threshold
        self.fallback = fallback
        self.set_margin = float(set_margin)
        self.max_set = int(max_set)
        self.calibration: dict[str, Any] = {}
        self._embedder = embedder
        self.encoder: dict[str, str] | None = None
        """``{path, sha256}`` of the router's own ONNX encoder (a fine-tuned MiniLM), else ``None``."""

    # --- scoring -------------------------------------------------------------------------------
    def agent_scores(self, X: np.ndarray) -> np.ndarray:
        """Scores (n, len(self.agents)) for query embeddings ``X``; higher is better."""
        raise NotImplementedError

    def referenced_targets(self) -> set[str]:
        return {self.fallback} if self.fallback else set()

    def confidences(self, texts: Sequence[str]) -> np.ndarray:
        """The best in-scope score of each text (what the out-of-scope rule compares with ``threshold``)."""
        return np.asarray(self.agent_scores(self.embedder.embed(list(texts))).max(axis=1))

    def calibrate(self, texts: Sequence[str], labels: Sequence[str], *, precision_target: float,
                  prior: float | None = None) -> float | None:
        """Set ``threshold`` from labelled validation rows (``oos`` marks out-of-scope ones) so that the
        out-of-scope precision reaches ``precision_target`` with the highest recall (see
        :func:`calibrate_oos_threshold`). Returns the threshold (``None``: never out of scope)."""
        conf = self.confidences(texts)
        is_oos = np.array([lab == OOS for lab in labels])
        self.threshold = calibrate_oos_threshold(conf, is_oos, precision_target=precision_target, prior=prior)
        self.calibration = {"oos_precision_target": precision_target, "oos_prior": prior, "rows": len(labels),
                            "oos_rows": int(is_oos.sum()), "threshold": self.threshold}
        return self.threshold

    def out_of_scope(self, confidence: float) -> bool:
        """The one out-of-scope rule: confidence below the calibrated threshold."""
        return self.threshold is not None and confidence < self.threshold

    def _decision(self, ctx: RouteContext, row: np.ndarray) -> Decision:
        names = [c for c in ctx.candidate_names if c != self.fallback]
        known = [c for c in names if c in self._col]
        if not known:
            raise RoutingError(f"router {self.label!r} knows none of the candidates ({name_list(names)}): it was "
                               f"trained on other agents ({name_list(self.agents)}); give it candidates named like its "
                               "agents, or retrain it on these", router=self.label, candidates=ctx.candidate_names)
        scores = {c: float(row[self._col[c]]) if c in self._col else -1.0 for c in names}  # -1: below any score
        for c in known:  # steer away from down targets unless all are down
            if not ctx.health_of(c).available and any(ctx.health_of(o).available for o in known):
                scores[c] -= 2.0
        ranked = sorted(known, key=lambda c: -scores[c])
        best = ranked[0]
        confidence = scores[best]
        meta: dict[str, Any] = {"confidence": confidence}
        if self.fallback is not None and self.fallback in ctx.candidate_names:
            scores[self.fallback] = self.threshold if self.threshold is not None else -1.0
            if self.out_of_scope(confidence):
                return Decision(targets=(self.fallback,), scores=scores, router=self.label, metadata=meta,
                                rationale=f"out of scope: best {best!r} {confidence:.3f} < threshold {self.threshold}")
        chosen = tuple(c for c in ranked[: self.max_set] if scores[c] >= confidence - self.set_margin)
        return Decision(targets=chosen, scores=scores, router=self.label, metadata=meta,
                        rationale=f"{self.kind}: {best} {confidence:.3f}")

    def route(self, ctx: RouteContext) -> Decision:
        return self._decision(ctx, self.agent_scores(np.asarray(self.embedder.embed_one(ctx.query))[None])[0])

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        rows = self.agent_scores(self.embedder.embed([c.query for c in contexts]))
        return [self._decision(c, r) for c, r in zip(contexts, rows, strict=True)]

    # --- training and persistence ---------------------------------------------------------------
    @classmethod
    def fit(cls, X: np.ndarray, labels: Sequence[str], **params: Any) -> IntentRouter:
        """Train from embeddings ``X`` and labels (``oos`` rows: the classifier learns them as a class,
        the similarity routers leave them to calibration)."""
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The trained state to save."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Constructor parameters to save besides agents and arrays."""
        return {}

    def save(self, path: str | Path) -> Path:
        """Write the router (state, agents, calibrated threshold) as one ``.npz`` file."""
        meta = {"format": FORMAT, "kind": self.kind, "agents": self.agents, "params": self.params(),
                "threshold": self.threshold, "fallback": self.fallback, "set_margin": self.set_margin,
                "max_set": self.max_set, "calibration": self.calibration}
        path = Path(path)
        if self.encoder is not None:  # saved relative to the router file, so the pair can move together
            enc = Path(self.encoder["path"])
            rel = os.path.relpath(enc.resolve(), path.resolve().parent) if enc.is_absolute() else str(enc)
            meta["encoder"] = {"path": Path(rel).as_posix(), "sha256": self.encoder["sha256"]}
        with path.open("wb") as fh:
            arrays: dict[str, Any] = {"__meta__": np.array(json.dumps(meta)), **self.arrays()}
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], agents: list[str], params: Mapping[str, Any],
                    **kw: Any) -> IntentRouter:
        raise NotImplementedError


def _read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"trained router file {path} does not exist; create it with 'crossroads train'")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path} is not a crossroads agent-selection router file ({exc}); it may be truncated "
                          f"or another file: write it again with 'crossroads train'") from exc
    if meta.get("format") == "crossroads.classifier/1":  # files written before the intent routers
        meta = {"format": FORMAT, "kind": "classifier", "agents": meta["classes"],
                "params": {**meta["params"], "classes": meta["classes"]}}
    if meta.get("format") != FORMAT or meta.get("kind") not in INTENT_ROUTERS:
        raise ConfigError(f"{path} is not a crossroads agent-selection router file (format {meta.get('format')!r})")
    return meta, arrays


def load_intent_router(path: str | Path, **overrides: Any) -> IntentRouter:
    """Read any router written by :meth:`IntentRouter.save`; ``overrides`` (``fallback``, ``threshold``,
    ``set_margin``, ``max_set``, ``embedder``, ``label``) replace the saved settings."""
    meta, arrays = _read(path)
    kw = {k: meta.get(k) for k in ("threshold", "fallback", "set_margin", "max_set") if meta.get(k) is not None}
    kw.update(overrides)
    enc = meta.get("encoder")
    if enc is not None:  # the router's own encoder always wins over an embedder override
        if not (isinstance(enc, dict) and isinstance(enc.get("path"), str) and isinstance(enc.get("sha256"), str)):
            raise ConfigError(f"{path}: meta key 'encoder' must be {{path, sha256}}, not {enc!r}")
        from ..agents.embeddings import encoder_embedder

        kw["embedder"] = encoder_embedder(Path(path).parent / enc["path"], enc["sha256"])
    r = INTENT_ROUTERS[meta["kind"]].from_arrays(arrays, meta["agents"], meta.get("params", {}), **kw)
    r.calibration = meta.get("calibration") or {}
    if enc is not None:
        r.encoder = {"path": str((Path(path).parent / enc["path"]).resolve()), "sha256": enc["sha256"]}
    return r


class _FromPath:
    """Constructor helper: ``path=`` loads a saved router of this kind, keeping YAML overrides."""

    @staticmethod
    def load_into(kind_cls: type[IntentRouter], path: str, kw: dict[str, Any]) -> IntentRouter:
        meta, _ = _read(path)
        if meta["kind"] != kind_cls.kind:
            raise ConfigError(f"{path} holds a {meta['kind']!r} router, not {kind_cls.kind!r}: use type: {meta['kind']}")
        return load_intent_router(path, **{k: v for k, v in kw.items() if v is not None})


def _similarity_state(X: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    agents = sorted({lab for lab in labels if lab != OOS})
    col = {a: i for i, a in enumerate(agents)}
    keep = [i for i, lab in enumerate(labels) if lab != OOS]
    if not keep:
        raise ConfigError("agent-selection training data has no in-scope rows")
    return np.asarray(X, np.float32)[keep], np.array([col[labels[i]] for i in keep]), agents


@register_router()
class CentroidRouter(IntentRouter):
    """Cosine similarity to each agent's mean training embedding (renormalised)."""

    name = "centroid"
    kind = "centroid"

    def __init__(self, path: str | None = None, *, centroids: np.ndarray | None = None, agents: Sequence[str] = (),
                 **kw: Any) -> None:
        if path is not None:
            self.__dict__.update(_FromPath.load_into(type(self), path, kw).__dict__)
            return
        if centroids is None:
            raise ConfigError("centroid router needs a trained file: params: {path: ...} (crossroads train centroid)")
        super().__init__(agents=agents, **kw)
        self.centroids = np.asarray(centroids, np.float32)

    @classmethod
    def fit(cls, X: np.ndarray, labels: Sequence[str], **params: Any) -> CentroidRouter:
        V, own, agents = _similarity_state(X, labels)
        P = np.stack([V[own == a].mean(axis=0) for a in range(len(agents))])
        P /= np.clip(np.linalg.norm(P, axis=1, keepdims=True), 1e-12, None)
        return cls(centroids=P, agents=agents, **params)

    def agent_scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(np.asarray(X, np.float32) @ self.centroids.T)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], agents: list[str], params: Mapping[str, Any],
                    **kw: Any) -> CentroidRouter:
        return cls(centroids=arrays["centroids"], agents=agents, **kw)


class _ExampleRouter(IntentRouter):
    """State: the training utterances' embeddings and the agent index of each."""

    def __init__(self, path: str | None = None, *, examples: np.ndarray | None = None, owner: np.ndarray | None = None,
                 agents: Sequence[str] = (), k: int = 10, **kw: Any) -> None:
        if path is not None:
            self.__dict__.update(_FromPath.load_into(type(self), path, kw).__dict__)
            return
        if examples is None or owner is None:
            raise ConfigError(f"{self.name} router needs a trained file: params: {{path: ...}} (crossroads train {self.name})")
        super().__init__(agents=agents, **kw)
        if int(k) < 1:
            raise ConfigError(f"{self.name} router: k must be >= 1, not {k}")
        self.examples, self.owner, self.k = np.asarray(examples, np.float32), np.asarray(owner, np.int64), int(k)

    @classmethod
    def fit(cls, X: np.ndarray, labels: Sequence[str], **params: Any) -> IntentRouter:
        V, own, agents = _similarity_state(X, labels)
        return cls(examples=V, owner=own, agents=agents, **params)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"examples": self.examples, "owner": self.owner}

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], agents: list[str], params: Mapping[str, Any],
                    **kw: Any) -> IntentRouter:
        return cls(examples=arrays["examples"], owner=arrays["owner"], agents=agents, **{**params, **kw})


@register_router()
class NearestRouter(_ExampleRouter):
    """1-NN: an agent scores the cosine similarity of its nearest training utterance."""

    name = "nearest"
    kind = "nearest"

    def agent_scores(self, X: np.ndarray) -> np.ndarray:
        sims = np.asarray(X, np.float32) @ self.examples.T
        out = np.full((sims.shape[0], len(self.agents)), -1.0, dtype=np.float32)
        for a in range(len(self.agents)):
            cols = self.owner == a
            if cols.any():
                out[:, a] = sims[:, cols].max(axis=1)
        return out


@register_router()
class KNNIntentRouter(_ExampleRouter):
    """Similarity-weighted vote of the ``k`` nearest training utterances: an agent scores the sum of its
    neighbours' cosine similarities divided by ``k`` (0 when none of the k is its)."""

    name = "knn_intent"
    kind = "knn_intent"

    def agent_scores(self, X: np.ndarray) -> np.ndarray:
        sims = np.asarray(X, np.float32) @ self.examples.T
        k = min(self.k, sims.shape[1])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, idx, axis=1)
        out = np.zeros((sims.shape[0], len(self.agents)), dtype=np.float32)
        rows = np.repeat(np.arange(sims.shape[0]), k)
        np.add.at(out, (rows, self.owner[idx].ravel()), top.ravel())
        return out / k


@register_router()
class ClassifierRouter(IntentRouter):
    """Chooses agents with a :class:`SoftmaxClassifier` over the query embedding; scores are class
    probabilities. Out of scope when the best in-scope probability is below ``threshold`` (or, with no
    threshold, when the head's own ``oos`` class is the most probable) and a ``fallback`` is set.

    Load a trained one in YAML with ``type: classifier, params: {path: agents.npz, fallback: general}``.
    """

    name = "classifier"
    kind = "classifier"
    OOS = OOS

    def __init__(self, path: str | None = None, *, classifier: SoftmaxClassifier | None = None, **kw: Any) -> None:
        if path is not None:
            self.__dict__.update(_FromPath.load_into(type(self), path, kw).__dict__)
            return
        if classifier is None:
            raise ConfigError("classifier router needs a trained file: params: {path: ...} (crossroads train classifier)")
        kw.setdefault("agents", classifier.classes)
        super().__init__(**kw)
        self.classifier = classifier
        ccol = {c: i for i, c in enumerate(classifier.classes)}
        self._agent_cols = np.array([ccol[a] for a in self.agents])
        self._oos_col = ccol.get(OOS)

    @classmethod
    def fit(cls, X: np.ndarray, labels: Sequence[str], **params: Any) -> ClassifierRouter:
        head = {k: params.pop(k) for k in list(params) if k in SoftmaxClassifier().params()}
        return cls(classifier=SoftmaxClassifier(**head).fit(X, labels), **params)

    def agent_scores(self, X: np.ndarray) -> np.ndarray:
        p = self.classifier.predict_proba(X)
        out = p[:, self._agent_cols]
        if self.threshold is None and self._oos_col is not None:  # uncalibrated: the head's own oos class decides
            out = np.where((p[:, self._oos_col] > out.max(axis=1))[:, None], -1.0, out)
        return np.asarray(out)

    def confidences(self, texts: Sequence[str]) -> np.ndarray:
        p = self.classifier.predict_proba(self.embedder.embed(list(texts)))
        return np.asarray(p[:, self._agent_cols].max(axis=1))

    def out_of_scope(self, confidence: float) -> bool:
        if self.threshold is None:  # uncalibrated: agent_scores set every agent to -1 when the oos class won
            return confidence < 0
        return confidence < self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"W{i}": w for i, w in enumerate(self.classifier.W)}

    def params(self) -> dict[str, Any]:
        return {**self.classifier.params(), "classes": self.classifier.classes}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], agents: list[str], params: Mapping[str, Any],
                    **kw: Any) -> ClassifierRouter:
        p = dict(params)
        classes = list(p.pop("classes", agents))
        clf = SoftmaxClassifier(**p)
        clf.classes = classes
        clf.W = [arrays[f"W{i}"] for i in range(4)]
        return cls(classifier=clf, agents=[c for c in classes if c != OOS], **kw)

    @staticmethod
    def load_classifier(path: str | Path) -> SoftmaxClassifier:
        """The softmax head of a saved classifier router."""
        r = load_intent_router(path)
        if not isinstance(r, ClassifierRouter):
            raise ConfigError(f"{path} holds a {r.kind!r} router, not a classifier")
        return r.classifier


INTENT_ROUTERS: dict[str, type[IntentRouter]] = {
    "centroid": CentroidRouter, "knn_intent": KNNIntentRouter, "nearest": NearestRouter, "classifier": ClassifierRouter}
"""Trainable agent-selection routers by kind."""


def train_intent_router(kind: str, texts: Sequence[str], labels: Sequence[str], *, embedder: Any = None,
                        params: Mapping[str, Any] | None = None) -> IntentRouter:
    """Embed ``texts`` and fit a router of ``kind`` (centroid, knn_intent, nearest, classifier) on their
    labels; ``params`` are the kind's hyper-parameters and router settings (``fallback``, ``set_margin``...)."""
    if kind not in INTENT_ROUTERS:
        from ..errors import UnknownNameError

        raise UnknownNameError("agent-selection router", kind, INTENT_ROUTERS)
    if len(texts) != len(labels) or not texts:
        raise ConfigError(f"{kind}: training needs equally many texts and labels, and at least one")
    if embedder is None:
        from ..agents.embeddings import default_embedder

        embedder = default_embedder()
    X = np.asarray(embedder.embed(list(texts)), np.float32)
    try:
        router = INTENT_ROUTERS[kind].fit(X, list(labels), embedder=embedder, **dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"{kind} router rejected its parameters: {exc}") from exc
    return router
