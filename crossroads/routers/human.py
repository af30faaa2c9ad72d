"""A router that asks a person: the run pauses (LangGraph interrupt) until it is resumed with a choice."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import RoutingError
from ..types import Decision, RouteContext
from .base import Router
from .registry import register_router

__all__ = ["HumanRouter"]


@register_router()
class HumanRouter(Router):
    """Pauses the run and waits for a human to name the target(s).

    Resume with ``compiled.resume(thread_id, "billing")`` (or a list of names), or on the CLI with
    ``crossroads run FLOW --resume --thread ID --answer billing``. Needs a checkpointer.
    """

    name = "human"
    blocking = False  # decides in microseconds: no worker thread in async runs
    interactive: ClassVar[bool] = True
    """The orchestrator gives interactive routers a decision node of their own, so resuming does
    not re-run the node before the choice."""

    def __init__(self, prompt: str = "Choose the target for this request", *, label: str | None = None) -> None:
        super().__init__(label=label)
        self.prompt = prompt

    def route(self, ctx: RouteContext) -> Decision:
        from langgraph.types import interrupt

        answer: Any = interrupt({
            "question": self.prompt,
            "query": ctx.query,
            "candidates": [{"name": c.name, "description": c.description} for c in ctx.candidates],
        })
        chosen = (answer,) if isinstance(answer, str) else tuple(answer)
        names = ctx.candidate_names
        bad = [c for c in chosen if c not in names]
        if bad or not chosen:
            raise RoutingError(
                f"human answer {answer!r} names no valid candidate; candidates: {', '.join(names)}",
                router=self.label, target=bad[0] if bad else None, candidates=names,
            )
        return Decision(targets=chosen, scores={n: float(n in chosen) for n in names},
                        router=self.label, rationale="chosen by a human")
