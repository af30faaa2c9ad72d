"""Self-healing Dijkstra routing: scenarios, mid-call failures, flows, and bad input."""

import pytest

from crossroads import END, START, ConfigError, Flow, MemoryRecorder, RoutingError, agent
from crossroads.data import DATA_DIR
from crossroads.evals.tool_graph import generate_scenarios, load_scenarios, run_scenarios, self_healing, static_workflow
from crossroads.routers.self_healing import OutageMonitor, ProbeMonitor, SelfHealingRouter, ThresholdMonitor, ToolGraph
from crossroads.tracing import DecisionRecord

SCEN = DATA_DIR / "tools" / "self_healing_router_scenarios_19.json"
G = {"nodes": ["Start", "A", "B", "C", "Goal"],
     "edges": [{"source": "Start", "target": "A", "cost": 0.1}, {"source": "Start", "target": "B", "cost": 0.5},
               {"source": "A", "target": "C", "cost": 0.1}, {"source": "B", "target": "C", "cost": 0.1},
               {"source": "C", "target": "Goal", "cost": 0.1}],
     "start": "Start", "goal": "Goal"}


class Stop:
    calls = 0

    def __call__(self, graph, current, failed):
        self.calls += 1
        return None


def test_published_scenarios_all_correct_llm_only_when_infeasible():
    res = run_scenarios(load_scenarios(SCEN), {"self_healing": self_healing, "static": static_workflow}, escalation=Stop())
    sh, st = res["routers"]["self_healing"], res["routers"]["static"]
    assert (sh["correct"], sh["llm_calls"], sh["silent_failures"], sh["reroutes_as_expected"]) == (19, 7, 0, 19)
    assert sh["llm_calls_only_when_infeasible"] and sh["optimal_paths"] == 12
    assert st["silent_failures"] > 0 and st["correct"] < 19


def test_generated_scenarios_match_independent_ground_truth():
    gen = generate_scenarios(300, seed=3)
    res = run_scenarios(gen, {"self_healing": self_healing}, escalation=Stop())["routers"]["self_healing"]
    assert res["correct"] == 300 and res["silent_failures"] == 0 and res["llm_calls_on_feasible"] == 0
    assert res["optimal_paths"] == sum(1 for s in gen if s.feasible)


def test_mid_call_failure_reroutes_from_current_node_without_llm():
    flaky = {"A": 0}

    def invoke(tool):
        if tool == "A":
            flaky["A"] += 1
            return False  # passes no health check: found only when called
        return True

    res = SelfHealingRouter(G, escalation=Stop()).execute(invoke)
    assert res.path == ["Start", "B", "C", "Goal"] and res.reroutes == 1 and res.llm_calls == 0
    (ev,) = res.events
    assert ev.kind == "reroute" and ev.detail["detected_by"] == "call" and ev.detail["new_path"] == ["Start", "B", "C", "Goal"]


def test_no_path_escalates_once_and_monitors_run():
    stop = Stop()
    r = SelfHealingRouter(G, escalation=stop, monitors=[ProbeMonitor(lambda t: t != "C"), OutageMonitor(["B"])])
    res = r.execute(lambda t: True)
    assert res.escalated and not res.success and stop.calls == 1 and res.llm_calls == 1
    assert [e.kind for e in res.events] == ["reroute", "reroute", "escalation"] and res.silent_failures == 0
    slow = SelfHealingRouter(G, monitors=[ThresholdMonitor(lambda t: 10.0 if t == "A" else None, weight=1.0)])
    assert slow.shortest_path("Start")[0] == ["Start", "B", "C", "Goal"]  # latency penalty steers around A


def test_demoted_goal():
    g = ToolGraph.from_dict({**G, "fallback_goals": ["B"]})
    r = SelfHealingRouter(g, escalation=lambda graph, cur, failed: "B", monitors=[OutageMonitor(["C"])])
    res = r.execute(lambda t: True)
    assert res.escalated and res.success and res.goal == "B" and res.path == ["Start", "B"]


def test_bad_graphs_are_clear_errors():
    with pytest.raises(ConfigError, match="edge A -> Z names an unknown node"):
        ToolGraph(["A"], {("A", "Z"): 1.0}, "A", "A")
    with pytest.raises(ConfigError, match="lacks field 'edges'"):
        ToolGraph.from_dict({"nodes": ["A"], "start": "A", "goal": "A"})
    with pytest.raises(ConfigError, match="cost nan"):
        ToolGraph(["A", "B"], {("A", "B"): float("nan")}, "A", "B")


def test_as_a_router_in_a_flow_with_path_cost_scores_and_escalation():
    router = SelfHealingRouter(G, label="heal")
    flow = Flow("tools", max_steps=10)
    for n in ("A", "B", "C"):
        flow.add(agent(n, (lambda name: lambda text: f"{text}>{name}")(n)))
    flow.route(START, router, candidates=["A", "B"])
    flow.route("A", SelfHealingRouter(G, label="heal-a"), candidates=["C", END])
    flow.route("B", SelfHealingRouter(G, label="heal-b"), candidates=["C", END])
    flow.edge("C", END)
    rec = MemoryRecorder()
    res = flow.compile(recorder=rec).invoke("go")
    assert res.output == "go>A>C"
    first = rec.of_type(DecisionRecord)[0].decision
    assert first.scores["A"] == pytest.approx(-0.3) and first.scores["B"] == pytest.approx(-0.7)
    assert first.metadata["path"] == ["Start", "A", "C", "Goal"]
    # with C down (health from an outage monitor), A has no way on: the router escalates to END
    router_a = SelfHealingRouter(G, label="heal-a", monitors=[OutageMonitor(["C"])])
    flow2 = Flow("tools2", max_steps=10).add(agent("A", lambda t: t + ">A"), agent("C", lambda t: t + ">C"))
    flow2.edge(START, "A")
    flow2.route("A", router_a, candidates=["C", END])
    flow2.edge("C", END)
    rec2 = MemoryRecorder()
    assert flow2.compile(recorder=rec2).invoke("go").output == "go>A"
    esc = rec2.of_type(DecisionRecord)[0].decision
    assert esc.targets == (END,) and esc.metadata["escalation"] is True


def test_router_outside_its_graph_is_a_routing_error():
    from crossroads import RouteContext, TargetInfo

    with pytest.raises(RoutingError, match="node 'Q' is not in its tool graph"):
        SelfHealingRouter(G).route(RouteContext(query="x", candidates=(TargetInfo(name="Goal"),), source="Q"))
