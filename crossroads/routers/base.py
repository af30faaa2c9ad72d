"""The router protocol every router family implements."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from ..errors import FeedbackError
from ..types import Decision, Feedback, RouteContext

__all__ = ["ROUTER_THREADS", "Router"]

ROUTER_THREADS = 64
"""Worker threads that run blocking routers off the event loop (shared by every router)."""
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _router_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=ROUTER_THREADS, thread_name_prefix="crossroads-router")
    return _pool


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
    blocking: ClassVar[bool] = True
    """Whether :meth:`route` may block (embeddings, model calls, I/O). The default :meth:`aroute`
    runs blocking routers in a worker thread so concurrent async runs are not serialised; routers
    that decide in microseconds (rules, fixed) set ``blocking = False`` and decide inline."""

    label: str
    """Instance label shown in traces; defaults to the registry name."""

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label or self.name or type(self).__name__

    @abstractmethod
    def route(self, ctx: RouteContext) -> Decision:
        """Return a decision that scores every candidate in ``ctx``."""

    async def aroute(self, ctx: RouteContext) -> Decision:
        """Async variant: blocking routers run :meth:`route` in a worker thread (with the caller's
        context, so LangGraph interrupts still work), others inline. Natively async routers override."""
        if not self.blocking:
            return self.route(ctx)
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, self.route, ctx)
        return await loop.run_in_executor(_router_pool(), call)

    def route_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        """Decide many contexts; vectorised routers override for throughput."""
        return [self.route(c) for c in contexts]

    async def aroute_batch(self, contexts: Sequence[RouteContext]) -> list[Decision]:
        """Async batch variant."""
        return list(await asyncio.gather(*(self.aroute(c) for c in contexts)))

    def referenced_targets(self) -> set[str]:
        """Target names this router is configured to choose; the flow checks them at compile time."""
        return set()

    def close(self) -> None:
        """Release what the router holds (monitor threads, connections); called by
        ``CompiledFlow.close()``. The default holds nothing."""
        return None

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
