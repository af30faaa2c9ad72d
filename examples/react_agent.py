"""A ReAct-style tool-calling agent, routed, offline.

The agent is an ``llm_agent`` with tools: its node runs model -> tool calls -> tool results -> model
until the model answers. The model here is a real OpenAI-compatible HTTP endpoint
(:class:`~crossroads.testing.ScriptedOpenAIServer` on 127.0.0.1) whose replies follow a fixed
policy, so the example runs without an API key; point ``LiteLLMModel`` at any provider to use a real
model. The same tools are also route targets: a bare expression goes straight to the calculator.

    python examples/react_agent.py "what is 17 * 23 plus the number of moons of Mars?"
    python examples/react_agent.py "17 * 23"
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quickstart_agents import calculator as _calculator  # noqa: E402

from crossroads import START, CostModel, Flow, LiteLLMModel, RulesRouter, llm_agent, tool  # noqa: E402
from crossroads.testing import ScriptedOpenAIServer  # noqa: E402

FACTS = {"moons of mars": "2", "moons of earth": "1", "planets": "8"}


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression (+ - * / ** % //, bounded)."""
    return _calculator(expression)


def lookup(query: str) -> str:
    """Look up a number fact: 'moons of mars', 'moons of earth', 'planets'."""
    key = query.lower().strip(" ?.")
    return FACTS.get(key, f"no fact about {query!r}; known: {', '.join(FACTS)}")


def scripted_policy(messages: list[dict[str, Any]]) -> Any:
    """What the scripted model answers: look facts up, then calculate, then answer (ReAct)."""
    last = messages[-1]
    tool_results = [m for m in messages if m.get("role") == "tool"]
    question = next(m["content"] for m in reversed(messages) if m.get("role") == "user")
    if last.get("role") == "user":
        fact = next((k for k in FACTS if k in question.lower()), None)
        if fact is not None:
            return {"content": "", "tool_calls": [{"id": "call_1", "name": "lookup",
                                                   "arguments": json.dumps({"query": fact})}]}
        expr = re.search(r"[\d][\d\s+\-*/().]*", question)
        if expr:
            return {"content": "", "tool_calls": [{"id": "call_1", "name": "calculate",
                                                   "arguments": json.dumps({"expression": expr.group(0).strip()})}]}
        return "I can look up facts and calculate."
    if len(tool_results) == 1 and tool_results[0].get("tool_call_id") == "call_1" and "plus" in question:
        expr = re.search(r"[\d][\d\s*/+\-]*\d", question)
        full = f"{expr.group(0) if expr else '0'} + {tool_results[0]['content']}"
        return {"content": "", "tool_calls": [{"id": "call_2", "name": "calculate",
                                               "arguments": json.dumps({"expression": full})}]}
    return f"The answer: {tool_results[-1]['content']}"


def build_flow(api_base: str) -> Flow:
    """The routed flow: bare expressions to the calculator tool, everything else to the agent."""
    chat = LiteLLMModel("openai/scripted-react", api_base=api_base, api_key="sk-local-test-key", cost=CostModel())
    calc = tool("calculate", calculate, description="Evaluates an arithmetic expression.")
    facts = tool("lookup", lookup, description="Looks up a number fact.")
    assistant = llm_agent("assistant", chat, "Answer with the tools: look facts up, then calculate.",
                          tools=[calc, facts], description="A tool-using assistant")
    flow = Flow("react").add(assistant, calc)
    flow.route(START, RulesRouter(rules=[{"when": {"regex": r"^[\d\s+\-*/().]+$"}, "route": "calculate"}],
                                  default="assistant", label="entry"),
               candidates=["assistant", "calculate"])
    return flow


def main(question: str) -> str:
    with ScriptedOpenAIServer(reply=scripted_policy) as srv:
        app = build_flow(srv.url).compile()
        result = app.invoke(question)
        for m in result.state["messages"]:
            kind = type(m).__name__
            calls = getattr(m, "tool_calls", None)
            print(f"  {kind:12} {m.content!s:60.60} {calls or ''}")
        return result.output or ""


if __name__ == "__main__":
    print(main(" ".join(sys.argv[1:]) or "what is 17 * 23 plus the number of moons of Mars?"))
