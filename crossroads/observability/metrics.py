"""Prometheus metrics fed through the one :class:`~crossroads.tracing.Recorder` interface.

:class:`MetricsRecorder` wraps another recorder: every record is passed on unchanged and also counted
into a :class:`prometheus_client.CollectorRegistry` of its own (so two served apps never collide in the
global registry). ``crossroads serve`` exposes it at ``/metrics`` in the Prometheus text format.
"""

from __future__ import annotations

from typing import Any

from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, TraceRecord

__all__ = ["LATENCY_BUCKETS_S", "MetricsRecorder", "TRACKED_EVENTS"]

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Histogram buckets (seconds) for decision and call latency: routers decide in ~1 ms, model calls take seconds."""
TRACKED_EVENTS = {"retry": "retries", "fallback": "fallbacks", "reroute": "reroutes", "escalation": "escalations"}
"""Event kinds that get their own counter (``crossroads_<plural>_total{target}``); every kind also counts in
``crossroads_events_total{kind}``."""


class MetricsRecorder:
    """A recorder that counts what passes through it into Prometheus metrics, then hands it to ``inner``.

    Example::

        metrics = MetricsRecorder(SQLRecorder("crossroads.db"))
        compiled = flow.compile(recorder=metrics)
        print(metrics.exposition().decode())   # Prometheus text format

    Metrics (all prefixed ``crossroads_``): ``decisions_total{router,source,target}``,
    ``decision_latency_seconds{router}``, ``calls_total{target,model,status}``,
    ``call_latency_seconds{target,model}``, ``tokens_total{target,model,direction}``,
    ``cost_usd_total{kind,name}`` (kind ``call`` by target, ``router`` by router),
    ``retries_total``/``fallbacks_total``/``reroutes_total``/``escalations_total{target}``,
    ``events_total{kind}``, ``runs_started_total{flow}``, ``runs_finished_total{status}``.
    """

    def __init__(self, inner: Recorder | None = None, *, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.inner: Recorder = inner if inner is not None else NullRecorder()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.decisions = Counter("crossroads_decisions", "Routing decisions, one per chosen target.",
                                 ["router", "source", "target"], registry=r)
        self.decision_latency = Histogram("crossroads_decision_latency_seconds", "Time a router took to decide.",
                                          ["router"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.calls = Counter("crossroads_calls", "Model and tool calls.", ["target", "model", "status"], registry=r)
        self.call_latency = Histogram("crossroads_call_latency_seconds", "Latency of model and tool calls.",
                                      ["target", "model"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.tokens = Counter("crossroads_tokens", "Tokens of model calls.", ["target", "model", "direction"], registry=r)
        self.cost = Counter("crossroads_cost_usd", "Spend in USD: calls by target, routers' own spend by router.",
                            ["kind", "name"], registry=r)
        self.events = Counter("crossroads_events", "Trace events by kind.", ["kind"], registry=r)
        self.tracked = {k: Counter(f"crossroads_{plural}", f"{k.capitalize()} events by target.", ["target"], registry=r)
                        for k, plural in TRACKED_EVENTS.items()}
        self.runs_started = Counter("crossroads_runs_started", "Runs started.", ["flow"], registry=r)
        self.runs_finished = Counter("crossroads_runs_finished", "Runs finished, by status.", ["status"], registry=r)

    def record(self, item: TraceRecord) -> None:
        try:
            self._count(item)
        finally:  # counting must never cost a trace row
            self.inner.record(item)

    def _count(self, item: TraceRecord) -> None:
        if isinstance(item, DecisionRecord):
            d = item.decision
            router = d.router or item.source
            for t in d.targets:
                self.decisions.labels(router, item.source, t).inc()
            self.decision_latency.labels(router).observe(max(d.latency_ms, 0.0) / 1e3)
            if d.cost_usd > 0:
                self.cost.labels("router", router).inc(d.cost_usd)
        elif isinstance(item, CallRecord):
            u = item.usage
            model = u.model or ""
            self.calls.labels(u.target, model, "error" if u.error else "ok").inc()
            self.call_latency.labels(u.target, model).observe(max(u.latency_ms, 0.0) / 1e3)
            if u.input_tokens > 0:
                self.tokens.labels(u.target, model, "input").inc(u.input_tokens)
            if u.output_tokens > 0:
                self.tokens.labels(u.target, model, "output").inc(u.output_tokens)
            if u.cost_usd > 0:
                self.cost.labels("call", u.target).inc(u.cost_usd)
        elif isinstance(item, EventRecord):
            self.events.labels(item.kind).inc()
            counter = self.tracked.get(item.kind)
            if counter is not None:
                counter.labels(item.target or "").inc()
        elif isinstance(item, RunStart):
            self.runs_started.labels(item.flow).inc()
        elif isinstance(item, RunEnd) and item.status != "running":
            self.runs_finished.labels(item.status).inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format (what ``/metrics`` serves)."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
