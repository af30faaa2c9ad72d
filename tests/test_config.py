"""YAML flows: the schema, and errors that name the file, the field and the fix."""

import textwrap
from pathlib import Path

import pytest

from crossroads import ConfigError, UnknownRouterError, load_flow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

AGENTS = textwrap.dedent('''
    def echo(text):
        return "echo:" + text
    def shout(text):
        return text.upper()
''')


def write(tmp_path, body):
    (tmp_path / "agents.py").write_text(AGENTS)
    p = tmp_path / "flow.yaml"
    p.write_text(textwrap.dedent(body))
    return p


GOOD = """
name: t
targets:
  echo: {callable: agents.py:echo, description: echoes}
  shout: {callable: agents.py:shout, kind: tool, cost: {per_call: 0.5}}
routers:
  r:
    type: rules
    params: {rules: [{when: {keyword: loud}, route: shout}], default: echo}
edges:
  - {from: START, route: r, candidates: [echo, shout]}
  - {from: shout, to: END}
"""


def test_good_flow_runs(tmp_path):
    app = load_flow(str(write(tmp_path, GOOD))).compile()
    assert app.invoke("be loud").output == "BE LOUD"
    res = app.invoke("hello")
    assert res.output == "echo:hello"
    assert app.invoke("loud").cost_usd == 0.5


def test_quickstart_example_routes_each_kind():
    app = load_flow(str(EXAMPLES / "quickstart.yaml")).compile()
    assert app.invoke("what is 12 * (3 + 4)?").output == "12 * (3 + 4) = 84"
    assert app.invoke("convert 5 km to miles").output == "5 km = 3.10686 miles"
    assert "SQLite" in app.invoke("where are traces stored?").output


def test_quickstart_routes_unseen_phrasings_and_answers_its_own_examples():
    """Queries that are not the router's examples reach the right agent (an independent check once saw
    "what is 5 * 5" go to the converter), and the converter answers the unit words its own examples use."""
    app = load_flow(str(EXAMPLES / "quickstart.yaml")).compile()
    expected = {"what is 5 * 5": "5 * 5 = 25", "what's 7 * 3": "7 * 3 = 21", "how much is 4 + 4": "4 + 4 = 8",
                "10 kg in pounds": "10 kg = 22.0462 pounds", "20 gallons to liters": "20 gallons = 75.7082 liters",
                "6 feet in cm": "6 feet = 182.88 cm", "50 F to C": "50 °F = 10 °C"}
    for query, answer in expected.items():
        assert app.invoke(query).output == answer, query


def test_non_utf8_or_directory_flow_file_is_named(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: t\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml:2: not UTF-8 text \(byte 0xe9 at offset 24\); save the flow file as UTF-8"):
        load_flow(str(bad))
    with pytest.raises(ConfigError, match="is a directory"):
        (tmp_path / "folder.yaml").mkdir()
        load_flow(str(tmp_path / "folder.yaml"))


def test_malformed_yaml_names_file_line_and_column(tmp_path):
    p = write(tmp_path, "name: t\ntargets:\n  a: {callable: x\n")
    with pytest.raises(ConfigError) as e:
        load_flow(str(p))
    assert str(p) in str(e.value) and "malformed YAML" in str(e.value) and ":4:" in str(e.value)


def test_validation_errors_name_the_field_path_and_allowed_fields(tmp_path):
    p = write(tmp_path, """
        targets:
          a: {callable: agents.py:echo, cost: {input_per_mtok: cheap}, colour: red}
        edges:
          - {from: START, to: a, route: r}
    """)
    with pytest.raises(ConfigError) as e:
        load_flow(str(p))
    msg = str(e.value)
    assert "targets.a.cost.input_per_mtok" in msg
    assert "targets.a.colour: unknown field; allowed here: callable, cost, description" in msg
    assert "edges.0" in msg and "exactly one of 'to'" in msg


def test_unknown_router_type(tmp_path):
    p = write(tmp_path, GOOD.replace("type: rules", "type: rulez"))
    with pytest.raises(UnknownRouterError) as e:
        load_flow(str(p))
    assert "unknown router 'rulez'" in str(e.value) and "did you mean 'rules'" in str(e.value)


def test_unknown_router_name_in_edge(tmp_path):
    p = write(tmp_path, GOOD.replace("route: r,", "route: triage,"))
    with pytest.raises(ConfigError, match=r"edges\[0\]: unknown router 'triage'; known: r"):
        load_flow(str(p))


def test_unknown_node(tmp_path):
    p = write(tmp_path, GOOD.replace("{from: shout, to: END}", "{from: shout, to: nowhere}"))
    with pytest.raises(ConfigError, match=r"edges\[1\]|unknown node 'nowhere'"):
        load_flow(str(p))


def test_router_naming_a_missing_target(tmp_path):
    p = write(tmp_path, GOOD.replace("default: echo", "default: whisper"))
    with pytest.raises(ConfigError, match="names target\\(s\\) whisper that are not candidates"):
        load_flow(str(p))


def test_missing_callable_and_bad_reference(tmp_path):
    p = write(tmp_path, GOOD.replace("agents.py:echo", "agents.py:ecco"))
    with pytest.raises(ConfigError, match="unknown attribute of agents.py 'ecco'.*did you mean 'echo'"):
        load_flow(str(p))
    p = write(tmp_path, GOOD.replace("agents.py:echo", "missing.py:echo"))
    with pytest.raises(ConfigError, match="missing.py does not exist"):
        load_flow(str(p))


def test_module_reference(tmp_path, monkeypatch):
    (tmp_path / "myflows.py").write_text(textwrap.dedent('''
        from crossroads import Flow, agent
        def build():
            return Flow("mod").add(agent("a", lambda t: "from module"))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_flow("myflows:build").compile().invoke("x").output == "from module"
    with pytest.raises(ConfigError, match="neither a YAML file"):
        load_flow("no_such_thing")


def test_model_targets_from_yaml_with_key_from_env(tmp_path, monkeypatch):
    from crossroads.testing import ScriptedOpenAIServer

    with ScriptedOpenAIServer(script=["500"]) as srv:
        p = tmp_path / "m.yaml"
        p.write_text(textwrap.dedent(f"""
            targets:
              assistant:
                kind: agent
                instructions: Be brief.
                model: {{provider: litellm, name: openai/fake, api_base: "{srv.url}", api_key_env: FAKE_KEY,
                         retries: 1, timeout_s: 5}}
                cost: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
        """))
        with pytest.raises(ConfigError, match="env var FAKE_KEY"):
            load_flow(str(p))
        monkeypatch.setenv("FAKE_KEY", "sk-from-env-1234567890")
        res = load_flow(str(p)).compile().invoke("hi")
    assert res.output == "echo: hi" and res.cost_usd > 0
    assert srv.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_model_target_needs_a_model_and_unknown_price(tmp_path):
    p = write(tmp_path, "targets:\n  m: {kind: model}\n")
    with pytest.raises(ConfigError, match="a model target needs 'model"):
        load_flow(str(p))
    p = write(tmp_path, "targets:\n  m: {kind: model, model: {provider: litellm, name: my-private-llm}}\n")
    with pytest.raises(ConfigError, match="targets.m: model 'my-private-llm' is not in litellm's bundled cost map"):
        load_flow(str(p))


def test_quickstart_calculator_refuses_unbounded_work():
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("qs_agents", EXAMPLES / "quickstart_agents.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t0 = time.perf_counter()
    out = mod.calculator("what is 9**9**9")  # before: pinned a CPU for 20 s (through serve)
    assert time.perf_counter() - t0 < 1.0
    assert out == "I cannot compute '9**9**9': 9 ** 387420489 is too large (over 4096 bits); I only do bounded arithmetic"
    assert mod.calculator("2 ** 10") == "2 ** 10 = 1024"
    assert mod.calculator("2 ** 4096").startswith("I cannot compute")  # 4097 bits: just over the bound
    assert mod.calculator("2 ** 4095") == f"2 ** 4095 = {2 ** 4095}"
    assert mod.calculator("9.0 ** 999") == "I cannot compute '9.0 ** 999': 9.0 ** 999 overflows a float"
    assert mod.calculator("1 / 0") == "1 / 0: division by zero"
    assert mod.calculator("1" + " + 1" * 100).startswith("That expression is longer than 200")


@pytest.mark.parametrize("reserved", ["END", "start"])
def test_target_named_like_a_graph_end_is_refused(tmp_path, reserved):
    """A target called END (e.g. an agent label learned from data) could never be chosen: in edges the name
    means the graph's end. The flow refuses it and says how to fix it."""
    p = write(tmp_path, f"""
name: t
targets:
  {reserved}: {{kind: tool, callable: "builtins:len"}}
  other: {{kind: tool, callable: "builtins:len"}}
edges:
  - {{from: START, to: other}}
""")
    with pytest.raises(ConfigError, match=rf"target name '{reserved}' is reserved .*rename the target, e.g. {reserved.lower()}_agent"):
        load_flow(str(p))


def test_target_name_with_a_colon_is_refused_naming_the_fix(tmp_path):
    p = write(tmp_path, """
name: t
targets:
  "billing:refund": {kind: tool, callable: "builtins:len"}
edges:
  - {from: START, to: "billing:refund"}
""")
    with pytest.raises(ConfigError, match=r"target name 'billing:refund' contains ':'.*rename the target, e.g. 'billing_refund'"):
        load_flow(str(p))
