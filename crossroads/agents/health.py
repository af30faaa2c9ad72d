"""Per-target health tracking from observed call outcomes."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque

from ..types import Health, HealthStatus

__all__ = ["HealthTracker"]

DEFAULT_WINDOW = 20
"""How many recent calls the error rate and latency are computed over."""
DEFAULT_DOWN_ERROR_RATE = 0.5
"""Error rate at or above which a target counts as down (with enough calls observed)."""
DEFAULT_DEGRADED_ERROR_RATE = 0.2
MIN_CALLS_FOR_STATUS = 4


class HealthTracker:
    """Thread-safe rolling window of call outcomes that yields a :class:`Health` snapshot."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        down_error_rate: float = DEFAULT_DOWN_ERROR_RATE,
        degraded_error_rate: float = DEFAULT_DEGRADED_ERROR_RATE,
    ) -> None:
        self._outcomes: deque[tuple[bool, float]] = deque(maxlen=window)
        self._down_rate = down_error_rate
        self._degraded_rate = degraded_error_rate
        self._forced: HealthStatus | None = None
        self._cooldown_until: float | None = None
        self._lock = threading.Lock()

    def record(self, ok: bool, latency_ms: float) -> None:
        """Add one call outcome."""
        with self._lock:
            self._outcomes.append((ok, latency_ms))

    def set_status(self, status: HealthStatus | None) -> None:
        """Force a status (e.g. from an external monitor); ``None`` returns to observed health."""
        with self._lock:
            self._forced = status

    def cool_down(self, seconds: float) -> None:
        """Mark the target unusable for ``seconds`` from now."""
        with self._lock:
            self._cooldown_until = time.time() + seconds

    def snapshot(self) -> Health:
        """The current health."""
        with self._lock:
            outcomes = list(self._outcomes)
            forced = self._forced
            cooldown = self._cooldown_until
        n = len(outcomes)
        error_rate = sum(1 for ok, _ in outcomes if not ok) / n if n else 0.0
        latency = statistics.median(lat for _, lat in outcomes) if n else None
        if forced is not None:
            status = forced
        elif cooldown is not None and cooldown > time.time():
            status = HealthStatus.DOWN
        elif n >= MIN_CALLS_FOR_STATUS and error_rate >= self._down_rate:
            status = HealthStatus.DOWN
        elif n >= MIN_CALLS_FOR_STATUS and error_rate >= self._degraded_rate:
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.HEALTHY
        if cooldown is not None and cooldown <= time.time():
            cooldown = None
        return Health(status=status, error_rate=error_rate, latency_ms=latency, cooldown_until=cooldown)
