"""``crossroads train`` for the light routers: agent selection (classifier, centroid, knn_intent, nearest)
and quality predictors on recorded outcomes (knn, mlp, mf, cascade).

``builtin:NAME`` trains on exactly the rows the shipped suite fits that router on (its *fit* rows), so
``crossroads eval run NAME --router '{..., params: {path: FILE}}'`` never scores a router on rows it was
trained or calibrated on; a user's own file is used whole, and the printed line says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["AGENT_KINDS", "QUERY_KINDS", "check_light_params", "shipped_suite_for", "train_light_router"]

AGENT_KINDS = ("classifier", "centroid", "knn_intent", "nearest")
QUERY_KINDS = ("knn", "mlp", "mf", "cascade")


def shipped_suite_for(data: str, kind: str) -> Any:
    """The shipped suite (spec) of ``kind`` whose dataset is ``data`` (``builtin:NAME``), or None."""
    from ..evals import SUITES_DIR
    from ..evals.suite import load_suite

    for suite_file in sorted(SUITES_DIR.glob("*.yaml")):
        spec, _ = load_suite(suite_file)
        if spec.kind == kind and spec.data.dataset == data:
            return spec
    return None


def _builtin(data: str, formats: tuple[str, ...], what: str) -> tuple[str, Path, Path | None]:
    from ..errors import UnknownNameError
    from ..evals.suite import BUILTIN_DATA

    name = data.split(":", 1)[1]
    known = {f"builtin:{k}": v[0] for k, v in BUILTIN_DATA.items() if v[0] in formats}
    if data not in known:
        raise UnknownNameError(what, data, known)
    return BUILTIN_DATA[name]


def check_light_params(router: str, params: Mapping[str, Any]) -> None:
    """Refuse unknown ``-p`` keys of a quality predictor (knn, mlp, mf; cascade: ``threshold``, ``predictor``
    and that predictor's keys) before any embedding or training, listing the known ones."""
    import inspect

    from ..errors import UnknownNameError
    from ..routers.learned import PREDICTORS

    if router not in QUERY_KINDS:
        return
    p = dict(params)
    extra: list[str] = []
    kind = router
    if router == "cascade":
        p.pop("threshold", None)
        kind = str(p.pop("predictor", "knn"))
        extra = ["threshold", "predictor"]
        if kind not in PREDICTORS:
            raise UnknownNameError("cascade predictor", kind, PREDICTORS)
    known = [k for k in inspect.signature(PREDICTORS[kind].__init__).parameters if k != "self"]
    unknown = sorted(set(p) - set(known))
    if unknown:
        raise ConfigError(f"train {router}: unknown parameter(s) {', '.join(unknown)}; known: "
                          f"{', '.join(extra + known)}")


def train_light_router(router: str, data: str, out: Path, params: Mapping[str, Any], embedder: Any, *,
                       prices: Path | None = None) -> str:
    """Train ``router`` on ``data`` and save it to ``out``; returns what the CLI prints about it (which rows)."""
    params = dict(params)
    check_light_params(router, params)
    if router in AGENT_KINDS:
        return _train_agent(router, data, out, params, embedder)
    if router in QUERY_KINDS:
        return _train_query(router, data, out, params, embedder, prices)
    raise ConfigError(f"cannot train {router!r}; trainable: {', '.join(QUERY_KINDS + AGENT_KINDS)}")


def _train_agent(router: str, data: str, out: Path, params: dict[str, Any], embedder: Any) -> str:
    from ..evals.agent_selection import (
        IntentData,
        SelectionData,
        build_agent_router,
        prepare_selection_data,
        train_agent_router_from_file,
    )

    if data.startswith("builtin:"):
        fmt, rows_path, _ = _builtin(data, ("clinc150", "banking77"), "agent-selection dataset")
        spec = shipped_suite_for(data, "agent_selection")
        seed, frac = (spec.data.seed, spec.data.test_fraction) if spec is not None else (0, 0.2)
        split = prepare_selection_data(fmt, rows_path, test_fraction=frac, seed=seed)
        # the suite's fit and calibration rows; its test rows are not handed over at all
        sel = SelectionData(split.fit, split.validation, IntentData([], [], ""), split.protocol)
        trained = build_agent_router(router, params, sel, embedder, seed=seed)
        trained.save(out)
        suite = spec.name if spec is not None else data
        oos = _threshold_text(trained, f"on its {len(sel.validation)} held rows")
        return (f"{len(trained.agents)} agents; fit rows of the {suite} suite's split: {len(sel.fit)}, {oos}; its "
                f"{len(split.test)} test rows never used")
    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"--data {data}: no such file (a CLINC150 JSONL, a text,label CSV/JSONL, or builtin:NAME)")
    trained, sel = train_agent_router_from_file(router, path, None, params, embedder)
    trained.save(out)
    n = len(sel.fit) + len(sel.validation)
    if sel.protocol.startswith("fit: train+"):
        oos = _threshold_text(trained, f"on its val+oos_val ({len(sel.validation)} rows)")
        rows = f"train+oos_train of {path.name} ({len(sel.fit)} rows), {oos}"
    else:
        oos = _threshold_text(trained, f"on {len(sel.validation)}")
        rows = f"all {n} rows of {path.name} (fit {len(sel.fit)}, {oos})"
    return f"{len(trained.agents)} agents; {rows}: do not score it on these rows"


def _threshold_text(trained: Any, where: str) -> str:
    if trained.threshold is None:
        return "no out-of-scope rows: no threshold"
    return f"out-of-scope threshold {trained.threshold} calibrated {where}"


def _train_query(router: str, data: str, out: Path, params: dict[str, Any], embedder: Any,
                 prices: Path | None) -> str:
    from ..agents.backends.replay import RecordedOutcomes
    from ..evals.query_routing import fit_validation_split, outcomes_subset, prepare_query_data, train_learned
    from ..evals.suite import DataSpec, query_outcomes, resolve_data
    from ..routers.cascade import CascadeRouter

    if data.startswith("builtin:"):
        if prices is not None:
            raise ConfigError(f"--prices is for an outcome file of yours; {data} comes with its own prices")
        _builtin(data, ("outcomes",), "outcome dataset")
        spec = shipped_suite_for(data, "query_routing")
        dspec = spec.data if spec is not None else DataSpec.model_validate({"dataset": data})
        files = resolve_data(dspec, Path.cwd())
        train_o, test_o = query_outcomes(files, dspec, spec.name if spec is not None else data)
        fit_idx, val_idx = fit_validation_split(len(train_o), dspec.validation_fraction, dspec.seed)
        outcomes = outcomes_subset(train_o, fit_idx)
        suite = spec.name if spec is not None else data
        rows = (f"fit rows of the {suite} suite's split: {len(outcomes)} (its {len(val_idx)} validation and "
                f"{len(test_o)} test rows never used)")
    else:
        path = Path(data)
        if not path.is_file():
            raise ConfigError(f"--data {data}: no such file (a recorded-outcomes JSONL(.gz), or builtin:NAME)")
        outcomes = RecordedOutcomes.load(path, prices=prices)
        rows = f"all {len(outcomes)} rows of {path.name}: do not score it on these rows"
    qdata = prepare_query_data(outcomes, embedder)  # costs: mean per-call cost, as the evals use
    if router == "cascade":
        threshold = float(params.pop("threshold", 0.5))
        base = train_learned(str(params.pop("predictor", "knn")), qdata, params)
        CascadeRouter(predictor=base.predictor, targets=base.targets, costs=base.costs, threshold=threshold).save(out)
    else:
        train_learned(router, qdata, params).save(out)
    return f"{len(outcomes.models)} models; {rows}"
