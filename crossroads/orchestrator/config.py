"""The YAML flow format (a pydantic schema) and the loader that turns it into a :class:`Flow`.

Example::

    name: support
    max_steps: 20
    targets:
      billing:
        kind: agent
        callable: agents.py:billing        # a file next to the YAML, or package.module:attr
        description: Refunds, invoices and charges
        cost: {per_call: 0.001}
    routers:
      triage:
        type: rules
        params:
          rules:
            - {when: {keyword: [refund]}, route: billing}
          default: general
    edges:
      - {from: START, route: triage, candidates: [billing, general]}
      - {from: billing, to: END}
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._io import read_yaml
from ..agents.targets import Target, agent, llm_agent, model, tool
from ..errors import ConfigError, CrossroadsError, FlowError, UnknownNameError
from ..routers.registry import available_routers, create_router
from ..types import END, START, CostModel
from .flow import DEFAULT_MAX_STEPS, Flow
from .inputs import DEFAULT_MAX_INPUT_CHARS

__all__ = ["FlowSpec", "load_flow", "load_flow_yaml", "resolve_callable"]

E = TypeVar("E", bound=CrossroadsError)

_NODE_ALIASES = {"START": START, "start": START, START: START, "END": END, "end": END, END: END}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CostSpec(_Strict):
    """Prices in USD."""

    input_per_mtok: float = Field(0.0, ge=0, description="USD per 1M input tokens")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per 1M output tokens")
    per_call: float = Field(0.0, ge=0, description="USD per call")


class ModelSpec(_Strict):
    """The model behind a ``kind: model`` target (or an LLM agent)."""

    provider: Literal["litellm", "replay", "llama_cpp"]
    name: str | None = Field(None, description="litellm model id, replay model name; optional for llama_cpp")
    api_base: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. a vLLM or llama.cpp server")
    api_key_env: str | None = Field(None, description="name of the env var holding the API key (never the key itself)")
    dataset: str | None = Field(None, description="replay: a built-in dataset name or a JSONL path")
    prices: str | None = Field(None, description="replay: JSON prices file for datasets without prices")
    path: str | None = Field(None, description="llama_cpp: a GGUF file (default: the SmolLM2-135M-Instruct package)")
    timeout_s: float = Field(60.0, gt=0, description="per-read timeout")
    deadline_s: float | None = Field(None, gt=0, description="total time for one call (default: 2 x timeout_s)")
    retries: int = Field(2, ge=0, description="retries of this model (a fallback without it uses the primary's)")
    cost: CostSpec | None = Field(None, description="this model's price (needed for models litellm does not know)")
    fallbacks: list[ModelSpec] = []


class TargetSpec(_Strict):
    """One route target: a callable (agent/tool), a model, or an LLM agent (model + instructions)."""

    kind: Literal["agent", "tool", "model"] = "agent"
    callable: str | None = Field(None, description="'file.py:function' (relative to the YAML) or 'package.module:function'")
    model: ModelSpec | None = None
    instructions: str | None = Field(None, description="system prompt of an LLM agent")
    description: str = ""
    tags: list[str] = []
    cost: CostSpec | None = None
    expected_latency_ms: float | None = Field(None, ge=0)
    quality: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _backed(self) -> TargetSpec:
        if self.kind == "model" and self.model is None:
            raise ValueError("a model target needs 'model: {provider: ..., name: ...}'")
        if self.kind == "tool" and self.callable is None:
            raise ValueError("a tool needs 'callable'")
        if self.kind == "agent" and (self.callable is None) == (self.model is None):
            raise ValueError("an agent needs exactly one of 'callable' or 'model' (with 'instructions')")
        return self


class RouterSpec(_Strict):
    """A router instance: its registered type and constructor parameters."""

    type: str
    params: dict[str, Any] = {}


class EdgeSpec(_Strict):
    """A fixed edge (``to``) or a routed edge (``route`` + ``candidates``)."""

    source: str = Field(alias="from")
    to: str | None = None
    route: str | None = None
    candidates: list[str] | None = None
    merge: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> EdgeSpec:
        if (self.to is None) == (self.route is None):
            raise ValueError("an edge needs exactly one of 'to' (fixed edge) or 'route' (router name)")
        if self.route is not None and not self.candidates:
            raise ValueError("a routed edge needs a non-empty 'candidates' list")
        if self.to is not None and (self.candidates or self.merge):
            raise ValueError("'candidates' and 'merge' belong to routed edges (with 'route')")
        return self


class FlowSpec(_Strict):
    """A whole flow file."""

    name: str = "flow"
    description: str = ""
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1)
    max_cost_usd: float | None = Field(None, gt=0, description="budget per run (targets + routers), USD")
    max_input_chars: int | None = Field(DEFAULT_MAX_INPUT_CHARS, ge=1, description="longest input accepted")
    targets: dict[str, TargetSpec]
    routers: dict[str, RouterSpec] = {}
    edges: list[EdgeSpec] = []


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid flow ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            msg = f"unknown field; allowed here: {', '.join(_allowed_fields(parent))}"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = FlowSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:  # a dict key (target/router name)
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (*args, ann) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if model is None:
        return []
    return sorted((f.alias or n) for n, f in model.model_fields.items())


def resolve_callable(ref: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``file.py:attr`` (relative to ``base_dir``) or ``package.module:attr``."""
    if ":" not in ref:
        raise ConfigError(f"callable reference {ref!r} must look like 'file.py:function' or 'package.module:function'")
    mod_ref, _, attr = ref.rpartition(":")
    if mod_ref.endswith(".py"):
        path = Path(mod_ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise ConfigError(f"callable reference {ref!r}: file {path} does not exist")
        mod_name = f"_crossroads_user_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[mod_name]
                raise ConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(mod_ref)
        except ImportError as exc:
            raise ConfigError(f"callable reference {ref!r}: cannot import module {mod_ref!r} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        public = [n for n in dir(module) if not n.startswith("_")]
        raise UnknownNameError(f"attribute of {mod_ref}", attr, public) from None


def _node(name: str) -> str:
    return _NODE_ALIASES.get(name, name)


def build_flow(spec: FlowSpec, base_dir: Path | None, source: str) -> Flow:
    """Turn a validated spec into a :class:`Flow`."""
    flow = Flow(spec.name, max_steps=spec.max_steps, description=spec.description, max_cost_usd=spec.max_cost_usd,
                max_input_chars=spec.max_input_chars)
    for name in spec.targets:
        if name in _NODE_ALIASES:
            raise ConfigError(f"{source}: target name {name!r} is reserved (it means the graph's "
                              f"{'start' if _NODE_ALIASES[name] == START else 'end'} in edges, so the target could "
                              f"never be reached); rename the target, e.g. {name.lower()}_agent")
    for name, t in spec.targets.items():
        try:
            flow.add_node(name, _target(name, t, base_dir))
        except ConfigError as exc:
            raise _located(exc, f"{source}: targets.{name}") from exc.__cause__
    routers = {}
    for rname, r in spec.routers.items():
        try:
            routers[rname] = create_router(r.type, r.params, label=rname)
        except ConfigError as exc:
            raise _located(exc, f"{source}: routers.{rname}") from exc.__cause__
    for i, e in enumerate(spec.edges):
        src = _node(e.source)
        try:
            if e.to is not None:
                flow.edge(src, _node(e.to))
            else:
                assert e.route is not None and e.candidates is not None
                if e.route not in routers:
                    raise UnknownNameError("router", e.route, routers, hint=f"define it under 'routers:' (types: {', '.join(available_routers())})")
                flow.route(src, routers[e.route], [_node(c) for c in e.candidates], merge=e.merge)
        except ConfigError as exc:
            raise _located(exc, f"{source}: edges[{i}]") from exc.__cause__
    try:
        flow.validate()
    except (ConfigError, FlowError) as exc:
        raise _located(exc, source) from exc.__cause__
    return flow


def _located(exc: E, where: str) -> E:
    """The same error (same type, so callers can still catch it precisely) prefixed with where it is."""
    exc.args = (f"{where}: {exc}", *exc.args[1:])
    return exc


def _target(name: str, t: TargetSpec, base_dir: Path | None) -> Target:
    common: dict[str, Any] = dict(description=t.description, tags=t.tags,
                                  expected_latency_ms=t.expected_latency_ms, quality=t.quality)
    explicit_cost = CostModel(**t.cost.model_dump()) if t.cost is not None else None
    if t.model is None:
        assert t.callable is not None
        fn = resolve_callable(t.callable, base_dir)
        maker = tool if t.kind == "tool" else agent
        return maker(name, fn, cost=explicit_cost, **common)
    from ..agents.backends.factory import build_chat_model

    chat = build_chat_model(t.model, explicit_cost, base_dir)
    cost = explicit_cost or getattr(chat, "cost", None)
    if t.kind == "agent":
        return llm_agent(name, chat, t.instructions or "", cost=cost, **common)
    return model(name, chat, cost=cost, system=t.instructions, **common)


def load_flow_yaml(path: str | Path) -> Flow:
    """Load and validate a YAML flow file."""
    path = Path(path)
    data = read_yaml(path, "flow")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a flow file must be a mapping with 'targets', 'routers' and 'edges'")
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, str(path))) from exc
    return build_flow(spec, path.parent, str(path))


def load_flow(ref: str) -> Flow:
    """Load a flow from a YAML file or a ``package.module:attr`` reference (a Flow or a function returning one)."""
    if ref.endswith((".yaml", ".yml")) or Path(ref).is_file():
        return load_flow_yaml(ref)
    if ":" not in ref:
        raise ConfigError(f"flow {ref!r} is neither a YAML file nor a 'package.module:flow' reference")
    obj: Any = resolve_callable(ref)
    if callable(obj) and not isinstance(obj, Flow):
        obj = obj()
    if not isinstance(obj, Flow):
        raise ConfigError(f"{ref} is a {type(obj).__name__}, not a crossroads Flow")
    return obj
