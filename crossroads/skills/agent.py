"""An LLM agent that is given, per request, only the top-k skills a skills router selects.

    agent = skill_agent("assistant", model, "Use the tools to answer.", router, k=5)

Each time the agent's node runs, ``router.select(request.text, k)`` picks the skills, and the
tool-calling loop of :func:`~crossroads.agents.targets.llm_agent` runs with those skills as its tools
(skills need a bound callable: :func:`~crossroads.skills.skill_from_callable`). The selection is
recorded as a ``skills_selected`` event of the step.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ..agents.targets import DEFAULT_MAX_TOOL_ROUNDS, Target, llm_agent
from ..errors import ConfigError
from ..types import RunEvent, TargetInfo, TargetKind, TargetRequest, TargetResult
from .router import SkillRouter

__all__ = ["skill_agent"]


def skill_agent(name: str, chat_model: Any, instructions: str, router: SkillRouter, *, k: int = 5,
                max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS, description: str = "") -> Target:
    """An ``llm_agent`` whose tools are the ``k`` skills ``router`` selects for each request."""
    if not isinstance(router, SkillRouter):
        raise ConfigError(f"skill_agent {name!r}: router must be a SkillRouter, not {type(router).__name__}")
    unbound = [s.name for s in router.registry if s.fn is None]
    if len(unbound) == len(router.registry):
        raise ConfigError(f"skill_agent {name!r}: no skill of the router has a callable bound; build the registry "
                          "with skill_from_callable or pass fn= to Skill")
    cache: dict[tuple[str, ...], Target] = {}
    lock = threading.Lock()

    def agent_for(request: TargetRequest) -> tuple[Target, tuple[str, ...], list[float]]:
        picked = [s for s in router.select(request.text, k) if s.skill.fn is not None]
        names = tuple(s.skill.name for s in picked)
        with lock:
            target = cache.get(names)
            if target is None:
                target = llm_agent(name, chat_model, instructions, tools=list(router.registry.targets(names)),
                                   max_tool_rounds=max_tool_rounds, description=description)
                cache[names] = target
        return target, names, [s.score for s in picked]

    def with_event(result: TargetResult, names: tuple[str, ...], scores: list[float]) -> TargetResult:
        event = RunEvent(kind="skills_selected", target=name,
                         detail={"skills": list(names), "scores": [round(x, 4) for x in scores],
                                 "router": router.label})
        return dataclasses.replace(result, events=(event, *result.events))

    def run(request: TargetRequest) -> TargetResult:
        target, names, scores = agent_for(request)
        return with_event(target.invoke(request), names, scores)

    async def arun(request: TargetRequest) -> TargetResult:
        target, names, scores = agent_for(request)
        return with_event(await target.ainvoke(request), names, scores)

    info = TargetInfo(name=name, kind=TargetKind.AGENT, description=description or instructions[:200],
                      metadata={"skills_router": router.label, "k": k})
    return Target(info, run, arunner=arun)
