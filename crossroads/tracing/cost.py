"""One definition of what a run cost, shared by ``RunResult``, ``crossroads trace list`` and ``trace show``."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["run_cost"]


def run_cost(target_costs: Iterable[float | None], router_costs: Iterable[float | None] = ()) -> float:
    """A run's cost in USD: the cost of every target step (its model/tool calls) plus the cost of every
    routing decision (an LLM router's own call), as issue 9 defines it ("targets + routers").

    Summed exactly (``math.fsum``), so the order rows come back in cannot change the figure; missing
    costs count as 0.

    >>> run_cost([0.1, 0.2], [0.0003])
    0.3003
    """
    return math.fsum(float(c) for c in (*target_costs, *router_costs) if c is not None)
