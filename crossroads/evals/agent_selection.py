"""Agent selection (TCAndon-Router style): each intent is an agent described by a card; a router picks
one agent or a set of them (or out-of-scope) per utterance.

Data: CLINC150 (``text, intent, domain, agent_id, split``; agent ``domain:intent``, ``oos`` rows) and
Banking77 (``text, category`` CSV). Routers are scored vectorised on embeddings; decision latency is
measured through the router protocol on a sample.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import iter_jsonl, open_text
from ..errors import ConfigError, UnknownNameError
from ..routers.learned import ClassifierRouter, SoftmaxClassifier
from ..routers.semantic import SemanticRouter
from ..types import RouteContext, TargetInfo
from .metrics import bootstrap_ci, decision_latencies_ms, percentile, selection_metrics

__all__ = ["AGENT_ROUTERS", "IntentData", "agent_cards", "evaluate_agent_routers", "load_banking77", "load_clinc150"]

OOS = "oos"


@dataclass
class IntentData:
    """Utterances with their gold agent id."""

    texts: list[str]
    labels: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)


def _require(row: Mapping[str, Any], key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: missing or empty field {key!r}")
    return v


def load_clinc150(path: str | Path) -> tuple[IntentData, IntentData]:
    """Train (``train`` + ``oos_train``) and test (``val`` + ``oos_val``) splits of CLINC150."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset file {path} does not exist")
    train, test = IntentData([], [], str(path)), IntentData([], [], str(path))
    for where, _, row in iter_jsonl(path):
        text, agent, split = _require(row, "text", where), _require(row, "agent_id", where), _require(row, "split", where)
        target = train if split in ("train", "oos_train") else test if split in ("val", "oos_val", "test", "oos_test") else None
        if target is None:
            raise ConfigError(f"{where}: unknown split {split!r}; expected train, val, test, oos_train, oos_val or oos_test")
        target.texts.append(text)
        target.labels.append(agent)
    if not train.texts or not test.texts:
        raise ConfigError(f"{path}: needs both train and val/test rows")
    return train, test


def load_banking77(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> tuple[IntentData, IntentData]:
    """Banking77's train CSV split into train/test by a seeded, per-category stratified shuffle."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset file {path} does not exist")
    by_cat: dict[str, list[str]] = defaultdict(list)
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}:1: header must have 'text' and 'category' columns, got {reader.fieldnames}")
        for n, row in enumerate(reader, 2):
            by_cat[_require(row, "category", f"{path}:{n}")].append(_require(row, "text", f"{path}:{n}"))
    rng = np.random.default_rng(seed)
    train, test = IntentData([], [], str(path)), IntentData([], [], str(path))
    for cat in sorted(by_cat):
        texts = by_cat[cat]
        order = rng.permutation(len(texts))
        k = max(1, int(round(test_fraction * len(texts))))
        for j, i in enumerate(order):
            (test if j < k else train).texts.append(texts[i])
            (test if j < k else train).labels.append(cat)
    return train, test


def agent_cards(train: IntentData, *, examples: int = 5, seed: int = 0) -> dict[str, dict[str, Any]]:
    """A card per agent: name, a description from its id, and a few example utterances from train only."""
    rng = np.random.default_rng(seed)
    by_agent: dict[str, list[str]] = defaultdict(list)
    for t, l in zip(train.texts, train.labels):
        by_agent[l].append(t)
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


def _aggregate(sims: np.ndarray, owner: np.ndarray, n_agents: int, how: str, k: int) -> np.ndarray:
    out = np.full((sims.shape[0], n_agents), -1.0, dtype=np.float32)
    if how == "max":
        for a in range(n_agents):
            cols = owner == a
            if cols.any():
                out[:, a] = sims[:, cols].max(axis=1)
        return out
    if how == "knn":  # similarity-weighted vote of the k nearest examples
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sims, idx, axis=1)
        out[:] = 0.0
        for j in range(k):
            np.add.at(out, (np.arange(len(sims)), owner[idx[:, j]]), top[:, j])
        return out / k
    raise ValueError(how)


def _sets(scores: np.ndarray, agents: list[str], threshold: float | None, margin: float, max_set: int) -> list[list[str]]:
    order = np.argsort(-scores, axis=1)[:, :max_set]
    out = []
    for i, row in enumerate(order):
        top = scores[i, row[0]]
        if threshold is not None and top < threshold:
            out.append([OOS])
            continue
        out.append([agents[j] for j in row if scores[i, j] >= top - margin])
    return out


def _calibrate_threshold(scores: np.ndarray, labels: Sequence[str], agents: list[str]) -> float:
    """The out-of-scope threshold that maximises top-1 accuracy on held-out training rows."""
    best_t, best_acc = 0.0, -1.0
    tops = scores.max(axis=1)
    arg = [agents[j] for j in scores.argmax(axis=1)]
    for t in np.quantile(tops, np.linspace(0.0, 0.5, 51)):
        acc = np.mean([(OOS if tops[i] < t else arg[i]) == labels[i] for i in range(len(labels))])
        if acc > best_acc:
            best_t, best_acc = float(t), float(acc)
    return best_t


AGENT_ROUTERS = {
    "random": "uniform over agents (and out-of-scope when the data has it)",
    "prototypes": "card examples + description, nearest example (semantic-router style)",
    "centroid": "mean embedding of an agent's training utterances",
    "knn": "similarity-weighted vote of the k nearest training utterances",
    "nearest": "the single nearest training utterance (1-NN, as a SemanticRouter over all examples)",
    "classifier": "an MLP softmax head over the embeddings, trained on the training utterances (out-of-scope as a class)",
}
"""Agent-selection routers by suite name."""


def evaluate_agent_routers(
    train: IntentData,
    test: IntentData,
    routers: Sequence[tuple[str, str, Mapping[str, Any]]],
    embedder: Any,
    *,
    margin: float = 0.02,
    max_set: int = 3,
    bootstrap: int = 1000,
    latency_samples: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Score each router; out-of-scope thresholds are calibrated on a held-out tenth of train."""
    has_oos = OOS in set(train.labels) | set(test.labels)
    agents = sorted({l for l in train.labels if l != OOS})
    a_index = {a: i for i, a in enumerate(agents)}
    missing = sorted({l for l in test.labels if l != OOS} - set(agents))
    if missing:
        raise ConfigError(f"{test.source}: test agents with no training rows: {', '.join(missing[:5])}")
    Xtr = np.asarray(embedder.embed(train.texts), dtype=np.float32)
    Xte = np.asarray(embedder.embed(test.texts), dtype=np.float32)
    rng = np.random.default_rng(seed)
    hold = rng.random(len(train)) < 0.1
    cards = agent_cards(train, seed=seed)
    results: dict[str, Any] = {"n_train": len(train), "n_test": len(test), "agents": len(agents), "has_oos": has_oos, "routers": {}}
    for label, kind, params in routers:
        if kind not in AGENT_ROUTERS:
            raise UnknownNameError("agent-selection router", kind, AGENT_ROUTERS)
        t0 = time.perf_counter()
        clf = None
        if kind == "random":
            choice = rng.integers(0, len(agents) + (1 if has_oos else 0), size=len(test))
            chosen = [[agents[c] if c < len(agents) else OOS] for c in choice]
            scores_te = None
        else:
            def scorer(fit_mask: np.ndarray) -> Any:
                idx = np.where(fit_mask & (np.array(train.labels) != OOS))[0]
                if kind == "prototypes":
                    texts = []
                    owner = []
                    for a in agents:
                        ex = cards[a]["examples"][: int(params.get("examples", 5))] + [cards[a]["description"]]
                        texts += ex
                        owner += [a_index[a]] * len(ex)
                    P, own, how = np.asarray(embedder.embed(texts), np.float32), np.array(owner), "max"
                elif kind == "centroid":
                    lab = np.array([a_index[train.labels[i]] for i in idx])
                    P = np.stack([Xtr[idx][lab == a].mean(axis=0) for a in range(len(agents))])
                    P /= np.linalg.norm(P, axis=1, keepdims=True)
                    own, how = np.arange(len(agents)), "max"
                elif kind == "classifier":
                    rows = np.where(fit_mask)[0]  # out-of-scope rows train their own class
                    nonlocal clf
                    clf = SoftmaxClassifier(**dict(params)).fit(Xtr[rows], [train.labels[i] for i in rows])
                    col = {c: i for i, c in enumerate(clf.classes)}
                    oos_col = col.get(OOS)

                    def probs(X: np.ndarray) -> np.ndarray:
                        p = clf.predict_proba(X)
                        # an agent with no training row in this fit scores 0
                        out = np.stack([p[:, col[a]] if a in col else np.zeros(len(p)) for a in agents], axis=1)
                        if oos_col is not None:  # the head's own out-of-scope verdict: below every threshold
                            out = np.where((p[:, oos_col] > out.max(axis=1))[:, None], -1.0, out)
                        return out
                    return probs
                else:
                    P, own = Xtr[idx], np.array([a_index[train.labels[i]] for i in idx])
                    how = "knn" if kind == "knn" else "max"
                return lambda X: _aggregate(X @ P.T, own, len(agents), how, int(params.get("k", 10)))

            threshold = None
            if has_oos:
                fitted = scorer(~hold)
                calib = fitted(Xtr[hold])
                threshold = _calibrate_threshold(calib, [train.labels[i] for i in np.where(hold)[0]], agents)
                if kind == "classifier":
                    threshold = max(threshold, 0.0)  # never overrule the head's out-of-scope class
                # a trained head is not refitted on the held-out tenth (training is the slow part)
                full = fitted if kind == "classifier" else scorer(np.ones(len(train), bool))
            else:
                full = scorer(np.ones(len(train), bool))
            scores_te = full(Xte)
            chosen = _sets(scores_te, agents, threshold, margin, max_set)
            top1_sets = _sets(scores_te, agents, threshold, 0.0, 1)
        fit_s = time.perf_counter() - t0
        m = selection_metrics(test.labels, chosen)
        if scores_te is not None:
            m1 = selection_metrics(test.labels, top1_sets)
            m["top1_accuracy"] = m1["top1_accuracy"]
            m["in_scope_top1_accuracy"] = m1["in_scope_top1_accuracy"]
            m["oos_precision"], m["oos_recall"] = m1["oos_precision"], m1["oos_recall"]
            hits = np.array([1.0 if s[0] == g else 0.0 for s, g in zip(top1_sets, test.labels)])
            wrong = Counter((g, s[0]) for s, g in zip(top1_sets, test.labels) if s[0] != g)
            m["top_confusions"] = [{"gold": g, "chosen": c, "count": n} for (g, c), n in wrong.most_common(10)]
            m["top1_ci95"] = bootstrap_ci(hits, n=bootstrap) if bootstrap else None
            m["oos_threshold"] = threshold
        m["fit_and_score_s"] = fit_s
        if kind in ("nearest", "prototypes", "classifier") and latency_samples:
            m.update(_protocol_latency(kind, train, agents, cards, params, embedder, test.texts[:latency_samples],
                                       classifier=clf if kind == "classifier" else None))
        results["routers"][label] = m
    return results


def _protocol_latency(kind: str, train: IntentData, agents: list[str], cards: Mapping[str, Any],
                      params: Mapping[str, Any], embedder: Any, queries: Sequence[str],
                      classifier: Any = None) -> dict[str, float]:
    """Per-decision latency through the router protocol (embedding the query included)."""
    router: Any
    if kind == "classifier":
        router = ClassifierRouter(classifier=classifier, embedder=embedder)
        routes: dict[str, list[str]] = {}
    elif kind == "nearest":
        routes: dict[str, list[str]] = defaultdict(list)
        for t, l in zip(train.texts, train.labels):
            if l != OOS:
                routes[l].append(t)
    elif kind == "prototypes":
        routes = {a: cards[a]["examples"][: int(params.get("examples", 5))] + [cards[a]["description"]] for a in agents}
    if kind != "classifier":
        router = SemanticRouter(dict(routes), embedder=embedder)
    cands = [TargetInfo(name=a) for a in agents]
    router.route(RouteContext(query=queries[0], candidates=tuple(cands)))  # builds the prototype index
    lat = decision_latencies_ms(router, queries, cands, embedder)
    return {"latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99)}
