"""One skill: what a step may use (a tool, an API, an Agent Skill), described well enough to retrieve it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SkillError

__all__ = ["Skill", "SkillView"]

SkillView = Literal["name", "name_description", "full"]
"""Which text of a skill is indexed: its name, name + description, or the full body (the ablations)."""


def _words(name: str) -> str:
    """``math.factorial`` / ``get_weather`` / ``getWeather`` -> ``math factorial`` / ``get weather`` / ``get Weather``."""
    out = []
    prev = ""
    for ch in name:
        if ch in "._-/:":
            out.append(" ")
        elif ch.isupper() and prev.islower():
            out.append(" " + ch)
        else:
            out.append(ch)
        prev = ch
    return " ".join("".join(out).split())


@dataclass(frozen=True, slots=True, kw_only=True)
class Skill:
    """A skill: name, description, body (documentation, parameter schema, examples), tags, cost/latency
    descriptors, and the callable that runs it when one is bound.

    Example::

        Skill(name="get_weather", description="Current weather for a city",
              parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    """

    name: str
    description: str = ""
    body: str = ""
    """Free documentation (an Agent Skill's Markdown body, a docstring)."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """JSON schema of the arguments."""
    examples: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cost_usd: float | None = None
    latency_ms: float | None = None
    source: str = ""
    """Where it was loaded from (file path, MCP server, module)."""
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SkillError(f"skill from {self.source or '<code>'}: field 'name' must be a non-empty string")
        if not isinstance(self.description, str):
            raise SkillError(f"skill {self.name!r} ({self.source or '<code>'}): field 'description' must be a string")
        if not isinstance(self.parameters, Mapping):
            raise SkillError(f"skill {self.name!r} ({self.source or '<code>'}): field 'parameters' must be a JSON object")

    def text(self, view: SkillView = "full") -> str:
        """The text embedded for retrieval under one view."""
        head = f"{_words(self.name)} ({self.name})"
        if view == "name":
            return head
        if view == "name_description":
            return f"{head}: {self.description}".strip()
        if view != "full":
            raise SkillError(f"skill view must be 'name', 'name_description' or 'full', not {view!r}")
        parts = [f"{head}: {self.description}".strip()]
        props = self.parameters.get("properties") if isinstance(self.parameters, Mapping) else None
        if isinstance(props, Mapping) and props:
            args = []
            for arg, spec in props.items():
                desc = spec.get("description", "") if isinstance(spec, Mapping) else ""
                args.append(f"{arg}: {desc}".strip(": "))
            parts.append("Arguments: " + "; ".join(args))
        if self.body:
            parts.append(self.body)
        if self.examples:
            parts.append("Examples: " + " | ".join(self.examples))
        return "\n".join(parts)

    @property
    def content_hash(self) -> str:
        """Hash of everything that is indexed: the index re-embeds a skill only when this changes."""
        payload = json.dumps([self.name, self.description, self.body, self.parameters, list(self.examples),
                              list(self.tags)], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def to_openai_tool(self) -> dict[str, Any]:
        """The OpenAI tool definition an LLM agent is given for this skill."""
        params = dict(self.parameters) or {"type": "object", "properties": {}}
        if params.get("type") == "dict":  # BFCL writes "dict" for JSON-schema "object"
            params["type"] = "object"
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": params}}
