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
    import datetime as dt

    def local(t):  # the form's datetime-local value for epoch t (the server's local time)
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S")

    assert _run_ids(c.get(f"/?from={local(T0 + 10)}").text) == ["runC0003", "runB0002"]  # B starts at T0+10: included
    assert _run_ids(c.get(f"/?from={local(T0 + 5)}&to={local(T0 + 20)}").text) == ["runB0002"]  # C at T0+20: excluded
    assert _run_ids(c.get("/?from=not-a-date").text) == ["runC0003", "runB0002", "runA0001"]  # ignored


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
    row = re.search(r'data-flow="support" data-router="triage">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[2] == "2"
    assert "calc: 1" in row and "billing: 1" in row
    assert cells[4] == "2.000" and cells[5] == "2.980"  # p50 and p99 of [1, 3] ms, linear interpolation
    assert cells[6] == "50.00%" and cells[7] == "50.00%"  # 1 routing error / 2, 1 fallback in its runs / 2
    low = html[html.index("Low-confidence"):]
    assert ids["B"] in low and ids["A"] not in low and "0.0200" in low
    assert ids["C"] not in low  # bandit's margin is 6.0


def test_routers_page_same_router_name_in_two_flows_is_two_routers(tmp_path):
    """Two flows each have a router named ``triage`` with their own targets: two rows, each with its own
    counts, latency, error rate, time series, histograms and low-confidence list, never mixed."""
    db = tmp_path / "two.db"
    rec = SQLRecorder(str(db))
    low_ids = {}

    def decide(run_id, flow, t, target, scores, latency, *, error=False):
        rec.record(RunStart(run_id=run_id, flow=flow, thread_id=run_id, input="q", started_at=t))
        d = Decision(targets=(target,), scores=scores, router="triage", latency_ms=latency)
        rec.record(DecisionRecord(run_id=run_id, source="__start__", decision=d, created_at=t + 0.1))
        if error:
            rec.record(EventRecord(kind="routing_error", run_id=run_id, decision_id=d.decision_id, created_at=t + 0.2))
        rec.record(RunEnd(run_id=run_id, status="succeeded", output="ok", ended_at=t + 0.5))
        return d.decision_id

    # flow "shop": triage -> cart twice (10 ms and 30 ms; the second unsure by 0.04 and a routing error)
    decide("runS0001", "shop", T0, "cart", {"cart": 0.8, "returns": 0.2}, 10.0)
    low_ids["shop"] = decide("runS0002", "shop", T0 + 2, "cart", {"cart": 0.52, "returns": 0.48}, 30.0, error=True)
    # flow "help": triage -> faq once, then -> human once (5 ms and 7 ms), the last one unsure by 0.06
    decide("runH0001", "help", T0 + 1, "faq", {"faq": 0.9, "human": 0.1}, 5.0)
    low_ids["help"] = decide("runH0002", "help", T0 + 3, "human", {"human": 0.53, "faq": 0.47}, 7.0)
    rec.close()
    rec.store.close()

    c = TestClient(build_ui_app(str(db)))
    html = c.get("/routers").text
    rows = re.findall(r'<tr class="router" data-flow="(\w+)" data-router="(\w+)">(.*?)</tr>', html, re.S)
    assert [(f, r) for f, r, _ in rows] == [("help", "triage"), ("shop", "triage")]
    cells = {f: re.findall(r"<td>(.*?)</td>", row, re.S) for f, _, row in rows}
    assert 'href="/?flow=shop&amp;router=triage"' in cells["shop"][1] and ">triage</a>" in cells["shop"][1]
    assert cells["shop"][2] == "2" and cells["help"][2] == "2"
    assert re.findall(r'data-target="(\w+)">\w+: (\d+)', cells["shop"][3]) == [("cart", "2")]
    assert re.findall(r'data-target="(\w+)">\w+: (\d+)', cells["help"][3]) == [("faq", "1"), ("human", "1")]
    assert cells["shop"][4] == "20.000" and cells["shop"][5] == "29.800"  # p50 and p99 of [10, 30] ms
    assert cells["help"][4] == "6.000" and cells["help"][5] == "6.980"  # of [5, 7] ms
    assert cells["shop"][6] == "50.00%" and cells["help"][6] == "0.00%"
    # time series: decisions at T0+0.1, 1.1, 2.1, 3.1 -> 1 s buckets 0..3; each flow's own
    shop, helpc = _router_section(html, "triage", "shop"), _router_section(html, "triage", "help")
    assert sorted(re.findall(r'data-bucket="(\d+)" data-target="(\w+)" data-count="(\d+)"', shop)) == [
        ("0", "cart", "1"), ("2", "cart", "1")]
    assert sorted(re.findall(r'data-bucket="(\d+)" data-target="(\w+)" data-count="(\d+)"', helpc)) == [
        ("1", "faq", "1"), ("3", "human", "1")]
    # chosen-score histograms on [0, 1]: shop 0.8 and 0.52 -> bins 8 and 5; help 0.9 and 0.53 -> bins 9 and 5
    def score_bins(section):
        score = re.findall(r'<svg class="chart hist".*?</svg>', section, re.S)[0]
        return [lo for lo, n in re.findall(r'data-lo="([\d.]+)" data-hi="[\d.]+" data-count="(\d+)"', score) if n != "0"]
    assert score_bins(shop) == ["0.5", "0.8"] and score_bins(helpc) == ["0.5", "0.9"]
    # low-confidence lists: each flow's own unsure decision only
    lows = dict(re.findall(r'<table class="low" data-flow="(\w+)" data-router="triage">(.*?)</table>', html, re.S))
    assert set(lows) == {"shop", "help"}
    assert low_ids["shop"] in lows["shop"] and low_ids["help"] not in lows["shop"] and "0.0400" in lows["shop"]
    assert low_ids["help"] in lows["help"] and low_ids["shop"] not in lows["help"] and "0.0600" in lows["help"]
    # the row's link: that flow's runs through that router
    assert re.findall(r'href="/runs/(run[SH]\d+)"', c.get("/?flow=shop&router=triage").text) == ["runS0002", "runS0001"]


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
    a, b = _evals(db)
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
            assert page.locator('tr[data-flow="support"][data-router="triage"] td').nth(2).inner_text() == "2"
            charts = page.locator("#charts-support-triage")
            assert charts.locator("svg.series rect.seg").count() == 2
            assert charts.locator("svg.hist").count() == 2 and charts.locator("svg.hist rect.bin").count() == 20
            # evals: B (newest) and A preselected, compare them
            page.click("#nav-evals")
            assert page.locator("a.eval-link").all_inner_texts() == [b, a]
            page.click("#compare")
            cell = page.locator('#compare tr[data-router="knn"][data-metric="best_quality"] td.delta')
            assert cell.inner_text() == "+0.05"
            # live: a run written while the runs list is open appears without a reload
            page.goto(f"http://127.0.0.1:{port}/")
            rec = SQLRecorder(str(db))
            rec.record(RunStart(run_id="runD0004", flow="support", thread_id="t4", input="live one", started_at=time.time()))
            rec.record(RunEnd(run_id="runD0004", status="succeeded", output="ok", ended_at=time.time()))
            rec.close()
            rec.store.close()
            page.wait_for_selector('#runs tr[data-run-id="runD0004"]', timeout=15_000)
            assert page.locator("#runs tbody tr").first.get_attribute("data-run-id") == "runD0004"
            assert page.locator("#live").is_visible()
            browser.close()
    finally:
        server.should_exit = True
        th.join(timeout=10)


# --- the flow's graph (stored by the runtime, drawn server-side) ------------------------------------

def _loop_router():
    from crossroads import END
    from crossroads.routers.base import Router

    class Loop(Router):
        name = "loop"

        def route(self, ctx):
            done = ctx.step >= 2
            return self.decide({"worker": 0.0 if done else 1.0, END: 1.0 if done else 0.0})

    return Loop()


def test_runtime_stores_the_graph_and_the_run_page_draws_it_with_the_path(tmp_path):
    from crossroads import END, START, Flow, RulesRouter, agent
    from crossroads.ui.graph_svg import _layers, parse_mermaid

    db = tmp_path / "g.db"
    flow = Flow("support")
    flow.add(agent("billing", lambda t: "b"), agent("tech", lambda t: "t"), agent("general", lambda t: "g"))
    flow.route(START, RulesRouter(rules=[{"when": {"keyword": "refund"}, "route": "billing"}], default="general",
                                  label="triage"), candidates=["billing", "tech", "general"])
    rec = SQLRecorder(str(db))
    app = flow.compile(recorder=rec)
    assert app.graph_mermaid is app.graph_mermaid  # drawn once per compiled flow
    run_id = app.invoke("a refund please").run_id
    loop = Flow("loop", max_steps=10)
    loop.add(agent("worker", lambda t: t + "!"))
    loop.edge(START, "worker")
    loop.route("worker", _loop_router(), candidates=["worker", END])
    loop_id = loop.compile(recorder=rec).invoke("go").run_id
    rec.close()
    rec.store.close()
    from crossroads.tracing import TraceStore

    meta = TraceStore(db, read_only=True).get_run(run_id)["metadata"]
    g = parse_mermaid(meta["graph_mermaid"])
    assert set(g.nodes) == {"__start__", "start_decide", "billing", "tech", "general", "__end__"}
    assert ("start_decide", "tech", True) in g.edges and ("__start__", "start_decide", False) in g.edges
    html = TestClient(build_ui_app(str(db))).get(f"/runs/{run_id}").text
    svg = html[html.index("<svg"):html.index("</svg>")]
    taken = set(re.findall(r'<g class="node taken" data-node="(\w+)"', svg))
    assert taken == {"__start__", "start_decide", "billing", "__end__"}
    assert set(re.findall(r'data-node="(\w+)"', svg)) == set(g.nodes)  # the whole graph, not only the path
    assert set(re.findall(r'class="edge taken[^"]*" data-from="(\w+)" data-to="(\w+)"', svg)) == {
        ("__start__", "start_decide"), ("start_decide", "billing"), ("billing", "__end__")}
    assert 'id="metadata"' not in html  # graph_mermaid is drawn, not listed as the run's (otherwise empty) metadata
    # a loop: the cycle's closing edge points back up; the path goes round it
    lmeta = TraceStore(db, read_only=True).get_run(loop_id)["metadata"]
    assert _layers(parse_mermaid(lmeta["graph_mermaid"])) == [["__start__"], ["worker"], ["worker_decide"], ["__end__"]]
    lsvg = TestClient(build_ui_app(str(db))).get(f"/runs/{loop_id}").text
    assert set(re.findall(r'class="edge taken[^"]*" data-from="(\w+)" data-to="(\w+)"', lsvg)) == {
        ("__start__", "worker"), ("worker", "worker_decide"), ("worker_decide", "worker"), ("worker_decide", "__end__")}


def test_parse_mermaid_and_a_run_without_a_stored_graph(filled):
    from crossroads.ui.graph_svg import _layers, parse_mermaid

    g = parse_mermaid('graph TD;\n  a["Alpha"] --> b\n  b -.-> c;\n  c --> a\n  c -. &nbsp;no&nbsp; .-> d\n  classDef x fill:#fff')
    assert g.nodes == {"a": "Alpha", "b": "b", "c": "c", "d": "d"}
    assert g.edges == [("a", "b", False), ("b", "c", True), ("c", "a", False), ("c", "d", True)]
    assert _layers(g) == [["a"], ["b"], ["c"], ["d"]]  # c -> a closes the cycle: drawn back up
    db, _ = filled
    html = TestClient(build_ui_app(str(db))).get("/runs/runA0001").text
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert re.findall(r'data-node="(n\d)"', svg) == ["n0", "n1", "n2"]  # START, calc, END: the path itself
    assert len(re.findall(r'class="node taken"', svg)) == 3


# --- routers page: time series, histograms, bounded sample -------------------------------------------

def _router_section(html: str, router: str, flow: str) -> str:
    start = html.index(f'id="charts-{flow}-{router}"')
    return html[start:html.index("</section>", start)]


def test_routers_page_series_histograms_window_and_sample(filled):
    from crossroads.ui.queries import _nice_width, histogram

    db, _ = filled
    c = TestClient(build_ui_app(str(db)))
    html = c.get("/routers").text
    tri = _router_section(html, "triage", "support")
    # decisions at T0+0.1, T0+10.1 (triage), T0+20.1 (bandit): a 20 s span in <= 24 buckets -> 1 s buckets from T0
    segs = re.findall(r'data-bucket="(\d+)" data-target="(\w+)" data-count="(\d+)"', tri)
    assert sorted(segs) == [("0", "calc", "1"), ("10", "billing", "1")]
    assert "21 buckets of 1 s" in tri
    assert re.findall(r'data-bucket="(\d+)" data-target="(\w+)"', _router_section(html, "bandit", "coding")) == [("20", "coder")]
    # chosen scores 0.9 and 0.41 on [0, 1] in 10 bins -> bins 9 and 4; margins 0.85 and 0.02 -> bins 8 and 0
    score, margin = re.findall(r'<svg class="chart hist".*?</svg>', tri, re.S)
    assert [(lo, n) for lo, _, n in re.findall(r'data-lo="([\d.]+)" data-hi="([\d.]+)" data-count="(\d+)"', score) if n != "0"] == [("0.4", "1"), ("0.9", "1")]
    assert [(lo, n) for lo, _, n in re.findall(r'data-lo="([\d.]+)" data-hi="([\d.]+)" data-count="(\d+)"', margin) if n != "0"] == [("0", "1"), ("0.8", "1")]
    # the last 10.8 s before the newest decision (T0+20.1): triage's T0+10.1 decision and bandit's
    row = re.search(r'data-router="triage">(.*?)</tr>', c.get("/routers?hours=0.003").text, re.S).group(1)
    assert re.findall(r"<td>(.*?)</td>", row, re.S)[2] == "1" and "billing: 1" in row and "calc" not in row
    # a sample of 1: latency percentiles of the most recent decision only (3 ms), counts still exact
    row = re.search(r'data-router="triage">(.*?)</tr>', c.get("/routers?sample=1").text, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[2] == "2" and cells[4] == "3.000" and cells[5] == "3.000"
    assert _nice_width(20, 24) == 1 and _nice_width(24, 24) == 2 and _nice_width(3600, 24) == 300
    assert _nice_width(1500, 24) == 120 and _nice_width(0, 24) == 1
    assert _nice_width(30 * 86400, 24) == 2 * 86400
    h = histogram([0.0, 0.1, 0.95, 1.0, 1.5], bins=10, lo=0.0, hi=1.0)
    assert h["counts"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2] and h["n"] == 4  # 1.0 in the closed last bin; 1.5 left out


# --- evals pages ---------------------------------------------------------------------------------------

def _evals(db) -> tuple[str, str]:
    from crossroads.tracing import EvalStore, TraceStore

    store = TraceStore(str(db))
    ev = EvalStore(store)
    base = {"kind": "query_routing", "suite": "demo", "duration_s": 1.5, "code_version": "0.1", "config": {},
            "data_hashes": {"d.jsonl": "ab" * 32}, "summary": {"best": "knn"}}
    pts = [{"cost": 0.2, "quality": 0.6}, {"cost": 1.0, "quality": 0.8}]
    ev.save({**base, "id": "evalA000", "created_at": T0}, {
        "knn": {"best_quality": 0.80, "aiq": 0.70, "latency_p50_ms": 2.0, "points": pts, "train_s": 1.0},
        "mlp": {"best_quality": 0.75, "aiq": float("nan"), "points": pts}})
    ev.save({**base, "id": "evalB000", "created_at": T0 + 60}, {
        "knn": {"best_quality": 0.85, "aiq": 0.65, "latency_p50_ms": 2.0, "points": pts, "train_s": 3.5},
        "bandit": {"best_quality": 0.7, "points": pts[:1]}})
    store.close()
    return "evalA000", "evalB000"


def test_evals_pages_list_show_plots_and_compare(filled):
    from crossroads.evals.compare import compare_runs

    db, _ = filled
    a, b = _evals(db)
    c = TestClient(build_ui_app(str(db)))
    html = c.get("/evals").text
    assert re.findall(r'class="eval-link" href="/evals/(\w+)"', html) == [b, a]  # newest first
    page = c.get(f"/evals/{a}").text
    row = re.search(r'<tr data-router="knn">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<td>(.*?)</td>", row)[:4] == ["knn", "0.8", "0.7", "2"]  # headline metrics first
    assert 'data-name="knn"' in page and 'data-router="mlp" data-metric="best_quality" data-value="0.75"' in page
    assert 'data-router="mlp" data-metric="aiq"' not in page  # NaN is not drawn
    cmp = c.get(f"/evals/compare?a={a}&b={b}").text

    def delta(router, metric, text=cmp):
        r = re.search(rf'data-router="{router}" data-metric="{metric}">(.*?)</tr>', text, re.S).group(1)
        return re.findall(r"<td[^>]*>(.*?)</td>", r)[2:]

    assert delta("knn", "best_quality") == ["0.8", "0.85", "+0.05"]
    assert delta("knn", "aiq") == ["0.7", "0.65", "-0.05"]
    assert delta("knn", "latency_p50_ms") == ["2", "2", "+0"]
    assert delta("mlp", "aiq") == ["—", "—", "—"]  # NaN in A, missing in B
    assert delta("bandit", "best_quality") == ["—", "0.7", "—"]  # only in B
    assert "train_s" not in cmp and delta("knn", "train_s", c.get(f"/evals/compare?a={a}&b={b}&all=1").text) == ["1", "3.5", "+2.5"]
    rows = compare_runs({"kind": "x", "results": {"r": {"top1_accuracy": 0.5, "set_accuracy": True}}},
                        {"kind": "x", "results": {"r": {"top1_accuracy": 0.25, "set_accuracy": 1.0}}})
    assert [(r["metric"], r["delta"]) for r in rows][:2] == [("top1_accuracy", -0.25), ("set_accuracy", None)]
    assert c.get("/evals/nosuch").status_code == 404 and c.get(f"/evals/compare?a={a}&b=nosuch").status_code == 404
    assert 'id="test-set-warning"' not in cmp  # same data, same settings: no warning
    half = c.get(f"/evals/compare?a={a}")
    assert half.status_code == 400 and "choose two eval runs" in half.text


def test_compare_warns_when_runs_were_scored_on_different_test_rows():
    from crossroads.evals.compare import test_set_differences

    data = {"dataset": "builtin:banking77", "test": None, "test_fraction": 0.2, "seed": 0, "limit": None}
    a = {"kind": "agent_selection", "data_hashes": {"b.csv": "1"}, "config": {"data": data}, "summary": {"n_test": 1998}}
    assert test_set_differences(a, dict(a)) == []
    b = {**a, "config": {"data": {**data, "limit": 500}}, "summary": {"n_test": 99}}
    assert test_set_differences(a, b) == ["data limit: None vs 500", "test rows: 1998 vs 99"]
    c = {**a, "data_hashes": {"b.csv": "2"}, "config": {"data": {**data, "test": "mine.csv"}}}
    assert test_set_differences(a, c) == ["data files differ (sha256)", "data test: None vs 'mine.csv'"]


# --- live: new runs through /api/runs --------------------------------------------------------------------

def test_api_runs_since_with_filters_and_key(filled):
    db, _ = filled
    c = TestClient(build_ui_app(str(db)))
    assert [r["id"] for r in c.get("/api/runs").json()["runs"]] == ["runC0003", "runB0002", "runA0001"]
    assert [r["id"] for r in c.get(f"/api/runs?since={T0 + 10}").json()["runs"]] == ["runC0003", "runB0002"]
    assert [r["id"] for r in c.get(f"/api/runs?since={T0 + 10}&flow=support").json()["runs"]] == ["runB0002"]
    bad = c.get("/api/runs?since=garbage")
    assert bad.status_code == 400 and "epoch seconds" in bad.json()["error"]
    r = c.get(f"/api/runs?since={T0 + 20}").json()["runs"][0]
    assert r["decisions"] == 1 and r["status"] == "succeeded" and r["input"] == "write a sort"
    html = c.get("/").text
    assert f'data-since="{T0 + 20}"' in html and "/static/live.js" in html
    assert c.get("/static/live.js").status_code == 200
    k = TestClient(build_ui_app(str(db), api_key="k3y"))
    assert k.get("/api/runs").status_code == 401 and k.get("/evals").status_code == 401
    assert 'http-equiv="refresh"' not in c.get("/runs/runA0001").text
    rec = SQLRecorder(str(db))
    rec.record(RunStart(run_id="runR0009", flow="support", thread_id="t9", input="still going", started_at=T0 + 30))
    rec.close()
    rec.store.close()
    assert 'http-equiv="refresh"' in c.get("/runs/runR0009").text  # a running run's page reloads until it ends
    assert [r["id"] for r in c.get(f"/api/runs?since={T0 + 20}").json()["runs"]] == ["runR0009", "runC0003"]


def test_ui_refuses_an_open_bind_naming_the_trace_data_it_would_expose(tmp_path):
    """The read-only viewer spends no model budget: its refusal names what it would expose (the traces);
    ``serve``'s refusal keeps the budget risk (its endpoints run flows that call models)."""
    from typer.testing import CliRunner

    from crossroads.cli import app
    from crossroads.serving import ServeConfigError

    res = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--db", str(tmp_path / "none.db")])
    assert isinstance(res.exception, ServeConfigError)
    msg = str(res.exception)
    assert "refusing to listen on 0.0.0.0 without an API key" in msg and "could read your traces" in msg
    assert "model budget" not in msg and "--api-key-env NAME" in msg
    assert not (tmp_path / "none.db").exists()
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: f\n")
    res = CliRunner().invoke(app, ["serve", str(flow), "--host", "0.0.0.0"])
    assert isinstance(res.exception, ServeConfigError) and "could spend your model budget" in str(res.exception)
