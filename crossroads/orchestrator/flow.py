"""The :class:`Flow` builder: targets as nodes, fixed edges and routed edges.

The builder only collects; :meth:`Flow.compile` validates and returns a :class:`CompiledFlow`
that wraps a LangGraph ``StateGraph``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..agents.targets import Target
from ..errors import ConfigError, FlowError, UnknownTargetError
from ..routers.base import Router
from ..types import END, START
from .inputs import DEFAULT_MAX_INPUT_CHARS
from .state import check_state_schema

if TYPE_CHECKING:
    from .compiled import CompiledFlow

__all__ = ["DEFAULT_MAX_STEPS", "Flow", "Route"]

DEFAULT_MAX_STEPS = 50
"""Node executions allowed per run before :class:`~crossroads.errors.StepLimitError`."""


@dataclass(frozen=True, slots=True)
class Route:
    """A routed edge: from ``source``, ``router`` picks among ``candidates``."""

    source: str
    router: Router
    candidates: tuple[str, ...]
    merge: str | None = None
    """Node that merges a fan-out: a node name or a strategy (``concat``, ``vote``, ``first``)."""


class Flow:
    """A routed agent graph under construction.

    Example::

        flow = Flow("support")
        flow.add(billing).add(tech).add(general)
        flow.route(START, RulesRouter(rules=[...], default="general"),
                   candidates=["billing", "tech", "general"])
        app = flow.compile()
        print(app.invoke("I was charged twice").output)
    """

    def __init__(self, name: str = "flow", *, max_steps: int = DEFAULT_MAX_STEPS, description: str = "",
                 state_schema: type | None = None, max_cost_usd: float | None = None,
                 max_input_chars: int | None = DEFAULT_MAX_INPUT_CHARS) -> None:
        if max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {max_steps}")
        if max_cost_usd is not None and not max_cost_usd > 0:
            raise ConfigError(f"max_cost_usd must be a positive number of USD, got {max_cost_usd}")
        if max_input_chars is not None and max_input_chars < 1:
            raise ConfigError(f"max_input_chars must be at least 1 (or None for no limit), got {max_input_chars}")
        self.name = name
        self.description = description
        self.max_steps = max_steps
        self.state_schema = check_state_schema(state_schema)
        """The graph state: :class:`FlowState` or a user TypedDict extending it."""
        self.max_cost_usd = max_cost_usd
        """Budget per run (targets + routers); a step that would start past it raises BudgetExceededError."""
        self.max_input_chars = max_input_chars
        """Inputs longer than this are refused with InputTooLargeError before anything runs."""
        self.nodes: dict[str, Target] = {}
        self.edges: dict[str, str] = {}
        self.routes: dict[str, Route] = {}

    def add(self, *targets: Target) -> Flow:
        """Add targets as nodes named after them."""
        for t in targets:
            self.add_node(t.name, t)
        return self

    def add_node(self, name: str, target: Target) -> Flow:
        """Add ``target`` as node ``name``."""
        if not isinstance(target, Target):
            raise ConfigError(f"node {name!r} must be a Target (use crossroads.agent/tool/model), got {type(target).__name__}")
        if name in (START, END):
            raise ConfigError(f"node name {name!r} is reserved")
        if ":" in name:  # LangGraph reserves ':' (namespaces); say it here, naming the fix, not at compile
            raise ConfigError(f"target name {name!r} contains ':', which LangGraph reserves in node names; rename the "
                              f"target, e.g. {name.replace(':', '_')!r} (CLINC150-style 'domain:intent' labels too)")
        if name in self.nodes:
            raise ConfigError(f"flow {self.name!r} already has a node named {name!r}")
        self.nodes[name] = target
        return self

    def edge(self, source: str, dest: str) -> Flow:
        """A fixed edge; ``source`` may be ``START`` and ``dest`` may be ``END``."""
        self._check_free(source)
        self.edges[source] = dest
        return self

    def route(
        self,
        source: str,
        router: Router,
        candidates: Sequence[str],
        *,
        merge: str | None = None,
    ) -> Flow:
        """A routed edge decided at run time by ``router``; ``END`` may be a candidate.

        A decision naming several targets fans out (they run in parallel) and needs ``merge``.
        """
        if not isinstance(router, Router):
            raise ConfigError(f"route from {source!r}: router must be a Router, got {type(router).__name__}")
        if not candidates:
            raise ConfigError(f"route from {source!r} needs at least one candidate")
        if len(set(candidates)) != len(candidates):
            raise ConfigError(f"route from {source!r} lists a candidate twice: {list(candidates)}")
        self._check_free(source)
        self.routes[source] = Route(source, router, tuple(candidates), merge)
        return self

    def _check_free(self, source: str) -> None:
        if source in self.edges or source in self.routes:
            raise ConfigError(
                f"node {source!r} already has an outgoing edge or route; a node has exactly one "
                "(use a route with several candidates for a choice)"
            )

    # -- validation -----------------------------------------------------------------------------
    def _node(self, name: str, where: str) -> None:
        if name not in self.nodes and name not in (START, END):
            raise UnknownTargetError(name, self.nodes, what="node", where=where)

    def validate(self) -> None:
        """Check every reference; raises :class:`ConfigError`/:class:`FlowError` naming the problem."""
        if not self.nodes:
            raise FlowError(f"flow {self.name!r} has no nodes")
        for src, dst in self.edges.items():
            self._node(src, f"edge {src} -> {dst}")
            self._node(dst, f"edge {src} -> {dst}")
            if dst == START or src == END:
                raise FlowError(f"edge {src} -> {dst} is not allowed")
        for r in self.routes.values():
            self._node(r.source, f"route from {r.source}")
            for c in r.candidates:
                self._node(c, f"route from {r.source}")
                if c == START:
                    raise FlowError(f"route from {r.source!r} cannot choose START")
            unknown = sorted(r.router.referenced_targets() - set(r.candidates))
            if unknown:
                raise ConfigError(
                    f"router {r.router.label!r} on the route from {r.source!r} names target(s) "
                    f"{', '.join(unknown)} that are not candidates of that route; "
                    f"candidates: {', '.join(r.candidates)}"
                )
            if r.merge is not None and r.merge in self.nodes and r.merge in r.candidates:
                raise FlowError(f"merge node {r.merge!r} of the route from {r.source!r} cannot also be a candidate")
        if START not in self.edges and START not in self.routes and len(self.nodes) != 1:
            raise FlowError(
                f"flow {self.name!r} has no entry: add flow.edge(START, node) or flow.route(START, ...)"
            )

    def compile(
        self,
        *,
        recorder: Any = None,
        checkpointer: Any = None,
        interrupt_before: Iterable[str] = (),
    ) -> CompiledFlow:
        """Validate and build the LangGraph graph.

        ``recorder``: a :class:`~crossroads.tracing.Recorder`, a DB path/URL (an ``SQLRecorder`` is
        opened on it) or ``None`` (tracing off). ``checkpointer``: a LangGraph checkpoint saver,
        ``"memory"``, a SQLite file path, or ``None``.
        """
        from .compiled import CompiledFlow

        self.validate()
        return CompiledFlow.build(self, recorder=recorder, checkpointer=checkpointer,
                                  interrupt_before=tuple(interrupt_before))
