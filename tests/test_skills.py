"""Skills: loaders (real sample files), registry, persisted index, retrieval metrics, the skills router."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from crossroads import END, START, Flow
from crossroads.agents.embeddings import default_embedder
from crossroads.errors import ConfigError, SkillError
from crossroads.evals.skill_routing import (
    abstain_precision_recall,
    evaluate_skill_router,
    load_skill_queries,
    mrr,
    ndcg_at_k,
    recall_at_k,
)
from crossroads.skills import (
    Skill,
    SkillIndex,
    SkillRegistry,
    SkillRouter,
    load_agent_skills,
    load_mcp_tools,
    load_openai_functions,
    load_skills,
    skill_from_callable,
)
from crossroads.types import RouteContext

DATA = Path(__file__).parent / "data" / "skills"


# ---- loaders ------------------------------------------------------------------------------------

def test_agent_skills_folder_gives_front_matter_body_and_resources():
    skills = {s.name: s for s in load_agent_skills(DATA / "agent_skills")}
    assert set(skills) == {"pdf-forms", "weather-forecast"}
    pdf = skills["pdf-forms"]
    assert pdf.description == "Fill in and extract the fields of PDF forms."
    assert pdf.tags == ("documents", "pdf")
    assert "flatten it" in pdf.body and "Resources: scripts/fields.py" in pdf.body
    assert "flatten it" in pdf.text("full") and "flatten" not in pdf.text("name_description")


def test_mcp_tools_list_response():
    skills = load_mcp_tools(DATA / "mcp_tools_list.json", server="travel")
    assert [s.name for s in skills] == ["get_weather", "search_flights"]
    assert skills[1].parameters["required"] == ["origin", "destination", "date"]
    assert skills[0].tags == ("mcp:travel",)


def test_openai_functions_wrapped_and_bare_and_bfcl_jsonl():
    skills = load_openai_functions(DATA / "openai_functions.json")
    assert [s.name for s in skills] == ["send_email", "convert_currency"]
    assert skills[0].parameters["required"] == ["to", "subject"]
    bfcl = load_openai_functions(DATA / "bfcl_functions.jsonl")
    assert [s.name for s in bfcl] == ["calculate_triangle_area", "math.factorial", "math.hypot"]
    assert bfcl[0].to_openai_tool()["function"]["parameters"]["type"] == "object"  # BFCL's "dict"


def test_load_skills_detects_each_format():
    assert len(load_skills(DATA / "agent_skills")) == 2
    assert load_skills(DATA / "mcp_tools_list.json")[0].name == "get_weather"
    assert load_skills(DATA / "openai_functions.json")[0].name == "send_email"


def test_skill_from_callable_schema_and_docstring():
    def get_stock_price(ticker: str, exchange: str = "NYSE") -> float:
        """Latest price of a stock.

        Prices are delayed by 15 minutes."""
        return 1.0

    s = skill_from_callable(get_stock_price)
    assert s.name == "get_stock_price" and s.description == "Latest price of a stock."
    assert s.body == "Prices are delayed by 15 minutes."
    assert s.parameters["properties"]["ticker"]["type"] == "string"
    assert s.parameters["required"] == ["ticker"]
    assert s.fn is get_stock_price


@pytest.mark.parametrize("content, field", [
    ('[{"description": "no name"}]', "'name'"),
    ('[{"name": "x", "parameters": [1, 2]}]', "'parameters'"),
    ('[{"name": "", "description": "empty"}]', "'name'"),
    ('{"tools": "nope"}', "'tools'"),
])
def test_malformed_function_files_name_file_and_field(tmp_path, content, field):
    p = tmp_path / "tools.json"
    p.write_text(content)
    with pytest.raises(SkillError) as e:
        load_skills(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_malformed_agent_skill_names_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "SKILL.md").write_text("no front matter here")
    with pytest.raises(SkillError, match="front matter") as e:
        load_agent_skills(tmp_path)
    assert "a/SKILL.md" in str(e.value)
    (tmp_path / "a" / "SKILL.md").write_text("---\nname: a\n---\nbody")
    with pytest.raises(SkillError, match="'description'"):
        load_agent_skills(tmp_path)
    (tmp_path / "a" / "SKILL.md").write_text("---\nname: [unclosed\n---\nbody")
    with pytest.raises(SkillError, match="not valid YAML"):
        load_agent_skills(tmp_path)


def test_not_json_names_the_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_text("{not json")
    with pytest.raises(SkillError, match="not JSON") as e:
        load_openai_functions(p)
    assert str(p) in str(e.value)


def test_registry_refuses_duplicates_and_unknown_names():
    reg = SkillRegistry(load_openai_functions(DATA / "openai_functions.json"))
    with pytest.raises(SkillError, match="duplicate skill name 'send_email'"):
        reg.add(Skill(name="send_email", source="other.json"))
    with pytest.raises(SkillError, match="no skill named 'nope'"):
        reg.get("nope")
    with pytest.raises(SkillError, match="no callable bound"):
        reg.targets(["send_email"])


# ---- index --------------------------------------------------------------------------------------

class CountingEmbedder:
    """The real local MiniLM, counting how many texts it was asked to embed."""

    def __init__(self):
        self.inner = default_embedder()
        self.model_id = self.inner.model_id
        self.dimension = self.inner.dimension
        self.texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)

    def embed_one(self, text):
        return self.embed([text])[0]


def test_index_rebuilds_only_changed_skills(tmp_path):
    emb = CountingEmbedder()
    skills = load_openai_functions(DATA / "openai_functions.json") + load_mcp_tools(DATA / "mcp_tools_list.json")
    path = tmp_path / "idx"
    first = SkillIndex.build(SkillRegistry(skills), emb, views=("full", "name"), path=path)
    assert first.embedded == 4 and emb.texts == 8  # 4 skills x 2 views
    again = SkillIndex.build(SkillRegistry(skills), emb, views=("full", "name"), path=path)
    assert again.embedded == 0 and emb.texts == 8
    np.testing.assert_array_equal(again.vectors["full"], first.vectors["full"])
    edited = [Skill(name=s.name, description=s.description + " Fast.", parameters=s.parameters)
              if s.name == "get_weather" else s for s in skills[:3]]  # one edited, one removed
    third = SkillIndex.build(SkillRegistry(edited), emb, views=("full", "name"), path=path)
    assert third.embedded == 1 and emb.texts == 10 and len(SkillIndex.load(path)) == 3
    np.testing.assert_array_equal(third.vectors["full"][0], first.vectors["full"][0])


def test_corrupt_index_is_refused_on_load_and_rebuilt_on_build(tmp_path):
    emb = CountingEmbedder()
    reg = SkillRegistry(load_openai_functions(DATA / "openai_functions.json"))
    SkillIndex.build(reg, emb, path=tmp_path)
    np.save(tmp_path / "vectors.full.npy", np.zeros((5, 384), np.float32))
    with pytest.raises(SkillError, match="does not match 2 skills"):
        SkillIndex.load(tmp_path)
    (tmp_path / "meta.json").write_text("{oops")
    with pytest.raises(SkillError, match="unreadable JSON"):
        SkillIndex.load(tmp_path)
    rebuilt = SkillIndex.build(reg, emb, path=tmp_path)
    assert rebuilt.embedded == 2 and len(SkillIndex.load(tmp_path)) == 2


# ---- metrics (hand-computed) -------------------------------------------------------------------

def test_retrieval_metrics_hand_computed():
    ranked, gold = ["a", "x", "b", "y"], ["a", "b"]
    assert recall_at_k(ranked, gold, 1) == 0.5
    assert recall_at_k(ranked, gold, 2) == 0.5
    assert recall_at_k(ranked, gold, 3) == 1.0
    assert mrr(["x", "y", "b"], ["b"]) == pytest.approx(1 / 3)
    assert mrr(["x", "y"], ["b"]) == 0.0
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.63093
    assert ndcg_at_k(ranked, gold, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # a gold item past k does not count; IDCG is capped at k items
    assert ndcg_at_k(["x", "a"], ["a", "b", "c"], 1) == 0.0
    assert ndcg_at_k(["a"], ["a", "b", "c"], 1) == 1.0
    p, r = abstain_precision_recall([True, True, False, False], [True, False, True, False])
    assert (p, r) == (0.5, 0.5)


def test_load_skill_queries_split_and_errors(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "1", "query": "hi", "gold": ["a"], "split": "train"}\n'
                 '{"id": "2", "query": "yo", "gold": [], "split": "test"}\n')
    assert [q.id for q in load_skill_queries(p, split="test")] == ["2"]
    p.write_text('{"query": 3}\n')
    with pytest.raises(ConfigError, match=r"q.jsonl:1"):
        load_skill_queries(p)


# ---- router --------------------------------------------------------------------------------------

def _pool() -> list[Skill]:
    return (load_openai_functions(DATA / "openai_functions.json") + load_mcp_tools(DATA / "mcp_tools_list.json")
            + load_agent_skills(DATA / "agent_skills") + load_openai_functions(DATA / "bfcl_functions.jsonl"))


def test_router_selects_by_body_and_scores_every_candidate():
    router = SkillRouter(_pool(), k=3)
    top = router.select("please fill in the fields of this pdf form for me")
    assert top[0].skill.name == "pdf-forms" and [s.rank for s in top] == [1, 2, 3]
    assert router.select("convert 100 dollars to euros", 1)[0].skill.name == "convert_currency"
    cands = router.registry.target_infos()
    d = router.route(RouteContext(query="what is the factorial of 5", candidates=cands))
    assert d.targets == ("math.factorial",)
    assert set(d.scores) == {c.name for c in cands}
    assert d.metadata["skills"][0] == "math.factorial" and len(d.metadata["skills"]) == 3
    assert router.tools_for("email my boss", 1)[0]["function"]["name"] == "send_email"


def test_router_restricted_to_flow_candidates():
    router = SkillRouter(_pool(), k=2)
    only = tuple(i for i in router.registry.target_infos() if i.name in ("send_email", "search_flights"))
    d = router.route(RouteContext(query="what is the factorial of 5", candidates=only))
    assert set(d.scores) == {"send_email", "search_flights"} and d.targets[0] in {"send_email", "search_flights"}


def test_fit_learns_rerank_and_abstain_threshold_then_save_load(tmp_path):
    router = SkillRouter(_pool(), k=2, default=END)
    train_q = ["send a mail to bob about lunch", "email the report to alice", "forecast for paris this week",
               "is it raining in tokyo", "convert 5 pounds to yen", "how many euros is 30 dollars",
               "find flights from SFO to JFK on May 3", "area of a triangle base 4 height 3",
               "write me a poem about autumn", "who won the 1998 world cup", "tell me a joke about cats",
               "what is the meaning of life"]
    gold = [["send_email"], ["send_email"], ["weather-forecast"], ["get_weather", "weather-forecast"],
            ["convert_currency"], ["convert_currency"], ["search_flights"], ["calculate_triangle_area"],
            [], [], [], []]
    fitted = router.fit(train_q * 3, gold * 3, validation_fraction=0.5)
    assert fitted["rerank_queries"] > 0 and router.reranker is not None
    assert router.abstain_threshold is not None
    before = [[s.skill.name for s in router.select(q)] for q in ["email carol", "write a haiku about rain"]]
    saved = router.save(tmp_path / "r")
    loaded = SkillRouter.load(saved)
    assert [[s.skill.name for s in loaded.select(q)] for q in ["email carol", "write a haiku about rain"]] == before
    # through YAML-style construction too
    assert SkillRouter(model=saved).abstain_threshold == router.abstain_threshold
    # abstaining routes to the default
    cands = (*router.registry.target_infos(), )
    from crossroads.types import TargetInfo
    cands = (*cands, TargetInfo(name=END))
    hi = loaded.abstain_threshold
    loaded.abstain_threshold = 2.0  # above any probability: always abstain
    d = loaded.route(RouteContext(query="email carol", candidates=cands))
    assert d.targets == (END,) and d.metadata["abstained"] is True
    assert loaded.select("email carol") == []
    loaded.abstain_threshold = hi


def test_skills_route_a_flow_to_a_bound_tool():
    calls = []

    def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
        """Convert an amount of money from one currency to another."""
        calls.append((amount, from_currency, to_currency))
        return f"{amount * 0.9:.2f} {to_currency}"

    def send_email(to: str, subject: str) -> str:
        """Send an email to a recipient with a subject."""
        return "sent"

    reg = SkillRegistry([skill_from_callable(convert_currency), skill_from_callable(send_email)])
    router = SkillRouter(reg, k=1, label="skills")
    flow = Flow("skills-demo").add(*reg.targets())
    flow.route(START, router, candidates=reg.names)
    flow.edge("convert_currency", END)
    flow.edge("send_email", END)
    app = flow.compile()
    out = app.invoke(json.dumps({"amount": 10, "from_currency": "USD", "to_currency": "EUR"}))
    assert out.output == "9.00 EUR" and calls == [(10, "USD", "EUR")]
    app.close()


def test_bad_router_config():
    with pytest.raises(ConfigError, match="'k'"):
        SkillRouter(_pool(), k=0)
    with pytest.raises(ConfigError, match="needs 'skills'"):
        SkillRouter()
    with pytest.raises(ConfigError, match="lexical_weight"):
        SkillRouter(_pool(), lexical_weight=float("nan"))
    with pytest.raises(SkillError, match="not in the registry"):
        SkillRouter(_pool()).fit(["x"], [["nope"]])
    with pytest.raises(SkillError, match="router.json missing"):
        SkillRouter.load(DATA)


def test_evaluate_skill_router_through_the_protocol():
    from crossroads.evals.skill_routing import SkillQuery

    router = SkillRouter(_pool(), k=3)
    qs = [SkillQuery("1", "fill this pdf form", ("pdf-forms",)), SkillQuery("2", "factorial of 6", ("math.factorial",)),
          SkillQuery("3", "send an email to dan", ("send_email",))]
    res = evaluate_skill_router(router, qs, latency_samples=3)
    assert res["recall@1"] == 1.0 and res["mrr"] == 1.0 and res["queries"] == 3


def test_skill_agent_gets_only_the_top_k_skills_as_tools():
    from crossroads import ModelResponse
    from crossroads.skills import skill_agent

    def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
        """Convert an amount of money from one currency to another."""
        return f"{amount * 0.5:.1f} {to_currency}"

    def send_email(to: str, subject: str) -> str:
        """Send an email to a recipient with a subject."""
        return "sent"

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    class Scripted:  # stands in for the provider: asks for a tool, then answers with its result
        name = "scripted"

        def __init__(self):
            self.sent = []

        def complete(self, messages, tools=None):
            self.sent.append((list(messages), tools))
            if len(self.sent) == 1:
                return ModelResponse(text="", model=self.name, tool_calls=({
                    "id": "c1", "name": "convert_currency",
                    "arguments": '{"amount": 10, "from_currency": "USD", "to_currency": "EUR"}'},))
            return ModelResponse(text=f"It is {messages[-1].content}.", model=self.name)

    reg = SkillRegistry([skill_from_callable(f) for f in (convert_currency, send_email, get_weather)])
    model = Scripted()
    agent = skill_agent("assistant", model, "Use the tools.", SkillRouter(reg), k=2)
    app = Flow("skills-agent").add(agent).compile()
    res = app.invoke("how much is 10 dollars in euros?")
    assert res.output == "It is 5.0 EUR."
    tools_sent = [t["function"]["name"] for t in model.sent[0][1]]
    assert len(tools_sent) == 2 and tools_sent[0] == "convert_currency"
    app.close()


def test_skill_routing_suite_on_a_user_pool_and_queries(tmp_path):
    from crossroads.evals.suite import run_suite

    queries = [
        {"id": "t1", "query": "fill in this pdf form", "gold": ["pdf-forms"], "split": "train"},
        {"id": "t2", "query": "mail the invoice to joe", "gold": ["send_email"], "split": "train"},
        {"id": "t3", "query": "compose a sonnet", "gold": [], "split": "train"},
        {"id": "t4", "query": "weather in oslo tomorrow", "gold": ["weather-forecast", "get_weather"], "split": "train"},
        {"id": "e1", "query": "send an email to my landlord", "gold": ["send_email"], "split": "test"},
        {"id": "e2", "query": "what is 7 factorial", "gold": ["math.factorial"], "split": "test"},
    ]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([s.to_openai_tool() for s in _pool() if s.name != "pdf-forms"]
                               + [Skill(name="pdf-forms", description="Fill in PDF forms").to_openai_tool()]))
    (tmp_path / "suite.yaml").write_text(
        "name: mine\nkind: skill_routing\ndata: {dataset: q.jsonl, format: skills, skills: pool.json}\n"
        "routers:\n  - {name: full, type: skills, params: {lexical_weight: 0.5, rerank: false}}\n"
        "settings: {bootstrap: 0, latency_samples: 2}\n")
    res = run_suite(tmp_path / "suite.yaml")
    m = res.results["routers"]["full"]
    assert res.results["n_train"] == 4 and res.results["n_test"] == 2 and res.results["n_skills"] == 9
    assert m["recall@1"] == 1.0 and m["with_gold"] == 2
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "x", "query": "q", "gold": ["nope"], "split": "test"}))
    with pytest.raises(ConfigError, match="not in the pool: \\['nope'\\]"):
        run_suite(tmp_path / "suite.yaml")


def test_skill_suite_scores_the_users_test_file_as_given(tmp_path):
    from crossroads.evals.suite import run_suite

    rows = [{"id": f"r{i}", "query": q, "gold": g} for i, (q, g) in enumerate([
        ("fill in this pdf form", ["pdf-forms"]), ("mail the invoice to joe", ["send_email"]),
        ("weather in oslo", ["get_weather"]), ("convert 3 euros to yen", ["convert_currency"])])]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "test.jsonl").write_text(json.dumps({"id": "t", "query": "email my boss", "gold": ["send_email"]}))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([s.to_openai_tool() for s in _pool()]))
    (tmp_path / "suite.yaml").write_text(
        "name: mine\nkind: skill_routing\ndata: {dataset: train.jsonl, format: skills, skills: pool.json}\n"
        "routers:\n  - {name: full, type: skills, params: {rerank: false}}\nsettings: {latency_samples: 1}\n")
    res = run_suite(tmp_path / "suite.yaml", test_file=tmp_path / "test.jsonl")
    assert res.results["n_test"] == 1 and res.results["n_train"] == 4 and "as given" in res.results["split"]
    # without a test file, rows lacking a split field are halved by id hash: never in both halves
    plain = run_suite(tmp_path / "suite.yaml")
    assert plain.results["n_train"] + plain.results["n_test"] == 4
