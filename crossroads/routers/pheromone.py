"""Pheromone (ant-colony) routing, AMRO-S style (arXiv 2603.12933; digest in docs/methods.md).

The query's intent is inferred with the local embedding model (nearest intent prototype); each intent
has its own pheromone table over the edges (source node -> candidate), so tasks do not interfere. A
candidate is chosen with probability proportional to ``tau^alpha * eta^beta``: ``tau`` the pheromone,
``eta`` a heuristic from descriptors (expected quality, cost). Learning never blocks a decision:
feedback goes to a queue and a background worker applies it. Utility = quality - lambda * cost.

The update is the MAX-MIN Ant System's (Stuetzle & Hoos, "MAX-MIN Ant System", Future Generation
Computer Systems 16(8), 2000): every edge starts at ``tau_max``; each update evaporates *every* edge
of the intent's table, ``tau <- (1 - rho) tau``, and deposits ``rho * utility * tau_max`` on the
edge whose result passed the quality gate (a gated-out result fades its edge once more); all values
are kept within ``[tau_min, tau_max]``. So an edge that keeps succeeding stays near ``tau_max`` while
the edges that are not reinforced decay towards ``tau_min``: success is reinforced, not only failure
punished. Each decision carries the pheromone and heuristic values that produced it; the state
persists to a JSON file.
"""

from __future__ import annotations

import json
import math
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FeedbackError
from ..types import END, Decision, Feedback, RouteContext
from ._embedding import UsesEmbedder
from .base import Router
from .registry import register_router

__all__ = ["PheromoneRouter"]

DEFAULT_INTENT = "default"
DECISION_MEMORY = 200_000
"""Recent decisions remembered for feedback; older decision ids are refused as unknown."""


@register_router()
class PheromoneRouter(UsesEmbedder, Router):
    """Ant-colony routing with per-intent pheromone tables and quality-gated asynchronous updates.

    Example::

        router = PheromoneRouter(intents={"math": ["solve 2x+3=7"], "code": ["fix this python bug"]})
        d = router.route(ctx)
        router.feedback(Feedback(decision_id=d.decision_id, reward=1.0, cost_usd=0.002))
    """

    name = "pheromone"
    learns = True

    def __init__(
        self,
        intents: Mapping[str, Sequence[str]] | None = None,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        evaporation: float = 0.1,
        tau_min: float = 0.05,
        tau_max: float = 5.0,
        cost_weight: float = 0.5,
        quality_gate: float = 0.5,
        exploit: float = 0.0,
        seed: int | None = 0,
        state_path: str | None = None,
        embedder: Any = None,
        recorder: Any = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label=label)
        if not 0 < evaporation < 1:
            raise ConfigError(f"pheromone router: evaporation must be in (0, 1), got {evaporation}")
        if not 0 < tau_min < tau_max:
            raise ConfigError(f"pheromone router: need 0 < tau_min < tau_max, got {tau_min}, {tau_max}")
        self.intents = {k: list(v) for k, v in (intents or {}).items()}
        self.alpha, self.beta, self.rho = alpha, beta, evaporation
        self.tau_min, self.tau_max = tau_min, tau_max
        self.cost_weight, self.quality_gate, self.exploit = cost_weight, quality_gate, exploit
        self._rng = random.Random(seed)
        self._embedder = embedder
        self._recorder = recorder
        self._proto: Any = None
        self.tau: dict[str, dict[str, float]] = {}
        """intent -> "source->candidate" -> pheromone."""
        self._decisions: OrderedDict[str, tuple[str, str, str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.updates = 0
        self.gated_out = 0
        self.state_path = state_path
        if state_path and Path(state_path).exists():
            self.load_state(state_path)
        self._worker = threading.Thread(target=self._learn_loop, name="pheromone-updates", daemon=True)
        self._worker.start()

    # -- intent inference ------------------------------------------------------------------------
    def infer_intent(self, query: str) -> tuple[str, float]:
        """The nearest intent prototype and its cosine similarity (one intent when none are defined)."""
        if not self.intents:
            return DEFAULT_INTENT, 1.0
        import numpy as np

        if self._proto is None:
            names, texts = [], []
            for name, ex in self.intents.items():
                names += [name] * len(ex)
                texts += ex
            self._proto = (names, np.asarray(self.embedder.embed(texts)))
        names, vecs = self._proto
        sims = vecs @ self.embedder.embed_one(query)
        i = int(np.argmax(sims))
        return names[i], float(sims[i])

    # -- deciding ----------------------------------------------------------------------------------
    def heuristic(self, ctx: RouteContext) -> dict[str, float]:
        """eta from descriptors: (expected quality or 0.5) discounted by relative cost; always > 0."""
        costs = {c.name: c.cost.estimate(1000, 250) for c in ctx.candidates}
        cmax = max(costs.values()) or 1.0
        return {c.name: max(1e-3, (c.quality if c.quality is not None else 0.5) - self.cost_weight * costs[c.name] / cmax + 1.0)
                for c in ctx.candidates}

    def _table(self, intent: str) -> dict[str, float]:
        t = self.tau.get(intent)
        if t is None:
            t = self.tau[intent] = {}
        return t

    def route(self, ctx: RouteContext) -> Decision:
        intent, sim = self.infer_intent(ctx.query)
        eta = self.heuristic(ctx)
        with self._lock:
            table = self._table(intent)
            for c in ctx.candidate_names:  # MMAS: an edge enters the table at tau_max, and evaporates from then on
                table.setdefault(f"{ctx.source}->{c}", self.tau_max)
            taus = {c: table[f"{ctx.source}->{c}"] for c in ctx.candidate_names}
        weights = {}
        for c in ctx.candidate_names:
            up = ctx.health_of(c).available or c == END
            weights[c] = (taus[c] ** self.alpha) * (eta[c] ** self.beta) if up else 0.0
        if not any(weights.values()):
            weights = {c: 1.0 for c in weights}
        z = sum(weights.values())
        probs = {c: w / z for c, w in weights.items()}
        if self.exploit and self._rng.random() < self.exploit:
            chosen = max(probs, key=probs.__getitem__)
        else:
            r, acc, chosen = self._rng.random(), 0.0, next(iter(probs))
            for c, p in probs.items():
                acc += p
                if r <= acc:
                    chosen = c
                    break
        d = Decision(targets=(chosen,), scores=probs, router=self.label,
                     rationale=f"intent {intent!r} (sim {sim:.2f}); p={probs[chosen]:.3f} from tau={taus[chosen]:.3f}, eta={eta[chosen]:.3f}",
                     metadata={"intent": intent, "tau": taus, "eta": eta, "alpha": self.alpha, "beta": self.beta})
        with self._lock:
            self._decisions[d.decision_id] = (intent, ctx.source, chosen, time.time())
            if len(self._decisions) > DECISION_MEMORY:
                self._decisions.popitem(last=False)
        return d

    # -- learning ------------------------------------------------------------------------------------
    def feedback(self, feedback: Feedback) -> None:
        """Queue an outcome; returns at once (the worker applies it). ``reward`` is the quality (0..1),
        ``cost_usd`` optional; unknown decision ids and non-finite values are refused."""
        if not isinstance(feedback.reward, (int, float)) or not math.isfinite(feedback.reward):
            raise FeedbackError(f"pheromone router {self.label!r}: reward must be a finite number, got {feedback.reward!r}")
        if feedback.cost_usd is not None and not math.isfinite(feedback.cost_usd):
            raise FeedbackError(f"pheromone router {self.label!r}: cost_usd must be finite, got {feedback.cost_usd!r}")
        with self._lock:
            known = self._decisions.get(feedback.decision_id)
        if known is None:
            raise FeedbackError(f"pheromone router {self.label!r}: unknown decision id {feedback.decision_id!r} "
                                "(not made by this router, or older than its memory)")
        self._queue.put((feedback, known))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued outcome has been applied."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise FeedbackError("pheromone updates did not drain in time")

    def _learn_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            fb, (intent, source, chosen, _) = item
            self._apply(fb, intent, source, chosen)

    def _apply(self, fb: Feedback, intent: str, source: str, chosen: str) -> None:
        utility = fb.reward - self.cost_weight * (fb.cost_usd or 0.0) * float(fb.metadata.get("cost_scale", 1.0))
        gated = fb.reward < self.quality_gate
        edge = f"{source}->{chosen}"
        with self._lock:
            table = self._table(intent)
            table.setdefault(edge, self.tau_max)  # (an edge from a state file that predates this decision's table)
            before = table[edge]
            for k in table:  # evaporation touches every edge of the intent's table
                table[k] = max(self.tau_min, table[k] * (1 - self.rho))
            cur = table[edge]
            if not gated:
                cur = cur + self.rho * max(0.0, utility) * self.tau_max
            else:
                cur = cur * (1 - self.rho)  # a failed result also fades its edge
            table[edge] = min(self.tau_max, max(self.tau_min, cur))
            after = table[edge]
            self.updates += 1
            self.gated_out += int(gated)
        if self._recorder is not None:
            from ..tracing.records import EventRecord

            self._recorder.record(EventRecord(kind="learning_update", decision_id=fb.decision_id, target=chosen, detail={
                "router": self.label, "intent": intent, "edge": edge, "tau_before": before, "tau_after": after,
                "reward": fb.reward, "utility": utility, "passed_gate": not gated}))

    # -- persistence ----------------------------------------------------------------------------------
    def save_state(self, path: str | None = None) -> Path:
        """Write the pheromone tables (atomically: a temp file, then a rename)."""
        target = Path(path or self.state_path or "pheromone.json")
        with self._lock:
            data = {"format": "crossroads.pheromone/1", "tau": self.tau, "tau_min": self.tau_min, "tau_max": self.tau_max}
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(target)
        return target

    def load_state(self, path: str) -> None:
        """Read tables written by :meth:`save_state`; a bad file is refused and the state left as it was."""
        try:
            data = json.loads(Path(path).read_text())
            tau = {str(i): {str(e): float(v) for e, v in t.items()} for i, t in data["tau"].items()}
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ConfigError(f"{path} is not a pheromone state file: {exc}") from exc
        if any(not math.isfinite(v) for t in tau.values() for v in t.values()):
            raise ConfigError(f"{path}: non-finite pheromone values")
        with self._lock:
            self.tau = {i: {e: min(self.tau_max, max(self.tau_min, v)) for e, v in t.items()} for i, t in tau.items()}

    def close(self) -> None:
        """Apply what is queued and stop the worker."""
        self.flush()
        self._queue.put(None)
