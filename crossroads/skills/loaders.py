"""Loaders for the skill formats users already have.

- Agent Skills directories: one folder per skill with ``SKILL.md`` (YAML front matter ``name`` and
  ``description``, a Markdown body) and optional resources (their file names are listed in the body).
- MCP tool lists: the JSON of a ``tools/list`` result (``{"tools": [{name, description, inputSchema}]}``
  or the bare list).
- OpenAI / BFCL function definitions: a JSON list (or JSONL) of ``{"type": "function", "function": {...}}``
  or bare ``{name, description, parameters}`` objects.
- Python callables: name, docstring and a JSON schema from the signature.

Malformed entries raise :class:`~crossroads.errors.SkillError` naming the file and the field.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import SkillError
from .skill import Skill

__all__ = ["load_agent_skills", "load_mcp_tools", "load_openai_functions", "load_skills", "skill_from_callable"]


def _read_json_or_jsonl(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SkillError(f"{path}: cannot read the skill file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SkillError(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise SkillError(f"{path}: not JSON (line {first.lineno}, column {first.colno}: {first.msg}) "
                                 f"nor JSONL (line {i})") from None
        return rows


def _str_field(entry: Mapping[str, Any], key: str, where: str, *, required: bool) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise SkillError(f"{where}: missing field {key!r}")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise SkillError(f"{where}: field {key!r} must be a non-empty string, not {value!r:.60}")
    return value


def _schema_field(entry: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = entry.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SkillError(f"{where}: field {key!r} must be a JSON-schema object, not {type(value).__name__}")
    return dict(value)


def load_openai_functions(path: str | Path, *, tags: Iterable[str] = ()) -> list[Skill]:
    """Skills from OpenAI tool / function definitions (also BFCL's ``function`` entries)."""
    path = Path(path)
    data = _read_json_or_jsonl(path)
    field = ""
    if isinstance(data, Mapping):
        field = "tools" if "tools" in data else "functions" if "functions" in data else ""
        data = data[field] if field else [data]
    if not isinstance(data, list):
        where = f" field {field!r}" if field else ""
        raise SkillError(f"{path}{where}: expected a list of function definitions, not {type(data).__name__}")
    out = []
    for i, entry in enumerate(data):
        where = f"{path} entry {i}"
        if not isinstance(entry, Mapping):
            raise SkillError(f"{where}: expected an object, not {type(entry).__name__}")
        if "function" in entry:
            if not isinstance(entry["function"], Mapping):
                raise SkillError(f"{where}: field 'function' must be an object")
            entry, where = entry["function"], f"{where} field 'function'"
        out.append(Skill(name=_str_field(entry, "name", where, required=True),
                         description=_str_field(entry, "description", where, required=False),
                         parameters=_schema_field(entry, "parameters", where),
                         tags=tuple(tags) or tuple(str(t) for t in entry.get("tags", ()) if isinstance(t, str)),
                         source=str(path)))
    return out


def load_mcp_tools(path: str | Path, *, server: str = "") -> list[Skill]:
    """Skills from an MCP ``tools/list`` result saved as JSON."""
    path = Path(path)
    data = _read_json_or_jsonl(path)
    if isinstance(data, Mapping) and "result" in data:  # a whole JSON-RPC response
        data = data["result"]
    if isinstance(data, Mapping):
        if "tools" not in data:
            raise SkillError(f"{path}: an MCP tools/list result needs a 'tools' field")
        data = data["tools"]
    if not isinstance(data, list):
        raise SkillError(f"{path}: field 'tools' must be a list, not {type(data).__name__}")
    out = []
    for i, entry in enumerate(data):
        where = f"{path} tools[{i}]"
        if not isinstance(entry, Mapping):
            raise SkillError(f"{where}: expected an object, not {type(entry).__name__}")
        out.append(Skill(name=_str_field(entry, "name", where, required=True),
                         description=_str_field(entry, "description", where, required=False),
                         parameters=_schema_field(entry, "inputSchema", where),
                         tags=(f"mcp:{server}",) if server else ("mcp",), source=str(path)))
    return out


def _front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        raise SkillError(f"{where}: SKILL.md must start with YAML front matter ('---' ... '---') "
                         "giving 'name' and 'description'")
    end = text.find("\n---", 3)
    if end < 0:
        raise SkillError(f"{where}: the YAML front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 2})" if mark is not None else ""
        raise SkillError(f"{where}: front matter is not valid YAML{at}") from None
    if not isinstance(meta, dict):
        raise SkillError(f"{where}: front matter must be a mapping of fields")
    body = text[end + 4:].lstrip("-").strip()
    return meta, body


def load_agent_skills(root: str | Path) -> list[Skill]:
    """Skills from a directory of Agent Skills: every ``SKILL.md`` below ``root`` (one skill per folder)."""
    root = Path(root)
    if not root.is_dir():
        raise SkillError(f"{root}: not a directory of Agent Skills (folders containing SKILL.md)")
    out = []
    for md in sorted(root.rglob("SKILL.md")):
        try:
            text = md.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SkillError(f"{md}: not UTF-8 text") from None
        meta, body = _front_matter(text, str(md))
        where = f"{md} front matter"
        resources = sorted(str(p.relative_to(md.parent)) for p in md.parent.rglob("*")
                           if p.is_file() and p.name != "SKILL.md")
        if resources:
            body = f"{body}\n\nResources: {', '.join(resources)}"
        tags = meta.get("tags", ())
        if isinstance(tags, str) or not isinstance(tags, (list, tuple)):
            raise SkillError(f"{where}: field 'tags' must be a list of strings")
        out.append(Skill(name=_str_field(meta, "name", where, required=True),
                         description=_str_field(meta, "description", where, required=True),
                         body=body, tags=tuple(str(t) for t in tags), source=str(md)))
    if not out:
        raise SkillError(f"{root}: no SKILL.md found (an Agent Skill is a folder with a SKILL.md)")
    return out


def skill_from_callable(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                        tags: Iterable[str] = ()) -> Skill:
    """A skill bound to a Python callable: name, docstring, and a JSON schema from the signature."""
    if not callable(fn):
        raise SkillError(f"skill_from_callable needs a callable, not {type(fn).__name__}")
    from ..agents.targets import _schema_from_signature

    doc = inspect.getdoc(fn) or ""
    first, _, rest = doc.partition("\n\n")
    return Skill(name=str(name or getattr(fn, "__name__", "")), description=description if description is not None
                 else first.strip(), body=rest.strip(), parameters=_schema_from_signature(fn), tags=tuple(tags),
                 source=f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}", fn=fn)


def load_skills(path: str | Path) -> list[Skill]:
    """Detect the format: a directory of Agent Skills, an MCP ``tools/list`` JSON, or function definitions."""
    path = Path(path)
    if path.is_dir():
        return load_agent_skills(path)
    if not path.exists():
        raise SkillError(f"{path}: no such skill file or directory")
    data = _read_json_or_jsonl(path)
    if isinstance(data, Mapping) and ("tools" in data or "result" in data):
        first = (data.get("result", data).get("tools") or [{}])
        if isinstance(first, list) and first and isinstance(first[0], Mapping) and "inputSchema" in first[0]:
            return load_mcp_tools(path)
    if isinstance(data, list) and data and isinstance(data[0], Mapping) and "inputSchema" in data[0]:
        return load_mcp_tools(path)
    return load_openai_functions(path)
