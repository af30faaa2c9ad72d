"""OpenTelemetry export through the one :class:`~crossroads.tracing.Recorder` interface.

:class:`OTelRecorder` wraps another recorder and turns the same records into spans: a run is a trace
(root span ``crossroads.run <flow>``); each step, decision and model/tool call is a child span with its
recorded start and end times; events (retries, fallbacks, reroutes, escalations, ...) are span events on
the run. Model calls carry the OpenTelemetry GenAI semantic-convention attributes
(https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/: ``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``/``output_tokens``, ``error.type``); decisions carry
``crossroads.*`` attributes (router, candidates, scores, chosen, rationale, latency, cost). Texts go through
the same secret redaction as the trace DB.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from typing import Any

from ..tracing.recorder import NullRecorder, Recorder
from ..tracing.records import (
    CallRecord,
    DecisionRecord,
    EventRecord,
    RunEnd,
    RunStart,
    StepRecord,
    TraceRecord,
)
from ..tracing.redact import redact
from ..types import TargetKind

__all__ = ["OTelRecorder", "otlp_traces_endpoint", "with_otlp"]

TEXT_CHARS = 1000
"""Inputs, outputs and rationales are exported truncated to this many characters."""


def _ns(t: float) -> int:
    return int(t * 1e9)


def _span_start(end: float, latency_ms: float) -> int:
    """Start time (ns) of a span that ended at ``end`` (s) after ``latency_ms``: exact in ns, not rounded in float seconds."""
    return _ns(end) - int(round(max(latency_ms, 0.0) * 1e6))


def _text(value: str | None) -> str:
    value = redact(value or "")
    return value if len(value) <= TEXT_CHARS else value[:TEXT_CHARS] + f"... [{len(value)} chars]"


def _provider(model: str) -> str | None:
    """The provider prefix of a litellm-style model name (``openai/gpt-4o-mini`` -> ``openai``)."""
    head, sep, _ = model.partition("/")
    return head if sep and head else None


class OTelRecorder:
    """A recorder that exports what passes through it as OpenTelemetry spans, then hands it to ``inner``.

    Example::

        from opentelemetry.sdk.trace import TracerProvider
        rec = OTelRecorder(SQLRecorder("crossroads.db"), tracer_provider=my_provider)
        # or straight to an OTLP/HTTP collector (Jaeger, Tempo, Honeycomb, ...):
        rec = OTelRecorder.otlp("http://127.0.0.1:4318/v1/traces", inner=SQLRecorder("crossroads.db"))
        flow.compile(recorder=rec).run("hello")

    Without ``tracer_provider`` the global one (``opentelemetry.trace.get_tracer_provider()``) is used.
    """

    def __init__(self, inner: Recorder | None = None, *, tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        from .._version import __version__

        self.inner: Recorder = inner if inner is not None else NullRecorder()
        self.tracer_provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer = self.tracer_provider.get_tracer("crossroads", __version__)
        self._owns_provider = False
        self._lock = threading.Lock()
        self._runs: dict[str, Any] = {}

    @classmethod
    def otlp(cls, endpoint: str, *, inner: Recorder | None = None, service_name: str = "crossroads",
             headers: dict[str, str] | None = None) -> OTelRecorder:
        """A recorder exporting over OTLP/HTTP (protobuf) to ``endpoint`` (e.g. ``http://127.0.0.1:4318/v1/traces``)
        with a batch span processor of its own; :meth:`close` flushes and shuts it down."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers)))
        rec = cls(inner, tracer_provider=provider)
        rec._owns_provider = True
        return rec

    # -- recording -------------------------------------------------------------------------------------

    def record(self, item: TraceRecord) -> None:
        try:
            self._export(item)
        finally:  # exporting must never cost a trace row
            self.inner.record(item)

    def _parent(self, run_id: str | None) -> Any:
        from opentelemetry import trace

        with self._lock:
            span = self._runs.get(run_id) if run_id else None
        return trace.set_span_in_context(span) if span is not None else None

    def _export(self, item: TraceRecord) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        if isinstance(item, RunStart):
            span = self.tracer.start_span(f"crossroads.run {item.flow}", start_time=_ns(item.started_at), attributes={
                "crossroads.run.id": item.run_id, "crossroads.flow": item.flow,
                "crossroads.thread.id": item.thread_id, "crossroads.run.input": _text(item.input)})
            with self._lock:
                self._runs[item.run_id] = span
        elif isinstance(item, RunEnd):
            if item.status == "running":  # a resumed run: the original span (if still open) goes on
                return
            with self._lock:
                span = self._runs.pop(item.run_id, None)
            if span is None:
                return
            span.set_attribute("crossroads.run.status", item.status)
            if item.output:
                span.set_attribute("crossroads.run.output", _text(item.output))
            if item.status != "succeeded":
                span.set_status(Status(StatusCode.ERROR, _text(item.error or item.status)))
            span.end(end_time=_ns(item.ended_at))
        elif isinstance(item, StepRecord):
            span = self.tracer.start_span(f"crossroads.step {item.node}", context=self._parent(item.run_id),
                                          start_time=_ns(item.started_at), attributes={
                "crossroads.run.id": item.run_id, "crossroads.step.id": item.step_id, "crossroads.node": item.node,
                "crossroads.step.kind": item.kind, "crossroads.step.status": item.status,
                "crossroads.step.graph_step": item.graph_step, "crossroads.cost_usd": item.cost_usd})
            if item.error:
                span.set_status(Status(StatusCode.ERROR, _text(item.error)))
            span.end(end_time=_ns(item.ended_at))
        elif isinstance(item, DecisionRecord):
            d = item.decision
            router = d.router or item.source
            names = list(d.scores)
            scores = [float(d.scores[n]) for n in names]
            span = self.tracer.start_span(f"crossroads.decision {router}", context=self._parent(item.run_id),
                                          start_time=_span_start(item.created_at, d.latency_ms), attributes={
                "crossroads.run.id": item.run_id, "crossroads.decision.id": d.decision_id,
                "crossroads.router": router, "crossroads.decision.source": item.source,
                "crossroads.decision.candidates": names,
                "crossroads.decision.scores": [s if math.isfinite(s) else 0.0 for s in scores],
                "crossroads.decision.chosen": list(d.targets), "crossroads.decision.rationale": _text(d.rationale),
                "crossroads.decision.latency_ms": d.latency_ms, "crossroads.decision.cost_usd": d.cost_usd,
                "crossroads.decision.query": _text(item.query)})
            span.end(end_time=_ns(item.created_at))
        elif isinstance(item, CallRecord):
            u = item.usage
            tool = u.kind == TargetKind.TOOL
            op = "execute_tool" if tool else "chat"
            model = u.model or u.target
            attrs: dict[str, Any] = {"gen_ai.operation.name": op, "crossroads.target": u.target,
                                     "crossroads.run.id": item.run_id, "crossroads.cost_usd": u.cost_usd,
                                     "crossroads.call.latency_ms": u.latency_ms}
            if tool:
                attrs["gen_ai.tool.name"] = u.target
            else:
                attrs["gen_ai.request.model"] = model
                attrs["gen_ai.usage.input_tokens"] = u.input_tokens
                attrs["gen_ai.usage.output_tokens"] = u.output_tokens
                provider = _provider(model)
                if provider:
                    attrs["gen_ai.provider.name"] = provider
            if item.step_id:
                attrs["crossroads.step.id"] = item.step_id
            span = self.tracer.start_span(f"{op} {u.target if tool else model}", context=self._parent(item.run_id),
                                          kind=SpanKind.CLIENT, attributes=attrs,
                                          start_time=_span_start(item.created_at, u.latency_ms))
            if u.error:
                span.set_attribute("error.type", _text(u.error).split(":", 1)[0][:100] or "error")
                span.set_status(Status(StatusCode.ERROR, _text(u.error)))
            span.end(end_time=_ns(item.created_at))
        elif isinstance(item, EventRecord):
            attrs = {"crossroads.event.kind": item.kind, "crossroads.event.target": item.target or "",
                     "crossroads.event.detail": _text(_detail(item.detail))}
            if item.decision_id:
                attrs["crossroads.decision.id"] = item.decision_id
            with self._lock:
                run_span = self._runs.get(item.run_id) if item.run_id else None
            if run_span is not None:
                run_span.add_event(item.kind, attributes=attrs, timestamp=_ns(item.created_at))
            else:  # e.g. a learning update arriving after its run ended: a span of its own
                span = self.tracer.start_span(f"crossroads.event {item.kind}", start_time=_ns(item.created_at),
                                              attributes={**attrs, "crossroads.run.id": item.run_id or ""})
                span.end(end_time=_ns(item.created_at))

    # -- lifecycle -------------------------------------------------------------------------------------

    def flush(self) -> None:
        self.inner.flush()
        force = getattr(self.tracer_provider, "force_flush", None)
        if force is not None:
            force()

    def close(self) -> None:
        """End the spans of runs still open (status ``unfinished``), flush, and close ``inner``."""
        with self._lock:
            open_runs, self._runs = self._runs, {}
        for span in open_runs.values():
            span.set_attribute("crossroads.run.status", "unfinished")
            span.end()
        try:
            self.flush()
            shutdown = getattr(self.tracer_provider, "shutdown", None)
            if self._owns_provider and shutdown is not None:
                shutdown()
        finally:
            self.inner.close()


def _detail(detail: Any) -> str:
    import json

    try:
        return json.dumps(dict(detail), default=str)
    except (TypeError, ValueError):
        return str(detail)


def otlp_traces_endpoint(flag: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """Where ``crossroads run`` / ``serve`` send spans over OTLP/HTTP, or None for no export.

    ``--otlp-endpoint URL`` first: a URL with a path is used as is, a bare ``scheme://host:port`` gets
    ``/v1/traces``. Else the OpenTelemetry environment variables, as the spec defines them:
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL) plus
    ``/v1/traces``; none when ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.
    """
    from urllib.parse import urlsplit

    env = os.environ if env is None else env
    if flag:
        if not urlsplit(flag).scheme or not urlsplit(flag).netloc:
            from ..errors import ConfigError

            raise ConfigError(f"--otlp-endpoint {flag!r} is not a URL; give one like http://127.0.0.1:4318 "
                              "(spans go to /v1/traces there) or the full traces URL")
        return flag if urlsplit(flag).path not in ("", "/") else flag.rstrip("/") + "/v1/traces"
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return None


def with_otlp(inner: Recorder, endpoint: str | None) -> Recorder:
    """``inner`` wrapped in an :class:`OTelRecorder` exporting to ``endpoint`` (``inner`` itself when None); the
    service name is ``OTEL_SERVICE_NAME`` or ``crossroads``. Without the ``otel`` extra: a ConfigError naming it."""
    if endpoint is None:
        return inner
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        from ..errors import ConfigError

        raise ConfigError(f"OTLP export to {endpoint} needs the otel extra: pip install 'crossroads[otel]' "
                          "(or drop --otlp-endpoint / unset OTEL_EXPORTER_OTLP_ENDPOINT)") from exc
    return OTelRecorder.otlp(endpoint, inner=inner, service_name=os.environ.get("OTEL_SERVICE_NAME") or "crossroads")
