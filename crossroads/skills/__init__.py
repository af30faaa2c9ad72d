"""Skills at scale: a registry of skills (Agent Skills, MCP tools, OpenAI/BFCL functions, callables), a
persisted embedding index, and the retrieve-then-rerank ``skills`` router that gives a step the few
skills it needs."""

from .agent import skill_agent
from .index import SkillIndex
from .loaders import (
    load_agent_skills,
    load_mcp_tools,
    load_openai_functions,
    load_skills,
    skill_from_callable,
)
from .registry import SkillRegistry
from .router import ScoredSkill, SkillRouter, builtin_skills
from .skill import Skill, SkillView

__all__ = [
    "ScoredSkill",
    "Skill",
    "SkillIndex",
    "SkillRegistry",
    "SkillRouter",
    "SkillView",
    "builtin_skills",
    "skill_agent",
    "load_agent_skills",
    "load_mcp_tools",
    "load_openai_functions",
    "load_skills",
    "skill_from_callable",
]
