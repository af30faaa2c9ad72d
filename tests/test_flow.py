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
        raise ConnectionError("down")  # a transport failure counts against availability

    flow = Flow("h").add(agent("ok", lambda t: "ok"), agent("broken", broken))
    flow.route(START, HealthAware(), candidates=["broken", "ok"])
    app = flow.compile()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            app.invoke("x")
    with pytest.raises(ConnectionError):
        app.invoke("x")
    assert seen["broken"] == 1.0 and seen["ok"] == 0.0


# -- routing that survives failure ---------------------------------------------------------------

class FlakyRouter(Router):
    """Raises on its first decision, then routes everything to ``billing``."""

    name = "flaky"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0
        self.closed = False

    def route(self, ctx):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("router backend unavailable")
        return self.decide({c: float(c == "billing") for c in ctx.candidate_names}, rationale="flaky ok")

    def close(self):
        self.closed = True


def _two_targets(router):
    flow = Flow("resumable").add(agent("billing", lambda t: f"billing:{t}"), agent("tech", lambda t: f"tech:{t}"))
    return flow.route(START, router, candidates=["billing", "tech"])


def test_router_that_raises_is_resumable_sync():
    rec = MemoryRecorder()
    app = _two_targets(FlakyRouter()).compile(recorder=rec, checkpointer="memory")
    with pytest.raises(RuntimeError, match="unavailable"):
        app.invoke("refund", thread_id="t1")
    assert app.get_state({"configurable": {"thread_id": "t1"}}).next == ("start_decide",)
    res = app.resume("t1")
    # before: resume returned "succeeded" with no decision and the target never ran
    assert res.status == "succeeded" and res.output == "billing:refund" and res.steps == 1
    assert [d.targets for d in res.decisions] == [("billing",)]
    assert [s.node for s in rec.of_type(StepRecord)] == ["billing"]


def test_router_that_raises_is_resumable_async():
    app = _two_targets(FlakyRouter()).compile(checkpointer="memory")

    async def go():
        with pytest.raises(RuntimeError):
            await app.ainvoke("refund", thread_id="t2")
        return await app.aresume("t2")

    res = asyncio.run(go())
    assert res.output == "billing:refund" and res.decisions[0].router == "flaky"


def test_resuming_a_finished_thread_says_so():
    from crossroads.errors import ThreadFinishedError

    app = support_flow().compile(checkpointer="memory")
    app.invoke("refund", thread_id="done")
    with pytest.raises(ThreadFinishedError, match="nothing to resume"):
        app.resume("done")


def test_decision_is_in_state_history_and_run_result():
    app = support_flow().compile(checkpointer="memory")
    res = app.invoke("I need a refund", thread_id="h")
    (d,) = res.decisions
    assert d.router == "triage" and d.targets == ("billing",) and d.source == START and len(d.decision_id) > 8
    history = list(app.get_state_history({"configurable": {"thread_id": "h"}}))
    with_decision = [h for h in history if h.values.get("decisions")]
    assert with_decision and with_decision[-1].values["decisions"][0]["decision_id"] == d.decision_id
    assert with_decision[-1].next == ("billing",)  # the checkpoint right after deciding names the branch taken


def test_duplicate_router_labels_refused_at_compile():
    flow = Flow("dup").add(agent("a", lambda t: "a"), agent("b", lambda t: "b"), agent("c", lambda t: "c"))
    flow.route(START, RulesRouter(rules=[], default="a", label="r"), candidates=["a", "b"])
    flow.route("a", RulesRouter(rules=[], default="c", label="r"), candidates=["c", END])
    with pytest.raises(FlowError, match="two different routers labelled 'r'"):
        flow.compile()


def test_target_events_kept_with_its_own_call_record():
    from crossroads import RunEvent, TargetResult

    def retried(text):
        return TargetResult(output="ok", events=(RunEvent(kind="retry", target="t", detail={"attempt": 1}),))

    rec = MemoryRecorder()
    app = Flow("ev").add(tool("t", retried)).compile(recorder=rec)
    app.invoke("x")
    from crossroads.tracing import CallRecord

    assert [e.kind for e in rec.of_type(EventRecord)] == ["retry"]
    assert len(rec.of_type(CallRecord)) == 1


def test_run_cost_is_targets_plus_routers(db_path):
    from crossroads.types import run_cost

    class Paid(Router):
        name = "paid"

        def route(self, ctx):
            return self.decide({c: 1.0 for c in ctx.candidate_names}, cost_usd=0.5)

    flow = Flow("cost").add(agent("a", lambda t: "a", cost={"per_call": 0.25}))
    flow.route(START, Paid(), candidates=["a"])
    rec = SQLRecorder(str(db_path))
    res = flow.compile(recorder=rec).invoke("x")
    rec.flush()
    assert res.cost_usd == 0.75
    run = TraceStore(db_path).get_run(res.run_id)
    assert run_cost([s["cost_usd"] for s in run["steps"]], [d["cost_usd"] for d in run["decisions"]]) == 0.75


def test_application_error_does_not_mark_target_down():
    def picky(text):
        raise ValueError("I only take numbers")

    target = agent("picky", picky)
    flow = Flow("app-err").add(target)
    app = flow.compile()
    for _ in range(6):
        with pytest.raises(ValueError):
            app.invoke("x")
    assert target.health_snapshot().available and target.health_snapshot().error_rate == 0.0


def test_stream_records_final_output_without_checkpointer():
    from crossroads.tracing import RunEnd

    rec = MemoryRecorder()
    app = support_flow().compile(recorder=rec)
    updates = list(app.stream("refund please"))
    assert any("billing" in u for u in updates)
    ends = rec.of_type(RunEnd)
    assert ends[-1].status == "succeeded" and ends[-1].output == "billing:refund please"


def test_close_closes_checkpointer_and_routers(tmp_path):
    router = FlakyRouter()
    app = _two_targets(router).compile(checkpointer=str(tmp_path / "ck.db"))
    conn = app.graph.checkpointer.conn
    app.close()
    assert router.closed
    with pytest.raises(Exception, match="closed"):
        conn.execute("select 1")


def test_async_runs_with_a_file_checkpointer(tmp_path):
    # before: every ainvoke failed (the sync SqliteSaver has no async methods)
    app = support_flow().compile(checkpointer=str(tmp_path / "ck.db"))

    async def go():
        out = await asyncio.gather(*(app.ainvoke(f"refund {i}", thread_id=f"t{i}") for i in range(40)))
        await app.aclose()
        return out

    results = asyncio.run(go())
    assert [r.output for r in results] == [f"billing:refund {i}" for i in range(40)]


def test_blocking_router_runs_off_the_event_loop():
    import time as _time

    class Slow(Router):
        name = "slow"

        def route(self, ctx):
            _time.sleep(0.2)
            return self.decide({c: 1.0 for c in ctx.candidate_names})

    flow = Flow("slow").add(agent("a", lambda t: "a"))
    flow.route(START, Slow(), candidates=["a"])
    app = flow.compile()

    async def go():
        t0 = _time.perf_counter()
        await asyncio.gather(*(app.ainvoke("x") for _ in range(10)))
        return _time.perf_counter() - t0

    assert asyncio.run(go()) < 1.0  # 10 x 0.2 s = 2 s when the router blocks the loop


# -- streaming -----------------------------------------------------------------------------------

class WordStreamModel:
    """A chat model that streams its reply word by word (sync and async) and reports usage at the end."""

    name = "words"

    def __init__(self, reply):
        self.reply = reply

    def complete(self, messages, **kw):
        from crossroads import ModelResponse

        return ModelResponse(text=self.reply, model=self.name, input_tokens=3, output_tokens=len(self.reply.split()))

    def stream(self, messages):
        words = self.reply.split(" ")
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w
        yield self.complete(messages)

    async def astream(self, messages):
        for item in self.stream(messages):
            await asyncio.sleep(0)
            yield item


def _stream_flow():
    from crossroads import model

    flow = Flow("st").add(model("m", WordStreamModel("the answer is 42")), agent("plain", lambda t: "plain answer"))
    flow.route(START, RulesRouter(rules=[{"when": {"keyword": "plain"}, "route": "plain"}], default="m", label="r"),
               candidates=["m", "plain"])
    return flow


def test_astream_chunks_yields_tokens_decision_and_usage():
    app = _stream_flow().compile()

    async def go():
        return [c async for c in app.astream_chunks("question")]

    chunks = asyncio.run(go())
    kinds = [c.kind for c in chunks]
    assert kinds == ["decision", "token", "token", "token", "token", "end"]
    assert "".join(c.delta for c in chunks if c.kind == "token") == "the answer is 42"
    end = chunks[-1]
    assert end.output == "the answer is 42" and end.usage.input_tokens == 3 and end.usage.output_tokens == 4
    assert end.result.decisions[0].targets == ("m",) and chunks[0].decision.decision_id == end.result.decisions[0].decision_id


def test_stream_chunks_sync_and_non_streaming_target_is_one_chunk():
    app = _stream_flow().compile()
    chunks = list(app.stream_chunks("plain please"))
    assert [(c.kind, c.delta) for c in chunks if c.kind == "token"] == [("token", "plain answer")]
    tokens = [c.delta for c in app.stream_chunks("q") if c.kind == "token"]
    assert tokens == ["the", " answer", " is", " 42"]


# -- threads, inputs, secrets, budgets ------------------------------------------------------------

def test_new_input_on_a_thread_starts_a_new_turn():
    app = support_flow().compile(checkpointer="memory")
    first = app.invoke("I need a refund", thread_id="ticket-42")
    second = app.invoke("it will crash", thread_id="ticket-42") if False else app.invoke("hello there", thread_id="ticket-42")
    # before: the second run routed on the first run's output and accumulated steps and cost
    assert first.output == "billing:I need a refund"
    assert second.output == "general:hello there" and second.steps == 1 and len(second.decisions) == 1
    contents = [m.content for m in second.state["messages"]]
    assert contents == ["I need a refund", "billing:I need a refund", "hello there", "general:hello there"]


def test_lone_surrogates_are_normalised_and_oversized_input_refused(db_path):
    from crossroads.errors import InputError, InputTooLargeError

    rec = SQLRecorder(str(db_path))
    flow = support_flow()
    flow.max_input_chars = 100
    app = flow.compile(recorder=rec)
    res = app.invoke("refund \udce9 now")
    assert res.output == "billing:refund \ufffd now"
    rec.flush()
    assert TraceStore(db_path).get_run(res.run_id)["input"] == "refund \ufffd now"
    with pytest.raises(InputTooLargeError, match="101 characters, over the limit of 100"):
        app.invoke("x" * 101)
    with pytest.raises(InputError, match="must be text"):
        app.invoke(["not", "text"])  # type: ignore[arg-type]
    rec.flush()
    assert TraceStore(db_path).count("runs") == 1  # refused inputs ran nothing and wrote nothing


def _plant_secrets_flow():
    flow = Flow("secrets").add(agent("echo", lambda t: f"echo:{t}"))
    return flow


SECRETS = ["sk-proj-ABCDEFGHIJKLMNOPQRSTUV123456", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
           "AKIAIOSFODNN7EXAMPLE"]


def _grep_files(root, needles):
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [(p.name, n) for n in needles if n.encode() in data]
    return found


def test_checkpoints_keep_no_secret_in_clear_redacted(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSROADS_CHECKPOINT_KEY", raising=False)
    db = tmp_path / "crossroads.db"
    rec = SQLRecorder(str(db))
    app = _plant_secrets_flow().compile(recorder=rec, checkpointer=str(db))
    res = app.invoke("my keys: " + " ".join(SECRETS), thread_id="s1")
    assert res.output.startswith("echo:my keys")
    app.close()
    assert app.checkpoint_path == tmp_path / "crossroads.checkpoints.db"  # not the trace file
    # before: 7 of 7 planted secrets were found in the DB bytes (checkpoints and writes tables)
    assert _grep_files(tmp_path, SECRETS) == []


def test_checkpoints_encrypted_with_a_key_and_still_resumable(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSROADS_CHECKPOINT_KEY", "correct horse battery staple")
    ck = tmp_path / "ck.db"
    app = _two_targets(FlakyRouter()).compile(checkpointer=str(ck))
    with pytest.raises(RuntimeError):
        app.invoke("refund " + SECRETS[0], thread_id="enc")
    res = app.resume("enc")
    assert res.output == "billing:refund " + SECRETS[0]  # decrypted intact
    app.close()
    assert _grep_files(tmp_path, SECRETS + ["billing:refund"]) == []


def test_large_input_is_stored_once_in_checkpoints(tmp_path):
    flow = Flow("big", max_input_chars=None).add(agent("a", lambda t: "short answer"), agent("b", lambda t: "done"))
    flow.edge(START, "a").edge("a", "b")
    ck = tmp_path / "ck.db"
    app = flow.compile(checkpointer=str(ck))
    big = "lorem ipsum " * 200_000  # 2.4 MB
    app.invoke(big, thread_id="big")
    app.close()
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < 1.6 * len(big)  # before: the input was copied into every checkpoint and write (~10x)


def test_budget_is_enforced():
    from crossroads.errors import BudgetExceededError

    flow = Flow("budget", max_cost_usd=0.25)
    flow.add(agent("a", lambda t: "a", cost={"per_call": 0.2}), agent("b", lambda t: "b", cost={"per_call": 0.2}))
    flow.edge(START, "a").edge("a", "b")
    with pytest.raises(BudgetExceededError, match="budget before node 'b'"):
        flow.compile().invoke("x")
    Flow("ok", max_cost_usd=0.5).add(agent("a", lambda t: "a", cost={"per_call": 0.2})).compile().invoke("x")


# -- agents that call tools; state the user owns --------------------------------------------------

def test_react_example_runs_the_tool_loop_through_a_provider_endpoint():
    import importlib.util
    from pathlib import Path

    from crossroads.testing import ScriptedOpenAIServer
    from crossroads.tracing import CallRecord

    path = Path(__file__).resolve().parents[1] / "examples" / "react_agent.py"
    spec = importlib.util.spec_from_file_location("react_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rec = MemoryRecorder()
    with ScriptedOpenAIServer(reply=mod.scripted_policy) as srv:
        app = mod.build_flow(srv.url).compile(recorder=rec)
        res = app.invoke("what is 17 * 23 plus the number of moons of Mars?")
        direct = app.invoke("17 * 23")
    assert res.output == "The answer: 17 * 23 + 2 = 393"
    # tool calls and tool results reached the provider in OpenAI form
    third = srv.requests[2]["messages"]
    assert third[-1] == {"role": "tool", "content": "17 * 23 + 2 = 393", "tool_call_id": "call_2"}
    assert third[-2]["tool_calls"][0]["function"] == {"name": "calculate", "arguments": '{"expression": "17 * 23 + 2"}'}
    assert srv.requests[0]["tools"][1]["function"]["name"] == "lookup"
    # each model call and each tool call is a traced call of the agent's step
    calls = [(c.usage.target, c.usage.kind.value) for c in rec.of_type(CallRecord) if c.run_id == res.run_id]
    assert calls == [("assistant", "agent"), ("lookup", "tool"), ("assistant", "agent"), ("calculate", "tool"),
                     ("assistant", "agent")]
    kinds = [type(m).__name__ for m in res.state["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert direct.output == "17 * 23 = 391" and direct.decisions[0].targets == ("calculate",)  # the tool as a route target


def _tool_model(script):
    """A chat model replying from a script of (text, tool_calls) and recording what it was sent."""
    from crossroads import ModelResponse

    class Scripted:
        name = "scripted"

        def __init__(self):
            self.sent = []

        def complete(self, messages, tools=None):
            self.sent.append((list(messages), tools))
            text, calls = script[min(len(self.sent), len(script)) - 1]
            return ModelResponse(text=text, model=self.name, tool_calls=tuple(calls))

    return Scripted()


def test_tool_errors_go_back_to_the_model_and_rounds_are_bounded():
    from crossroads import TargetError

    def explode(x: str) -> str:
        raise ValueError("bad x")

    m = _tool_model([("", [{"id": "1", "name": "explode", "arguments": '{"x": "a"}'},
                           {"id": "2", "name": "nope", "arguments": "{}"}]), ("recovered", [])])
    app = Flow("t").add(llm_agent("a", m, "use tools", tools=[explode])).compile()
    assert app.invoke("go").output == "recovered"
    tool_msgs = [x for x in m.sent[1][0] if x.role == "tool"]
    assert [(x.tool_call_id, x.content) for x in tool_msgs] == [
        ("1", "error: ValueError: bad x"), ("2", "error: there is no tool 'nope'; tools: explode")]
    looping = _tool_model([("", [{"id": "1", "name": "explode", "arguments": "{}"}])])
    app2 = Flow("t2").add(llm_agent("a", looping, "x", tools=[explode], max_tool_rounds=3)).compile()
    with pytest.raises(TargetError, match="after 3 model calls"):
        app2.invoke("go")
    assert len(looping.sent) == 3


def test_user_state_schema_extends_flow_state():
    from crossroads import FlowState, TargetResult

    class TicketState(FlowState, total=False):
        ticket: str
        attempts: int

    def triage(request):
        return TargetResult(output="triaged", update={"ticket": "T-1", "attempts": 1})

    def solve(request):
        return f"solved {request.state['ticket']}"

    flow = Flow("s", state_schema=TicketState).add(agent("triage", triage), agent("solve", solve))
    flow.edge(START, "triage").edge("triage", "solve")
    res = flow.compile().invoke("help")
    assert res.output == "solved T-1" and res.state["ticket"] == "T-1"

    from crossroads import FlowStateModel

    class TicketModel(FlowStateModel):
        ticket: str = ""

    flow = Flow("p", state_schema=TicketModel).add(agent("triage", triage), agent("solve", solve))
    flow.edge(START, "triage").edge("triage", "solve")
    app = flow.compile(checkpointer="memory")
    assert app.invoke("help", thread_id="p").output == "solved T-1"
    again = app.invoke("more help", thread_id="p")  # a new turn on the pydantic state
    assert again.steps == 2 and len(again.state["messages"]) == 6

    class NotExtending(dict):
        x: int

    with pytest.raises(ConfigError, match="must extend crossroads.FlowState"):
        Flow("bad", state_schema=NotExtending)


def test_langchain_chat_model_and_langgraph_graph_as_targets():
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langgraph.graph import END as LG_END
    from langgraph.graph import START as LG_START
    from langgraph.graph import MessagesState, StateGraph

    from crossroads import model

    lc = GenericFakeChatModel(messages=iter([AIMessage(content="from langchain")]))
    g = StateGraph(MessagesState)
    g.add_node("shout", lambda s: {"messages": [AIMessage(content=s["messages"][-1].content.upper())]})
    g.add_edge(LG_START, "shout")
    g.add_edge("shout", LG_END)
    flow = Flow("lc").add(model("lc", lc), agent("graph", g.compile()))
    flow.route(START, RulesRouter(rules=[{"when": {"keyword": "graph"}, "route": "graph"}], default="lc"),
               candidates=["lc", "graph"])
    app = flow.compile()
    assert app.invoke("hi").output == "from langchain"
    assert app.invoke("graph me").output == "GRAPH ME"


def test_nested_flow_graph_as_a_subgraph_keeps_tracing():
    inner = support_flow().compile(recorder=(rec := MemoryRecorder()))
    outer = Flow("outer").add(agent("support", inner.graph), agent("wrap", lambda t: f"[{t}]"))
    outer.edge(START, "support").edge("support", "wrap")
    outer_app = outer.compile(recorder=rec)
    res = outer_app.invoke("refund me")
    assert res.output == "[billing:refund me]"
    steps = [(s.run_id, s.node) for s in rec.of_type(StepRecord)]
    assert (res.run_id, "billing") in steps and (res.run_id, "wrap") in steps  # the inner step is in the outer run
    assert [d.run_id for d in rec.of_type(DecisionRecord)] == [res.run_id]


def test_conversation_messages_are_checked_like_the_input():
    from crossroads.errors import InputTooLargeError

    flow = support_flow()
    flow.max_input_chars = 50
    app = flow.compile()

    async def go(msgs):
        return await app.ainvoke("refund", messages=msgs)

    res = asyncio.run(go([{"role": "user", "content": "refund \udce9"}]))
    assert res.state["messages"][0].content == "refund \ufffd"
    with pytest.raises(InputTooLargeError):
        asyncio.run(go([{"role": "user", "content": "x" * 30}, {"role": "user", "content": "refund " + "y" * 30}]))


def test_resumed_run_that_succeeds_clears_its_error(tmp_path):
    db = tmp_path / "t.db"
    rec = SQLRecorder(str(db))
    app = _two_targets(FlakyRouter()).compile(recorder=rec, checkpointer=str(db))
    with pytest.raises(RuntimeError):
        app.invoke("refund", thread_id="t")
    res = app.resume("t")
    rec.flush()
    run = TraceStore(db).get_run(res.run_id)
    assert (run["status"], run["error"], run["output"]) == ("succeeded", None, "billing:refund")
    app.close()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["t.checkpoints.db", "t.db"]
