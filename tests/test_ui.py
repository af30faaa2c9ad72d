"""crossroads ui: FastAPI's TestClient over a real trace DB, and a real browser when one is installed."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from html import unescape

import pytest

from crossroads import CallUsage, Decision, SQLRecorder
from crossroads.tracing import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, StepRecord

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient  # noqa: E402

from crossroads.ui import build_ui_app, mermaid_path  # noqa: E402
from crossroads.ui.queries import candidate_bars, top2_margin  # noqa: E402

T0 = 1_700_000_000.0


def _fill(db) -> dict[str, str]:
    rec = SQLRecorder(str(db))
    ids = {}
    # run A: triage routes to calc (confident), calc retries then falls back; cost 0.02 + router 0.001
    rec.record(RunStart(run_id="runA0001", flow="support", thread_id="t1", input="what is 2+2", started_at=T0))
    dA = Decision(targets=("calc",), scores={"calc": 0.9, "faq": 0.05, "billing": 0.05}, router="triage",
                  rationale="arithmetic", latency_ms=1.0, cost_usd=0.001)
    rec.record(DecisionRecord(run_id="runA0001", source="__start__", decision=dA, query="what is 2+2", created_at=T0 + 0.1))
    rec.record(StepRecord(run_id="runA0001", node="calc", started_at=T0 + 0.1, ended_at=T0 + 1.1, cost_usd=0.02, step_id="stepA"))
    rec.record(CallRecord(run_id="runA0001", step_id="stepA", usage=CallUsage(target="calc", model="gpt-x", input_tokens=12,
                                                                              output_tokens=3, cost_usd=0.02, latency_ms=900.0), created_at=T0 + 1.0))
    rec.record(EventRecord(kind="retry", run_id="runA0001", step_id="stepA", target="gpt-x", created_at=T0 + 0.5))
    rec.record(EventRecord(kind="fallback", run_id="runA0001", step_id="stepA", target="gpt-y", created_at=T0 + 0.6))
    rec.record(RunEnd(run_id="runA0001", status="succeeded", output="4", ended_at=T0 + 1.2))
    # run B: triage unsure between faq and billing (margin 0.02), then a routing error; failed, cost 0
    rec.record(RunStart(run_id="runB0002", flow="support", thread_id="t2", input="refund my order", started_at=T0 + 10))
    dB = Decision(targets=("billing",), scores={"billing": 0.41, "faq": 0.39, "calc": 0.2}, router="triage", latency_ms=3.0)
    rec.record(DecisionRecord(run_id="runB0002", source="__start__", decision=dB, created_at=T0 + 10.1))
    rec.record(EventRecord(kind="routing_error", run_id="runB0002", decision_id=dB.decision_id, created_at=T0 + 10.2))
    rec.record(StepRecord(run_id="runB0002", node="billing", started_at=T0 + 10.1, ended_at=T0 + 10.3, status="failed",
                          error="TargetError: down"))
    rec.record(RunEnd(run_id="runB0002", status="failed", error="TargetError: down", ended_at=T0 + 10.4))
    # run C: another flow, a router with unbounded scores
    rec.record(RunStart(run_id="runC0003", flow="coding", thread_id="t3", input="write a sort", started_at=T0 + 20))
    dC = Decision(targets=("coder",), scores={"coder": 4.0, "chat": -2.0}, router="bandit", latency_ms=7.0)
    rec.record(DecisionRecord(run_id="runC0003", source="__start__", decision=dC, created_at=T0 + 20.1))
    rec.record(RunEnd(run_id="runC0003", status="succeeded", output="ok", ended_at=T0 + 21))
    rec.close()
    rec.store.close()  # the writer's last connection closes here (SQLite checkpoints its WAL now, not later)
    ids.update(A=dA.decision_id, B=dB.decision_id, C=dC.decision_id)
    return ids


@pytest.fixture
def filled(tmp_path):
    db = tmp_path / "ui.db"
    ids = _fill(db)
    return db, ids


def _run_ids(html: str) -> list[str]:
    return re.findall(r'href="/runs/(run[A-C]\d+)"', html)


def test_runs_list_filters_and_search(filled):
    db, _ = filled
    c = TestClient(build_ui_app(str(db)))
    assert _run_ids(c.get("/").text) == ["runC0003", "runB0002", "runA0001"]  # newest first
    assert _run_ids(c.get("/?flow=support").text) == ["runB0002", "runA0001"]
    assert _run_ids(c.get("/?status=failed").text) == ["runB0002"]
    assert _run_ids(c.get("/?router=bandit").text) == ["runC0003"]
    assert _run_ids(c.get("/?target=calc").text) == ["runA0001"]  # chosen, not merely a candidate
    assert _run_ids(c.get("/?min_cost=0.021").text) == ["runA0001"]  # 0.02 step + 0.001 router = 0.021
    assert _run_ids(c.get("/?min_cost=0.0211").text) == []
    assert _run_ids(c.get("/?q=runB").text) == ["runB0002"]  # run id prefix
    assert _run_ids(c.get("/?q=refund").text) == ["runB0002"]  # input text
    assert _run_ids(c.get("/?q=100%25").text) == []  # LIKE wildcards are escaped
    assert "0.021000" in c.get("/?q=runA").text


def test_run_page_shows_path_steps_every_candidate_bar_calls_and_events(filled):
    db, ids = filled
    c = TestClient(build_ui_app(str(db)))
    html = c.get("/runs/runA0001").text
    text = unescape(html)
    assert 'n0["START"]' in text and 'n1["calc"]' in text and "n1 --> n2" in text
    bars = re.findall(r'data-name="(\w+)".*?style="width: ([\d.]+)%"', html, re.S)
    assert bars == [("calc", "90.0"), ("faq", "5.0"), ("billing", "5.0")]
    assert 'class="bar chosen"' in html and "arithmetic" in html and "top-2 margin 0.850" in html
    assert "gpt-x" in html and "12/3" in html and "900.0" in html
    assert html.index(">retry<") < html.index(">fallback<")
    # unbounded scores: bars as a share of the largest |score|; a negative score is marked
    html_c = c.get("/runs/runC0003").text
    assert re.findall(r'data-name="(\w+)".*?style="width: ([\d.]+)%"', html_c, re.S) == [("coder", "100.0"), ("chat", "50.0")]
    assert "bar negative" in html_c
    assert c.get("/runs/nosuchrun").status_code == 404
    assert c.get("/runs/runB").status_code == 200  # a unique prefix resolves


def test_routers_page_counts_latency_rates_and_low_confidence(filled):
    db, ids = filled
    c = TestClient(build_ui_app(str(db)))
    html = c.get("/routers").text
    row = re.search(r'data-router="triage">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[1] == "2"
    assert "calc: 1" in row and "billing: 1" in row
    assert cells[3] == "2.000" and cells[4] == "2.980"  # p50 and p99 of [1, 3] ms, linear interpolation
    assert cells[5] == "50.00%" and cells[6] == "50.00%"  # 1 routing error / 2, 1 fallback in its runs / 2
    low = html[html.index("Low-confidence"):]
    assert ids["B"] in low and ids["A"] not in low and "0.0200" in low
    assert ids["C"] not in low  # bandit's margin is 6.0


def test_helpers_hand_computed():
    assert top2_margin([0.2, None, 0.5, float("nan"), 0.45]) == pytest.approx(0.05)
    assert top2_margin([0.7]) is None
    bars = candidate_bars([{"name": "a", "score": None}, {"name": "b", "score": 0.25}], ["b"])
    assert [(b["name"], b["width"], b["chosen"]) for b in bars] == [("b", 25.0, True), ("a", 0.0, False)]
    assert mermaid_path(["x"]) == 'flowchart LR\n    n0["START"]\n    n1["x"]\n    n2["END"]\n    n0 --> n1\n    n1 --> n2'


def test_ui_never_writes_and_needs_the_key(filled, tmp_path):
    db, _ = filled
    before = db.read_bytes()
    c = TestClient(build_ui_app(str(db), api_key="k3y"))
    assert c.get("/").status_code == 401 and c.get("/routers").status_code == 401
    assert c.get("/", headers={"Authorization": "Bearer k3y"}).status_code == 200
    r = c.get("/?key=k3y", follow_redirects=False)
    assert r.status_code == 303 and "key=" not in r.headers["location"]
    assert c.get("/routers").status_code == 200  # the cookie set by ?key=
    assert db.read_bytes() == before
    from crossroads.errors import TraceStoreError

    with pytest.raises(TraceStoreError):
        build_ui_app(str(tmp_path / "missing.db"))  # read-only open never creates a DB


def test_static_assets_ship_and_no_cdn(filled):
    db, _ = filled
    c = TestClient(build_ui_app(str(db)))
    assert c.get("/static/style.css").status_code == 200
    for page in ("/", "/runs/runA0001", "/routers"):
        assert "http://" not in c.get(page).text.replace("http://testserver", "") and "https://" not in c.get(page).text


# --- a real browser -----------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_browser_click_from_runs_list_to_a_decision(filled):
    pw = pytest.importorskip("playwright.sync_api")
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    import uvicorn

    db, ids = filled
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_ui_app(str(db)), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/?flow=support")
            page.click("a.run-link >> text=runA0001")
            decision = page.locator(f"#decision-{ids['A']}")
            assert decision.locator(".chosen-set").inner_text() == "calc"
            widths = decision.locator(".bar").evaluate_all("els => els.map(e => e.style.width)")
            assert widths == ["90%", "5%", "5%"]
            page.click("#nav-routers")
            assert page.locator('tr[data-router="triage"] td').nth(1).inner_text() == "2"
            browser.close()
    finally:
        server.should_exit = True
        th.join(timeout=10)
