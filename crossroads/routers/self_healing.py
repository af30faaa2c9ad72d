"""Self-healing tool routing (arXiv 2603.01548): Dijkstra over a cost-weighted tool graph.

Tools form a directed graph with edge costs. Health monitors (outage, error rate, latency, a risk
signal — any callable) run in parallel and turn conditions into per-tool penalties on edge weights.
When a tool fails mid-execution its edges go to infinity and the path is recomputed from the current
node — no LLM call. Only when no feasible path remains is the escalation handler called (an LLM
through the model layer, or any callable), which demotes the goal or stops with an explicit
escalation. Binary observability is enforced: every failure produces a reroute event, and every
infeasible recompute an escalation event; a failure with neither raises.
"""

from __future__ import annotations

import heapq
import inspect
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ConfigError, FlowError, RoutingError
from ..types import END, START, Decision, Message, RouteContext, RunEvent
from .base import Router
from .registry import register_router

__all__ = [
    "Escalation",
    "ExecutionResult",
    "HealthMonitor",
    "LLMEscalation",
    "OutageMonitor",
    "ProbeMonitor",
    "SelfHealingRouter",
    "ThresholdMonitor",
    "ToolGraph",
]

INF = math.inf


@dataclass
class ToolGraph:
    """A directed tool graph: ``edges[(u, v)] = cost``; ``start`` and ``goal`` nodes."""

    nodes: list[str]
    edges: dict[tuple[str, str], float]
    start: str
    goal: str
    fallback_goals: list[str] = field(default_factory=list)
    """Lesser goals an escalation may demote to, in order of preference."""

    def __post_init__(self) -> None:
        known = set(self.nodes)
        for (u, v), c in self.edges.items():
            if u not in known or v not in known:
                raise ConfigError(f"tool graph edge {u} -> {v} names an unknown node; nodes: {', '.join(self.nodes)}")
            if not (c >= 0 and math.isfinite(c)):
                raise ConfigError(f"tool graph edge {u} -> {v} has cost {c}; costs must be finite and >= 0")
        for n in (self.start, self.goal, *self.fallback_goals):
            if n not in known:
                raise ConfigError(f"tool graph names unknown node {n!r} as start/goal")
        self.succ: dict[str, list[tuple[str, float]]] = {n: [] for n in self.nodes}
        for (u, v), c in self.edges.items():
            self.succ[u].append((v, c))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ToolGraph:
        """From ``{nodes, edges: [{source, target, cost}], start, goal}`` (the scenarios' format)."""
        try:
            edges = {(e["source"], e["target"]): float(e["cost"]) for e in spec["edges"]}
            return cls(list(spec["nodes"]), edges, spec["start"], spec["goal"], list(spec.get("fallback_goals", [])))
        except KeyError as exc:
            raise ConfigError(f"tool graph spec lacks field {exc.args[0]!r} (needs nodes, edges[source,target,cost], start, goal)") from None


class HealthMonitor(Protocol):
    """Returns a penalty per tool: 0 healthy, a positive number to make it costlier, ``inf`` when down."""

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]: ...


class OutageMonitor:
    """Tools known to be down (set by a probe, a status page, or failures seen)."""

    def __init__(self, down: Iterable[str] = ()) -> None:
        self.down = set(down)

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        return {t: INF for t in self.down}


class ProbeMonitor:
    """Health checks: calls ``probe(tool)`` for every tool in parallel; a failed probe marks it down."""

    def __init__(self, probe: Callable[[str], bool], *, workers: int = 8) -> None:
        self.probe = probe
        self.workers = workers

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        tools = [n for n in graph.nodes if n not in (graph.start, graph.goal)]
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(tools)))) as pool:
            healthy = list(pool.map(self.probe, tools))
        return {t: INF for t, ok in zip(tools, healthy) if not ok}


class ThresholdMonitor:
    """Turns a per-tool signal (error rate, latency, risk) into a penalty: ``inf`` at or above
    ``down_at``, else ``weight * signal``."""

    def __init__(self, signal: Callable[[str], float | None], *, weight: float = 1.0, down_at: float | None = None) -> None:
        self.signal, self.weight, self.down_at = signal, weight, down_at

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        out = {}
        for n in graph.nodes:
            s = self.signal(n)
            if s is None:
                continue
            out[n] = INF if self.down_at is not None and s >= self.down_at else self.weight * s
        return out


Escalation = Callable[[ToolGraph, str, Sequence[str]], "str | None"]
"""(graph, current node, failed tools) -> a demoted goal to continue to, or None to stop."""


class LLMEscalation:
    """Asks a chat model (local, replay or provider) whether to demote the goal or stop; the answer is
    constrained to the valid options when the model supports a grammar."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, graph: ToolGraph, current: str, failed: Sequence[str]) -> str | None:
        self.calls += 1
        options = [g for g in graph.fallback_goals if g != current] + ["STOP"]
        prompt = (f"Tools {', '.join(failed)} failed and no path from {current} reaches {graph.goal}. "
                  f"Answer with one of: {', '.join(options)}.")
        kwargs: dict[str, Any] = {}
        if "grammar" in inspect.signature(self.model.complete).parameters:  # constrain tiny local models
            kwargs["grammar"] = "root ::= " + " | ".join(f'"{o}"' for o in options)
        text = self.model.complete([Message(role="user", content=prompt)], **kwargs).text.strip()
        return text if text in graph.fallback_goals else None


@dataclass
class ExecutionResult:
    """One standalone execution over a tool graph."""

    success: bool
    escalated: bool
    path: list[str]
    cost: float
    reroutes: int
    llm_calls: int
    failures: list[str]
    events: list[RunEvent]
    goal: str

    @property
    def silent_failures(self) -> int:
        """Failures with no reroute event (always 0: enforced)."""
        rerouted = [e.target for e in self.events if e.kind == "reroute"]
        return sum(1 for f in self.failures if f not in rerouted)


@register_router()
class SelfHealingRouter(Router):
    """Dijkstra routing over a tool graph with health monitors and LLM-only-when-stuck escalation.

    In a flow its candidates are the next tools; a candidate's score is minus the cost of the best path
    through it to the goal. Standalone, :meth:`execute` runs the graph with a tool invoker.
    """

    name = "self_healing"

    def __init__(self, graph: ToolGraph | Mapping[str, Any], *, monitors: Sequence[HealthMonitor] = (),
                 escalation: Escalation | None = None, label: str | None = None) -> None:
        super().__init__(label=label)
        self.graph = graph if isinstance(graph, ToolGraph) else ToolGraph.from_dict(graph)
        self.monitors = list(monitors)
        self.escalation = escalation
        self._pred: dict[str, list[tuple[str, float]]] = {n: [] for n in self.graph.nodes}
        for (u, v), c in self.graph.edges.items():
            self._pred[v].append((u, c))
        self._index_cache: dict[tuple[str, tuple[tuple[str, float], ...]], Any] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(4, len(self.monitors))), thread_name_prefix="health") if len(self.monitors) > 1 else None

    # -- weights ---------------------------------------------------------------------------------
    def penalties(self) -> dict[str, float]:
        """All monitors' penalties, gathered in parallel and summed per tool."""
        if not self.monitors:
            return {}
        results = list(self._pool.map(lambda m: m(self.graph), self.monitors)) if self._pool else [m(self.graph) for m in self.monitors]
        total: dict[str, float] = {}
        for r in results:
            for n, p in r.items():
                total[n] = total.get(n, 0.0) + p
        return total

    def _search_index(self, goal: str, pen: Mapping[str, float]) -> tuple[dict[str, float], dict[str, list[tuple[float, float, str]]]]:
        """For (goal, penalties), cached: the distance from every node to the goal with no failures (a reverse
        Dijkstra), and each node's successors sorted by edge cost + that distance. The distance is the A*
        heuristic: exact while nothing fails, and admissible after failures (removing tools only lengthens
        paths)."""
        key = (goal, tuple(sorted(pen.items())))
        cached = self._index_cache.get(key)
        if cached is not None:
            return cached
        dist: dict[str, float] = {goal: 0.0} if pen.get(goal, 0.0) != INF else {}
        heap = [(0.0, goal)] if dist else []
        while heap:
            d, v = heapq.heappop(heap)
            if d > dist[v]:
                continue
            step = 1.0 + pen.get(v, 0.0)
            for u, c in self._pred[v]:
                if pen.get(u, 0.0) == INF:
                    continue
                nd = d + c * step
                if nd < dist.get(u, INF):
                    dist[u] = nd
                    heapq.heappush(heap, (nd, u))
        order = {}
        for u, succ in self.graph.succ.items():
            opts = []
            for v, c in succ:
                if v in dist:
                    w = c * (1.0 + pen.get(v, 0.0))
                    opts.append((w + dist[v], w, v))
            opts.sort()
            order[u] = opts
        if len(self._index_cache) > 64:
            self._index_cache.clear()
        self._index_cache[key] = (dist, order)
        return dist, order

    def shortest_path(self, source: str, blocked: Iterable[str] = (), penalties: Mapping[str, float] | None = None,
                      goal: str | None = None) -> tuple[list[str], float] | None:
        """Cheapest path from ``source`` to the goal avoiding ``blocked`` tools, with the monitors'
        penalties (computed now unless given); ``None`` when infeasible. A* with partial expansion over the
        cached index: successors are taken one at a time in order of cost + distance-to-goal, so a
        recompute after a failure touches little beyond the new best path."""
        goal = goal or self.graph.goal
        pen = penalties if penalties is not None else self.penalties()
        h, order = self._search_index(goal, pen)
        if source not in h:
            return None
        if source == goal:
            return [goal], 0.0
        block = set(blocked)
        prev: dict[str, str] = {}
        closed = {source}
        first = order[source]
        heap = [(first[0][0], 0.0, source, 0)] if first else []
        while heap:
            _, gu, u, i = heapq.heappop(heap)
            opts = order[u]
            if i + 1 < len(opts):  # the next sibling, lazily
                heapq.heappush(heap, (gu + opts[i + 1][0], gu, u, i + 1))
            _, w, v = opts[i]
            if v in closed or v in block:
                continue
            closed.add(v)
            prev[v] = u
            gv = gu + w
            if v == goal:
                path = [v]
                while v in prev:
                    v = prev[v]
                    path.append(v)
                return path[::-1], gv
            nxt = order[v]
            if nxt:
                heapq.heappush(heap, (gv + nxt[0][0], gv, v, 0))
        return None

    # -- inside a flow ---------------------------------------------------------------------------
    def route(self, ctx: RouteContext) -> Decision:
        here = self.graph.start if ctx.source == START else ctx.source
        if here not in self.graph.succ:
            raise RoutingError(f"self-healing router {self.label!r}: node {here!r} is not in its tool graph",
                               router=self.label, candidates=ctx.candidate_names)
        pen = self.penalties()
        down = {c.name for c in ctx.candidates if not ctx.health_of(c.name).available}
        edge = {v: c for v, c in self.graph.succ[here]}
        scores: dict[str, float] = {}
        paths: dict[str, list[str]] = {}
        for cand in ctx.candidate_names:
            if cand == END:
                continue
            if cand not in edge or cand in down or pen.get(cand) == INF:
                scores[cand] = -1e9
                continue
            if cand == self.graph.goal:
                scores[cand], paths[cand] = -edge[cand], [here, cand]
                continue
            rest = self.shortest_path(cand, blocked=down, penalties=pen)
            if rest is None:
                scores[cand] = -1e9
            else:
                scores[cand] = -(edge[cand] * (1 + pen.get(cand, 0.0)) + rest[1])
                paths[cand] = [here, *rest[0]]
        feasible = [c for c, s in scores.items() if s > -1e9]
        if END in ctx.candidate_names:
            scores[END] = -1e9 if feasible else 0.0
        if not feasible:
            demoted = self.escalation(self.graph, here, sorted(down)) if self.escalation else None
            if END not in ctx.candidate_names:
                raise RoutingError(f"self-healing router {self.label!r}: no feasible path from {here!r} to "
                                   f"{self.graph.goal!r} and END is not a candidate to escalate to",
                                   router=self.label, candidates=ctx.candidate_names)
            return Decision(targets=(END,), scores=scores, router=self.label,
                            rationale=f"escalation: no feasible path from {here} (down: {', '.join(sorted(down)) or 'none'})",
                            metadata={"escalation": True, "demoted_goal": demoted, "down": sorted(down)})
        best = max(feasible, key=scores.__getitem__)
        return Decision(targets=(best,), scores=scores, router=self.label,
                        rationale=f"shortest path {' -> '.join(paths[best])} (cost {-scores[best]:.3f})",
                        metadata={"path": paths[best], "path_cost": -scores[best], "down": sorted(down)})

    # -- standalone ------------------------------------------------------------------------------
    def execute(self, invoke: Callable[[str], bool], *, max_steps: int = 10_000) -> ExecutionResult:
        """Walk from start to goal, calling ``invoke(tool)`` (True on success) for each next hop.

        Every outage is one reroute event: found by a monitor (its edges go to infinity and the path is
        recomputed before the tool is tried) or by a failed call (recomputed from the current node).
        When no path remains, the escalation handler is called once and an escalation event recorded.
        """
        g = self.graph
        here, goal = g.start, g.goal
        path, cost = [here], 0.0
        failed: list[str] = []
        events: list[RunEvent] = []
        reroutes = llm_calls = 0
        escalated = False

        def reroute(tool: str, by: str, pen: Mapping[str, float]) -> None:
            nonlocal reroutes
            failed.append(tool)
            reroutes += 1
            new = self.shortest_path(here, blocked=failed, penalties=pen, goal=goal)
            events.append(RunEvent(kind="reroute", target=tool, detail={
                "at": here, "detected_by": by, "new_path": new[0] if new else None, "feasible": new is not None}))

        for _ in range(max_steps):
            if here == goal:
                break
            pen = self.penalties()
            for tool in sorted(t for t, p in pen.items() if p == INF and t not in failed):
                reroute(tool, "monitor", pen)
            found = self.shortest_path(here, blocked=failed, penalties=pen, goal=goal)
            if found is None:
                escalated = True
                before = getattr(self.escalation, "calls", None)
                demoted = self.escalation(g, here, list(failed)) if self.escalation else None
                if self.escalation is not None:
                    llm_calls += 1 if before is None else self.escalation.calls - before  # type: ignore[attr-defined]
                events.append(RunEvent(kind="escalation", target=here, detail={
                    "goal": goal, "failed": list(failed), "demoted_goal": demoted}))
                if demoted and demoted != goal and self.shortest_path(here, failed, pen, demoted):
                    goal = demoted
                    continue
                break
            nxt = found[0][1]
            if invoke(nxt):
                cost += g.edges[(here, nxt)]
                here = nxt
                path.append(nxt)
            else:
                reroute(nxt, "call", pen)
        else:
            raise FlowError(f"self-healing execution exceeded {max_steps} steps")
        result = ExecutionResult(success=here == goal, escalated=escalated, path=path, cost=cost,
                                 reroutes=reroutes, llm_calls=llm_calls, failures=failed, events=events, goal=goal)
        if result.silent_failures:  # binary observability, enforced
            raise FlowError(f"self-healing router {self.label!r} left {result.silent_failures} failure(s) unlogged")
        return result

    def close(self) -> None:
        """Stop the monitor thread pool."""
        if self._pool:
            self._pool.shutdown(wait=False)
