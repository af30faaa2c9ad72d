"""Self-healing routing and its oracle-free suite: hand-traced runs, the evaluator's ground truth, bad input."""

import json
import math
import re

import pytest

from crossroads import (
    END,
    START,
    ConfigError,
    Flow,
    FunctionModel,
    MemoryRecorder,
    RouteContext,
    RoutingError,
    TargetInfo,
    agent,
)
from crossroads.data import DATA_DIR
from crossroads.errors import HealthMonitorError, UnknownNameError
from crossroads.evals.tool_graph import (
    Report,
    Scenario,
    ToolWorld,
    generate_scenarios,
    judge,
    load_scenarios,
    react_controller,
    run_scenarios,
    self_healing_controller,
    static_workflow,
)
from crossroads.routers.self_healing import (
    INF,
    OutageMonitor,
    ProbeMonitor,
    SelfHealingRouter,
    ThresholdMonitor,
    ToolGraph,
)
from crossroads.tracing import DecisionRecord

SCEN = DATA_DIR / "tools" / "self_healing_router_scenarios_19.json"
G = {"nodes": ["Start", "A", "B", "C", "Goal"],
     "edges": [{"source": "Start", "target": "A", "cost": 0.1}, {"source": "Start", "target": "B", "cost": 0.5},
               {"source": "A", "target": "C", "cost": 0.1}, {"source": "B", "target": "C", "cost": 0.1},
               {"source": "C", "target": "Goal", "cost": 0.1}],
     "start": "Start", "goal": "Goal"}


def graph(edges, nodes=None, start="Start", goal="Goal"):
    nodes = nodes or sorted({n for e in edges for n in e[:2]})
    return ToolGraph(nodes, {(u, v): c for u, v, c in edges}, start, goal)


def scenario(edges, fail_at, sid="t"):
    return Scenario(id=sid, topology="test", graph=graph(edges), fail_at=dict(fail_at))


def by_id(sid):
    return next(s for s in load_scenarios(SCEN) if s.id == sid)


class Stop:
    calls = 0

    def __call__(self, graph, current, failed):
        self.calls += 1


# -- the suite sees no oracle -----------------------------------------------------------------------
def test_a_failure_is_learned_by_calling_the_tool():
    # CS-2: Stripe down from tick 0. Tick 0: probe round 1 (one failed probe: not yet down), error rate 1/8.
    # CRM called at tick 0; at tick 1 the probe result is cached (interval 2): Stripe is called and fails.
    s = by_id("CS-2")
    world = ToolWorld(s)
    rep = self_healing_controller(None)(s, world)
    assert [(t, ok) for _, t, ok, _ in world.calls] == [("CRM", True), ("Stripe", False), ("Razorpay", True),
                                                        ("Email", True), ("Complete", True)]
    (ev,) = [e for e in rep.events if e.kind == "reroute"]
    assert ev.target == "Stripe" and ev.detail["detected_by"] == "call"
    out = judge(s, world, rep)
    assert out.reached and out.correct and out.cost == pytest.approx(1.0) and out.suboptimal_hops == 0


def test_a_lagging_probe_reports_an_outage_before_the_call():
    # CS-3: Email down. CRM (tick 0), Stripe (tick 1); at tick 2 the second probe round fails too: the probe
    # reports Email down and the router goes to SMS without calling Email.
    s = by_id("CS-3")
    world = ToolWorld(s)
    rep = self_healing_controller(None)(s, world)
    assert [t for _, t, _, _ in world.calls] == ["CRM", "Stripe", "SMS", "Complete"]
    (ev,) = [e for e in rep.events if e.kind == "reroute"]
    assert (ev.target, ev.detail["detected_by"]) == ("Email", "monitor")
    assert world.calls[2][3] == frozenset({"Email"})  # what the router knew before calling SMS


def test_published_scenarios_scored_from_the_trajectory():
    res = run_scenarios(load_scenarios(SCEN), {"self_healing": self_healing_controller(None), "static": static_workflow})
    sh, st = res["routers"]["self_healing"], res["routers"]["static"]
    assert res["feasible"] == 12  # networkx on the true graph agrees with the 12 published feasible paths
    assert (sh["correct"], sh["reached"], sh["escalations"], sh["silent_failures"], sh["llm_calls"]) == (19, 12, 7, 0, 0)
    assert sh["oracle_cost_paths"] == 12 and sh["suboptimal_hops"] == 0
    # the static workflow's fallbacks cover one failure per step; the 7 infeasible scenarios end in a skipped
    # step it reports as success: reached=False, 7 silent failures
    assert (st["correct"], st["reached"], st["silent_failures"], st["escalations"]) == (12, 12, 7, 0)
    cs5 = next(r for r in st["scenarios"] if r["id"] == "CS-5")
    assert (cs5["reached"], cs5["silent"]) == (False, True)


def test_published_failed_tools_match_networkx_ground_truth():
    for s in load_scenarios(SCEN):
        res = run_scenarios([s], {"sh": self_healing_controller(None)})
        assert (res["feasible"] == 1) == (s.meta["published_path"] is not None), s.id


def test_silent_failure_is_computed_by_the_evaluator_not_the_controller():
    s = scenario([("Start", "A", 1.0), ("A", "Goal", 1.0)], {"A": 0})
    world = ToolWorld(s)
    world.call("A")  # fails
    world.call("Goal")  # a jump: Start -> Goal is no edge
    out = judge(s, world, Report(reported_success=True, escalated=False, llm_calls=0, reroutes=0))
    assert (out.reached, out.silent, out.correct, out.feasible, out.suboptimal_hops) == (False, True, False, False, 1)


def test_knowable_optimum_vs_full_knowledge_and_dead_ends():
    # X is down from the start but no monitor has seen it when the router stands on A (tick 1):
    # Start->A->X->Goal (0.3) was the cheapest path it could know; after X fails, A->Y->Goal.
    edges = [("Start", "A", 0.1), ("A", "X", 0.1), ("X", "Goal", 0.1), ("A", "Y", 1.0), ("Y", "Goal", 0.1),
             ("Start", "B", 0.5), ("B", "Goal", 0.1)]
    s = scenario(edges, {"X": 0})
    world = ToolWorld(s)
    out = judge(s, world, self_healing_controller(None)(s, world))
    assert out.path == ["Start", "A", "Y", "Goal"] and out.cost == pytest.approx(1.2)
    assert out.oracle_cost == pytest.approx(0.6) and not out.oracle_cost_match  # full knowledge: Start->B->Goal
    assert out.suboptimal_hops == 0 and out.correct  # every call was on a cheapest path given what was known
    # without Y, A is a dead end: the escalation there is correct where it happened, though B was feasible
    s2 = scenario([e for e in edges if "Y" not in e], {"X": 0})
    w2 = ToolWorld(s2)
    o2 = judge(s2, w2, self_healing_controller(None)(s2, w2))
    assert (o2.reached, o2.escalated, o2.correct, o2.dead_end, o2.feasible) == (False, True, True, True, True)


def test_equal_cost_ties_are_optimal():
    s = scenario([("Start", "A", 0.5), ("Start", "B", 0.5), ("A", "Goal", 0.0), ("B", "Goal", 0.0)], {})
    res = run_scenarios([s], {"sh": self_healing_controller(None), "static": static_workflow})
    assert all(m["oracle_cost_paths"] == 1 and m["optimal_paths"] == 1 for m in res["routers"].values())


def test_react_counts_only_model_calls():
    asked = []

    def first_option(msgs):
        opts = re.search(r"Options: (.*)\. Answer", msgs[-1].content).group(1).split(", ")
        asked.append(opts)
        return opts[0]

    react = react_controller(FunctionModel(first_option))
    # CS-2: Start:[CRM] -> CRM:[Stripe, Razorpay] picks Stripe (fails) -> CRM:[Razorpay] -> [Email, SMS] -> [Complete]
    s = by_id("CS-2")
    world = ToolWorld(s)
    out = judge(s, world, react(s, world))
    assert asked == [["CRM"], ["Stripe", "Razorpay"], ["Razorpay"], ["Email", "SMS"], ["Complete"]]
    assert out.llm_calls == 5 and out.reached and out.cost == pytest.approx(1.0)
    # CS-7: CRM down. One model call (Start:[CRM]); CRM fails; no option left: escalation with no model call
    s = by_id("CS-7")
    world = ToolWorld(s)
    out = judge(s, world, react(s, world))
    assert (out.llm_calls, out.escalated, out.correct) == (1, True, True)


def test_generated_scenarios_match_independent_ground_truth():
    gen = generate_scenarios(120, seed=3)
    assert {s.topology for s in gen} == {"linear", "dag", "fanout", "ties"}
    assert any(k > 0 for s in gen for k in s.fail_at.values())  # late outages are generated
    res = run_scenarios(gen, {"self_healing": self_healing_controller(None)})["routers"]["self_healing"]
    assert res["correct"] == 120 and res["silent_failures"] == 0 and res["suboptimal_hops"] == 0


# -- the router --------------------------------------------------------------------------------------
class LateOutage:
    """Reports A down once it has been called (a late outage)."""

    name = "late"

    def __init__(self):
        self.called = []

    def __call__(self, graph):
        return {"A": INF} if "A" in self.called else {}


def test_a_tool_in_hand_does_not_block_the_path_onward():
    mon = LateOutage()
    r = SelfHealingRouter(G, monitors=[mon], escalation=Stop())

    def invoke(tool):
        mon.called.append(tool)
        return True

    res = r.execute(invoke)
    assert res.success and not res.escalated and res.path == ["Start", "A", "C", "Goal"]
    assert [(e.kind, e.target, e.detail.get("after_use")) for e in res.events] == [("tool_down", "A", True)]
    assert r.shortest_path("A", penalties={"A": INF}) == (["A", "C", "Goal"], pytest.approx(0.2))


def test_mid_call_failure_reroutes_from_current_node_without_llm():
    res = SelfHealingRouter(G, escalation=Stop()).execute(lambda tool: tool != "A")
    assert res.path == ["Start", "B", "C", "Goal"] and res.reroutes == 1 and res.llm_calls == 0
    assert res.calls == [("A", False), ("B", True), ("C", True), ("Goal", True)]
    (ev,) = res.events
    assert ev.kind == "reroute" and ev.detail["detected_by"] == "call" and ev.detail["new_path"] == ["Start", "B", "C", "Goal"]


def test_no_path_escalates_once_and_counts_no_llm_call_for_a_plain_handler():
    stop = Stop()
    r = SelfHealingRouter(G, escalation=stop, monitors=[ProbeMonitor(lambda t: t != "C"), OutageMonitor(["B"])])
    res = r.execute(lambda t: True)
    assert res.escalated and not res.success and stop.calls == 1 and res.llm_calls == 1  # Stop counts its calls
    r2 = SelfHealingRouter(G, escalation=lambda g, cur, failed: None, monitors=[OutageMonitor(["C"])])
    assert r2.execute(lambda t: True).llm_calls == 0
    assert [e.kind for e in res.events] == ["reroute", "reroute", "escalation"]
    slow = SelfHealingRouter(G, monitors=[ThresholdMonitor(lambda t: 10.0 if t == "A" else None, weight=1.0)])
    assert slow.shortest_path("Start")[0] == ["Start", "B", "C", "Goal"]  # A: 0.1 * (1 + 10) + 0.2 > 0.7


def test_probe_cached_per_interval_and_down_after_consecutive_failures():
    now = [0.0]
    probes = []

    def probe(tool):
        probes.append(tool)
        return tool != "A"

    m = ProbeMonitor(probe, workers=1, interval=10.0, down_after=2, clock=lambda: now[0])
    g = ToolGraph.from_dict(G)
    assert m(g) == {} and len(probes) == 3  # A, B, C probed; A failed once
    now[0] = 9.9
    assert m(g) == {} and len(probes) == 3  # same interval: cached
    now[0] = 10.0
    assert m(g) == {"A": INF} and len(probes) == 6 and m.rounds == 2


def test_demoted_goal_and_unknown_demoted_goal():
    g = ToolGraph.from_dict({**G, "fallback_goals": ["B"]})
    r = SelfHealingRouter(g, escalation=lambda graph, cur, failed: "B", monitors=[OutageMonitor(["C"])])
    res = r.execute(lambda t: True)
    assert res.escalated and res.success and res.goal == "B" and res.path == ["Start", "B"]
    bad = SelfHealingRouter(G, escalation=lambda graph, cur, failed: "Nowhere", monitors=[OutageMonitor(["C"])])
    with pytest.raises(UnknownNameError, match="unknown demoted goal from the escalation handler 'Nowhere'"):
        bad.execute(lambda t: True)


@pytest.mark.parametrize("value", [math.nan, -1.0, -math.inf, "x"])
def test_bad_penalties_are_refused_naming_monitor_and_tool(value):
    r = SelfHealingRouter(G, monitors=[ThresholdMonitor(lambda t: value if t == "B" else None, name="latency")])
    with pytest.raises(HealthMonitorError, match=r"health monitor 'latency' (gave tool 'B' penalty|got signal 'x' for tool 'B')"):
        r.shortest_path("Start")


def test_unknown_tools_are_clear_errors():
    with pytest.raises(HealthMonitorError, match="monitor 'outage' reported tool 'Stirpe', which is not in the tool graph"):
        SelfHealingRouter(G, monitors=[OutageMonitor(["Stirpe"])]).execute(lambda t: True)
    r = SelfHealingRouter(G)
    with pytest.raises(UnknownNameError, match="unknown blocked tool 'Q'"):
        r.shortest_path("Start", blocked=["Q"])
    with pytest.raises(UnknownNameError, match="unknown source node 'Q'"):
        r.shortest_path("Q")
    with pytest.raises(UnknownNameError, match="unknown goal node 'Q'"):
        r.shortest_path("Start", goal="Q")


def test_bad_graphs_and_scenarios_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="edge A -> Z names an unknown node"):
        ToolGraph(["A"], {("A", "Z"): 1.0}, "A", "A")
    with pytest.raises(ConfigError, match="lacks field 'edges'"):
        ToolGraph.from_dict({"nodes": ["A"], "start": "A", "goal": "A"})
    with pytest.raises(ConfigError, match="cost nan"):
        ToolGraph(["A", "B"], {("A", "B"): float("nan")}, "A", "B")
    for bad in ("abc", None):
        with pytest.raises(ConfigError, match=f"edge Start -> A has cost {bad!r}"):
            ToolGraph.from_dict({**G, "edges": [{**G["edges"][0], "cost": bad}] + G["edges"][1:]})
    with pytest.raises(ConfigError, match="edge Start -> A is listed twice"):
        ToolGraph.from_dict({**G, "edges": G["edges"] + [{"source": "Start", "target": "A", "cost": 9.0}]})
    with pytest.raises(ConfigError, match="node\\(s\\) 'A' more than once"):
        ToolGraph.from_dict({**G, "nodes": G["nodes"] + ["A"]})
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"graphs": {"g": G}, "scenarios": [{"id": "x", "graph": "g", "failed_tools": ["Stirpe"]}]}))
    with pytest.raises(UnknownNameError, match="unknown failed tool 'Stirpe'"):
        load_scenarios(p)


def ctx(source, names):
    return RouteContext(query="x", candidates=tuple(TargetInfo(name=n) for n in names), source=source)


def test_route_expensive_paths_are_feasible_and_goal_penalty_counts():
    big = SelfHealingRouter(graph([("Start", "A", 1.2e9), ("A", "Goal", 0.0)]))
    d = big.route(ctx(START, ["A", END]))
    assert d.targets == ("A",) and d.scores["A"] == -1.2e9 and d.scores[END] < d.scores["A"]
    # a penalty of 1.0 on Goal doubles every edge into it: Start->Goal 0.7 * 2 = 1.4 > Start->A->Goal 0.4 + 0.4 * 2
    r = SelfHealingRouter(graph([("Start", "Goal", 0.7), ("Start", "A", 0.4), ("A", "Goal", 0.4)]),
                          monitors=[ThresholdMonitor(lambda t: 1.0 if t == "Goal" else None)])
    d = r.route(ctx(START, ["Goal", "A"]))
    assert d.scores["Goal"] == pytest.approx(-1.4) and d.scores["A"] == pytest.approx(-1.2) and d.targets == ("A",)


def test_as_a_router_in_a_flow_with_path_cost_scores_and_escalation():
    router = SelfHealingRouter(G, label="heal")
    flow = Flow("tools", max_steps=10)
    def step(name):
        return lambda text: f"{text}>{name}"

    for n in ("A", "B", "C"):
        flow.add(agent(n, step(n)))
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
    router_a = SelfHealingRouter(G, label="heal-a", monitors=[OutageMonitor(["C"])])
    flow2 = Flow("tools2", max_steps=10).add(agent("A", lambda t: t + ">A"), agent("C", lambda t: t + ">C"))
    flow2.edge(START, "A")
    flow2.route("A", router_a, candidates=["C", END])
    flow2.edge("C", END)
    rec2 = MemoryRecorder()
    assert flow2.compile(recorder=rec2).invoke("go").output == "go>A"
    esc = rec2.of_type(DecisionRecord)[0].decision
    assert esc.targets == (END,) and esc.metadata["escalation"] is True and esc.metadata["infeasible"] == ["C"]


def test_router_outside_its_graph_is_a_routing_error():
    with pytest.raises(RoutingError, match="node 'Q' is not in its tool graph"):
        SelfHealingRouter(G).route(RouteContext(query="x", candidates=(TargetInfo(name="Goal"),), source="Q"))


def test_a_new_penalty_state_is_searched_without_a_rebuild_then_indexed():
    r = SelfHealingRouter(G)
    pen = {"A": 10.0}  # A's edges cost 11x: Start->A->C->Goal = 1.1 + 0.1 + 0.1 = 1.3 > Start->B->C->Goal = 0.7
    first = r.shortest_path("Start", penalties=pen)
    assert r.index_builds == 1  # only the penalty-free index (the heuristic)
    second = r.shortest_path("Start", penalties=pen)
    assert r.index_builds == 2  # the state recurred: its own index is built
    assert first == second == (["Start", "B", "C", "Goal"], pytest.approx(0.7))
    assert r.shortest_path("Start", blocked=["B"], penalties=pen) == (["Start", "A", "C", "Goal"], pytest.approx(1.3))


def test_a_users_scenario_file_is_the_test_set(tmp_path):
    from crossroads.evals.suite import run_suite

    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"graphs": {"g": G}, "scenarios": [
        {"id": "late-A", "graph": "g", "failed_tools": [], "fail_at": {"C": 1}},  # C down before it is reached
        {"id": "B-down", "graph": "g", "failed_tools": ["B"]}]}))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: mine\nkind: tool_graph\ndata: {dataset: 'builtin:self-healing-19', generated: 50}\n"
                     "routers:\n  - {name: self_healing, type: self_healing, params: {escalation: none}}\n"
                     "settings: {bootstrap: 0, latency_samples: 0}\n")
    res = run_suite(suite, test_file=p).results
    assert res["n"] == 2 and "generated" not in res  # exactly the user's scenarios, nothing generated
    sh = res["routers"]["self_healing"]
    # late-A: Start->A at tick 0, C is down from tick 1: no way on -> a correct escalation; B-down: A, C, Goal
    assert [(r["id"], r["reached"], r["escalated"], r["correct"]) for r in sh["scenarios"]] == [
        ("late-A", False, True, True), ("B-down", True, False, True)]
    with pytest.raises(ConfigError, match="not trained; give only --test"):
        run_suite(suite, train_file=p, test_file=p)
