"""Agent selection (TCAndon-Router style): each intent is an agent described by a card; a router picks
one agent or a set of them (or out-of-scope) per utterance.

Every router is a registered router object (:mod:`crossroads.routers.intent`, the semantic router, the
random router) trained on the fit rows, its out-of-scope threshold calibrated on a validation slice with
out-of-scope rows (:meth:`~crossroads.routers.intent.IntentRouter.calibrate`), then scored on the test rows
through :meth:`Router.route_batch`; decision latency is timed through :meth:`Router.route` on the same
object, on queries drawn across the whole test set. Nothing here re-implements a router's scoring.

Data: CLINC150 (``text, intent, domain, agent_id, split``; agent ``domain:intent``, ``oos`` rows, the
official oos-eval ``data_full.json`` too), Banking77 (``text, category`` CSV), or a user's CSV/JSONL of
``text, label`` rows (``label`` ``oos`` = out of scope).
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import iter_jsonl, open_text
from ..errors import ConfigError, UnknownNameError
from ..routers.intent import INTENT_ROUTERS, OOS, load_intent_router, train_intent_router
from ..routers.semantic import SemanticRouter
from ..routers.simple import RandomRouter
from ..types import RouteContext, TargetInfo
from .metrics import bootstrap_ci, decision_latencies_ms, percentile
from .selection_metrics import selection_metrics

__all__ = [
    "AGENT_ROUTERS",
    "IntentData",
    "SelectionData",
    "agent_cards",
    "agent_router_kind",
    "evaluate_agent_routers",
    "limit_selection_data",
    "load_banking77",
    "load_clinc150",
    "load_clinc150_splits",
    "load_intent_file",
    "load_training_rows",
    "prepare_selection_data",
]

DEFAULT_OOS_PRECISION = 0.9
"""The out-of-scope precision target when a router's params do not state one."""
DEFAULT_SET_MARGIN = 0.02
"""Agents within this score of the best join the chosen set (up to 3) unless a router's params say otherwise."""


@dataclass
class IntentData:
    """Utterances with their gold agent id."""

    texts: list[str]
    labels: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: IntentData) -> IntentData:
        return IntentData(self.texts + other.texts, self.labels + other.labels, self.source or other.source)

    def subset(self, idx: Sequence[int] | np.ndarray) -> IntentData:
        """The rows at ``idx``, in that order."""
        return IntentData([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.source)

    @property
    def n_oos(self) -> int:
        return sum(1 for lab in self.labels if lab == OOS)


@dataclass
class SelectionData:
    """What a suite scores: routers fit on ``fit``, calibrate on ``validation``, are scored on ``test``."""

    fit: IntentData
    validation: IntentData
    test: IntentData
    protocol: str


def _require(row: Mapping[str, Any], key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: missing or empty field {key!r}")
    return v


CLINC_SPLITS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")


def load_clinc150_splits(path: str | Path) -> dict[str, IntentData]:
    """Every split present in a CLINC150 file: the crossroads JSONL (``split`` per row) or the official
    oos-eval ``data_full.json`` (``{"train": [[text, intent], ...], "oos_test": ...}``, agents named by
    intent; :func:`align_labels` maps them to ``domain:intent``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset file {path} does not exist")
    out: dict[str, IntentData] = {}
    if path.name.endswith((".json", ".json.gz")):
        with open_text(path) as fh:
            try:
                raw = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or not set(raw) & set(CLINC_SPLITS):
            raise ConfigError(f"{path}: expected the oos-eval layout, an object with keys among {', '.join(CLINC_SPLITS)}")
        for split in CLINC_SPLITS:
            for n, pair in enumerate(raw.get(split) or []):
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) and x for x in pair)):
                    raise ConfigError(f"{path}: {split}[{n}] must be [text, intent], got {pair!r}")
                d = out.setdefault(split, IntentData([], [], str(path)))
                d.texts.append(pair[0])
                d.labels.append(OOS if split.startswith("oos") else pair[1])
        return out
    for where, _, row in iter_jsonl(path):
        text, agent, split = _require(row, "text", where), _require(row, "agent_id", where), _require(row, "split", where)
        if split not in CLINC_SPLITS:
            raise ConfigError(f"{where}: unknown split {split!r}; expected one of {', '.join(CLINC_SPLITS)}")
        d = out.setdefault(split, IntentData([], [], str(path)))
        d.texts.append(text)
        d.labels.append(agent)
    return out


def _join(splits: Mapping[str, IntentData], names: Sequence[str], source: str) -> IntentData:
    out = IntentData([], [], source)
    for n in names:
        if n in splits:
            out = out + splits[n]
    return out


def load_clinc150(path: str | Path) -> tuple[IntentData, IntentData]:
    """Train (``train`` + ``oos_train``) and test (``val`` + ``oos_val`` + ``test`` + ``oos_test``)."""
    splits = load_clinc150_splits(path)
    train = _join(splits, ("train", "oos_train"), str(path))
    test = _join(splits, ("val", "oos_val", "test", "oos_test"), str(path))
    if not train.texts or not test.texts:
        raise ConfigError(f"{path}: needs both train and val/test rows")
    return train, test


def load_banking77(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[IntentData, IntentData]:
    """Banking77's train CSV split into train/test by a seeded, per-category stratified shuffle."""
    data = load_intent_file(path)
    fit, test = stratified_split(data, test_fraction, seed)
    return fit, test


def load_intent_file(path: str | Path) -> IntentData:
    """A user's labelled utterances: CSV with a header, or JSONL, with a ``text`` column and a label column
    (``label``, ``agent_id``, ``category`` or ``intent``; ``oos`` = out of scope). A CLINC150 file or
    oos-eval ``data_full.json`` gives all its rows."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset file {path} does not exist")
    if path.name.endswith((".json", ".json.gz")):
        return _join(load_clinc150_splits(path), CLINC_SPLITS, str(path))
    out = IntentData([], [], str(path))
    keys = ("label", "agent_id", "category", "intent")
    if path.name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        with open_text(path) as fh:
            reader = csv.DictReader(fh, delimiter="\t" if ".tsv" in path.name else ",")
            cols = reader.fieldnames or []
            label = next((k for k in keys if k in cols), None)
            if "text" not in cols or label is None:
                raise ConfigError(f"{path}:1: header must have a 'text' column and one of {', '.join(keys)}; got {cols}")
            for n, row in enumerate(reader, 2):
                out.texts.append(_require(row, "text", f"{path}:{n}"))
                out.labels.append(_require(row, label, f"{path}:{n}"))
    else:
        for where, _, row in iter_jsonl(path):
            label = next((k for k in keys if k in row), None)
            if label is None:
                raise ConfigError(f"{where}: needs a 'text' field and one of {', '.join(keys)}")
            out.texts.append(_require(row, "text", where))
            out.labels.append(_require(row, label, where))
    if not out.texts:
        raise ConfigError(f"{path}: no rows")
    return out


def load_training_rows(path: str | Path, fmt: str | None = None) -> IntentData:
    """The rows ``crossroads train`` fits an agent-selection router on: a CLINC150 file's train and
    oos_train splits, else every row of the file."""
    path = Path(path)
    if fmt == "clinc150" or (fmt is None and path.name.endswith((".jsonl", ".jsonl.gz")) and _is_clinc(path)):
        return _join(load_clinc150_splits(path), ("train", "oos_train"), str(path))
    return load_intent_file(path)


def _is_clinc(path: Path) -> bool:
    for _, _, row in iter_jsonl(path):
        return "split" in row and "agent_id" in row
    return False


def stratified_split(data: IntentData, fraction: float, seed: int) -> tuple[IntentData, IntentData]:
    """A seeded per-label hold-out: (rest, held) with ``round(fraction * n_label)`` (at least 1) held per label."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(data.labels):
        by[lab].append(i)
    rng = np.random.default_rng(seed)
    rest: list[int] = []
    held: list[int] = []
    for label in sorted(by):
        idx = by[label]
        order = rng.permutation(len(idx))
        k = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        held += [idx[j] for j in order[:k]]
        rest += [idx[j] for j in order[k:]]
    return data.subset(sorted(rest)), data.subset(sorted(held))


def align_labels(test: IntentData, agents: Sequence[str]) -> IntentData:
    """Map test labels given as bare intents (``balance``) to the trained agent ids (``banking:balance``)
    when exactly one agent ends with ``:intent``; unknown labels are an error naming them."""
    known = set(agents) | {OOS}
    by_intent: dict[str, list[str]] = defaultdict(list)
    for a in agents:
        by_intent[a.rpartition(":")[2]].append(a)
    labels = []
    unknown: Counter[str] = Counter()
    for lab in test.labels:
        if lab in known:
            labels.append(lab)
        elif len(by_intent.get(lab, [])) == 1:
            labels.append(by_intent[lab][0])
        else:
            unknown[lab] += 1
            labels.append(lab)
    if unknown:
        raise ConfigError(f"{test.source}: test labels with no training rows: "
                          f"{', '.join(f'{k} ({v} rows)' for k, v in unknown.most_common(5))}; "
                          "train on data that covers them, or label them 'oos'")
    return IntentData(test.texts, labels, test.source)


def prepare_selection_data(fmt: str, rows_path: Path | None, *, train_file: Path | None = None,
                           test_file: Path | None = None, test_fraction: float = 0.2, seed: int = 0,
                           validation_fraction: float = 0.1) -> SelectionData:
    """Fit, validation and test rows for a suite.

    * CLINC150 with a test file (e.g. the official ``test`` + ``oos_test``): fit on train + oos_train,
      calibrate on val + oos_val (the official protocol), test on the file as given.
    * CLINC150 alone: test on val + oos_val; calibrate on a seeded stratified tenth of train plus half
      of oos_train, fit on the rest.
    * A train file (or Banking77) with a test file: the test file as given, no re-split; otherwise a
      seeded stratified ``test_fraction`` hold-out. The validation slice is a seeded stratified tenth of
      the training rows (only used when there are out-of-scope rows).
    """
    vf = validation_fraction
    if train_file is None and fmt == "clinc150" and rows_path is not None:
        splits = load_clinc150_splits(rows_path)
        if test_file is not None:
            fit = _join(splits, ("train", "oos_train"), str(rows_path))
            val = _join(splits, ("val", "oos_val"), str(rows_path))
            test = load_intent_file(test_file)
            if test_file.name.endswith((".json", ".json.gz")):  # oos-eval layout: its test splits
                s = load_clinc150_splits(test_file)
                test = _join(s, ("test", "oos_test"), str(test_file))
            return SelectionData(fit, val, align_labels(test, sorted(set(fit.labels) - {OOS})),
                                 f"fit: CLINC150 train+oos_train ({len(fit)}); calibrate: val+oos_val ({len(val)}); "
                                 f"test: {test_file.name} ({len(test)})")
        in_train, in_held = stratified_split(splits["train"], vf, seed)
        oos_train, oos_held = stratified_split(splits.get("oos_train", IntentData([], [])), 0.5, seed)
        test = _join(splits, ("val", "oos_val"), str(rows_path))
        return SelectionData(in_train + oos_train, in_held + oos_held, test,
                             f"fit: CLINC150 train minus a stratified {vf:.0%} + half of oos_train ({len(in_train) + len(oos_train)}); "
                             f"calibrate: the held rows ({len(in_held) + len(oos_held)}); test: val+oos_val ({len(test)})")
    if train_file is not None:
        train = load_training_rows(train_file)
        src = train_file.name
    elif rows_path is not None:
        train = load_training_rows(rows_path, fmt)
        src = rows_path.name
    else:
        raise ConfigError("agent selection needs a dataset or a --train file")
    if test_file is not None:
        fit_all, test, how = train, load_intent_file(test_file), f"test: {test_file.name} as given"
        if test_file.name.endswith((".json", ".json.gz")):
            test = _join(load_clinc150_splits(test_file), ("test", "oos_test"), str(test_file))
    else:
        fit_all, test = stratified_split(train, test_fraction, seed)
        how = f"test: a seeded stratified {test_fraction:.0%} of {src}"
    fit, val = stratified_split(fit_all, vf, seed) if fit_all.n_oos else (fit_all, IntentData([], [], ""))
    test = align_labels(test, sorted(set(fit.labels) - {OOS}))
    return SelectionData(fit, val, test, f"fit: {src} ({len(fit)}); calibrate: {len(val)} held rows; {how} ({len(test)})")


def agent_cards(train: IntentData, *, examples: int = 5, seed: int = 0) -> dict[str, dict[str, Any]]:
    """A card per agent: name, a description from its id, and a few example utterances from train only."""
    rng = np.random.default_rng(seed)
    by_agent: dict[str, list[str]] = defaultdict(list)
    for t, lab in zip(train.texts, train.labels, strict=True):
        by_agent[lab].append(t)
    cards = {}
    for agent, texts in sorted(by_agent.items()):
        if agent == OOS:
            continue
        domain, _, intent = agent.rpartition(":")
        words = intent.replace("_", " ")
        desc = f"Handles {words} requests" + (f" in the {domain.replace('_', ' ')} domain" if domain else "")
        pick = [texts[i] for i in rng.permutation(len(texts))[:examples]]
        cards[agent] = {"name": agent, "description": desc, "examples": pick}
    return cards


AGENT_ROUTERS = {
    "random": "uniform over agents (and out-of-scope when the data has it): the registered random router",
    "semantic": "card examples + description, nearest example: the registered semantic router (alias: prototypes)",
    "centroid": "cosine to the mean embedding of an agent's training utterances (registered: centroid)",
    "knn_intent": "similarity-weighted vote of the k nearest training utterances (registered: knn_intent; alias: knn)",
    "nearest": "the single nearest training utterance, 1-NN (registered: nearest)",
    "classifier": "a softmax MLP head over the embeddings, out-of-scope as a class (registered: classifier)",
}
"""Agent-selection routers by suite type; every one is a registered router usable in a flow."""
_ALIASES = {"prototypes": "semantic", "knn": "knn_intent"}
_SETTINGS = ("oos_precision_target", "oos_prior", "set_margin", "max_set")


def build_agent_router(kind: str, params: Mapping[str, Any], data: SelectionData, embedder: Any, *,
                       seed: int = 0) -> Any:
    """Train (and, with out-of-scope rows, calibrate) the router a suite entry describes."""
    kind = _ALIASES.get(kind, kind)
    if kind not in AGENT_ROUTERS:
        raise UnknownNameError("agent-selection router", kind, AGENT_ROUTERS)
    p = dict(params)
    given = {k: p[k] for k in ("oos_precision_target", "oos_prior") if k in p}
    target = float(p.pop("oos_precision_target", DEFAULT_OOS_PRECISION))
    prior = p.pop("oos_prior", None)
    set_margin = float(p.pop("set_margin", DEFAULT_SET_MARGIN))
    max_set = int(p.pop("max_set", 3))
    has_oos = bool(data.fit.n_oos or data.test.n_oos or data.validation.n_oos)
    fallback = OOS if has_oos else None
    if kind == "random":
        return RandomRouter(seed=int(p.get("seed", seed)))
    router: Any
    if "path" in p:  # an already trained router file (e.g. crossroads train encoder): loaded, not retrained
        if kind not in INTENT_ROUTERS:
            raise ConfigError(f"agent-selection router type {kind!r} takes no path; trained files load as "
                              f"{', '.join(INTENT_ROUTERS)}")
        extra = sorted(set(p) - {"path"})
        if extra:
            raise ConfigError(f"router {kind} with a trained path: {', '.join(extra)} would be ignored (the file "
                              "holds its parameters); remove them")
        over = {"fallback": fallback, "set_margin": set_margin, "max_set": max_set, "embedder": embedder}
        router = load_intent_router(str(p["path"]), **{k: v for k, v in over.items() if v is not None})
        if router.kind != kind:
            raise ConfigError(f"{p['path']} holds a {router.kind!r} router, not {kind!r}: use type: {router.kind}")
        # recalibrated on this suite's validation slice by the rule the file was calibrated with (its
        # precision target and out-of-scope prior), unless the entry sets them
        stored = router.calibration or {}
        if "oos_precision_target" not in given and stored.get("oos_precision_target") is not None:
            target = float(stored["oos_precision_target"])
        if "oos_prior" not in given and "oos_prior" in stored:
            prior = stored["oos_prior"]
    elif kind == "semantic":
        cards = agent_cards(data.fit, examples=int(p.pop("examples", 5)), seed=seed)
        router = SemanticRouter({a: c["examples"] + [c["description"]] for a, c in cards.items()}, default=fallback,
                                embedder=embedder, **p)
    else:
        router = train_intent_router(kind, data.fit.texts, data.fit.labels, embedder=embedder,
                                     params={**p, "fallback": fallback, "set_margin": set_margin, "max_set": max_set})
    if has_oos:
        if not data.validation.n_oos:
            raise ConfigError("out-of-scope calibration needs validation rows labelled 'oos': add out-of-scope rows "
                              "to the training data")
        router.calibrate(data.validation.texts, data.validation.labels, precision_target=target,
                         prior=None if prior is None else float(prior))
    return router


def evaluate_agent_routers(
    data: SelectionData,
    routers: Sequence[tuple[str, str, Mapping[str, Any]]],
    embedder: Any,
    *,
    bootstrap: int = 1000,
    latency_samples: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Train, calibrate and score each router through its own ``route_batch``; time ``route`` on
    ``latency_samples`` queries drawn at random (seeded) from the whole test set."""
    agents = sorted({lab for lab in data.fit.labels if lab != OOS})
    test = align_labels(data.test, agents)
    has_oos = bool(data.fit.n_oos or test.n_oos or data.validation.n_oos)
    cands = tuple(TargetInfo(name=a) for a in agents) + ((TargetInfo(name=OOS),) if has_oos else ())
    sample = np.sort(np.random.default_rng(seed).choice(len(test), size=min(latency_samples, len(test)), replace=False))
    results: dict[str, Any] = {"n_fit": len(data.fit), "n_validation": len(data.validation), "n_test": len(test),
                               "n_test_oos": test.n_oos, "agents": len(agents), "has_oos": has_oos,
                               "protocol": data.protocol, "conflict": "multi-agent share only: the suite does not run the agents",
                               "routers": {}}
    for label, kind, params in routers:
        t0 = time.perf_counter()
        router = build_agent_router(kind, params, data, embedder, seed=seed)
        router.label = label  # the entry's name, in its decisions and errors (two entries may share a type)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        decisions = []
        for s in range(0, len(test), 2048):
            decisions += router.route_batch([RouteContext(query=q, candidates=cands) for q in test.texts[s:s + 2048]])
        score_s = time.perf_counter() - t0
        chosen = [list(d.targets) for d in decisions]
        m = selection_metrics(test.labels, chosen)
        hits = np.array([1.0 if c[0] == g else 0.0 for c, g in zip(chosen, test.labels, strict=True)])
        wrong = Counter((g, c[0]) for c, g in zip(chosen, test.labels, strict=True) if c[0] != g)
        m["top_confusions"] = [{"gold": g, "chosen": c, "count": n} for (g, c), n in wrong.most_common(10)]
        m["top1_ci95"] = bootstrap_ci(hits, n=bootstrap) if bootstrap else None
        m["oos_threshold"] = getattr(router, "threshold", None)
        m["calibration"] = getattr(router, "calibration", None) or None
        m["router"] = f"{type(router).__name__} (type: {router.name})"
        m["fit_s"], m["score_s"] = fit_s, score_s
        if latency_samples and kind != "random":
            own = getattr(router, "embedder", None)  # a router with its own encoder: switch off that one's cache
            lat = decision_latencies_ms(router, [test.texts[i] for i in sample], cands, own if own is not None else embedder,
                                        warm_up=True)
            m.update({"latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
                      "latency_samples": len(lat)})
        results["routers"][label] = m
    return results


def agent_router_kind(kind: str, also: Mapping[str, Any] | None = None) -> str:
    """The suite router type ``kind`` resolves to; an unknown one is an error listing the known ones
    (with ``also``, other kinds the suite accepts)."""
    k = _ALIASES.get(kind, kind)
    if k not in AGENT_ROUTERS:
        raise UnknownNameError("agent-selection router", kind, {**AGENT_ROUTERS, **(also or {})})
    return k


def limit_selection_data(data: SelectionData, limit: int, *, seed: int = 0) -> SelectionData:
    """A small version (``--limit``): about ``limit`` rows in all, split as the full data is, keeping
    out-of-scope rows in proportion and only test rows whose agent still has fit rows."""
    rng = np.random.default_rng(seed)
    total = len(data.fit) + len(data.validation) + len(data.test)

    def sub(d: IntentData) -> IntentData:
        n = min(len(d), max(5, int(limit * len(d) / total))) if len(d) else 0
        return d.subset(np.sort(rng.choice(len(d), size=n, replace=False))) if n else d

    fit, val, test = sub(data.fit), sub(data.validation), sub(data.test)
    known = set(fit.labels) | {OOS}
    keep = [i for i, lab in enumerate(test.labels) if lab in known]
    return SelectionData(fit, val, test.subset(keep), data.protocol + f" (limited to about {limit} rows)")


def train_agent_router_from_file(kind: str, path: str | Path, fmt: str | None, params: Mapping[str, Any], embedder: Any,
                                 *, seed: int = 0) -> tuple[Any, SelectionData]:
    """What ``crossroads train centroid|knn_intent|nearest|classifier`` does: fit on a CLINC150 file's
    train + oos_train and calibrate on its val + oos_val, or fit on a ``text,label`` file and calibrate on
    a seeded stratified tenth of it when it has out-of-scope rows."""
    path = Path(path)
    if fmt == "clinc150" or (fmt is None and path.name.endswith((".jsonl", ".jsonl.gz")) and _is_clinc(path)):
        splits = load_clinc150_splits(path)
        data = SelectionData(_join(splits, ("train", "oos_train"), str(path)), _join(splits, ("val", "oos_val"), str(path)),
                             IntentData([], []), "fit: train+oos_train; calibrate: val+oos_val")
    else:
        rows = load_intent_file(path)
        fit, val = stratified_split(rows, 0.1, seed) if rows.n_oos else (rows, IntentData([], []))
        data = SelectionData(fit, val, IntentData([], []), f"fit: {len(fit)} rows; calibrate: {len(val)} held rows")
    return build_agent_router(kind, params, data, embedder, seed=seed), data
