"""Every exception crossroads raises.

Hierarchy::

    CrossroadsError
    ├── ConfigError                 bad flow/suite YAML or a bad reference in it
    │   └── UnknownNameError        a router, node or target name that is not defined
    │       ├── UnknownRouterError
    │       └── UnknownTargetError
    ├── FlowError                   a flow that cannot be built or run as declared
    │   └── StepLimitError          a run took more steps than the flow's max_steps
    ├── RoutingError                a router broke the protocol (unknown target, missing scores, ...)
    │   └── RouterOutputError       an LLM router's output could not be parsed
    ├── TargetError                 a target (agent, tool, model) failed while running
    ├── FeedbackError               feedback for an unknown decision, a NaN reward, ...
    └── TraceStoreError             the trace database cannot be used
        ├── TraceStoreCorruptError  the file is not a readable crossroads trace DB
        └── TraceSchemaVersionError the DB was written by another schema version

Messages name the offending thing and how to fix it; where a choice was wrong they list the
valid choices.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "CrossroadsError",
    "FeedbackError",
    "FlowError",
    "RouterOutputError",
    "RoutingError",
    "SkillError",
    "StepLimitError",
    "TargetError",
    "TraceSchemaVersionError",
    "TraceStoreCorruptError",
    "TraceStoreError",
    "UnknownNameError",
    "UnknownRouterError",
    "UnknownTargetError",
]


class CrossroadsError(Exception):
    """Base class of every crossroads error."""


class ConfigError(CrossroadsError):
    """A flow or suite configuration is invalid; the message names the file and field."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not defined; lists the known names and the closest match."""

    def __init__(self, what: str, name: str, known: Iterable[str], *, hint: str = "", where: str = "") -> None:
        self.what = what
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        at = f" in {where}" if where else ""
        msg = f"unknown {what} {name!r}{at}; known: {', '.join(self.known) or '(none)'}"
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class UnknownRouterError(UnknownNameError):
    """A router name that is neither built in nor registered through an entry point."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(
            "router",
            name,
            known,
            hint="Register third-party routers under the 'crossroads.routers' entry point",
        )


class UnknownTargetError(UnknownNameError):
    """A node or target name that the flow does not define."""

    def __init__(self, name: str, known: Iterable[str], *, what: str = "target", where: str = "") -> None:
        super().__init__(what, name, known, where=where)


class FlowError(CrossroadsError):
    """A flow cannot be compiled or run as declared."""


class StepLimitError(FlowError):
    """A run exceeded the flow's ``max_steps``."""


class RoutingError(CrossroadsError):
    """A router broke the routing protocol, e.g. it chose a target that is not a candidate."""

    def __init__(
        self,
        message: str,
        *,
        router: str = "",
        target: str | None = None,
        candidates: Iterable[str] = (),
    ) -> None:
        self.router = router
        self.target = target
        self.candidates = tuple(candidates)
        super().__init__(message)


class RouterOutputError(RoutingError):
    """An LLM router's output could not be parsed into a decision."""


class TargetError(CrossroadsError):
    """A target (agent, tool or model) failed while running."""

    def __init__(self, message: str, *, target: str = "") -> None:
        self.target = target
        super().__init__(message)


class FeedbackError(CrossroadsError):
    """Feedback that cannot be applied: unknown decision id, non-finite reward, ..."""


class TraceStoreError(CrossroadsError):
    """The trace database cannot be used."""


class TraceStoreCorruptError(TraceStoreError):
    """The trace file is not a readable crossroads trace database."""


class TraceSchemaVersionError(TraceStoreError):
    """The trace database was written with a different schema version."""


class InputError(CrossroadsError, ValueError):
    """A run's input cannot be used as given (not text, or not valid Unicode); nothing was run."""


class InputTooLargeError(InputError):
    """A run's input is over the flow's size limit (``Flow(max_input_chars=...)``); nothing was run."""

    def __init__(self, size: int, limit: int, *, what: str = "input") -> None:
        super().__init__(
            f"{what} has {size:,} characters, over the limit of {limit:,}; shorten it or raise the limit "
            "(Flow(max_input_chars=...), YAML 'max_input_chars:', or crossroads run --max-input-chars)"
        )
        self.size = size
        self.limit = limit


class BudgetExceededError(FlowError):
    """A run reached its cost budget (``Flow(max_cost_usd=...)``) before a step that would spend more."""

    def __init__(self, message: str, *, spent_usd: float, budget_usd: float) -> None:
        super().__init__(message)
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd


class ThreadFinishedError(FlowError):
    """``resume`` was called on a thread whose last run already finished: nothing is pending."""


class DeadlineExceededError(TargetError):
    """A model call ran past its total deadline (``deadline_s``), however steadily bytes trickled in."""

    def __init__(self, message: str, *, target: str = "", deadline_s: float = 0.0, elapsed_s: float = 0.0) -> None:
        self.deadline_s = deadline_s
        self.elapsed_s = elapsed_s
        super().__init__(message, target=target)


class MalformedResponseError(TargetError):
    """A provider answered, but not with a readable completion (no choices, no message, bad JSON)."""


__all__ += ["DeadlineExceededError", "MalformedResponseError"]


class TraceStoreReadOnlyError(TraceStoreError):
    """The trace database (or its folder) cannot be written; reading it still works."""


class TraceStoreForeignError(TraceStoreCorruptError):
    """The file is an SQLite database of another application; crossroads refuses it untouched."""


class TraceStoreLockedError(TraceStoreError):
    """The trace database stayed locked by another process longer than the writer retries."""


__all__ += ["TraceStoreForeignError", "TraceStoreLockedError", "TraceStoreReadOnlyError"]


class SkillError(ConfigError):
    """A skill definition, skill file or skill index that cannot be used (names the file and field)."""


class HealthMonitorError(ConfigError):
    """A health monitor reported something unusable: a NaN or negative penalty, or a tool not in the graph."""
