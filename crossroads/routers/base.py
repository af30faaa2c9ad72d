"""The router protocol every router family implements."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import FeedbackError
from ..types import Decision, Feedback, RouteContext

__all__ = ["Router"]


class Router(ABC):
    """Decides which candidate target(s) a routed edge goes to.

    Subclasses implement :meth:`route`. Learning routers set ``learns = True`` and implement
    :meth:`feedback`. ``name`` is the registry name used in YAML (``type: rules``).

    Example::

        class Shortest(Router):
            name = "shortest"
            def route(self, ctx):
                scores = {c.name: -len(c.description) for c in ctx.candidates}
                return self.decide(scores, rationale="shortest description")
    """

    name: ClassVar[str] = ""
    learns: ClassVar[bool] = False

    label: str
    """Instance label shown in traces; defaults to the registry name."""

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label or self.name or type(self).__name__

    @abstractmethod
    def route(self, ctx: RouteContext) -> Decision:
        """Return a decision that scores every candidate in ``ctx``."""

    async def aroute(self, ctx: RouteContext) -> Decision:
        """Async variant; CPU-cheap routers decide inline, I/O-bound routers override."""
        return self.route(ctx)

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        """Decide many contexts; vectorised routers override for throughput."""
        return [self.route(c) for c in contexts]

    async def aroute_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        """Async batch variant."""
        return list(await asyncio.gather(*(self.aroute(c) for c in contexts)))

    def referenced_targets(self) -> set[str]:
        """Target names this router is configured to choose; the flow checks them at compile time."""
        return set()

    def feedback(self, feedback: Feedback) -> None:
        """Learn from an outcome. Non-learning routers refuse feedback."""
        raise FeedbackError(
            f"router {self.label!r} ({type(self).__name__}) does not learn from feedback; "
            "send feedback only to routers with learns = True"
        )

    def decide(
        self,
        scores: Mapping[str, float],
        *,
        k: int = 1,
        rationale: str = "",
        metadata: Mapping[str, Any] | None = None,
        cost_usd: float = 0.0,
    ) -> Decision:
        """Build a decision choosing the ``k`` best-scored candidates, labelled with this router."""
        return Decision.from_scores(
            scores, k=k, rationale=rationale, router=self.label,
            metadata=dict(metadata or {}), cost_usd=cost_usd,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label={self.label!r})"
