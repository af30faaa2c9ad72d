"""Query-level routing on recorded outcomes: every router on one train/test split, with the field's metrics.

Every router is driven through :meth:`Router.route_batch` (or ``route`` + ``feedback`` for learners) on
the object a flow uses: trained routers are written with :meth:`LearnedRouter.save` and read back with
:func:`crossroads.create_router` (``type: trained`` / ``type: cascade``), exactly as ``crossroads train``
writes them and a flow loads them. Nothing in this module re-implements a router's scoring.

Protocol (no tuning on the test split):

1. The training rows are split (seeded) into a *fit* part and a *validation* slice
   (``validation_fraction``). Routers are trained on the fit part only.
2. Every willingness setting (lambda, cascade threshold; for two-model data RouteLLM's quantile
   calibration of the strong-win score on the validation slice) is run on the validation slice; the
   operating points "best quality", "best quality at <= half the best single model's cost" and
   "cheapest reaching 95% of the best single model" are chosen there.
3. The test rows are then scored once: the curve (every setting, for AIQ/APGR/cost-to-reach) and the
   chosen points, with bootstrap 95% CIs on the chosen points only.

Quality is the mean recorded score of the picks. Cost is prompt tokens x input price plus, where the
chosen model's response is recorded, response tokens x output price (tokens counted with
``cl100k_base``); elsewhere cost is input-only and the results say how much of it is. Costs are
reported relative to the best single model's cost on the same rows (the best single model is chosen
on the training split).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..agents.backends.replay import RecordedOutcomes
from ..agents.tokens import count_tokens
from ..errors import ConfigError, UnknownNameError
from ..routers.bandit import LinUCBRouter
from ..routers.base import Router
from ..routers.learned import PREDICTORS, LearnedRouter
from ..routers.registry import create_router
from ..types import CostModel, Feedback, RouteContext, TargetInfo, TargetKind
from .metrics import (
    CurvePoint,
    aiq_scores,
    apgr,
    bootstrap_ci,
    cost_to_reach,
    decision_latencies_ms,
    percentile,
    quantile_thresholds,
    sample_rows,
    strong_share_for_pgr,
)

__all__ = ["QUERY_ROUTERS", "QueryData", "RouterOutcome", "evaluate_query_routers", "fit_validation_split", "outcomes_subset",
           "prepare_query_data", "query_costs"]

DEFAULT_LAMBDAS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)
DEFAULT_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01)
BANDIT_LAMBDAS = (0.0, 0.05, 0.2, 0.5, 1.0, 3.0)
HALF = 0.5
REACH = 0.95


@dataclass
class QueryData:
    """Prompts with embeddings X, recorded scores Y and per-call costs C (USD), one column per model.
    ``output_known[i, j]`` says whether C[i, j] includes model j's recorded output tokens."""

    prompts: list[str]
    tasks: list[str]
    models: list[str]
    X: np.ndarray
    Y: np.ndarray
    C: np.ndarray
    output_known: np.ndarray | None = None
    prices: dict[str, CostModel] = field(default_factory=dict)

    def subset(self, idx: np.ndarray) -> QueryData:
        known = self.output_known[idx] if self.output_known is not None else None
        return QueryData([self.prompts[i] for i in idx], [self.tasks[i] for i in idx], self.models,
                         self.X[idx], self.Y[idx], self.C[idx], known, self.prices)

    def __len__(self) -> int:
        return len(self.prompts)

    def candidates(self) -> tuple[TargetInfo, ...]:
        """The models as route targets, with their recorded prices."""
        return tuple(TargetInfo(name=m, kind=TargetKind.MODEL, cost=self.prices.get(m, CostModel()))
                     for m in self.models)


def outcomes_subset(data: RecordedOutcomes, idx: Sequence[int] | np.ndarray) -> RecordedOutcomes:
    """The rows ``idx`` of ``data`` (same prices and source)."""
    return RecordedOutcomes([data.rows[int(i)] for i in idx], data.prices, source=data.source)


def query_costs(data: RecordedOutcomes, models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-call cost (USD) of every row and model: prompt tokens x input price + recorded response
    tokens x output price where the response is recorded; and the mask of the costs that include
    output tokens."""
    rows = data.rows
    tin = np.array([count_tokens(r.prompt) for r in rows], dtype=np.float64)
    pin = np.array([data.prices[m].input_per_mtok for m in models], dtype=np.float64)
    pout = np.array([data.prices[m].output_per_mtok for m in models], dtype=np.float64)
    tout = np.zeros((len(rows), len(models)))
    known = np.zeros((len(rows), len(models)), dtype=bool)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m in r.responses:
                tout[i, j] = count_tokens(r.responses[m])
                known[i, j] = True
    return (tin[:, None] * pin[None, :] + tout * pout[None, :]) / 1e6, known


def prepare_query_data(data: RecordedOutcomes, embedder: Any, *, limit: int | None = None, seed: int = 0,
                       models: Sequence[str] | None = None) -> QueryData:
    """Embed prompts and build the score and cost matrices (optionally a seeded random subset);
    ``models`` fixes the column order (and requires every row to score them). ``embedder=None``: no
    embeddings (``X`` has 0 columns), for consumers that read only scores and costs (Router-R1 training)."""
    if limit is not None and limit < len(data.rows):
        idx = np.sort(np.random.default_rng(seed).choice(len(data.rows), size=limit, replace=False))
        data = outcomes_subset(data, idx)
    rows = data.rows
    models = list(models) if models is not None else data.models
    prompts = [r.prompt for r in rows]
    Y = np.array([[r.scores.get(m, np.nan) for m in models] for r in rows], dtype=np.float32)
    if np.isnan(Y).any():
        bad = int(np.argwhere(np.isnan(Y))[0][0])
        raise ConfigError(f"{data.source}:{rows[bad].line}: row lacks a score for some model of {', '.join(models)}")
    missing = [m for m in models if m not in data.prices]
    if missing:
        raise ConfigError(f"{data.source}: no price for model(s) {', '.join(missing)}; add them to the prices file")
    C, known = query_costs(data, models)
    X = (np.asarray(embedder.embed(prompts), dtype=np.float32) if embedder is not None
         else np.zeros((len(rows), 0), dtype=np.float32))
    return QueryData(prompts, [r.task for r in rows], models, X, Y, C, known, {m: data.prices[m] for m in models})


class _Lookup:
    """An embedder that returns the suite's precomputed embeddings for its prompts (the router object is
    the deployed one; only the embedding source is memoised) and embeds anything else with ``fallback``."""

    def __init__(self, datas: Sequence[QueryData], fallback: Any) -> None:
        self._rows: dict[str, np.ndarray] = {}
        for d in datas:
            for p, x in zip(d.prompts, d.X, strict=False):
                self._rows.setdefault(p, x)
        self._fallback = fallback

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            if self._fallback is None:
                raise ConfigError(f"no embedding for {len(missing)} prompt(s) and no embedder to compute them")
            for t, x in zip(missing, np.asarray(self._fallback.embed(missing), dtype=np.float32), strict=False):
                self._rows[t] = x
        return np.stack([self._rows[t] for t in texts])

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


@dataclass
class RouterOutcome:
    """One router's picks on the validation and test rows, per willingness setting."""

    router: str
    settings: list[float]
    val_picks: dict[float, np.ndarray] = field(default_factory=dict)
    test_picks: dict[float, np.ndarray] = field(default_factory=dict)
    router_obj: Router | None = None
    registered_as: str | None = None
    """The registry name a flow uses for this router; None for eval-only baselines."""
    setting_name: str = "willingness"
    train_s: float = 0.0

    @property
    def picks(self) -> dict[float, np.ndarray]:
        """Test picks per setting (kept for callers of the previous API)."""
        return self.test_picks


@dataclass
class _Ctx:
    """What every router builder gets."""

    fit: QueryData
    val: QueryData
    test: QueryData
    params: Mapping[str, Any]
    lambdas: Sequence[float]
    strong_weak: tuple[int, int] | None
    embedder: _Lookup
    best: int
    workdir: Path
    seed: int


def _route_picks(router: Router, data: QueryData) -> np.ndarray:
    col = {m: j for j, m in enumerate(data.models)}
    cands = data.candidates()
    decisions = router.route_batch([RouteContext(query=p, candidates=cands) for p in data.prompts])
    return np.array([col[d.targets[0]] for d in decisions], dtype=int)


def _fixed(router_fn: Callable[[_Ctx], Router], registered: str) -> Callable[[_Ctx], RouterOutcome]:
    def build(c: _Ctx) -> RouterOutcome:
        r = router_fn(c)
        out = RouterOutcome("", [0.0], router_obj=r, registered_as=registered, setting_name="none")
        out.val_picks[0.0] = _route_picks(r, c.val)
        out.test_picks[0.0] = _route_picks(r, c.test)
        return out
    return build


def _oracle(c: _Ctx) -> RouterOutcome:
    """Eval-only upper bound: per row the cheapest model with the row's best recorded score."""
    def picks(d: QueryData) -> np.ndarray:
        best = d.Y.max(axis=1, keepdims=True)
        return np.argmin(np.where(d.Y >= best - 1e-9, d.C, np.inf), axis=1)
    out = RouterOutcome("", [0.0], setting_name="none")
    out.val_picks[0.0], out.test_picks[0.0] = picks(c.val), picks(c.test)
    return out


def train_learned(kind: str, data: QueryData, params: Mapping[str, Any]) -> LearnedRouter:
    """Train a :class:`LearnedRouter` (knn, mlp, mf) on ``data`` the way ``crossroads train`` does: per-model
    cost = its mean per-call cost on the training rows."""
    if kind not in PREDICTORS:
        raise UnknownNameError("predictor", kind, PREDICTORS)
    costs = {m: float(v) for m, v in zip(data.models, data.C.mean(axis=0), strict=False)}
    return LearnedRouter.train(kind, data.X, data.Y, targets=data.models, costs=costs, params=params)


def _saved_and_loaded(router: LearnedRouter, c: _Ctx, registry_name: str, params: Mapping[str, Any]) -> Router:
    path = router.save(c.workdir / f"{registry_name}-{id(router)}.npz")
    loaded = create_router(registry_name, {"path": str(path), **params})
    loaded._embedder = c.embedder  # type: ignore[attr-defined]
    return loaded


def _strong_win_settings(r: LearnedRouter, c: _Ctx) -> list[float]:
    """RouteLLM's calibration for a two-model router: the strong-win score is the predicted quality gap
    (strong - weak), read from the router's own decisions on the validation slice; thresholds at its
    deciles; each threshold t becomes the willingness at which the router picks the strong model exactly
    when the gap is >= t (> t for the last decile)."""
    assert c.strong_weak is not None
    s, w = (c.fit.models[i] for i in c.strong_weak)
    r.willingness = 0.0
    cands = c.val.candidates()
    decisions = r.route_batch([RouteContext(query=p, candidates=cands) for p in c.val.prompts])
    gaps = [d.metadata["predicted_quality"][s] - d.metadata["predicted_quality"][w] for d in decisions]
    cmax = max(r.costs.values()) or 1.0
    dc = (r.costs[s] - r.costs[w]) / cmax
    if dc <= 0:
        raise ConfigError(f"strong model {s} must cost more than weak model {w} for the APGR sweep")
    edges = quantile_thresholds(gaps, 10)
    out = [(t - 1e-9) / dc for t in edges[:-1]] + [edges[-1] / dc]
    return out


def _willingness_sweep(r: LearnedRouter, c: _Ctx, train_s: float) -> RouterOutcome:
    settings = _strong_win_settings(r, c) if c.strong_weak is not None else [float(x) for x in c.lambdas]
    out = RouterOutcome("", settings, router_obj=r, registered_as="trained", train_s=train_s)
    for lam in settings:
        r.willingness = lam
        out.val_picks[lam] = _route_picks(r, c.val)
        out.test_picks[lam] = _route_picks(r, c.test)
    return out


def _learned(kind: str) -> Callable[[_Ctx], RouterOutcome]:
    def build(c: _Ctx) -> RouterOutcome:
        t = time.perf_counter()
        trained = train_learned(kind, c.fit, c.params)
        train_s = time.perf_counter() - t
        r = _saved_and_loaded(trained, c, "trained", {})
        assert isinstance(r, LearnedRouter)
        return _willingness_sweep(r, c, train_s)
    return build


def _from_file(registry_name: str, path: Any, c: _Ctx) -> Router:
    r = create_router(registry_name, {"path": str(path)})
    r._embedder = c.embedder  # type: ignore[attr-defined]
    return r


def _trained_file(c: _Ctx) -> RouterOutcome:
    """A router file written by ``crossroads train knn|mlp|mf`` (``type: trained, params: {path}``), scored
    exactly like the suite's own knn/mlp/mf: willingness swept, operating points chosen on validation.
    Not trained in the run: ``train_s`` is NaN."""
    r = _from_file("trained", c.params["path"], c)
    assert isinstance(r, LearnedRouter)
    return _willingness_sweep(r, c, float("nan"))


def _cascade(c: _Ctx) -> RouterOutcome:
    """:class:`~crossroads.routers.cascade.CascadeRouter` over a kNN predictor trained in the run, or over the
    file ``params.path`` (``crossroads train cascade|knn|mlp|mf``); threshold sweep."""
    t = time.perf_counter()
    params = dict(c.params)
    thresholds = [float(x) for x in params.pop("thresholds", DEFAULT_THRESHOLDS)]
    if "path" in params:  # a file from crossroads train (not trained in the run)
        r, train_s = _from_file("cascade", params["path"], c), float("nan")
    else:
        trained = train_learned(params.pop("predictor", "knn"), c.fit, {"k": 10, **params})
        train_s = time.perf_counter() - t
        r = _saved_and_loaded(trained, c, "cascade", {})
    out = RouterOutcome("", thresholds, router_obj=r, registered_as="cascade", setting_name="threshold",
                        train_s=train_s)
    for tau in thresholds:
        r.threshold = tau  # type: ignore[attr-defined]
        out.val_picks[tau] = _route_picks(r, c.val)
        out.test_picks[tau] = _route_picks(r, c.test)
    return out


def _bandit_stream(r: LinUCBRouter, data: QueryData) -> np.ndarray:
    """Route every row in order and feed back its recorded score (online learning)."""
    col = {m: j for j, m in enumerate(data.models)}
    cands = data.candidates()
    picks = np.empty(len(data), dtype=int)
    for i, p in enumerate(data.prompts):
        d = r.route(RouteContext(query=p, candidates=cands))
        j = col[d.targets[0]]
        picks[i] = j
        r.feedback(Feedback(decision_id=d.decision_id, reward=float(data.Y[i, j]), target=d.targets[0]))
    return picks


def _bandit_run(c: _Ctx) -> RouterOutcome:
    """:class:`~crossroads.routers.bandit.LinUCBRouter` over PCA-reduced embeddings (projection fitted on
    the fit rows): learns online from the recorded score over the fit stream (unless ``warmup: false``),
    then, still learning, over the validation stream and the test stream; one learner per willingness."""
    params = dict(c.params)
    lambdas = [float(x) for x in params.pop("lambdas", BANDIT_LAMBDAS)]
    dim, alpha, warm = int(params.get("dim", 32)), float(params.get("alpha", 0.5)), bool(params.get("warmup", True))
    costs = {m: float(v) for m, v in zip(c.fit.models, c.fit.C.mean(axis=0), strict=False)}
    out = RouterOutcome("", lambdas, registered_as="linucb")
    t = time.perf_counter()
    for lam in lambdas:
        r = LinUCBRouter(alpha=alpha, willingness=lam, costs=costs, embedder=c.embedder, label="bandit")
        r.fit_projection(c.fit.X, dim=dim)
        if warm:
            _bandit_stream(r, c.fit)
        out.val_picks[lam] = _bandit_stream(r, c.val)
        out.test_picks[lam] = _bandit_stream(r, c.test)
        out.router_obj = r
    out.train_s = time.perf_counter() - t
    return out


def _bandit(train: QueryData, test: QueryData, ref: float, params: Mapping[str, Any],
            lambdas: Sequence[float]) -> RouterOutcome:
    """The LinUCB router over a stream (for the online suite): warm-up over ``train`` unless ``warmup:
    false``, then route-and-learn over ``test``; ``params['lambdas']`` are the willingness values."""
    costs = {m: float(v) for m, v in zip(train.models, train.C.mean(axis=0), strict=False)}
    emb = _Lookup([train, test], None)
    lams = [float(x) for x in params.get("lambdas", BANDIT_LAMBDAS)]
    out = RouterOutcome("bandit", lams, registered_as="linucb")
    for lam in lams:
        r = LinUCBRouter(alpha=float(params.get("alpha", 0.5)), willingness=lam, costs=costs, embedder=emb)
        r.fit_projection(train.X, dim=int(params.get("dim", 32)))
        if params.get("warmup", True):
            _bandit_stream(r, train)
        out.test_picks[lam] = _bandit_stream(r, test)
        out.router_obj = r
    return out


def _random(c: _Ctx) -> Router:
    return create_router("random", {"seed": c.seed})


def _cheapest(c: _Ctx) -> Router:
    return create_router("cheapest")


def _best_single(c: _Ctx) -> Router:
    return create_router("fixed", {"target": c.fit.models[c.best]})


QUERY_ROUTERS: dict[str, Callable[[_Ctx], RouterOutcome]] = {
    "random": _fixed(_random, "random"),
    "cheapest": _fixed(_cheapest, "cheapest"),
    "best_single": _fixed(_best_single, "fixed"),
    "oracle": _oracle,
    "knn": _learned("knn"),
    "mlp": _learned("mlp"),
    "mf": _learned("mf"),
    "cascade": _cascade,
    "bandit": _bandit_run,
    "trained": _trained_file,
}
"""Query-level routers by suite ``type``; each maps to a registered router (``oracle`` is the eval-only
upper bound)."""


def _points(d: QueryData, picks: Mapping[float, np.ndarray], ref_cost: float) -> dict[float, CurvePoint]:
    rows = np.arange(len(d))
    return {s: CurvePoint(cost=float(d.C[rows, p].sum() / ref_cost), quality=float(d.Y[rows, p].mean()), setting=s)
            for s, p in picks.items()}


def _choose(val: Mapping[float, CurvePoint], *, max_cost: float | None = None,
            min_quality: float | None = None) -> float | None:
    """The validation setting with the best quality (ties: cheaper) within ``max_cost``; or, with
    ``min_quality``, the cheapest setting reaching it."""
    pts = list(val.values())
    if min_quality is not None:
        ok = [p for p in pts if p.quality >= min_quality - 1e-12]
        return min(ok, key=lambda p: (p.cost, -p.quality)).setting if ok else None
    ok = [p for p in pts if max_cost is None or p.cost <= max_cost + 1e-9]
    return max(ok, key=lambda p: (p.quality, -p.cost)).setting if ok else None


def _chosen(test: QueryData, out: RouterOutcome, setting: float | None, ref_cost: float, bootstrap: int,
            seed: int) -> dict[str, Any]:
    if setting is None:
        return {"setting": None, "quality": float("nan"), "cost": float("nan"),
                "quality_ci95": (float("nan"), float("nan")), "cost_ci95": (float("nan"), float("nan"))}
    rows = np.arange(len(test))
    picks = out.test_picks[setting]
    q = test.Y[rows, picks].astype(float)
    c = test.C[rows, picks] / ref_cost * len(test)  # per-row cost whose mean is the relative total cost
    nan2 = (float("nan"), float("nan"))
    return {"setting": setting, "quality": float(q.mean()), "cost": float(test.C[rows, picks].sum() / ref_cost),
            "quality_ci95": bootstrap_ci(q, n=bootstrap, seed=seed) if bootstrap else nan2,
            "cost_ci95": bootstrap_ci(c, n=bootstrap, seed=seed) if bootstrap else nan2}


def fit_validation_split(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """How a query-routing suite splits its ``n`` training rows: (fit rows the routers train on, the
    validation slice operating points are chosen on), sorted row indices. ``crossroads train knn|mlp|mf|cascade
    --data builtin:NAME`` trains on the same fit rows."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(2, int(round(validation_fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


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
    validation_fraction: float = 0.2,
    seed: int = 0,
    on_router: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run each (label, kind, params) router by the protocol of this module; return per-router test
    curves (``points``), the validation-chosen operating points on test, AIQ (shared maximum cost over
    all routers of the run), APGR (two-model data), cost to reach 95%/100% of the best single model,
    and decision latencies sampled across the whole test set."""
    if list(train.models) != list(test.models):
        raise ConfigError(f"train and test must score the same models; train: {', '.join(train.models)}; "
                          f"test: {', '.join(test.models)}")
    for _, kind, _ in routers:
        if kind not in QUERY_ROUTERS:
            raise UnknownNameError("query router", kind, QUERY_ROUTERS)
    if len(train) < 10:
        raise ConfigError(f"need at least 10 training rows (got {len(train)})")
    fit_idx, val_idx = fit_validation_split(len(train), validation_fraction, seed)
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    best = int(np.argmax(train.Y.mean(axis=0)))
    rows = np.arange(len(test))
    ref_cost = float(test.C[:, best].sum()) or 1.0
    val_ref = float(val.C[:, best].sum()) or 1.0
    best_quality = float(test.Y[:, best].mean())
    best_val_quality = float(val.Y[:, best].mean())
    sw = None
    if strong_weak is not None:
        sw = (train.models.index(strong_weak[0]), train.models.index(strong_weak[1]))
    known = test.output_known
    share_out = float(known.mean()) if known is not None and known.size else 0.0
    results: dict[str, Any] = {
        "best_single_model": test.models[best], "best_single_quality": best_quality,
        "reference_cost_usd": ref_cost, "n_train": len(train), "n_fit": len(fit), "n_validation": len(val),
        "n_test": len(test), "models": test.models,
        "cost_basis": ("input and output tokens" if share_out == 1.0 else "input-only (no recorded outputs)"
                       if share_out == 0.0 else f"input and output tokens where the output is recorded "
                       f"({share_out:.1%} of row-model pairs); input-only elsewhere"),
        "output_cost_share": share_out,
        "protocol": (f"routers trained on {len(fit)} fit rows; operating points chosen on a {len(val)}-row "
                     f"validation slice of the training rows; scored once on {len(test)} test rows"),
        "routers": {}}
    lookup = _Lookup([train, test], latency_embedder)
    progress = on_router or (lambda _: None)
    outcomes: dict[str, RouterOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="crossroads-eval-") as tmp:
        for label, kind, params in routers:
            progress(label)
            ctx = _Ctx(fit, val, test, params, lambdas, sw, lookup, best, Path(tmp), seed)
            out = QUERY_ROUTERS[kind](ctx)
            out.router = label
            outcomes[label] = out
            test_pts = _points(test, out.test_picks, ref_cost)
            val_pts = _points(val, out.val_picks, val_ref)
            s_best = _choose(val_pts)
            s_half = _choose(val_pts, max_cost=HALF)
            s_reach = _choose(val_pts, min_quality=REACH * best_val_quality)
            hb = _chosen(test, out, s_best, ref_cost, bootstrap, seed)
            hh = _chosen(test, out, s_half, ref_cost, bootstrap, seed)
            hr = _chosen(test, out, s_reach, ref_cost, 0, seed)
            r95 = cost_to_reach(list(test_pts.values()), REACH * best_quality)
            r100 = cost_to_reach(list(test_pts.values()), best_quality)
            lat: list[float] = []
            if latency_embedder is not None and out.router_obj is not None and latency_samples:
                idx = sample_rows(len(test), latency_samples, seed)
                r = out.router_obj
                saved = getattr(r, "_embedder", None)
                r._embedder = latency_embedder  # type: ignore[attr-defined]
                try:
                    lat = decision_latencies_ms(r, [test.prompts[i] for i in idx], test.candidates(), latency_embedder)
                finally:
                    r._embedder = saved  # type: ignore[attr-defined]
            m: dict[str, Any] = {
                "registered_as": out.registered_as or "eval-only",
                "setting_name": out.setting_name,
                "points": [{"cost": p.cost, "quality": p.quality, "setting": p.setting} for p in test_pts.values()],
                "validation_points": [{"cost": p.cost, "quality": p.quality, "setting": p.setting}
                                      for p in val_pts.values()],
                "best_quality": hb["quality"], "best_quality_cost": hb["cost"], "best_quality_ci95": hb["quality_ci95"],
                "best_quality_setting": hb["setting"],
                "quality_at_half_cost": hh["quality"], "quality_at_half_cost_cost": hh["cost"],
                "quality_at_half_cost_ci95": hh["quality_ci95"], "quality_at_half_cost_cost_ci95": hh["cost_ci95"],
                "quality_at_half_cost_setting": hh["setting"],
                "cost_to_95pct_best_single": r95.cost, "cost_to_95pct_via": r95.via,
                "cost_to_95pct_measured": r95.measured_cost,
                "cost_to_100pct_best_single": r100.cost, "cost_to_100pct_via": r100.via,
                "reach_95pct_chosen_on_validation": {"setting": hr["setting"], "cost": hr["cost"], "quality": hr["quality"]},
                "train_s": out.train_s,
                "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99), "latency_samples": len(lat),
            }
            if sw is not None:
                s_i, w_i = sw
                q_s, q_w = float(test.Y[:, s_i].mean()), float(test.Y[:, w_i].mean())
                shares = [float((p == s_i).mean()) for p in out.test_picks.values()]
                quals = [float(test.Y[rows, p].mean()) for p in out.test_picks.values()]
                m.update({"apgr": apgr(shares, quals, q_w, q_s), "strong_shares": shares,
                          "strong_share_for_50pct_pgr": strong_share_for_pgr(shares, quals, q_w, q_s, 0.5),
                          "strong_share_for_80pct_pgr": strong_share_for_pgr(shares, quals, q_w, q_s, 0.8),
                          "strong_quality": q_s, "weak_quality": q_w})
            results["routers"][label] = m
    aiqs, max_cost = aiq_scores({k: [CurvePoint(p["cost"], p["quality"]) for p in v["points"]]
                                 for k, v in results["routers"].items()})
    for k, v in aiqs.items():
        results["routers"][k]["aiq"] = v
    results["aiq_max_cost"] = max_cost
    return results
