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
