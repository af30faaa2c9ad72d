"""Prometheus metrics and OpenTelemetry export, both fed through the Recorder interface."""

from __future__ import annotations

import pytest

from crossroads import (
    START,
    CallUsage,
    Decision,
    Flow,
    MemoryRecorder,
    RunEvent,
    TargetResult,
    agent,
    load_flow,
)
from crossroads.routers import FixedRouter
from crossroads.tracing import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from crossroads.observability import MetricsRecorder  # noqa: E402


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _v(samples, metric, **labels):
    return samples[(metric, tuple(sorted(labels.items())))]


def _records():
    d1 = Decision(targets=("calc",), scores={"calc": 0.9, "faq": 0.1}, router="triage", latency_ms=2.0, cost_usd=0.001)
    d2 = Decision(targets=("calc", "faq"), scores={"calc": 0.6, "faq": 0.5}, router="triage", latency_ms=30.0)
    return [
        RunStart(run_id="r1", flow="demo", thread_id="t", input="hi"),
        DecisionRecord(run_id="r1", source="__start__", decision=d1),
        DecisionRecord(run_id="r1", source="__start__", decision=d2),
        CallRecord(run_id="r1", usage=CallUsage(target="calc", model="gpt-x", input_tokens=10, output_tokens=5,
                                                 cost_usd=0.02, latency_ms=700.0)),
        CallRecord(run_id="r1", usage=CallUsage(target="calc", model="gpt-x", latency_ms=3.0, error="boom")),
        EventRecord(kind="retry", run_id="r1", target="gpt-x"),
        EventRecord(kind="retry", run_id="r1", target="gpt-x"),
        EventRecord(kind="fallback", run_id="r1", target="gpt-y"),
        EventRecord(kind="reroute", run_id="r1", target="calc"),
        EventRecord(kind="escalation", run_id="r1", target="faq"),
        EventRecord(kind="learning_update", run_id="r1"),
        RunEnd(run_id="r1", status="succeeded"),
    ]


def test_metrics_recorder_counts_and_passes_everything_on():
    inner = MemoryRecorder()
    m = MetricsRecorder(inner)
    recs = _records()
    for r in recs:
        m.record(r)
    assert inner.records == recs  # the wrapped recorder sees every record, unchanged, in order
    s = _samples(m.exposition().decode())
    # a fan-out decision counts once per chosen target
    assert _v(s, "crossroads_decisions_total", router="triage", source="__start__", target="calc") == 2
    assert _v(s, "crossroads_decisions_total", router="triage", source="__start__", target="faq") == 1
    # latency histogram in seconds: 2 ms falls in le=0.0025, 30 ms only from le=0.05
    assert _v(s, "crossroads_decision_latency_seconds_bucket", router="triage", le="0.0025") == 1
    assert _v(s, "crossroads_decision_latency_seconds_bucket", router="triage", le="0.025") == 1
    assert _v(s, "crossroads_decision_latency_seconds_bucket", router="triage", le="0.05") == 2
    assert _v(s, "crossroads_decision_latency_seconds_count", router="triage") == 2
    assert _v(s, "crossroads_decision_latency_seconds_sum", router="triage") == pytest.approx(0.032)
    assert _v(s, "crossroads_calls_total", target="calc", model="gpt-x", status="ok") == 1
    assert _v(s, "crossroads_calls_total", target="calc", model="gpt-x", status="error") == 1
    assert _v(s, "crossroads_call_latency_seconds_bucket", target="calc", model="gpt-x", le="0.5") == 1
    assert _v(s, "crossroads_call_latency_seconds_bucket", target="calc", model="gpt-x", le="1.0") == 2
    assert _v(s, "crossroads_tokens_total", target="calc", model="gpt-x", direction="input") == 10
    assert _v(s, "crossroads_tokens_total", target="calc", model="gpt-x", direction="output") == 5
    assert _v(s, "crossroads_cost_usd_total", kind="call", name="calc") == pytest.approx(0.02)
    assert _v(s, "crossroads_cost_usd_total", kind="router", name="triage") == pytest.approx(0.001)
    assert _v(s, "crossroads_retries_total", target="gpt-x") == 2
    assert _v(s, "crossroads_fallbacks_total", target="gpt-y") == 1
    assert _v(s, "crossroads_reroutes_total", target="calc") == 1
    assert _v(s, "crossroads_escalations_total", target="faq") == 1
    assert _v(s, "crossroads_events_total", kind="learning_update") == 1
    assert _v(s, "crossroads_runs_started_total", flow="demo") == 1
    assert _v(s, "crossroads_runs_finished_total", status="succeeded") == 1


def test_two_metrics_recorders_do_not_share_counters():
    a, b = MetricsRecorder(), MetricsRecorder()
    a.record(_records()[1])
    s = _samples(b.exposition().decode())
    assert not any(k[0] == "crossroads_decisions_total" for k in s)


def _flow_with_events() -> Flow:
    def flaky(text: str) -> TargetResult:
        return TargetResult(output=f"ok:{text}",
                            calls=(CallUsage(target="flaky", model="m1", input_tokens=3, output_tokens=2,
                                             cost_usd=0.5, latency_ms=40.0),),
                            events=(RunEvent(kind="retry", target="m1"), RunEvent(kind="fallback", target="m2")))

    f = Flow("metrics-demo")
    f.add(agent("flaky", flaky), agent("other", lambda t: t))
    f.route(START, FixedRouter(["flaky"], label="pick"), candidates=["flaky", "other"])
    return f


def test_serve_exposes_metrics_of_served_runs():
    from fastapi.testclient import TestClient

    from crossroads.serving import build_app

    client = TestClient(build_app(_flow_with_events()))
    for _ in range(2):
        r = client.post("/v1/chat/completions", json={"model": "flow:metrics-demo",
                                                      "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200, r.text
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    s = _samples(resp.text)
    assert _v(s, "crossroads_decisions_total", router="pick", source="__start__", target="flaky") == 2
    assert _v(s, "crossroads_retries_total", target="m1") == 2
    assert _v(s, "crossroads_fallbacks_total", target="m2") == 2
    assert _v(s, "crossroads_cost_usd_total", kind="call", name="flaky") == pytest.approx(1.0)
    assert _v(s, "crossroads_call_latency_seconds_count", target="flaky", model="m1") == 2
    assert _v(s, "crossroads_runs_finished_total", status="succeeded") == 2


def test_metrics_need_the_api_key_like_every_endpoint():
    from fastapi.testclient import TestClient

    from crossroads.serving import build_app

    client = TestClient(build_app(load_flow("examples/quickstart.yaml"), api_key="s3cret"))
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "# TYPE crossroads_decisions_total counter" in ok.text
    assert client.get("/livez").status_code == 200


def test_metrics_can_be_turned_off():
    from fastapi.testclient import TestClient

    from crossroads.serving import build_app

    client = TestClient(build_app(load_flow("examples/quickstart.yaml"), metrics=False))
    assert client.get("/metrics").status_code == 404


# --- OpenTelemetry -------------------------------------------------------------------------------------

def _otel():
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_otel_spans_for_hand_made_records():
    from opentelemetry.trace import SpanKind, StatusCode

    from crossroads.observability import OTelRecorder

    provider, exporter = _otel()
    inner = MemoryRecorder()
    rec = OTelRecorder(inner, tracer_provider=provider)
    for r in _records():
        rec.record(r)
    rec.record(EventRecord(kind="learning_update", decision_id="d9", target="calc"))  # no run: its own span
    assert len(inner.records) == len(_records()) + 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run = spans["crossroads.run demo"]
    assert run.parent is None and run.attributes["crossroads.run.status"] == "succeeded"
    decisions = [s for s in exporter.get_finished_spans() if s.name == "crossroads.decision triage"]
    assert len(decisions) == 2
    d1, d2 = decisions
    assert all(d.parent.span_id == run.context.span_id and d.context.trace_id == run.context.trace_id for d in decisions)
    assert list(d1.attributes["crossroads.decision.candidates"]) == ["calc", "faq"]
    assert list(d1.attributes["crossroads.decision.scores"]) == [0.9, 0.1]
    assert list(d2.attributes["crossroads.decision.chosen"]) == ["calc", "faq"]
    assert d1.attributes["crossroads.decision.cost_usd"] == 0.001
    assert d2.end_time - d2.start_time == 30_000_000  # the decision's recorded latency, in ns
    chats = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-x"]
    ok, failed = chats
    assert ok.kind == SpanKind.CLIENT and ok.attributes["gen_ai.operation.name"] == "chat"
    assert ok.attributes["gen_ai.request.model"] == "gpt-x"
    assert ok.attributes["gen_ai.usage.input_tokens"] == 10 and ok.attributes["gen_ai.usage.output_tokens"] == 5
    assert ok.end_time - ok.start_time == 700_000_000
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes["error.type"] == "boom"
    kinds = [e.name for e in run.events]
    assert kinds == ["retry", "retry", "fallback", "reroute", "escalation", "learning_update"]
    assert run.events[2].attributes["crossroads.event.target"] == "gpt-y"
    assert spans["crossroads.event learning_update"].attributes["crossroads.decision.id"] == "d9"


def test_otel_a_real_run_is_one_trace_with_step_and_decision_spans():
    from crossroads.observability import OTelRecorder

    provider, exporter = _otel()
    compiled = _flow_with_events().compile(recorder=OTelRecorder(tracer_provider=provider))
    result = compiled.invoke("hello")
    compiled.close()
    spans = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    names = sorted(s.name for s in spans)
    assert names == ["chat m1", "crossroads.decision pick", "crossroads.run metrics-demo", "crossroads.step flaky"]
    run = next(s for s in spans if s.parent is None)
    assert run.attributes["crossroads.run.id"] == result.run_id and run.attributes["crossroads.run.output"] == "ok:hello"
    decision = next(s for s in spans if s.name.startswith("crossroads.decision"))
    assert list(decision.attributes["crossroads.decision.chosen"]) == ["flaky"]
    assert decision.attributes["crossroads.decision.id"] == result.decisions[0].decision_id
    assert [e.name for e in run.events] == ["retry", "fallback"]


def test_otel_unfinished_run_is_ended_on_close_and_secrets_are_redacted():
    from crossroads.observability import OTelRecorder

    provider, exporter = _otel()
    rec = OTelRecorder(tracer_provider=provider)
    rec.record(RunStart(run_id="r2", flow="demo", thread_id="t", input="key sk-abcdefghijklmnopqrstuvwxyz123456"))
    assert exporter.get_finished_spans() == ()
    rec.close()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["crossroads.run.status"] == "unfinished"
    assert "sk-abcdefghijklmnopqrstuvwxyz123456" not in span.attributes["crossroads.run.input"]


def test_otel_otlp_http_export_reaches_a_local_receiver():
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from crossroads.observability import OTelRecorder

    bodies: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            n = int(self.headers.get("content-length", 0))
            bodies.append((self.path, self.rfile.read(n)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rec = OTelRecorder.otlp(f"http://127.0.0.1:{server.server_port}/v1/traces", service_name="crossroads-test")
        for r in _records():
            rec.record(r)
        rec.close()
    finally:
        server.shutdown()
    assert bodies and all(path == "/v1/traces" for path, _ in bodies)
    spans, services = [], set()
    for _, body in bodies:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services |= {a.value.string_value for a in rs.resource.attributes if a.key == "service.name"}
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    assert services == {"crossroads-test"}
    assert sorted(s.name for s in spans) == ["chat gpt-x", "chat gpt-x", "crossroads.decision triage",
                                             "crossroads.decision triage", "crossroads.run demo"]
    d = next(s for s in spans if s.name == "crossroads.decision triage")
    attrs = {a.key: a.value for a in d.attributes}
    assert [v.string_value for v in attrs["crossroads.decision.candidates"].array_value.values] == ["calc", "faq"]
    assert [v.double_value for v in attrs["crossroads.decision.scores"].array_value.values] == [0.9, 0.1]
    chats = [{a.key: a.value for a in s.attributes} for s in spans if s.name == "chat gpt-x"]
    assert sorted(c["gen_ai.usage.input_tokens"].int_value for c in chats) == [0, 10]
    assert {c["gen_ai.request.model"].string_value for c in chats} == {"gpt-x"}


# --- CLI: --otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT for run and serve, --no-metrics ----------------

FLOW_YAML = """
name: t
targets:
  echo: {callable: agents.py:echo, description: echoes}
  shout: {callable: agents.py:shout, kind: tool}
routers:
  r:
    type: rules
    params: {rules: [{when: {keyword: loud}, route: shout}], default: echo}
edges:
  - {from: START, route: r, candidates: [echo, shout]}
"""


class _Receiver:
    """A local OTLP/HTTP receiver: collects the spans POSTed to it (decoded protobuf)."""

    def __enter__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                bodies.append((self.path, self.rfile.read(int(self.headers.get("content-length", 0)))))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()

    def spans(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        out = []
        for _, body in self.bodies:
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                for ss in rs.scope_spans:
                    out.extend(ss.spans)
        return out


def _flow_dir(tmp_path):
    (tmp_path / "agents.py").write_text("def echo(text):\n    return 'echo:' + text\n\ndef shout(text):\n    return text.upper()\n")
    (tmp_path / "flow.yaml").write_text(FLOW_YAML)
    return tmp_path / "flow.yaml"


def test_otlp_endpoint_resolution():
    from crossroads.errors import ConfigError
    from crossroads.observability.otel import otlp_traces_endpoint

    assert otlp_traces_endpoint("http://h:4318", env={}) == "http://h:4318/v1/traces"  # a bare base URL
    assert otlp_traces_endpoint("http://h:4318/", env={}) == "http://h:4318/v1/traces"
    assert otlp_traces_endpoint("http://h:9/custom/path", env={}) == "http://h:9/custom/path"  # a path: as given
    assert otlp_traces_endpoint(None, env={}) is None
    assert otlp_traces_endpoint(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    assert otlp_traces_endpoint(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                                           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}) == "http://t:1/x"
    assert otlp_traces_endpoint(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) is None
    assert otlp_traces_endpoint("http://h:1", env={"OTEL_SDK_DISABLED": "true"}) == "http://h:1/v1/traces"  # the flag wins
    with pytest.raises(ConfigError, match="not a URL"):
        otlp_traces_endpoint("localhost:4318", env={})


def test_cli_run_exports_over_otlp_by_flag_and_by_env(tmp_path, monkeypatch):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from typer.testing import CliRunner

    from crossroads.cli import app

    flow = _flow_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    runner = CliRunner()
    with _Receiver() as rx:
        res = runner.invoke(app, ["run", str(flow), "--input", "be loud", "--db", str(tmp_path / "t.db"),
                                  "--otlp-endpoint", rx.url])
        assert res.exit_code == 0, res.output
        assert "BE LOUD" in res.output
    assert {p for p, _ in rx.bodies} == {"/v1/traces"}
    spans = rx.spans()
    assert sorted(s.name for s in spans) == ["crossroads.decision r", "crossroads.run t", "crossroads.step shout",
                                             "execute_tool shout"]
    assert len({s.trace_id for s in spans}) == 1  # one run, one trace
    d = next(s for s in spans if s.name == "crossroads.decision r")
    attrs = {a.key: a.value for a in d.attributes}
    assert [v.string_value for v in attrs["crossroads.decision.chosen"].array_value.values] == ["shout"]
    with _Receiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        res = runner.invoke(app, ["run", str(flow), "--input", "hello", "--no-trace"])
        assert res.exit_code == 0, res.output
    assert "crossroads.run t" in {s.name for s in rx.spans()}  # the env var alone turns export on
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")


def test_cli_serve_no_metrics_and_otlp(tmp_path, monkeypatch):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    pytest.importorskip("uvicorn")
    import uvicorn
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from crossroads.cli import app

    flow = _flow_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_run(application, **kw):  # instead of binding a port: drive the app in-process
        with TestClient(application) as c:
            seen["metrics"] = c.get("/metrics").status_code
            seen["chat"] = c.post("/v1/chat/completions", json={"model": "flow:t", "messages": [
                {"role": "user", "content": "be loud"}]}).status_code

    monkeypatch.setattr(uvicorn, "run", fake_run)
    with _Receiver() as rx:
        res = CliRunner().invoke(app, ["serve", str(flow), "--no-trace", "--no-metrics", "--otlp-endpoint", rx.url + "/v1/traces"])
        assert res.exit_code == 0, res.output
    assert seen == {"metrics": 404, "chat": 200}
    assert "crossroads.run t" in {s.name for s in rx.spans()}
    res = CliRunner().invoke(app, ["serve", str(flow), "--no-trace"])
    assert res.exit_code == 0 and seen["metrics"] == 200  # metrics on by default


def test_a_new_db_folder_is_created_out_loud(tmp_path, monkeypatch, capsys):
    from typer.testing import CliRunner

    from crossroads.cli import app
    from crossroads.tracing import TraceStore

    store = TraceStore(tmp_path / "a" / "b" / "x.db")
    assert store.created_folder == tmp_path / "a" and (tmp_path / "a" / "b" / "x.db").exists()
    store.close()
    again = TraceStore(tmp_path / "a" / "b" / "x.db")
    assert again.created_folder is None
    again.close()
    flow = _flow_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["run", str(flow), "--input", "hi", "--db", str(tmp_path / "typo" / "t.db")])
    assert res.exit_code == 0, res.output
    err = capsys.readouterr().err + res.output
    assert f"warning: created folder {tmp_path / 'typo'} for the new trace DB {tmp_path / 'typo' / 't.db'}" in err
