"""The values that cross every layer: target descriptors, route contexts, decisions, feedback.

All are small frozen, slotted, keyword-only dataclasses. A router receives a :class:`RouteContext`
and returns a :class:`Decision`; targets receive a :class:`TargetRequest` and return a
:class:`TargetResult` (or plain text).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from ._ids import new_id
from .errors import RoutingError

__all__ = [
    "END",
    "START",
    "CallUsage",
    "CostModel",
    "Decision",
    "Feedback",
    "Health",
    "HealthStatus",
    "Message",
    "RouteContext",
    "RunEvent",
    "TargetInfo",
    "TargetKind",
    "TargetRequest",
    "TargetResult",
    "run_cost",
]

START = "__start__"
"""Name of the virtual entry node (LangGraph's ``START``)."""
END = "__end__"
"""Name of the virtual exit node (LangGraph's ``END``); routers may choose it to stop a loop."""

class TargetKind(str, Enum):
    """What a route target is. All three are routed the same way."""

    AGENT = "agent"
    TOOL = "tool"
    MODEL = "model"


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """Price of using a target: USD per 1M input/output tokens and/or a flat price per call."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    per_call: float = 0.0

    def estimate(self, input_tokens: int = 0, output_tokens: int = 0) -> float:
        """USD cost of one call with the given token counts."""
        return (
            self.per_call
            + input_tokens * self.input_per_mtok / 1e6
            + output_tokens * self.output_per_mtok / 1e6
        )


class HealthStatus(str, Enum):
    """Coarse health of a target; routers should avoid ``DOWN`` targets."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """A snapshot of a target's observed health."""

    status: HealthStatus = HealthStatus.HEALTHY
    error_rate: float = 0.0
    """Share of recent calls that failed, 0..1."""
    latency_ms: float | None = None
    """Recent median latency, if observed."""
    cooldown_until: float | None = None
    """Unix time until which the target should not be used."""

    @property
    def available(self) -> bool:
        """False when the target is down."""
        return self.status is not HealthStatus.DOWN


HEALTHY = Health()


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetInfo:
    """Descriptor of a route target: what routers see when they choose among candidates."""

    name: str
    kind: TargetKind = TargetKind.AGENT
    description: str = ""
    tags: tuple[str, ...] = ()
    cost: CostModel = field(default_factory=CostModel)
    expected_latency_ms: float | None = None
    quality: float | None = None
    """Expected quality (0..1) if known; used by capability-based routers."""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message of a run's conversation."""

    role: Literal["user", "assistant", "system", "tool"]
    content: str
    name: str | None = None
    """The target that produced it (for assistant/tool messages)."""
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    """Tool calls an assistant message asks for: ``{"id", "name", "arguments"}`` (arguments a JSON string)."""
    tool_call_id: str | None = None
    """For ``role="tool"``: the id of the tool call this message answers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteContext:
    """Everything a router may look at when it decides.

    Example::

        ctx = RouteContext(query="refund my order", candidates=(billing, tech))
        decision = router.route(ctx)
    """

    query: str
    """The text being routed: the latest message, or the run's input at the first step."""
    candidates: tuple[TargetInfo, ...]
    input: str = ""
    """The run's original input."""
    messages: tuple[Message, ...] = ()
    health: Mapping[str, Health] = field(default_factory=dict)
    step: int = 0
    """Number of node executions so far in this run."""
    budget_spent_usd: float = 0.0
    source: str = START
    """The node this routed edge leaves from."""
    run_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Run metadata (user tier, tenant, ...) that rule routers can match on."""

    @property
    def candidate_names(self) -> tuple[str, ...]:
        """Names of the candidates, in order."""
        return tuple(c.name for c in self.candidates)

    def health_of(self, name: str) -> Health:
        """The health snapshot of a candidate (healthy when unknown)."""
        return self.health.get(name, HEALTHY)

    def available_candidates(self) -> tuple[TargetInfo, ...]:
        """Candidates that are not down; all of them if every one is down."""
        up = tuple(c for c in self.candidates if self.health_of(c.name).available)
        return up or self.candidates


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A router's answer: the chosen target(s) and a score for every candidate.

    ``targets`` holds one name, or several for a fan-out. ``scores`` must cover every candidate so
    that logged decisions can be re-scored offline.

    Example::

        Decision(targets=("billing",), scores={"billing": 0.9, "tech": 0.1}, rationale="refund")
    """

    targets: tuple[str, ...]
    scores: Mapping[str, float]
    rationale: str = ""
    router: str = ""
    cost_usd: float = 0.0
    """What the router itself spent to decide (e.g. an LLM router's call)."""
    latency_ms: float = 0.0
    """Set by the orchestrator when the router does not set it."""
    decision_id: str = field(default_factory=new_id)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Router-specific evidence (pheromone values, matched rule, ...)."""

    @property
    def target(self) -> str:
        """The single chosen target; raises if the decision is a fan-out."""
        if len(self.targets) != 1:
            raise RoutingError(
                f"decision {self.decision_id} chose {len(self.targets)} targets, not one",
                router=self.router,
            )
        return self.targets[0]

    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, float],
        *,
        k: int = 1,
        rationale: str = "",
        router: str = "",
        **kwargs: Any,
    ) -> Decision:
        """Choose the ``k`` highest-scoring candidates (ties keep candidate order)."""
        ranked = sorted(scores, key=lambda n: -scores[n])
        return cls(
            targets=tuple(ranked[: max(1, k)]),
            scores=dict(scores),
            rationale=rationale,
            router=router,
            **kwargs,
        )

    def validate(self, candidates: Sequence[str]) -> None:
        """Raise :class:`RoutingError` unless this decision is valid for ``candidates``."""
        known = set(candidates)
        if not self.targets:
            raise RoutingError(
                f"router {self.router!r} chose no target; candidates: {', '.join(candidates)}",
                router=self.router,
                candidates=candidates,
            )
        for t in self.targets:
            if t not in known:
                raise RoutingError(
                    f"router {self.router!r} chose {t!r}, which is not a candidate; "
                    f"candidates: {', '.join(candidates)}",
                    router=self.router,
                    target=t,
                    candidates=candidates,
                )
        missing = [c for c in candidates if c not in self.scores]
        if missing:
            raise RoutingError(
                f"router {self.router!r} gave no score for candidate(s) {', '.join(missing)}; "
                "a decision must score every candidate",
                router=self.router,
                candidates=candidates,
            )
        bad = [n for n, s in self.scores.items() if not math.isfinite(float(s))]
        if bad:
            raise RoutingError(
                f"router {self.router!r} gave non-finite scores for {', '.join(bad)}",
                router=self.router,
                candidates=candidates,
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """An outcome for a past decision, for learning routers."""

    decision_id: str
    reward: float
    """Higher is better; e.g. 1.0 correct, 0.0 wrong, or quality - lambda * cost."""
    target: str | None = None
    """The target whose outcome this is (for fan-out decisions)."""
    cost_usd: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUsage:
    """Tokens, cost and latency of one model or tool call."""

    target: str
    kind: TargetKind = TargetKind.MODEL
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvent:
    """Something that happened inside a target call: a retry, a fallback, a cooldown, a reroute."""

    kind: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRequest:
    """What a target receives when its node runs."""

    text: str
    """The latest message (or the run input on the first step)."""
    input: str
    """The run's original input."""
    messages: tuple[Message, ...] = ()
    branch_outputs: tuple[Mapping[str, Any], ...] = ()
    """For merge nodes: the outputs of the fan-out branches (``{"target", "output"}``)."""
    state: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    on_token: Callable[[str], None] | None = None
    """Set when the run is streamed: a model target passes each text delta here as it arrives."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetResult:
    """A target's output plus the calls it made (for cost and token accounting)."""

    output: str
    calls: tuple[CallUsage, ...] = ()
    events: tuple[RunEvent, ...] = ()
    """Retries, fallbacks, cooldowns, ... written to the trace as events of this step."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[Message, ...] = ()
    """Messages exchanged before the output (an agent's tool calls and tool results), kept in the
    run's conversation ahead of the final answer."""
    update: Mapping[str, Any] = field(default_factory=dict)
    """Writes to the user's own state keys (``Flow(state_schema=...)``)."""

    @property
    def cost_usd(self) -> float:
        """Sum of the calls' costs."""
        return sum(c.cost_usd for c in self.calls)


def run_cost(target_costs: Iterable[float], router_costs: Iterable[float]) -> float:
    """The one definition of what a run cost: every target call plus every routing decision.

    ``RunResult.cost_usd``, ``trace list`` and ``trace show`` all use it (step costs, decision costs).
    """
    return float(sum(target_costs)) + float(sum(router_costs))
