"""A step that gets the few skills it needs out of a registry: offline, local MiniLM embeddings.

    python examples/skills_flow.py "convert 250 dollars to euros"

The ``skills`` router retrieves from the registry (here 1,616 BFCL functions plus three Python
callables), reranks, and (1) runs the best skill as the flow's next node, and (2) lists the top-k
skills as OpenAI tool definitions: what a tool-calling agent (``llm_agent(tools=...)``) is given
instead of the whole registry.
"""

from __future__ import annotations

import json
import sys

from crossroads import END, START, Flow
from crossroads.skills import SkillRegistry, SkillRouter, builtin_skills, skill_from_callable


def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money from one currency to another at today's rate."""
    rates = {("USD", "EUR"): 0.92, ("EUR", "USD"): 1.09}
    return f"{amount * rates.get((from_currency, to_currency), 1.0):.2f} {to_currency}"


def send_email(to: str, subject: str, body: str = "") -> str:
    """Send an email to a recipient with a subject and a body."""
    return f"email to {to}: {subject}"


def get_weather(city: str) -> str:
    """Current weather for a city: temperature and conditions."""
    return f"{city}: 18°C, light rain"


def main(query: str) -> None:
    mine = [skill_from_callable(f) for f in (convert_currency, send_email, get_weather)]
    pool = [s for s in builtin_skills() if s.name not in {m.name for m in mine}]
    registry = SkillRegistry([*mine, *pool])
    router = SkillRouter(registry, k=5, label="skills")

    print(f"{len(registry)} skills; top 5 for {query!r}:")
    for s in router.select(query):
        print(f"  {s.rank}. {s.skill.name:40s} {s.score:.3f}")
    print("tools an agent gets:", [t["function"]["name"] for t in router.tools_for(query, 3)])

    # a flow whose next node is the best runnable skill
    flow = Flow("skills-demo").add(*registry.targets([m.name for m in mine]))
    flow.route(START, router, candidates=[m.name for m in mine])
    for m in mine:
        flow.edge(m.name, END)
    app = flow.compile()
    args = {"amount": 250, "from_currency": "USD", "to_currency": "EUR"} if "convert" in query else query
    result = app.invoke(json.dumps(args) if isinstance(args, dict) else args)
    print("flow output:", result.output)
    app.close()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "convert 250 dollars to euros")
