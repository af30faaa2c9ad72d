"""Why a model call failed, decided in one place: what to retry, what counts against availability.

litellm wraps every failure in its own exception types and attaches a synthetic HTTP status to some
(a refused connection arrives as ``InternalServerError`` with status 500; a read timeout as 408). The
cause is in the exception chain, so :func:`classify_error` walks it: timeouts and connection failures
first, then a real HTTP status, then malformed replies. Anything else (a ``ValueError`` in a user
function, a bad tool schema) is an application error: not retried, and never a sign that the target
is down (:func:`is_transport_error` is what availability health should count).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from ...errors import DeadlineExceededError, MalformedResponseError

__all__ = ["Failure", "FailureKind", "classify_error", "error_status", "is_retryable", "is_transport_error"]


class FailureKind(str, Enum):
    """The cause of a failed call."""

    DEADLINE = "deadline"
    """The call's total deadline passed (a trickling or stalled reply)."""
    TIMEOUT = "timeout"
    """No bytes within the per-read timeout."""
    CONNECTION = "connection"
    """Refused, reset or dropped connection; DNS failure; a stream that broke off."""
    RATE_LIMIT = "rate_limit"
    """HTTP 429."""
    SERVER = "server"
    """HTTP 5xx received from the provider."""
    MALFORMED = "malformed"
    """The provider answered, but not with a readable completion."""
    AUTH = "auth"
    """HTTP 401/403: a key problem, not an outage."""
    CLIENT = "client"
    """Another HTTP 4xx: the request is wrong; retrying it cannot help."""
    UNAVAILABLE = "unavailable"
    """Every model of a fallback chain was skipped: all are cooling down after repeated failures."""
    APPLICATION = "application"
    """Not a provider failure at all: a bug or bad input in the caller's code."""


_TRANSPORT = {FailureKind.DEADLINE, FailureKind.TIMEOUT, FailureKind.CONNECTION, FailureKind.RATE_LIMIT,
              FailureKind.SERVER, FailureKind.MALFORMED, FailureKind.UNAVAILABLE}
_RETRYABLE = _TRANSPORT - {FailureKind.UNAVAILABLE}


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure. ``status`` is an HTTP status the provider really sent (``None`` when no
    HTTP response was received: a refused connection is not a 500)."""

    kind: FailureKind
    status: int | None
    error: str
    """The outermost exception's type name."""

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE

    @property
    def transport(self) -> bool:
        """A transport/provider failure: counts against the model's availability."""
        return self.kind in _TRANSPORT


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps (cause, context, litellm's ``original_exception``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "original_exception", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


_TIMEOUT_NAMES = {"TimeoutError", "Timeout", "APITimeoutError", "ReadTimeout", "ConnectTimeout", "WriteTimeout",
                  "PoolTimeout", "TimeoutException"}
_CONNECTION_NAMES = {"ConnectionError", "ConnectError", "APIConnectionError", "RemoteProtocolError", "ReadError",
                     "WriteError", "NetworkError", "ProtocolError", "IncompleteRead", "gaierror",
                     "ServerDisconnectedError", "ClientConnectionError", "MidStreamFallbackError"}


def error_status(exc: BaseException) -> int | None:
    """An HTTP status attached to the exception or one it wraps (may be synthetic: see :func:`classify_error`)."""
    for c in _chain(exc):
        for attr in ("status_code", "status", "http_status"):
            v = getattr(c, attr, None)
            if isinstance(v, int) and 100 <= v <= 599:
                return v
    return None


def classify_error(exc: BaseException) -> Failure:
    """The cause of a failed model call (see :class:`FailureKind`)."""
    name = type(exc).__name__
    composite = getattr(exc, "failure", None)  # a fallback chain's error: classified when it was raised
    if isinstance(composite, Failure):
        return composite
    chain = list(_chain(exc))
    if any(isinstance(c, DeadlineExceededError) for c in chain):
        return Failure(FailureKind.DEADLINE, None, name)
    if any(_names(c) & _TIMEOUT_NAMES for c in chain):
        return Failure(FailureKind.TIMEOUT, None, name)
    if any(_names(c) & _CONNECTION_NAMES for c in chain):
        return Failure(FailureKind.CONNECTION, None, name)
    if any(isinstance(c, (json.JSONDecodeError, MalformedResponseError)) for c in chain):
        return Failure(FailureKind.MALFORMED, None, name)
    # the openai SDK's base error (not an API/HTTP error): it refused before sending anything
    client_side = [c for c in chain if type(c).__name__ == "OpenAIError" and type(c).__module__.startswith("openai")]
    if client_side:
        msg = str(client_side[0]).lower()
        auth = "credential" in msg or "api_key" in msg or "api key" in msg
        return Failure(FailureKind.AUTH if auth else FailureKind.CLIENT, None, name)
    # no timeout or connection failure below: a status now is one the provider really sent
    status = error_status(exc)
    if status is not None and status >= 400:
        if status == 429:
            return Failure(FailureKind.RATE_LIMIT, status, name)
        if status in (401, 403):
            return Failure(FailureKind.AUTH, status, name)
        if status == 408:
            return Failure(FailureKind.TIMEOUT, status, name)
        if status >= 500:
            return Failure(FailureKind.SERVER, status, name)
        return Failure(FailureKind.CLIENT, status, name)
    return Failure(FailureKind.APPLICATION, None, name)


def is_retryable(exc: BaseException) -> bool:
    """Deadlines, timeouts, connection failures, 429, 5xx and unreadable replies are worth retrying."""
    return classify_error(exc).retryable


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the model (its provider, or the path to it) is unavailable.

    Only these failures should mark a target DOWN or degrade its availability; an application error
    (bad input, a bug in a user function, a 400 for a malformed request) says nothing about it.
    """
    return classify_error(exc).transport
