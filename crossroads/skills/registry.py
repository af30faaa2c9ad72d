"""A named collection of skills: duplicates refused, each skill a route target."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import SkillError
from ..types import CostModel, TargetInfo, TargetKind
from .skill import Skill

if TYPE_CHECKING:
    from ..agents.targets import Target

__all__ = ["SkillRegistry"]


class SkillRegistry:
    """Skills by name. ``add`` refuses a second skill with a name already registered.

    Example::

        reg = SkillRegistry(load_openai_functions("tools.json"))
        reg.add(skill_from_callable(my_fn))
        infos = reg.target_infos()        # route-target descriptors, one per skill
    """

    def __init__(self, skills: Iterable[Skill] = ()) -> None:
        self._skills: dict[str, Skill] = {}
        for s in skills:
            self.add(s)

    def add(self, skill: Skill) -> None:
        if not isinstance(skill, Skill):
            raise SkillError(f"a registry holds Skill objects, not {type(skill).__name__}")
        old = self._skills.get(skill.name)
        if old is not None:
            raise SkillError(f"duplicate skill name {skill.name!r}: from {skill.source or '<code>'} and "
                             f"{old.source or '<code>'}; rename one of them")
        self._skills[skill.name] = skill

    def extend(self, skills: Iterable[Skill]) -> None:
        for s in skills:
            self.add(s)

    def get(self, name: str) -> Skill:
        try:
            return self._skills[name]
        except KeyError:
            raise SkillError(f"no skill named {name!r} in the registry ({len(self)} skills)") from None

    def __contains__(self, name: object) -> bool:
        return name in self._skills

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills.values())

    def __len__(self) -> int:
        return len(self._skills)

    @property
    def names(self) -> list[str]:
        return list(self._skills)

    def target_info(self, name: str) -> TargetInfo:
        s = self.get(name)
        return TargetInfo(name=s.name, kind=TargetKind.TOOL, description=s.description, tags=s.tags,
                          cost=CostModel(per_call=s.cost_usd or 0.0), expected_latency_ms=s.latency_ms,
                          metadata={"skill": True, "parameters": dict(s.parameters)})

    def target_infos(self) -> tuple[TargetInfo, ...]:
        return tuple(self.target_info(n) for n in self._skills)

    def targets(self, names: Iterable[str] | None = None) -> list[Target]:
        """Runnable tool targets for the skills that have a bound callable (all, or the named ones)."""
        from ..agents.targets import tool

        out: list[Target] = []
        for n in (self.names if names is None else names):
            s = self.get(n)
            if s.fn is None:
                raise SkillError(f"skill {n!r} has no callable bound; load it with skill_from_callable "
                                 "or pass fn= to run it as a target")
            out.append(tool(s.name, s.fn, parameters=dict(s.parameters) or None, description=s.description,
                            tags=s.tags, cost={"per_call": s.cost_usd or 0.0},
                            expected_latency_ms=s.latency_ms))
        return out
