"""Self-healing tool routing (arXiv 2603.01548): shortest paths over a cost-weighted tool graph.

Tools form a directed graph with edge costs. Health monitors (outage, error rate, latency, a risk
signal — any callable) run in parallel and turn conditions into per-tool penalties on edge weights.
When a tool fails mid-execution its edges go to infinity and the path is recomputed from the current
node — no LLM call. Only when no feasible path remains is the escalation handler called (an LLM
through the model layer, or any callable), which demotes the goal or stops with an explicit
escalation. Every failure produces a reroute event, and every infeasible recompute an escalation
event; a failure with neither raises.

A tool whose output is already in hand (the node the run stands on) is never blocked by a later
outage report: only the tools still to be called are.
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

from ..errors import (
    ConfigError,
    FlowError,
    HealthMonitorError,
    RoutingError,
    UnknownNameError,
)
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


def _cost(value: Any, where: str) -> float:
    """An edge cost as a finite float >= 0, or a ConfigError naming the edge."""
    if isinstance(value, bool):
        raise ConfigError(f"tool graph edge {where} has cost {value!r}; costs must be finite numbers >= 0")
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"tool graph edge {where} has cost {value!r}; costs must be finite numbers >= 0") from None
    if not (c >= 0 and math.isfinite(c)):
        raise ConfigError(f"tool graph edge {where} has cost {c}; costs must be finite and >= 0")
    return c


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
        seen: set[str] = set()
        dup = sorted({n for n in self.nodes if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
        if dup:
            raise ConfigError(f"tool graph lists node(s) {', '.join(map(repr, dup))} more than once; each node once")
        known = set(self.nodes)
        for (u, v), c in list(self.edges.items()):
            if u not in known or v not in known:
                raise ConfigError(f"tool graph edge {u} -> {v} names an unknown node; nodes: {', '.join(self.nodes)}")
            self.edges[(u, v)] = _cost(c, f"{u} -> {v}")
        for n in (self.start, self.goal, *self.fallback_goals):
            if n not in known:
                raise ConfigError(f"tool graph names unknown node {n!r} as start/goal")
        self.succ: dict[str, list[tuple[str, float]]] = {n: [] for n in self.nodes}
        for (u, v), c in self.edges.items():
            self.succ[u].append((v, c))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ToolGraph:
        """From ``{nodes, edges: [{source, target, cost}], start, goal}`` (the scenarios' format).
        A repeated edge or node is refused (the last one would otherwise silently win)."""
        try:
            edges: dict[tuple[str, str], float] = {}
            for i, e in enumerate(spec["edges"]):
                key = (e["source"], e["target"])
                if key in edges:
                    raise ConfigError(f"tool graph edge {key[0]} -> {key[1]} is listed twice (edges[{i}]); "
                                      "give each edge once")
                edges[key] = _cost(e["cost"], f"{key[0]} -> {key[1]}")
            return cls(list(spec["nodes"]), edges, spec["start"], spec["goal"], list(spec.get("fallback_goals", [])))
        except KeyError as exc:
            raise ConfigError(f"tool graph spec lacks field {exc.args[0]!r} (needs nodes, edges[source,target,cost], start, goal)") from None

    def check_nodes(self, names: Iterable[str], what: str) -> None:
        """Raise UnknownNameError for the first of ``names`` that is not a node of this graph."""
        for n in names:
            if n not in self.succ:
                raise UnknownNameError(what, n, self.nodes)


class HealthMonitor(Protocol):
    """Returns a penalty per tool: 0 healthy, a positive number to make it costlier, ``inf`` when down."""

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]: ...


def monitor_name(monitor: Any) -> str:
    """A monitor's name for messages: its ``name`` attribute, else its class name."""
    return str(getattr(monitor, "name", None) or type(monitor).__name__)


class OutageMonitor:
    """Tools known to be down (set by a status page, an operator, or failures seen)."""

    def __init__(self, down: Iterable[str] = (), *, name: str = "outage") -> None:
        self.down = set(down)
        self.name = name

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        return {t: INF for t in self.down}


class ProbeMonitor:
    """Health checks: ``probe(tool)`` (True when healthy) for every tool, in parallel.

    Like a load balancer's health check, a tool is marked down only after ``down_after`` consecutive
    failed probes, and probe results are reused for ``interval`` seconds of ``clock`` (one probe round
    per health interval, not one per decision).
    """

    def __init__(self, probe: Callable[[str], bool], *, workers: int = 8, interval: float = 0.0, down_after: int = 1,
                 clock: Callable[[], float] = time.monotonic, name: str = "probe") -> None:
        if down_after < 1:
            raise ConfigError(f"probe monitor {name!r}: down_after must be >= 1, got {down_after}")
        if not (interval >= 0 and math.isfinite(interval)):
            raise ConfigError(f"probe monitor {name!r}: interval must be a finite number of seconds >= 0, got {interval}")
        self.probe, self.workers, self.interval, self.down_after = probe, workers, interval, down_after
        self.clock, self.name = clock, name
        self.rounds = 0
        """Probe rounds run so far."""
        self._fails: dict[str, int] = {}
        self._last: tuple[float, dict[str, float]] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.interval:
            return self._last[1]
        tools = [n for n in graph.nodes if n not in (graph.start, graph.goal)]
        if self.workers > 1 and len(tools) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="probe")
            healthy = list(self._pool.map(self.probe, tools))
        else:
            healthy = [self.probe(t) for t in tools]
        for t, ok in zip(tools, healthy, strict=True):
            self._fails[t] = 0 if ok else self._fails.get(t, 0) + 1
        self.rounds += 1
        out = {t: INF for t in tools if self._fails[t] >= self.down_after}
        self._last = (now, out)
        return out

    def close(self) -> None:
        """Stop the probe threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class ThresholdMonitor:
    """Turns a per-tool signal (error rate, latency, risk) into a penalty: ``inf`` at or above
    ``down_at``, else ``weight * signal``."""

    def __init__(self, signal: Callable[[str], float | None], *, weight: float = 1.0, down_at: float | None = None,
                 name: str = "threshold") -> None:
        self.signal, self.weight, self.down_at, self.name = signal, weight, down_at, name

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        out = {}
        for n in graph.nodes:
            s = self.signal(n)
            if s is None:
                continue
            if isinstance(s, bool) or not isinstance(s, (int, float)):
                raise HealthMonitorError(f"health monitor {self.name!r} got signal {s!r} for tool {n!r}; "
                                         "a signal is a number (or None when there is none)")
            out[n] = INF if self.down_at is not None and s >= self.down_at else self.weight * s
        return out


Escalation = Callable[[ToolGraph, str, Sequence[str]], "str | None"]
"""(graph, current node, failed tools) -> a demoted goal to continue to, or None to stop."""


class LLMEscalation:
    """Asks a chat model (local, replay or provider) whether to demote the goal or stop; the answer is
    constrained to the valid options when the model supports a grammar. ``calls`` counts model calls."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, graph: ToolGraph, current: str, failed: Sequence[str]) -> str | None:
        self.calls += 1
        options = [g for g in graph.fallback_goals if g != current] + ["STOP"]
        prompt = (f"Tools {', '.join(failed) or '(none)'} failed and no path from {current} reaches {graph.goal}. "
                  f"Answer with one of: {', '.join(options)}.")
        kwargs: dict[str, Any] = {}
        if "grammar" in inspect.signature(self.model.complete).parameters:  # constrain tiny local models
            kwargs["grammar"] = "root ::= " + " | ".join(f'"{o}"' for o in options)
        text = self.model.complete([Message(role="user", content=prompt)], **kwargs).text.strip()
        return text if text in graph.fallback_goals else None


@dataclass
class ExecutionResult:
    """One standalone execution over a tool graph, as the router saw it."""

    success: bool
    """What the router reports: it stands on the goal."""
    escalated: bool
    path: list[str]
    cost: float
    reroutes: int
    llm_calls: int
    """Model calls made by the escalation handler (0 for a handler that calls no model)."""
    failures: list[str]
    """Tools whose call failed."""
    events: list[RunEvent]
    goal: str
    calls: list[tuple[str, bool]] = field(default_factory=list)
    """Every tool call in order, with its outcome."""


class _Order(dict[str, list[tuple[float, float, str]]]):
    """Each node's successors sorted by penalised edge cost + distance to the goal, built on first use."""

    def __init__(self, succ: Mapping[str, list[tuple[str, float]]], dist: Mapping[str, float], pen: Mapping[str, float]) -> None:
        super().__init__()
        self.succ, self.dist, self.pen = succ, dist, pen

    def __missing__(self, u: str) -> list[tuple[float, float, str]]:
        opts = []
        for v, c in self.succ[u]:
            if v in self.dist:
                w = c * (1.0 + self.pen.get(v, 0.0))
                opts.append((w + self.dist[v], w, v))
        opts.sort()
        self[u] = opts
        return opts


@register_router()
class SelfHealingRouter(Router):
    """Shortest-path routing over a tool graph with health monitors and LLM-only-when-stuck escalation.

    In a flow its candidates are the next tools; a candidate's score is minus the cost of the best path
    through it to the goal (infeasible candidates score below every feasible one, and are listed in the
    decision's ``infeasible`` metadata). Standalone, :meth:`execute` runs the graph with a tool invoker.
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
        self._seen: set[tuple[str, tuple[tuple[str, float], ...]]] = set()
        self._base: dict[str, Any] = {}
        self.index_builds = 0
        """Search-index (re)builds so far: one per new (goal, penalties) state."""
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(4, len(self.monitors))), thread_name_prefix="health") if len(self.monitors) > 1 else None

    # -- weights ---------------------------------------------------------------------------------
    def _checked(self, monitor: Any, result: Mapping[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for tool, p in result.items():
            if tool not in self.graph.succ:
                raise HealthMonitorError(f"health monitor {monitor_name(monitor)!r} reported tool {tool!r}, which is not in "
                                         f"the tool graph; tools: {', '.join(self.graph.nodes)}")
            try:
                val = float(p)
            except (TypeError, ValueError):
                val = math.nan
            if not val >= 0:  # NaN, negative and -inf alike
                raise HealthMonitorError(f"health monitor {monitor_name(monitor)!r} gave tool {tool!r} penalty {p!r}; "
                                         "a penalty is a number >= 0 (0 healthy, inf down)")
            out[tool] = val
        return out

    def penalties(self) -> dict[str, float]:
        """All monitors' penalties, gathered in parallel and summed per tool. A NaN, negative or
        non-numeric penalty, or a tool not in the graph, raises HealthMonitorError naming the monitor."""
        if not self.monitors:
            return {}
        results = list(self._pool.map(lambda m: m(self.graph), self.monitors)) if self._pool else [m(self.graph) for m in self.monitors]
        total: dict[str, float] = {}
        for m, r in zip(self.monitors, results, strict=True):
            for n, p in self._checked(m, r).items():
                total[n] = total.get(n, 0.0) + p
        return total

    def _search_index(self, goal: str, pen: Mapping[str, float]) -> tuple[dict[str, float], dict[str, list[tuple[float, float, str]]]]:
        """For (goal, penalties), cached: the distance from every node to the goal with no failures (a reverse
        Dijkstra), and each node's successors sorted by edge cost + that distance (sorted when first needed). The distance is the A*
        heuristic: exact while nothing fails, and admissible after failures (removing tools only lengthens
        paths)."""
        key = (goal, tuple(sorted(pen.items())))
        cached = self._index_cache.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        self.index_builds += 1
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
        order = _Order(self.graph.succ, dist, pen)
        if not pen:
            self._base[goal] = (dist, order)  # the heuristic of every first-seen penalty state: never evicted
        if len(self._index_cache) > 64:
            self._index_cache.clear()
        self._index_cache[key] = (dist, order)
        return dist, order

    def shortest_path(self, source: str, blocked: Iterable[str] = (), penalties: Mapping[str, float] | None = None,
                      goal: str | None = None) -> tuple[list[str], float] | None:
        """Cheapest path from ``source`` to the goal avoiding ``blocked`` tools, with the monitors'
        penalties (computed now unless given); ``None`` when no path exists. ``source`` is the tool whose
        output is in hand: its own penalty does not block it. Unknown node names raise UnknownNameError.

        A* with partial expansion over the cached index of this penalty state: successors are taken one at a
        time in order of cost + distance-to-goal, so a recompute after a failure touches little beyond the
        new best path. The first time a penalty state is seen, plain A* runs on the penalty-free index
        instead (no rebuild inside that decision); the state's index is built when it is seen again."""
        goal = self.graph.goal if goal is None else goal
        self.graph.check_nodes([source], "source node")
        self.graph.check_nodes([goal], "goal node")
        block = set(blocked)
        self.graph.check_nodes(sorted(block), "blocked tool")
        pen = penalties if penalties is not None else self.penalties()
        if source == goal:
            return [goal], 0.0
        key = (goal, tuple(sorted(pen.items())))
        if key not in self._index_cache and key not in self._seen:
            # a penalty state seen for the first time: A* on the penalty-free index's heuristic (penalties only
            # lengthen paths, so it stays admissible and consistent); the state's own index is built if it recurs
            if len(self._seen) > 1024:
                self._seen.clear()
            self._seen.add(key)
            return self._astar(source, goal, block, pen)
        _, order = self._search_index(goal, pen)
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

    def _astar(self, source: str, goal: str, block: set[str], pen: Mapping[str, float]) -> tuple[list[str], float] | None:
        """Plain A* with the penalty-free distance to the goal as heuristic and penalised weights."""
        h, _ = self._base[goal] if goal in self._base else self._search_index(goal, {})
        if pen.get(goal, 0.0) == INF or source not in h:
            return None
        best = {source: 0.0}
        prev: dict[str, str] = {}
        heap = [(h[source], 0.0, source)]
        while heap:
            _, gu, u = heapq.heappop(heap)
            if gu > best[u]:
                continue
            if u == goal:
                path = [u]
                while u in prev:
                    u = prev[u]
                    path.append(u)
                return path[::-1], gu
            for v, c in self.graph.succ[u]:
                p = pen.get(v, 0.0)
                if v in block or v not in h or p == INF:
                    continue
                gv = gu + c * (1.0 + p)
                if gv < best.get(v, INF):
                    best[v] = gv
                    prev[v] = u
                    heapq.heappush(heap, (gv + h[v], gv, v))
        return None

    def _escalate(self, here: str, failed: Sequence[str]) -> str | None:
        demoted = self.escalation(self.graph, here, list(failed)) if self.escalation else None
        if demoted is not None and demoted not in self.graph.succ:
            raise UnknownNameError("demoted goal from the escalation handler", demoted, self.graph.nodes,
                                   hint="the handler must return a node of the tool graph or None")
        return demoted

    # -- inside a flow ---------------------------------------------------------------------------
    def route(self, ctx: RouteContext) -> Decision:
        here = self.graph.start if ctx.source == START else ctx.source
        if here not in self.graph.succ:
            raise RoutingError(f"self-healing router {self.label!r}: node {here!r} is not in its tool graph",
                               router=self.label, candidates=ctx.candidate_names)
        pen = self.penalties()
        down = {c.name for c in ctx.candidates if not ctx.health_of(c.name).available and c.name in self.graph.succ}
        edge = {v: c for v, c in self.graph.succ[here]}
        costs: dict[str, float] = {}
        paths: dict[str, list[str]] = {}
        for cand in ctx.candidate_names:
            if cand == END or cand not in edge or cand in down or pen.get(cand, 0.0) == INF:
                continue
            step = edge[cand] * (1.0 + pen.get(cand, 0.0))
            if cand == self.graph.goal:
                costs[cand], paths[cand] = step, [here, cand]
                continue
            rest = self.shortest_path(cand, blocked=down, penalties=pen)
            if rest is not None:
                costs[cand], paths[cand] = step + rest[1], [here, *rest[0]]
        # infeasible candidates score 1 below the worst feasible one (scores stay finite; feasibility is the set)
        floor = -max(costs.values(), default=0.0) - 1.0
        scores = {c: (-costs[c] if c in costs else floor) for c in ctx.candidate_names if c != END}
        infeasible = sorted(c for c in scores if c not in costs)
        if END in ctx.candidate_names:
            scores[END] = floor if costs else 0.0
        if not costs:
            demoted = self._escalate(here, sorted(down))
            if END not in ctx.candidate_names:
                raise RoutingError(f"self-healing router {self.label!r}: no feasible path from {here!r} to "
                                   f"{self.graph.goal!r} and END is not a candidate to escalate to",
                                   router=self.label, candidates=ctx.candidate_names)
            return Decision(targets=(END,), scores=scores, router=self.label,
                            rationale=f"escalation: no feasible path from {here} (down: {', '.join(sorted(down)) or 'none'})",
                            metadata={"escalation": True, "demoted_goal": demoted, "down": sorted(down), "infeasible": infeasible})
        best = min(costs, key=costs.__getitem__)
        return Decision(targets=(best,), scores=scores, router=self.label,
                        rationale=f"shortest path {' -> '.join(paths[best])} (cost {costs[best]:.3f})",
                        metadata={"path": paths[best], "path_cost": costs[best], "down": sorted(down), "infeasible": infeasible})

    # -- standalone ------------------------------------------------------------------------------
    def execute(self, invoke: Callable[[str], bool], *, max_steps: int = 10_000) -> ExecutionResult:
        """Walk from start to goal, calling ``invoke(tool)`` (True on success) for each next hop.

        Every outage is one reroute event: reported by a monitor (the tool's edges go to infinity and the
        path is recomputed before it is tried) or found by a failed call (recomputed from the current
        node). A tool reported down after its output is in hand gets a ``tool_down`` event and blocks
        nothing. When no path remains, the escalation handler is called once and an escalation event
        recorded.
        """
        g = self.graph
        here, goal = g.start, g.goal
        path, cost = [here], 0.0
        failed: list[str] = []
        flagged: set[str] = set()
        events: list[RunEvent] = []
        calls: list[tuple[str, bool]] = []
        reroutes = llm_calls = 0
        escalated = False

        def reroute(tool: str, by: str, pen: Mapping[str, float]) -> None:
            nonlocal reroutes
            reroutes += 1
            new = self.shortest_path(here, blocked=failed, penalties=pen, goal=goal)
            events.append(RunEvent(kind="reroute", target=tool, detail={
                "at": here, "detected_by": by, "new_path": new[0] if new else None, "feasible": new is not None}))

        for _ in range(max_steps):
            if here == goal:
                break
            pen = self.penalties()
            down_now = {t for t, p in pen.items() if p == INF}
            for tool in sorted(down_now - flagged):
                if tool in path:  # its output is in hand: nothing to reroute around
                    events.append(RunEvent(kind="tool_down", target=tool, detail={"at": here, "after_use": True}))
                elif tool not in failed:
                    reroute(tool, "monitor", pen)
            flagged = down_now
            found = self.shortest_path(here, blocked=failed, penalties=pen, goal=goal)
            if found is None:
                escalated = True
                before = getattr(self.escalation, "calls", None)
                demoted = self._escalate(here, failed)
                if before is not None:  # only a handler that counts its model calls made any
                    llm_calls += int(getattr(self.escalation, "calls", before)) - int(before)
                events.append(RunEvent(kind="escalation", target=here, detail={
                    "goal": goal, "failed": list(failed), "down": sorted(flagged), "demoted_goal": demoted}))
                if demoted and demoted != goal and self.shortest_path(here, failed, pen, demoted):
                    goal = demoted
                    continue
                break
            nxt = found[0][1]
            ok = bool(invoke(nxt))
            calls.append((nxt, ok))
            if ok:
                cost += g.edges[(here, nxt)]
                here = nxt
                path.append(nxt)
            else:
                failed.append(nxt)
                reroute(nxt, "call", pen)
        else:
            raise FlowError(f"self-healing execution exceeded {max_steps} steps")
        return ExecutionResult(success=here == goal, escalated=escalated, path=path, cost=cost, reroutes=reroutes,
                               llm_calls=llm_calls, failures=failed, events=events, goal=goal, calls=calls)

    def close(self) -> None:
        """Stop the monitor thread pools."""
        if self._pool:
            self._pool.shutdown(wait=False)
        for m in self.monitors:
            closer = getattr(m, "close", None)
            if callable(closer):
                closer()
