"""The models a server offers, each a small compiled flow over the served flow's own parts.

* a target ``X`` is the one-node flow ``START -> X -> END``;
* ``router:<label>`` is ``START -> <router> -> candidates`` with the route's merge (fan-out included);
* ``flow:<name>`` is the whole flow.

Every request runs through :class:`~crossroads.orchestrator.CompiledFlow` (routing, validation and
recording happen there, not here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..agents.targets import Target
from ..orchestrator.compiled import CompiledFlow
from ..orchestrator.flow import Flow
from ..orchestrator.merge import MERGE_STRATEGIES
from ..tracing.recorder import Recorder
from ..types import END, START

__all__ = ["FLOW_PREFIX", "ROUTER_PREFIX", "ServedModel", "build_catalog", "honoured_params"]

ROUTER_PREFIX = "router:"
FLOW_PREFIX = "flow:"


@dataclass(frozen=True)
class ServedModel:
    """One model id of the API and the compiled flow that answers it."""

    id: str
    kind: str
    """``target``, ``router`` or ``flow``."""
    compiled: CompiledFlow
    targets: tuple[Target, ...]
    """Every target a request to this model may reach (what its generation parameters must suit)."""
    description: str = ""
    candidates: tuple[str, ...] = ()
    routed: frozenset[str] = frozenset()
    """Nodes with a route out: their output is the answer only if their router then chooses END."""
    inner: frozenset[str] = frozenset()
    """Nodes with a fixed edge to another node: their output is never the answer."""

    def unsupported(self, params: Iterable[str]) -> dict[str, list[str]]:
        """For each requested generation parameter some reachable target cannot honour: those targets."""
        out: dict[str, list[str]] = {}
        for p in params:
            bad = [t.name for t in self.targets if p not in honoured_params(t)]
            if bad:
                out[p] = bad
        return out

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "object": "model", "owned_by": "crossroads", "kind": self.kind,
                             "description": self.description}
        if self.candidates:
            d["candidates"] = list(self.candidates)
        return d


def honoured_params(target: Target) -> frozenset[str]:
    """Generation parameters ``target`` passes to its backend (declared by model targets)."""
    return frozenset(target.info.metadata.get("generation_params") or ())


def _sub_flow(name: str, flow: Flow, nodes: Mapping[str, Target]) -> Flow:
    sub = Flow(name, max_steps=flow.max_steps, description=flow.description)
    for n, t in nodes.items():
        sub.add_node(n, t)
    return sub


def _router_flow(flow: Flow, source: str) -> tuple[Flow, tuple[Target, ...]]:
    route = flow.routes[source]
    nodes = {c: flow.nodes[c] for c in route.candidates if c != END}
    merge = route.merge
    if merge is not None and merge not in MERGE_STRATEGIES:
        nodes[merge] = flow.nodes[merge]  # a merge node of the flow's own
    sub = _sub_flow(f"{flow.name}/{ROUTER_PREFIX}{route.router.label}", flow, nodes)
    sub.route(START, route.router, route.candidates, merge=merge)
    if merge is not None and merge in nodes:
        sub.edge(merge, END)
    return sub, tuple(nodes.values())


def build_catalog(flow: Flow, recorder: Recorder) -> dict[str, ServedModel]:
    """Compile one small flow per served model; all share ``recorder``."""

    def compile_(f: Flow) -> CompiledFlow:
        return f.compile(recorder=recorder)

    catalog: dict[str, ServedModel] = {}
    for name, target in flow.nodes.items():
        sub = _sub_flow(f"{flow.name}/{name}", flow, {name: target})
        sub.edge(START, name).edge(name, END)
        catalog[name] = ServedModel(name, "target", compile_(sub), (target,), target.info.description)
    for source, route in flow.routes.items():
        mid = f"{ROUTER_PREFIX}{route.router.label}"
        sub, reach = _router_flow(flow, source)
        catalog[mid] = ServedModel(mid, "router", compile_(sub), reach,
                                   f"router {route.router.label!r} choosing among its route's candidates",
                                   tuple(route.candidates))
    fid = f"{FLOW_PREFIX}{flow.name}"
    reach_all = tuple(flow.nodes.values())
    catalog[fid] = ServedModel(fid, "flow", compile_(flow), reach_all, flow.description or f"the whole flow {flow.name!r}",
                               routed=frozenset(s for s in flow.routes if s != START),
                               inner=frozenset(s for s, d in flow.edges.items() if s != START and d != END))
    return catalog
