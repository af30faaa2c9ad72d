"""Tool-graph fault scenarios: the 19 published ones, a generator of random compound failures, and
the controllers compared on them (self-healing router, a ReAct-style LLM controller, a static workflow).

Metrics per controller: correct outcomes, control-plane LLM calls, reroutes, silent failures (a failure
that is neither a logged reroute nor an escalation).

Ground truth of generated scenarios is computed without any router: the graphs are layered with full
connections between consecutive layers (plus skip edges), so the goal is reachable from any reached
healthy node iff it is reachable from the start in the graph minus the failed tools (networkx).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..routers.self_healing import LLMEscalation, ProbeMonitor, SelfHealingRouter, ToolGraph
from ..types import Message
from .metrics import percentile

__all__ = ["Scenario", "generate_scenarios", "load_scenarios", "react_controller", "run_scenarios", "static_workflow"]


@dataclass
class Scenario:
    """A graph, the tools that fail, and what a correct controller does."""

    id: str
    topology: str
    graph: ToolGraph
    failed: list[str]
    feasible: bool
    expected_reroutes: int | None = None
    expected_llm_calls: int | None = None
    expected_path: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def load_scenarios(path: str | Path) -> list[Scenario]:
    """The published scenario file (``graphs`` + ``scenarios``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"scenario file {path} does not exist")
    data = json.loads(path.read_text())
    graphs = {k: ToolGraph.from_dict(v) for k, v in data.get("graphs", {}).items()}
    out = []
    for i, s in enumerate(data.get("scenarios", [])):
        where = f"{path}: scenarios[{i}]"
        if s.get("graph") not in graphs:
            raise ConfigError(f"{where}: unknown graph {s.get('graph')!r}; graphs: {', '.join(graphs)}")
        g = graphs[s["graph"]]
        g = ToolGraph(g.nodes, g.edges, s.get("start", g.start), s.get("goal", g.goal))
        derived = s.get("derived_shortest_feasible_path")
        out.append(Scenario(id=s["id"], topology=s.get("topology", ""), graph=g, failed=list(s.get("failed_tools", [])),
                            feasible=derived is not None, expected_reroutes=s.get("expected_reroutes"),
                            expected_llm_calls=s.get("expected_llm_calls"), expected_path=derived,
                            meta={"name": s.get("name")}))
    if not out:
        raise ConfigError(f"{path}: no scenarios")
    return out


def _layered(rng: random.Random, widths: Sequence[int], skip: float) -> ToolGraph:
    layers = [["Start"]] + [[f"L{i}T{j}" for j in range(w)] for i, w in enumerate(widths)] + [["Goal"]]
    edges: dict[tuple[str, str], float] = {}
    for i in range(len(layers) - 1):
        for u in layers[i]:
            for v in layers[i + 1]:
                edges[(u, v)] = round(rng.uniform(0.1, 1.0), 3)
        if i + 2 < len(layers) and rng.random() < skip:  # a full skip connection keeps layers equivalent
            for u in layers[i]:
                for v in layers[i + 2]:
                    edges[(u, v)] = round(rng.uniform(0.8, 2.0), 3)
    return ToolGraph([n for layer in layers for n in layer], edges, "Start", "Goal")


def generate_scenarios(n: int, *, seed: int = 0, min_layers: int = 3, max_layers: int = 8, max_width: int = 4,
                       max_failures: int = 4) -> list[Scenario]:
    """Random compound-failure scenarios over linear, DAG and fan-out topologies."""
    import networkx as nx

    rng = random.Random(seed)
    out = []
    for k in range(n):
        topology = ("linear", "dag", "fanout")[k % 3]
        layers = rng.randint(min_layers, max_layers)
        if topology == "linear":
            widths = [rng.randint(1, 2) for _ in range(layers)]
            skip = 0.0
        elif topology == "dag":
            widths = [rng.randint(1, max_width) for _ in range(layers)]
            skip = 0.3
        else:
            widths = [max_width + rng.randint(0, 2)] + [rng.randint(1, 2) for _ in range(layers - 1)]
            skip = 0.0
        g = _layered(rng, widths, skip)
        tools = [t for t in g.nodes if t not in ("Start", "Goal")]
        failed = rng.sample(tools, min(len(tools), rng.randint(0, max_failures)))
        dg = nx.DiGraph()
        dg.add_nodes_from(t for t in g.nodes if t not in failed)
        dg.add_edges_from((u, v) for (u, v) in g.edges if u not in failed and v not in failed)
        out.append(Scenario(id=f"gen-{seed}-{k}", topology=topology, graph=g, failed=failed,
                            feasible=nx.has_path(dg, "Start", "Goal"), expected_llm_calls=None))
    return out


@dataclass
class Outcome:
    scenario: str
    controller: str
    correct: bool
    reached_goal: bool
    escalated: bool
    reroutes: int
    llm_calls: int
    silent_failures: int
    path: list[str]
    recompute_ms: list[float] = field(default_factory=list)


def _judge(s: Scenario, reached: bool, escalated: bool, reroutes: int, llm_calls: int, silent: int, path: list[str]) -> bool:
    """A correct outcome: with a feasible path, the goal reached over healthy tools along real edges; without
    one, an explicit escalation. Any silent failure makes the outcome wrong."""
    valid = all((path[i], path[i + 1]) in s.graph.edges for i in range(len(path) - 1)) and not set(path) & set(s.failed)
    if silent:
        return False
    return (reached and not escalated and valid) if s.feasible else (escalated and not reached)


def self_healing(s: Scenario, escalation: Any) -> Outcome:
    router = SelfHealingRouter(s.graph, escalation=escalation,
                               monitors=[ProbeMonitor(lambda tool: tool not in s.failed)])
    timings: list[float] = []
    original = router.shortest_path

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            timings.append((time.perf_counter() - t) * 1e3)

    router.shortest_path = timed  # type: ignore[method-assign]
    res = router.execute(lambda tool: tool not in s.failed)
    return Outcome(s.id, "self_healing", _judge(s, res.success, res.escalated, res.reroutes, res.llm_calls,
                                                res.silent_failures, res.path),
                   res.success, res.escalated, res.reroutes, res.llm_calls, res.silent_failures, res.path, timings)


def _shortest_reference(s: Scenario) -> list[str] | None:
    """The optimal feasible path, by networkx (independent of the router)."""
    import networkx as nx

    dg = nx.DiGraph()
    dg.add_weighted_edges_from((u, v, c) for (u, v), c in s.graph.edges.items() if u not in s.failed and v not in s.failed)
    try:
        return list(nx.dijkstra_path(dg, s.graph.start, s.graph.goal))
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return None


def react_controller(model: Any) -> Callable[[Scenario, Any], Outcome]:
    """A ReAct-style controller: at every step the LLM picks the next tool among the current node's
    successors (constrained to them when the model supports a grammar); after a failure it is told
    and asked again; with no options left it escalates."""
    import inspect

    grammar_ok = "grammar" in inspect.signature(model.complete).parameters

    def run(s: Scenario, escalation: Any) -> Outcome:
        g = s.graph
        here, path, tried_failed = g.start, [g.start], set()
        calls = reroutes = 0
        escalated = False
        for _ in range(10 * len(g.nodes)):
            if here == g.goal:
                break
            options = [v for v, _ in sorted(g.succ[here], key=lambda x: x[1]) if v not in tried_failed]
            if not options:
                escalated = True
                calls += 1  # the LLM decides to give up and escalate
                break
            prompt = (f"You are at {here}; goal: {g.goal}. Failed tools: {', '.join(sorted(tried_failed)) or 'none'}. "
                      f"Which tool next? Options: {', '.join(options)}. Answer with the tool name only.")
            kw = {"grammar": "root ::= " + " | ".join(f'"{o}"' for o in options)} if grammar_ok else {}
            calls += 1
            choice = model.complete([Message(role="user", content=prompt)], **kw).text.strip()
            if choice not in options:
                choice = options[0]
            if choice in s.failed:
                tried_failed.add(choice)
                reroutes += 1
                continue
            here = choice
            path.append(choice)
        reached = here == g.goal
        return Outcome(s.id, "react", _judge(s, reached, escalated, reroutes, calls, 0, path), reached, escalated,
                       reroutes, calls, 0, path)
    return run


def static_workflow(s: Scenario, escalation: Any) -> Outcome:
    """A static workflow: the happy path fixed at design time, one hard-coded fallback per step (the
    cheapest sibling with an edge onward), and no other healing. A step whose tool and fallback both
    fail is skipped and the run reports success: a silent failure."""
    g = s.graph
    plan = SelfHealingRouter(g).shortest_path(g.start)
    assert plan is not None
    happy = plan[0]
    path, silent, reroutes = [g.start], 0, 0
    for i in range(1, len(happy) - 1):
        prev, tool, nxt = path[-1], happy[i], happy[i + 1]
        if tool not in s.failed:
            path.append(tool)
            continue
        siblings = sorted((c, v) for v, c in g.succ.get(prev, []) if v != tool and (v, nxt) in g.edges)
        if siblings and siblings[0][1] not in s.failed:
            reroutes += 1
            path.append(siblings[0][1])
        else:
            silent += 1  # swallowed by a generic error handler; the workflow goes on
    path.append(happy[-1])
    return Outcome(s.id, "static", _judge(s, True, False, reroutes, 0, silent, path), True, False, reroutes, 0, silent, path)


def run_scenarios(scenarios: Sequence[Scenario], controllers: Mapping[str, Callable[[Scenario, Any], Outcome]], *,
                  escalation: Any = None) -> dict[str, Any]:
    """Run each controller on every scenario; per-controller totals plus per-scenario rows."""
    out: dict[str, Any] = {"n": len(scenarios), "feasible": sum(1 for s in scenarios if s.feasible), "routers": {}}
    for name, ctl in controllers.items():
        rows = [ctl(s, escalation) for s in scenarios]
        timings = [t for r in rows for t in r.recompute_ms]
        out["routers"][name] = {
            "correct": sum(r.correct for r in rows), "n": len(rows),
            "llm_calls": sum(r.llm_calls for r in rows), "reroutes": sum(r.reroutes for r in rows),
            "silent_failures": sum(r.silent_failures for r in rows),
            "escalations": sum(r.escalated for r in rows),
            "llm_calls_only_when_infeasible": all((r.llm_calls == 0) == s.feasible for r, s in zip(rows, scenarios)),
            "llm_calls_on_feasible": sum(r.llm_calls for r, s in zip(rows, scenarios) if s.feasible),
            "reroutes_as_expected": sum(1 for r, s in zip(rows, scenarios)
                                        if r.reroutes == (s.expected_reroutes if s.expected_reroutes is not None else len(s.failed))),
            "optimal_paths": sum(1 for r, s in zip(rows, scenarios) if s.feasible and r.path == _shortest_reference(s)),
            "recompute_p50_ms": percentile(timings, 50), "recompute_p99_ms": percentile(timings, 99),
            "scenarios": [{"id": r.scenario, "correct": r.correct, "reroutes": r.reroutes, "llm_calls": r.llm_calls,
                           "silent": r.silent_failures, "escalated": r.escalated, "path": r.path} for r in rows],
        }
    return out


def default_escalation() -> Any:
    """The local SmolLM2 as the escalation LLM when llama-cpp-python is installed, else a stop-escalation
    callable (counted the same way: one call per escalation)."""
    try:
        from ..agents.backends.llama_cpp_model import LlamaCppModel

        return LLMEscalation(LlamaCppModel(max_tokens=8))
    except Exception:  # noqa: BLE001 - optional backend
        class Stop:
            calls = 0

            def __call__(self, graph: ToolGraph, current: str, failed: Sequence[str]) -> None:
                self.calls += 1
                return None
        return Stop()
