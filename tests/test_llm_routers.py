"""LLM routers (reasoning, Router-R1) against the scripted local OpenAI-compatible server, plus rewards.

The local llama.cpp tests (grammar output, batched label scoring) are marked slow.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from crossroads import (
    END,
    START,
    ConfigError,
    CostModel,
    Flow,
    MemoryRecorder,
    Message,
    RouteContext,
    RouterOutputError,
    TargetInfo,
    agent,
    available_routers,
    llm_agent,
)
from crossroads.agents.backends.litellm_model import LiteLLMModel
from crossroads.agents.models import FunctionModel
from crossroads.routers.llm_base import render_card
from crossroads.routers.reasoning import ReasoningRouter, parse_agent_set
from crossroads.routers.rewards import (
    agent_selection_reward,
    exact_match,
    parse_r1_completion,
    router_r1_reward,
)
from crossroads.routers.router_r1 import (
    RouterR1Router,
    parse_r1_action,
    router_r1_agent,
)
from crossroads.routers.simple import FixedRouter
from crossroads.testing import ScriptedOpenAIServer
from crossroads.tracing.records import CallRecord, DecisionRecord, EventRecord

CARDS = (
    TargetInfo(name="billing", description="Refunds, invoices and charges"),
    TargetInfo(name="tech", description="Crashes, errors and bugs"),
    TargetInfo(name="faq", description="General questions"),
)


def _echo_agent(name: str, fmt: str = "{n}: {text}") -> Any:
    return agent(name, lambda text: fmt.format(n=name, text=text))


def _reply(*texts: str) -> Any:
    """A server reply function that returns ``texts`` in order (then the last one)."""
    seq = list(texts)
    lock = threading.Lock()

    def reply(messages: list[dict[str, Any]]) -> str:
        with lock:
            return seq.pop(0) if len(seq) > 1 else seq[0]

    return reply


def _model(srv: ScriptedOpenAIServer, timeout_s: float = 10.0) -> LiteLLMModel:
    return LiteLLMModel("openai/router-llm", api_base=srv.url, api_key="sk-test", cost=CostModel(input_per_mtok=1.0,
                        output_per_mtok=2.0), timeout_s=timeout_s)


def test_registered() -> None:
    assert {"reasoning", "router_r1"} <= set(available_routers())


def test_valid_set_with_tool_constraint_rank_scores_and_usage() -> None:
    out = json.dumps({"reasoning": "A double charge is billing; the app error is tech.", "agents": ["billing", "tech"]})
    with ScriptedOpenAIServer(reply=_reply(out)) as srv:
        router = ReasoningRouter(model=_model(srv), k=2)
        d = router.route(RouteContext(query="the app crashed and charged me twice", candidates=CARDS))
        payload = srv.requests[0]
    assert d.targets == ("billing", "tech")
    assert d.rationale == "A double charge is billing; the app error is tech."
    # rank-derived: 1/(rank+1) for the chosen, 0 for the rest
    assert dict(d.scores) == {"billing": 1.0, "tech": 0.5, "faq": 0.0}
    assert d.metadata["score_kind"] == "rank" and d.metadata["constraint"] == "tools"
    # the output is constrained by a route tool whose schema lists exactly the candidates
    params = payload["tools"][0]["function"]["parameters"]
    assert params["properties"]["agents"]["items"]["enum"] == ["billing", "tech", "faq"]
    assert params["properties"]["agents"]["maxItems"] == 2
    # the cards are in the prompt
    assert "- billing: Refunds, invoices and charges" in payload["messages"][0]["content"]
    # the router's own call: the scripted server reports 11 prompt tokens and one token per word
    (call,) = d.metadata["router_calls"]
    assert call["input_tokens"] == 11 and call["output_tokens"] == len(out.split())
    assert d.cost_usd == pytest.approx(11 * 1.0 / 1e6 + len(out.split()) * 2.0 / 1e6)


def test_tool_call_arguments_are_parsed() -> None:
    # a provider that answers with the route tool: arguments carry the JSON
    def fn(msgs: Any) -> str:
        return "ignored prose"

    class ToolModel(FunctionModel):
        def complete(self, messages: Any, *, tools: Any = None) -> Any:  # type: ignore[override]
            import dataclasses

            resp = super().complete(messages)
            args = json.dumps({"reasoning": "docs", "agents": ["faq"]})
            return dataclasses.replace(resp, tool_calls=({"id": "1", "name": "route", "arguments": args},))

    d = ReasoningRouter(model=ToolModel(fn)).route(RouteContext(query="what is this", candidates=CARDS))
    assert d.targets == ("faq",)


def test_trace_show_renders_reasoning_and_router_call(tmp_path: Any) -> None:
    from rich.console import Console

    from crossroads._render import render_run
    from crossroads.tracing import SQLRecorder, TraceStore

    out = json.dumps({"reasoning": "a refund is a billing matter", "agents": ["billing"]})
    db = str(tmp_path / "t.db")
    with ScriptedOpenAIServer(reply=_reply(out)) as srv:
        flow = Flow("show")
        for c in CARDS:
            flow.add(_echo_agent(c.name))
        flow.route(START, ReasoningRouter(model=_model(srv), label="triage"), candidates=[c.name for c in CARDS])
        rec = SQLRecorder(db)
        res = flow.compile(recorder=rec).invoke("refund please")
        rec.close()
    console = Console(record=True, width=250)
    console.print(render_run(TraceStore(db).get_run(res.run_id)))
    text = console.export_text()
    assert "rationale: a refund is a billing matter" in text
    assert "router call router:triage model=openai/router-llm  tokens 11→" in text


def test_garbled_then_reask_succeeds() -> None:
    good = json.dumps({"reasoning": "refund", "agents": ["billing"]})
    with ScriptedOpenAIServer(reply=_reply("I think billing handles it", good)) as srv:
        d = ReasoningRouter(model=_model(srv), max_reasks=1).route(RouteContext(query="refund", candidates=CARDS))
        second = srv.requests[1]["messages"]
    assert d.targets == ("billing",)
    assert len(d.metadata["router_calls"]) == 2
    (err,) = d.metadata["routing_errors"]
    assert err["raw_output"] == "I think billing handles it" and "not JSON" in err["error"]
    # the re-ask shows the model its own reply and the error
    assert second[-2] == {"role": "assistant", "content": "I think billing handles it"}
    assert "invalid" in second[-1]["content"] and "not JSON" in second[-1]["content"]


def test_non_candidate_exhausts_reasks_then_fallback_decides_and_is_traced() -> None:
    bad = json.dumps({"reasoning": "shipping issue", "agents": ["shipping"]})
    rec = MemoryRecorder()
    with ScriptedOpenAIServer(reply=_reply(bad)) as srv:
        router = ReasoningRouter(model=_model(srv), max_reasks=2, fallback=FixedRouter("faq"), label="triage")
        flow = Flow("llm")
        for c in CARDS:
            flow.add(_echo_agent(c.name))
        flow.route(START, router, candidates=[c.name for c in CARDS])
        for c in CARDS:
            flow.edge(c.name, END)
        res = flow.compile(recorder=rec).invoke("where is my parcel?")
        n_requests = len(srv.requests)
    assert n_requests == 3  # one ask + two bounded re-asks
    assert res.output == "faq: where is my parcel?"
    (dec,) = rec.of_type(DecisionRecord)
    assert dec.decision.targets == ("faq",) and dec.decision.metadata["fallback"] == "fixed"
    events = [e for e in rec.of_type(EventRecord) if e.kind == "routing_error"]
    assert len(events) == 3
    assert all("'shipping', which is not a candidate" in e.detail["message"] for e in events)
    assert events[0].detail["raw_output"] == bad and events[0].decision_id == dec.decision.decision_id
    calls = [c for c in rec.of_type(CallRecord) if c.usage.target == "router:triage"]
    assert len(calls) == 3 and all(c.usage.input_tokens == 11 for c in calls)


def test_no_fallback_raises_naming_raw_output() -> None:
    with ScriptedOpenAIServer(reply=_reply('{"reasoning": "x", "agents": []}')) as srv:
        router = ReasoningRouter(model=_model(srv), max_reasks=0)
        with pytest.raises(RouterOutputError, match="empty set"):
            router.route(RouteContext(query="hi", candidates=CARDS))


def test_timeout_goes_to_fallback_without_reask() -> None:
    with ScriptedOpenAIServer(script=["hang"], hang_s=3.0) as srv:
        router = ReasoningRouter(model=_model(srv, timeout_s=0.5), max_reasks=3, fallback={"type": "fixed",
                                                                                            "params": {"target": "tech"}})
        d = router.route(RouteContext(query="error 500", candidates=CARDS))
        n = len(srv.requests)
    assert n == 1
    assert d.targets == ("tech",)
    (err,) = d.metadata["routing_errors"]
    assert "timeout" in err["error"].lower() and err["raw_output"] is None
    assert d.metadata["router_calls"] == []


def test_out_of_scope_goes_to_the_configured_target() -> None:
    cands = (*CARDS, TargetInfo(name="human"))
    with ScriptedOpenAIServer(reply=_reply('{"reasoning": "weather is not ours", "agents": ["out_of_scope"]}')) as srv:
        router = ReasoningRouter(model=_model(srv), out_of_scope="human")
        d = router.route(RouteContext(query="weather tomorrow?", candidates=cands))
        enum = srv.requests[0]["tools"][0]["function"]["parameters"]["properties"]["agents"]["items"]["enum"]
    assert enum == ["billing", "tech", "faq", "out_of_scope"]  # the out-of-scope target is not a card
    assert d.targets == ("human",) and d.metadata["out_of_scope"] is True
    assert d.scores["human"] == 1.0 and d.scores["billing"] == 0.0


@pytest.mark.parametrize("raw, err", [
    ('{"reasoning": "x", "agents": ["billing", "tech", "faq"]}', "more than k=2"),
    ('{"reasoning": "x", "agents": ["billing", "out_of_scope"]}', "mixes out-of-scope"),
    ('{"reasoning": "x"}', "no 'agents'"),
    ("[1, 2]", "not JSON"),
    ('["billing"]', "not JSON"),
])
def test_parse_rejects(raw: str, err: str) -> None:
    with pytest.raises(RouterOutputError, match=err):
        parse_agent_set(raw, ["billing", "tech", "faq"], k=2, allow_oos=True)


def test_parse_accepts_fences_case_and_duplicates() -> None:
    p = parse_agent_set('```json\n{"reasoning": "r", "agents": ["Billing", "billing", "tech"]}\n```',
                        ["billing", "tech"], k=2, allow_oos=False)
    assert p.chosen == ("billing", "tech") and p.reasoning == "r"


def test_render_card_descriptors() -> None:
    info = TargetInfo(name="gpt", description="strong", cost=CostModel(input_per_mtok=2.5, output_per_mtok=10),
                      expected_latency_ms=800, quality=0.83)
    assert render_card(info, examples=["a", "b"]) == (
        '- gpt: strong Examples: "a"; "b". [price $2.5/$10 per 1M in/out tokens, latency ~800 ms, quality 0.83]')


def test_fan_out_and_refiner_flow() -> None:
    out = json.dumps({"reasoning": "both a charge and a crash", "agents": ["billing", "tech"]})

    def refine(msgs: Any) -> str:
        text = msgs[-1].content
        return "MERGED(" + " + ".join(line for line in text.splitlines() if line.startswith("[")) + ")"

    refiner = llm_agent("refiner", FunctionModel(refine, name="refiner-llm"), "Merge the answers; resolve conflicts.")
    rec = MemoryRecorder()
    with ScriptedOpenAIServer(reply=_reply(out)) as srv:
        flow = Flow("fan")
        for c in CARDS:
            flow.add(_echo_agent(c.name, "{n} says ok"))
        flow.add(refiner)
        flow.route(START, ReasoningRouter(model=_model(srv), k=2), candidates=[c.name for c in CARDS], merge="refiner")
        flow.edge("refiner", END)
        res = flow.compile(recorder=rec).invoke("charged twice after the crash")
    assert res.output == "MERGED([billing] + [tech])"
    (dec,) = rec.of_type(DecisionRecord)
    assert dec.decision.targets == ("billing", "tech") and dec.decision.rationale == "both a charge and a crash"


def test_shortlist_keeps_the_right_cards_and_reports_it() -> None:
    from crossroads.agents.embeddings import default_embedder

    names = ["billing", "tech", "faq", "weather", "music", "cooking", "travel", "sports", "news", "jokes"]
    descs = ["refunds invoices charges", "software crashes and errors", "general questions", "weather forecasts",
             "songs and playlists", "recipes and cooking", "flights and hotels", "football scores", "headlines",
             "tell a joke"]
    cands = tuple(TargetInfo(name=n, description=d) for n, d in zip(names, descs, strict=True))
    seen: dict[str, Any] = {}

    def fn(msgs: Any) -> str:
        seen["prompt"] = msgs[0].content
        return json.dumps({"reasoning": "recipe", "agents": ["cooking"]})

    router = ReasoningRouter(model=FunctionModel(fn), shortlist=3, embedder=default_embedder())
    d = router.route(RouteContext(query="how do I bake bread? give me a recipe", candidates=cands))
    assert d.targets == ("cooking",)
    assert "cooking" in d.metadata["shortlist"] and len(d.metadata["shortlist"]) == 3
    assert "- music" not in seen["prompt"]  # cut cards are not in the prompt
    assert set(d.scores) == set(names)


class _WordEmbedder:
    """One dimension per distinct word, L2-normalised: cosine similarities a test can compute by hand."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def embed(self, texts: Any) -> Any:
        import numpy as np

        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(":", " ").split():
                out[i, self.vocab.setdefault(w, len(self.vocab))] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def embed_one(self, text: str) -> Any:
        return self.embed([text])[0]


def test_shortlist_by_examples_finds_what_the_card_text_dilutes_and_lists_by_score() -> None:
    # alpha's description is the query word (cosine 1/sqrt(2) as one card text); beta has it as an example
    # utterance: joined into beta's card text it scores 1/sqrt(5), as its own index text it scores 1
    cands = (TargetInfo(name="alpha", description="zebra"),
             TargetInfo(name="beta", description="one two three", metadata={"examples": ["zebra"]}),
             TargetInfo(name="gamma", description="four"), TargetInfo(name="delta", description="five"))
    prompts: list[str] = []

    def fn(msgs: Any) -> str:
        prompts.append(msgs[0].content)
        return json.dumps({"reasoning": "", "agents": ["beta"]})

    def route(**kw: Any) -> Any:
        r = ReasoningRouter(model=FunctionModel(fn), embedder=_WordEmbedder(), label_scores=False, **kw)
        return r.route(RouteContext(query="zebra", candidates=cands))

    with pytest.raises(RouterOutputError):  # the card index keeps alpha only: beta is not a candidate
        route(shortlist=1)
    d = route(shortlist=1, shortlist_index="examples")
    assert d.targets == ("beta",) and d.metadata["shortlist"] == ["beta"]
    # pool order (default) vs most similar first: beta (1.0) before alpha (0.707)
    route(shortlist=2, shortlist_index="examples")
    assert prompts[-1].index("- alpha") < prompts[-1].index("- beta")
    route(shortlist=2, shortlist_index="examples", shortlist_order="score")
    assert prompts[-1].index("- beta") < prompts[-1].index("- alpha")
    assert '"zebra"' in prompts[-1]  # card_examples defaults to 3: beta's card shows its example
    route(shortlist=2, shortlist_index="examples", shortlist_order="score", card_examples=0)
    assert "Examples" not in prompts[-1] and "- beta" in prompts[-1]  # the index still found beta by it
    with pytest.raises(ConfigError, match="shortlist_order must be one of pool, score"):
        ReasoningRouter(shortlist_order="best")
    with pytest.raises(ConfigError, match="shortlist_index must be one of card, examples"):
        ReasoningRouter(shortlist_index="all")
    with pytest.raises(ConfigError, match="card_examples must be >= 0"):
        ReasoningRouter(card_examples=-1)


# -- Router-R1 ----------------------------------------------------------------------------------------------

def _pool(srv_cheap: ScriptedOpenAIServer, srv_strong: ScriptedOpenAIServer) -> dict[str, Any]:
    return {"cheap": LiteLLMModel("openai/cheap", api_base=srv_cheap.url, api_key="k", cost=CostModel(input_per_mtok=1.0)),
            "strong": LiteLLMModel("openai/strong", api_base=srv_strong.url, api_key="k", cost=CostModel(input_per_mtok=10.0))}


POOL_CARDS = (TargetInfo(name="cheap", description="small model", cost=CostModel(input_per_mtok=1.0)),
              TargetInfo(name="strong", description="large model", cost=CostModel(input_per_mtok=10.0), quality=0.9))


def test_router_r1_multi_round_scripted_policy_and_two_pool_models() -> None:
    policy_turns = _reply("<think>start cheap</think><search>cheap: what is 6*7?</search><information>fake</information>",
                          "<think>double-check</think>\nroute model=strong: is 6*7 = 42?",
                          "<think>both agree</think><answer>42</answer>")
    rec = MemoryRecorder()
    with ScriptedOpenAIServer(reply=policy_turns) as pol, ScriptedOpenAIServer(reply=lambda m: "42") as cheap, \
            ScriptedOpenAIServer(reply=lambda m: "yes, 42") as strong:
        router = RouterR1Router(model=_model(pol), pool=_pool(cheap, strong), max_rounds=4, label="r1")
        flow = Flow("r1")
        for c in POOL_CARDS:
            flow.add(_echo_agent(c.name))
        flow.route(START, router, candidates=["cheap", "strong"])
        flow.edge("cheap", END).edge("strong", END)
        res = flow.compile(recorder=rec).invoke("what is 6*7?")
        cheap_q = cheap.requests[0]["messages"][-1]["content"]
        third = pol.requests[2]["messages"]
    assert cheap_q == "what is 6*7?" and third[-1]["content"] == "<information>yes, 42</information>"
    # the hallucinated <information> after </search> is cut from the policy's turn (litellm moves <think>
    # blocks of a reply into reasoning_content, so the content starts at the action)
    assert third[2]["content"].endswith("<search>cheap: what is 6*7?</search>") and "fake" not in third[2]["content"]
    decs = rec.of_type(DecisionRecord)
    top = next(d for d in decs if d.source == START)
    assert top.decision.targets == ("strong",) and res.output == "strong: what is 6*7?"
    assert top.decision.metadata["answer"] == "42" and top.decision.metadata["stopped_by"] == "answer"
    rounds = [d for d in decs if d.source != START]
    assert [(d.source, d.decision.targets) for d in rounds] == [("__start__/round0", ("cheap",)),
                                                                ("__start__/round1", ("strong",))]
    assert rounds[1].query == "is 6*7 = 42?"
    # cost: 3 policy calls (11 in at $1/M, words out at $2/M) + cheap (11 in at $1/M) + strong (11 in at $10/M)
    policy_out = sum(len(t.split()) for t in ["<think>start cheap</think><search>cheap: what is 6*7?</search><information>fake</information>",
                                              "<think>double-check</think>\nroute model=strong: is 6*7 = 42?",
                                              "<think>both agree</think><answer>42</answer>"])
    expected = 3 * 11 / 1e6 + policy_out * 2 / 1e6 + 11 * 1 / 1e6 + 11 * 10 / 1e6
    assert top.decision.cost_usd == pytest.approx(expected)
    calls = rec.of_type(CallRecord)
    assert sorted(c.usage.target for c in calls if c.step_id == top.decision.decision_id) == [
        "cheap", "router:r1", "router:r1", "router:r1", "strong"]


def test_router_r1_budget_stops_and_max_rounds() -> None:
    turn = "<think>ask</think><search>strong: q</search>"
    with ScriptedOpenAIServer(reply=_reply(turn)) as pol, ScriptedOpenAIServer(reply=lambda m: "a") as cheap, \
            ScriptedOpenAIServer(reply=lambda m: "b") as strong:
        r = RouterR1Router(model=_model(pol), pool=_pool(cheap, strong), max_rounds=5, budget_usd=1e-4)
        res = r.run(RouteContext(query="q", candidates=POOL_CARDS))
        # one round costs 11 tokens at $1/M + words at $2/M (policy) + 11 at $10/M (strong) = 1.27e-4 >= budget
        assert res.stopped_by == "budget" and len(res.rounds) == 1 and res.answer == "b"
        r2 = RouterR1Router(model=_model(pol), pool=_pool(cheap, strong), max_rounds=2)
        res2 = r2.run(RouteContext(query="q", candidates=POOL_CARDS))
        assert res2.stopped_by == "max_rounds" and len(res2.rounds) == 2


def test_router_r1_malformed_turns_and_direct_answer() -> None:
    with ScriptedOpenAIServer(reply=_reply("<search>gpt9: q</search>", "<answer>Paris</answer>")) as pol, \
            ScriptedOpenAIServer() as cheap, ScriptedOpenAIServer() as strong:
        r = RouterR1Router(model=_model(pol), pool=_pool(cheap, strong))
        d = r.route(RouteContext(query="capital of France?", candidates=POOL_CARDS))
    assert d.metadata["format_errors"] == 1 and "'gpt9', which is not in the pool" in d.metadata["routing_errors"][0]["error"]
    assert d.metadata["answer"] == "Paris"
    assert d.targets == ("cheap",) and "cheapest candidate" in d.rationale


def test_router_r1_agent_outputs_the_answer() -> None:
    with ScriptedOpenAIServer(reply=_reply("<think>t</think><search>cheap: x</search>", "<answer>done</answer>")) as pol, \
            ScriptedOpenAIServer(reply=lambda m: "partial") as cheap, ScriptedOpenAIServer() as strong:
        r = RouterR1Router(model=_model(pol), pool=_pool(cheap, strong))
        t = router_r1_agent("r1", r, POOL_CARDS)
        flow = Flow("a").add(t)
        flow.edge(START, "r1").edge("r1", END)
        res = flow.compile().invoke("x")
    assert res.output == "done"


def test_parse_r1_action() -> None:
    assert parse_r1_action("<think>a</think><search>m1: q1</search><answer>x</answer>", ["m1"]) == ("route", "a", "m1", "q1")
    assert parse_r1_action("<think>a</think><answer>x</answer><search>m1: q</search>", ["m1"])[:3] == ("answer", "a", "x")
    with pytest.raises(RouterOutputError, match="no <search>"):
        parse_r1_action("just text", ["m1"])


# -- rewards -----------------------------------------------------------------------------------------------

GOOD = ("<think>need a fact</think><search>llama-8b: capital of France</search>"
        "<information>Paris</information><answer>The Paris</answer>")


def test_router_r1_reward_hand_computed() -> None:
    # valid format, exact match after normalisation ("The Paris" -> "paris"), c = 0.2, cost 0.3 of scale 1
    assert router_r1_reward(GOOD, "Paris", cost_usd=0.3, cost_scale_usd=1.0, c=0.2) == pytest.approx(1.0 * 0.8 + 0.7 * 0.2)
    # wrong answer: only the cost reward remains
    assert router_r1_reward(GOOD, "Lyon", cost_usd=0.3, c=0.2) == pytest.approx(0.7 * 0.2)
    # cost above the scale clips the cost reward at 0
    assert router_r1_reward(GOOD, "Paris", cost_usd=5.0, cost_scale_usd=1.0, c=0.5) == pytest.approx(0.5)
    # format violation: -1 * (1 - c), outcome and cost rewards dropped even though the answer is right
    assert router_r1_reward(GOOD + " trailing", "Paris", cost_usd=0.0, c=0.2) == pytest.approx(-0.8)
    assert router_r1_reward(GOOD, "Paris", c=0.0, pool=["gpt-4o"]) == -1.0
    with pytest.raises(ValueError):
        router_r1_reward(GOOD, "Paris", c=1.5)


@pytest.mark.parametrize("completion, problem", [
    ("<think>a</think>", "0 <answer>"),
    ("<answer>a</answer><answer>b</answer>", "2 <answer>"),
    ("<think><search>m: q</search></think><answer>a</answer>", "opened inside"),
    ("<search>m: q</search><answer>a</answer>", "not followed by <information>"),
    ("<search>no colon</search><information>x</information><answer>a</answer>", "'model: query'"),
    ("<answer>a</answer><think>later</think>", "not the last"),
    ("<answer> </answer>", "empty <answer>"),
    ("<think>a<answer>x</answer>", "opened inside"),
])
def test_r1_format_problems(completion: str, problem: str) -> None:
    t = parse_r1_completion(completion)
    assert not t.format_ok and any(problem in p for p in t.problems), t.problems


def test_r1_completion_parsed() -> None:
    t = parse_r1_completion(GOOD)
    assert t.format_ok and t.answer == "The Paris" and t.routes == (("llama-8b", "capital of France"),)
    assert exact_match("the  Paris!", ["paris"]) == 1.0 and exact_match("Paris, France", "Paris") == 0.0


def test_agent_selection_reward() -> None:
    cands = ["billing", "tech", "faq"]
    two = '{"reasoning": "r", "agents": ["tech", "billing"]}'
    assert agent_selection_reward(two, "billing", candidates=cands) == 1.0
    assert agent_selection_reward(two, "billing", candidates=cands, size_penalty=0.25) == 0.75
    assert agent_selection_reward(two, "faq", candidates=cands) == 0.0
    assert agent_selection_reward('{"reasoning": "r", "agents": ["out_of_scope"]}', "oos", candidates=cands) == 1.0
    assert agent_selection_reward('{"reasoning": "r", "agents": ["out_of_scope"]}', "faq", candidates=cands) == 0.0
    assert agent_selection_reward('{"agents": ["shipping"]}', "faq", candidates=cands) == -1.0
    assert agent_selection_reward("faq", "faq", candidates=cands) == -1.0


# -- local llama.cpp (slow) --------------------------------------------------------------------------------

def _local() -> Any:
    pytest.importorskip("llama_cpp")
    from crossroads.agents.backends.llama_cpp_model import LlamaCppModel

    return LlamaCppModel(n_ctx=2048, max_tokens=96)


@pytest.mark.slow
def test_local_batched_label_scoring_equals_separate_evaluation() -> None:
    import math

    import numpy as np

    m = _local()  # skips without the optional llama-cpp-python backend
    from llama_cpp import Llama

    msgs = [Message(role="user", content="Which agent handles refunds?")]
    labels = ["billing", "billing_disputes", "tech", "faq", "travel", "transfer", "translate", "weather", "music", "cooking"]
    batched = m.score_labels(msgs, labels, prefix='{"agents": ["', suffix='"')
    # batched: one prompt evaluation + one token per distinct label-token prefix, fewer than all label tokens
    total_tokens = sum(len(m._llm.tokenize((label + '"').encode(), add_bos=False, special=False)) for label in labels)
    assert m.label_evals < total_tokens
    # reference: an independent context that keeps the logits of every position (logits_all=True),
    # evaluating prompt + label in one go for each label
    ref = Llama(model_path=str(m.path), n_ctx=2048, logits_all=True, verbose=False)
    prompt = m._prompt_tokens(msgs, '{"agents": ["')
    expected = {}
    for label in labels:
        toks = ref.tokenize((label + '"').encode(), add_bos=False, special=False)
        ref.reset()
        ref.eval(prompt + toks)
        lp = 0.0
        for i, t in enumerate(toks):
            logits = np.asarray(ref.scores[len(prompt) + i - 1], dtype=np.float64)
            mx = logits.max()
            lp += float(logits[t] - mx - math.log(np.exp(logits - mx).sum()))
        expected[label] = lp
    for label in labels:
        assert batched[label] == pytest.approx(expected[label], rel=1e-2, abs=5e-2), label  # batch-size numerics
    # the scores discriminate: the labels do not all get the same log-probability
    assert max(expected.values()) - min(expected.values()) > 1.0


@pytest.mark.slow
def test_local_reasoning_router_grammar_output() -> None:
    m = _local()
    router = ReasoningRouter(model=m, k=2, out_of_scope="faq", max_reasks=0)
    d = router.route(RouteContext(query="I was charged twice for my order", candidates=CARDS))
    assert d.metadata["constraint"] == "json_schema"
    assert not d.metadata.get("routing_errors")  # the grammar makes the reply parse
    assert 1 <= len(d.targets) <= 2 and set(d.targets) <= {"billing", "tech", "faq"}
    assert d.metadata["score_kind"] == "label_prob"
    assert sum(d.scores.values()) == pytest.approx(1.0)
    call = d.metadata["router_calls"][0]
    assert call["input_tokens"] > 50 and call["output_tokens"] > 3


# -- eval glue (through the router protocol) ------------------------------------------------------------------

class _HashEmbedder:
    """Deterministic bag-of-words vectors (the eval glue only needs *an* embedder here)."""

    def embed(self, texts: Any) -> Any:
        import numpy as np

        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def embed_one(self, text: str) -> Any:
        return self.embed([text])[0]


def test_reasoning_eval_metrics_hand_computed() -> None:
    from crossroads.evals.agent_selection import IntentData
    from crossroads.evals.llm_routers import evaluate_reasoning_router

    train = IntentData(["pay bill", "pay invoice", "app crash", "app error", "hello there", "weather"],
                       ["d:billing", "d:billing", "d:tech", "d:tech", "d:faq", "oos"])
    test = IntentData(["refund", "crash", "hi", "rain"], ["d:billing", "d:tech", "d:faq", "oos"])
    # the LLM always answers [tech, billing]
    router = ReasoningRouter(model=FunctionModel(lambda m: '{"reasoning": "r", "agents": ["d:tech", "d:billing"]}'),
                             out_of_scope="oos", k=2)
    m = evaluate_reasoning_router(train, test, {"samples": 4}, _HashEmbedder(), router=router)
    assert m["n_sampled"] == 4
    assert m["top1_accuracy"] == 0.25  # only "crash" -> d:tech is right at rank 1
    assert m["set_accuracy"] == 0.5  # billing and tech rows hit the set
    assert m["mean_set_size"] == 2.0 and m["oos_recall"] == 0.0
    assert m["chance_top1"] == 0.25 and m["garbled_rate"] == 0.0
    assert m["shortlist_recall_at_m"] is None  # no shortlist configured


def test_reasoning_eval_reports_the_shortlist_alone_hand_computed() -> None:
    from crossroads.evals.agent_selection import IntentData
    from crossroads.evals.llm_routers import evaluate_reasoning_router

    train = IntentData(["pay bill", "app crash", "hello", "weather"], ["d:billing", "d:tech", "d:faq", "oos"])
    # by nearest example: pay -> billing (right), app -> tech (wrong; billing second by the stable tie order),
    # hello -> faq (right), rain -> nothing matches, billing first, and the row is out-of-scope (wrong)
    test = IntentData(["pay", "app", "hello", "rain"], ["d:billing", "d:billing", "d:faq", "oos"])
    router = ReasoningRouter(model=FunctionModel(lambda m: '{"reasoning": "", "agents": ["d:billing"]}'),
                             out_of_scope="oos", shortlist=2, shortlist_index="examples", shortlist_order="score",
                             embedder=_WordEmbedder(), label_scores=False)
    m = evaluate_reasoning_router(train, test, {"samples": 4, "examples": 5}, router.embedder, router=router)
    assert m["shortlist_recall_at_m"] == 1.0  # every in-scope gold is in the top 2
    assert m["shortlist_rank1_accuracy"] == pytest.approx(2 / 3)  # in-scope rows only
    assert m["shortlist_rank1_top1_on_sample"] == 0.5  # what copying rank 1 scores on the sample (oos row wrong)
    assert m["top1_accuracy"] == 0.5  # the LLM's billing is right on "pay" and "app"


def test_router_r1_eval_quality_and_cost_hand_computed() -> None:
    import numpy as np

    from crossroads.evals.llm_routers import evaluate_router_r1
    from crossroads.evals.query_routing import QueryData

    models = ["cheap", "strong"]
    Y = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    C = np.array([[1.0, 10.0], [2.0, 20.0], [1.0, 10.0]])
    train = QueryData(["a", "b", "c"], ["t"] * 3, models, np.zeros((3, 2)), Y, C)
    test = QueryData(["q1", "q2", "q3"], ["t"] * 3, models, np.zeros((3, 2)), Y, C)

    def policy(msgs: Any) -> str:  # one route to cheap, then answer
        return "<answer>x</answer>" if msgs[-1].content.startswith("<information>") else "<search>cheap: q</search>"

    pool = {"cheap": FunctionModel(lambda m: "c"), "strong": FunctionModel(lambda m: "s")}
    router = RouterR1Router(model=FunctionModel(policy), pool=pool)

    class Prices:
        prices = {"cheap": CostModel(input_per_mtok=1), "strong": CostModel(input_per_mtok=10)}

    m = evaluate_router_r1(train, test, Prices(), {"samples": 3}, router=router)
    assert m["best_quality"] == pytest.approx(1 / 3)  # Y[:, cheap] = 0, 1, 0
    # cost: cheap's recorded prompt price (1 + 2 + 1) over the best single model's (strong: 10 + 20 + 10)
    assert m["best_quality_cost"] == pytest.approx(4 / 40)
    assert m["sample_best_single_quality"] == pytest.approx(2 / 3) and m["sample_oracle_quality"] == pytest.approx(2 / 3)
    assert m["mean_rounds"] == 2.0 and m["mean_models_consulted"] == 1.0 and m["stopped_by"] == {"answer": 3}


@pytest.mark.slow  # runs a suite twice; runs in CI's slow step
def test_suite_skips_slow_entries_unless_asked(tmp_path: Any) -> None:
    from crossroads.evals.suite import run_suite

    p = tmp_path / "s.yaml"
    p.write_text("name: s\nkind: tool_graph\ndata: {dataset: 'builtin:self-healing-19', limit: 10}\nrouters:\n"
                 "  - {name: st, type: static}\n  - {name: sh, type: self_healing, slow: true}\n")
    res = run_suite(p, include_slow=False)
    assert res.results["skipped_slow"] == ["sh"] and set(res.results["routers"]) == {"st"}
    res = run_suite(p, include_slow=True)
    assert "skipped_slow" not in res.results and set(res.results["routers"]) == {"st", "sh"}
