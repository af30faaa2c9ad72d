"""Observability: Prometheus metrics and OpenTelemetry export, each a :class:`~crossroads.tracing.Recorder`
wrapping another, so the runtime keeps one recording path."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MetricsRecorder", "OTelRecorder"]

_WHERE = {"MetricsRecorder": "metrics", "OTelRecorder": "otel"}


def __getattr__(name: str) -> Any:  # lazy: prometheus-client / opentelemetry are optional
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'crossroads.observability' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f".{module}", __name__), name)
