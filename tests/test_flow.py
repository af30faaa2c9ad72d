"""Flows compile to LangGraph and run for real: routing, fan-out, loops, resume, interrupts, tracing."""

import asyncio

import pytest

from crossroads import (
    END,
    START,
    ConfigError,
    Decision,
    Flow,
    FlowError,
    FunctionModel,
    HumanRouter,
    MemoryRecorder,
    Router,
    RoutingError,
    RulesRouter,
    SQLRecorder,
    StepLimitError,
    TraceStore,
    UnknownTargetError,
    agent,
    llm_agent,
    tool,
)
from crossroads.tracing import DecisionRecord, EventRecord, StepRecord


def support_flow(**route_kw):
    flow = Flow("support")
    flow.add(
        agent("billing", lambda t: f"billing:{t}", description="refunds"),
        agent("tech", lambda t: f"tech:{t}", description="bugs"),
        agent("general", lambda t: f"general:{t}"),
    )
    rules = RulesRouter(rules=[
        {"when": {"keyword": "refund"}, "route": "billing"},
        {"when": {"keyword": "crash"}, "route": ["tech", "general"]},
    ], default="general", label="triage")
    flow.route(START, rules, candidates=["billing", "tech", "general"], **route_kw)
    return flow


def test_single_route_and_decision_recorded():
    rec = MemoryRecorder()
    app = support_flow().compile(recorder=rec)
    res = app.invoke("I need a refund")
    assert res.output == "billing:I need a refund" and res.status == "succeeded" and res.steps == 1
    (dec,) = rec.of_type(DecisionRecord)
    assert dec.decision.targets == ("billing",) and dec.source == START and dec.run_id == res.run_id
    assert set(dec.decision.scores) == {"billing", "tech", "general"}
    assert dec.decision.latency_ms > 0
    assert [s.node for s in rec.of_type(StepRecord)] == ["billing"]


def test_fan_out_runs_in_parallel_and_merges():
    app = support_flow(merge="concat").compile()
    res = app.invoke("it will crash")
    assert res.output == "[tech] tech:it will crash\n\n[general] general:it will crash"
    assert res.steps == 3  # two branches + merge
    assert res.state["branches"] == []  # the merge node cleared them


def test_fan_out_without_merge_is_a_routing_error():
    rec = MemoryRecorder()
    app = support_flow().compile(recorder=rec)
    with pytest.raises(RoutingError, match="has no merge node"):
        app.invoke("crash now")
    assert rec.of_type(EventRecord)[0].kind == "routing_error"


def test_vote_merge_and_refiner_agent():
    flow = Flow("vote")
    flow.add(agent("a", lambda t: "42"), agent("b", lambda t: "41"), agent("c", lambda t: "42"))
    flow.route(START, RulesRouter(rules=[], default=["a", "b", "c"]), candidates=["a", "b", "c"], merge="vote")
    assert flow.compile().invoke("q").output == "42"

    refiner = llm_agent("refine", FunctionModel(lambda msgs: "merged: " + msgs[-1].content.split("Candidate answers:")[1].strip().replace("\n", " ")), "Merge the answers.")
    flow2 = Flow("refine")
    flow2.add(agent("a", lambda t: "x"), agent("b", lambda t: "y"), refiner)
    flow2.route(START, RulesRouter(rules=[], default=["a", "b"]), candidates=["a", "b"], merge="refine")
    out = flow2.compile().invoke("q")
    assert out.output == "merged: [a] x  [b] y"
    assert out.cost_usd == 0.0


class CountingLoopRouter(Router):
    name = "loop-test"

    def __init__(self, rounds):
        super().__init__()
        self.rounds = rounds

    def route(self, ctx):
        done = ctx.step >= self.rounds
        return self.decide({"worker": 0.0 if done else 1.0, END: 1.0 if done else 0.0}, rationale=f"step {ctx.step}")


def test_loop_until_router_chooses_end():
    flow = Flow("loop", max_steps=10)
    flow.add(agent("worker", lambda t: t + "!"))
    flow.edge(START, "worker")
    flow.route("worker", CountingLoopRouter(3), candidates=["worker", END])
    res = flow.compile().invoke("go")
    assert res.output == "go!!!" and res.steps == 3


def test_step_limit_stops_a_runaway_loop():
    rec = MemoryRecorder()
    flow = Flow("runaway", max_steps=4)
    flow.add(agent("worker", lambda t: t))
    flow.edge(START, "worker")
    flow.route("worker", CountingLoopRouter(1000), candidates=["worker", END])
    app = flow.compile(recorder=rec)
    with pytest.raises(StepLimitError, match="max_steps=4"):
        app.invoke("go")
    assert len(rec.of_type(StepRecord)) == 4


class BadRouter(Router):
    name = "bad-test"

    def route(self, ctx):
        return Decision(targets=("nowhere",), scores={c.name: 0.0 for c in ctx.candidates})


def test_router_choosing_a_non_candidate_raises_and_is_recorded(db_path):
    rec = SQLRecorder(str(db_path))
    flow = Flow("bad")
    flow.add(agent("a", lambda t: t), agent("b", lambda t: t))
    flow.route(START, BadRouter(label="badr"), candidates=["a", "b"])
    with pytest.raises(RoutingError) as e:
        flow.compile(recorder=rec).invoke("x")
    assert "router 'badr' chose 'nowhere', which is not a candidate; candidates: a, b" in str(e.value)
    rec.flush()
    store = TraceStore(db_path)
    (ev,) = store.events(kind="routing_error")
    assert ev["target"] == "nowhere" and ev["detail"]["candidates"] == ["a", "b"] and ev["detail"]["router"] == "badr"
    (run,) = store.list_runs()
    assert run["status"] == "failed" and "RoutingError" in run["error"]


def test_compile_time_errors_name_the_problem():
    flow = Flow("f")
    flow.add(agent("a", lambda t: t))
    with pytest.raises(UnknownTargetError, match="unknown node 'bb' in edge a -> bb; known: a"):
        Flow("f").add(agent("a", lambda t: t)).edge("a", "bb").compile()
    with pytest.raises(ConfigError, match="names target\\(s\\) zz that are not candidates"):
        Flow("f").add(agent("a", lambda t: t)).route(START, RulesRouter(rules=[], default="zz"), candidates=["a"]).compile()
    with pytest.raises(ConfigError, match="already has an outgoing edge"):
        flow.edge("a", END).edge("a", END)
    with pytest.raises(FlowError, match="no entry"):
        Flow("f").add(agent("a", lambda t: t), agent("b", lambda t: t)).compile()
    with pytest.raises(ConfigError, match="reserved"):
        agent("__x", lambda t: t)
    with pytest.raises(ConfigError, match="must take"):
        agent("x", lambda: "no args")


def test_compiled_flow_is_a_langgraph_graph_and_streams():
    app = support_flow(merge="concat").compile(checkpointer="memory")
    g = app.get_graph()
    assert {"billing", "tech", "general", "merge"} <= set(g.nodes)
    chunks = list(app.stream("crash please", thread_id="s1"))
    assert {k for c in chunks for k in c} >= {"tech", "general", "merge"}
    assert app.get_state({"configurable": {"thread_id": "s1"}}).values["output"].startswith("[tech]")


def test_nesting_a_compiled_flow_inside_langgraph():
    from langgraph.graph import StateGraph

    from crossroads.orchestrator.state import FlowState

    inner = support_flow().compile()
    outer = StateGraph(FlowState)
    outer.add_node("inner", inner.graph)
    outer.add_edge(START, "inner")
    res = outer.compile().invoke({"input": "refund", "output": None, "messages": []})
    assert res["output"] == "billing:refund"


def test_resume_reruns_only_the_failed_node_and_trace_shows_both_attempts(db_path):
    calls = {"first": 0, "flaky": 0}
    fail = {"on": True}

    def first(t):
        calls["first"] += 1
        return "step1"

    def flaky(t):
        calls["flaky"] += 1
        if fail["on"]:
            raise RuntimeError("upstream timeout")
        return "step2"

    flow = Flow("resumable")
    flow.add(agent("first", first), agent("flaky", flaky))
    flow.edge(START, "first").edge("first", "flaky").edge("flaky", END)
    rec = SQLRecorder(str(db_path))
    app = flow.compile(recorder=rec, checkpointer=str(db_path))
    with pytest.raises(RuntimeError, match="upstream timeout"):
        app.invoke("go", thread_id="t-1")
    fail["on"] = False
    res = app.resume("t-1")
    assert res.output == "step2" and calls == {"first": 1, "flaky": 2}
    rec.flush()
    run = TraceStore(db_path).get_run(res.run_id)
    assert run["status"] == "succeeded"
    flaky_steps = [s for s in run["steps"] if s["node"] == "flaky"]
    assert [(s["status"], s["attempt"]) for s in flaky_steps] == [("failed", 1), ("succeeded", 2)]
    assert "upstream timeout" in flaky_steps[0]["error"]
    assert [e["kind"] for e in run["events"]] == ["resume"]


def test_human_router_interrupts_and_resumes_without_rerunning_source():
    ran = []
    flow = Flow("hitl")
    flow.add(agent("draft", lambda t: ran.append("draft") or "draft"), agent("approve", lambda t: "approved"),
             agent("reject", lambda t: "rejected"))
    flow.edge(START, "draft")
    flow.route("draft", HumanRouter(), candidates=["approve", "reject"])
    app = flow.compile(checkpointer="memory")
    res = app.invoke("write it", thread_id="h1")
    assert res.status == "interrupted"
    assert res.interrupts[0].value["candidates"][0]["name"] == "approve"
    res = app.resume("h1", "reject")
    assert res.output == "rejected" and ran == ["draft"]


def test_resume_without_checkpointer_is_a_clear_error():
    with pytest.raises(FlowError, match="needs a checkpointer"):
        support_flow().compile().resume("nope")


def test_tool_target_takes_json_arguments():
    def add(a: int, b: int) -> str:
        return str(a + b)

    t = tool("add", add, description="adds")
    assert t.info.metadata["parameters"]["required"] == ["a", "b"]
    flow = Flow("tools").add(agent("planner", lambda text: '{"a": 2, "b": 3}'), t)
    flow.edge(START, "planner").edge("planner", "add")
    assert flow.compile().invoke("2+3?").output == "5"


async def test_async_targets_and_many_concurrent_runs_lose_nothing(db_path):
    async def slow(text):
        await asyncio.sleep(0.01)
        return f"slow:{text}"

    flow = Flow("conc")
    flow.add(agent("slow", slow), agent("fast", lambda t: f"fast:{t}"))
    flow.route(START, RulesRouter(rules=[{"when": {"regex": "[02468]$"}, "route": "slow"}], default="fast"),
               candidates=["slow", "fast"])
    rec = SQLRecorder(str(db_path))
    app = flow.compile(recorder=rec)
    results = await asyncio.gather(*(app.ainvoke(f"q{i}") for i in range(50)))
    assert [r.output for r in results] == [f"{'slow' if i % 2 == 0 else 'fast'}:q{i}" for i in range(50)]
    rec.flush()
    store = TraceStore(db_path)
    assert store.count("runs") == 50 and store.count("steps") == 50 and store.count("decisions") == 50
    assert {r["status"] for r in store.list_runs(limit=100)} == {"succeeded"}


def test_sync_flow_with_async_target_and_health_reaches_router():
    seen = {}

    class HealthAware(Router):
        name = "health-test"

        def route(self, ctx):
            seen.update({n: ctx.health_of(n).error_rate for n in ctx.candidate_names})
            return self.decide({n: 1.0 for n in ctx.candidate_names})

    def broken(t):
        raise ValueError("down")

    flow = Flow("h").add(agent("ok", lambda t: "ok"), agent("broken", broken))
    flow.route(START, HealthAware(), candidates=["broken", "ok"])
    app = flow.compile()
    for _ in range(2):
        with pytest.raises(ValueError):
            app.invoke("x")
    app.invoke("x") if False else None
    with pytest.raises(ValueError):
        app.invoke("x")
    assert seen["broken"] == 1.0 and seen["ok"] == 0.0
