"""``crossroads ui``: a local, read-only web app over a trace DB (any SQLAlchemy URL).

Server-side Jinja2 templates, inline SVG charts, one stylesheet and one small script shipped in the wheel
(no CDN; every page works without JavaScript): the runs list (filters, search; new runs appear live by
polling ``/api/runs?since=``), a run page (the flow's graph with the path taken, steps timeline, every
decision with each candidate's score as a bar, calls, events), a routers page (decisions per target over
time, score and margin histograms, p50/p99 latency, error and fallback rates, low-confidence decisions)
and the evals pages (stored eval runs, one run's metrics and plots, two runs side by side). The same key rule as ``crossroads serve``: with an
API key every page needs it (``Authorization: Bearer <key>``, or ``?key=<key>`` once, which sets a cookie).
"""

# no `from __future__ import annotations`: FastAPI resolves the handlers' annotations at definition time

import datetime as dt
import hmac
import json
from pathlib import Path
from typing import Any

from ..errors import TraceStoreError
from ..evals.compare import compare_warnings, test_set_differences
from ..tracing.store import EvalStore, TraceStore
from .charts import histogram_svg, stacked_series_svg
from .evals import compare_table, eval_plots, eval_table
from .graph_svg import graph_svg, parse_mermaid
from .queries import (
    ROUTER_SAMPLE,
    RunFilter,
    candidate_bars,
    distinct_values,
    list_runs,
    router_stats,
    top2_margin,
)

__all__ = ["build_ui_app", "mermaid_path", "run_path"]

HERE = Path(__file__).parent
KEY_COOKIE = "crossroads_ui_key"


def mermaid_path(nodes: list[str]) -> str:
    """The path a run took as Mermaid flowchart text: START, each step's node in order, END."""
    names = ["START", *nodes, "END"]
    ids = [f"n{i}" for i in range(len(names))]
    lines = ["flowchart LR"]
    lines += [f'    {i}["{n.replace(chr(34), "")}"]' for i, n in zip(ids, names, strict=True)]
    lines += [f"    {a} --> {b}" for a, b in zip(ids, ids[1:], strict=False)]
    return "\n".join(lines)


def run_path(run: dict[str, Any], graph_nodes: Any = ()) -> list[str]:
    """The node ids a run visited, in order, as named in LangGraph's graph: ``__start__``, each decision's
    decision node (``<source>_decide``, when the graph has one) before the step it chose, each step's node,
    and ``__end__`` once the run has ended."""
    events: list[tuple[float, int, str]] = []
    for d in run.get("decisions") or []:
        decide = f"{str(d.get('source') or '').strip('_')}_decide"
        if decide in graph_nodes:
            events.append((d.get("created_at") or 0.0, 0, decide))
    for s in run.get("steps") or []:
        events.append((s.get("started_at") or 0.0, 1, s["node"]))
    path = ["__start__"] + [n for _, _, n in sorted(events, key=lambda e: (e[0], e[1]))]
    if run.get("status") in ("succeeded", "failed"):
        path.append("__end__")
    return path


def _ts(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else ""


def build_ui_app(db: str | None = None, *, api_key: str | None = None) -> Any:
    """The ASGI app of ``crossroads ui`` over the trace DB ``db`` (path or SQLAlchemy URL), opened read-only."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    store = TraceStore(db, read_only=True)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["ts"] = _ts
    app = FastAPI(title="crossroads ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    @app.middleware("http")
    async def key_rule(request: Request, call_next: Any) -> Response:
        if api_key:
            given = request.query_params.get("key")
            if given is not None and hmac.compare_digest(given.encode(), api_key.encode()):
                resp = RedirectResponse(str(request.url.remove_query_params("key")), status_code=303)
                resp.set_cookie(KEY_COOKIE, api_key, httponly=True, samesite="strict")
                return resp
            header = request.headers.get("authorization", "")
            cookie = request.cookies.get(KEY_COOKIE, "")
            if not (hmac.compare_digest(header.encode(), f"Bearer {api_key}".encode())
                    or hmac.compare_digest(cookie.encode(), api_key.encode())):
                return JSONResponse({"error": "missing or wrong API key (send Authorization: Bearer <key>, "
                                              "or open the page once with ?key=<key>)"}, status_code=401)
        return await call_next(request)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # The page handlers below are plain functions: FastAPI runs them in its thread pool, so a slow page (the
    # routers page at 100k decisions) never stalls the event loop, and the live poll keeps answering.

    def _float(v: str | None) -> float | None:
        try:
            return float(v) if v not in (None, "") else None
        except ValueError:
            return None

    def _time(v: str | None) -> float | None:
        """A ``datetime-local`` value (``2026-12-03T14:05``, the server's local time, as the pages show times)."""
        try:
            return dt.datetime.fromisoformat(v).timestamp() if v else None
        except ValueError:
            return None

    def _filter(p: Any, limit: int) -> RunFilter:
        return RunFilter(flow=p.get("flow") or None, status=p.get("status") or None, router=p.get("router") or None,
                         target=p.get("target") or None, min_cost=_float(p.get("min_cost")), q=p.get("q") or None,
                         started_from=_time(p.get("from")), started_to=_time(p.get("to")), limit=limit)

    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request) -> Any:
        p = request.query_params
        f = _filter(p, int(p.get("limit") or 50) if (p.get("limit") or "50").isdigit() else 50)
        rows = list_runs(store, f)
        newest = max((r["started_at"] for r in rows), default=0.0)
        return templates.TemplateResponse(request, "runs.html", {"runs": rows, "f": f, "menus": distinct_values(store),
                                                                 "since": newest, "from": p.get("from") or "",
                                                                 "to": p.get("to") or ""})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: str) -> Any:
        try:
            run = store.get_run(run_id)
        except TraceStoreError as exc:
            return templates.TemplateResponse(request, "missing.html", {"message": str(exc)}, status_code=404)
        t0 = run["started_at"] or 0.0
        span = max([(s["ended_at"] or t0) - t0 for s in run["steps"]] + [1e-9])
        for s in run["steps"]:
            s["offset_pct"] = round(((s["started_at"] or t0) - t0) / span * 100, 2)
            s["width_pct"] = max(round(((s["ended_at"] or t0) - (s["started_at"] or t0)) / span * 100, 2), 0.5)
        for d in run["decisions"]:
            d["bars"] = candidate_bars(d["candidates"], d["chosen"])
            d["margin"] = top2_margin([c.get("score") for c in d["candidates"]])
        graph = run["metadata"].get("graph_mermaid") if isinstance(run["metadata"], dict) else None
        path = mermaid_path([s["node"] for s in run["steps"]])
        if isinstance(graph, str) and parse_mermaid(graph).nodes:
            svg = graph_svg(graph, run_path(run, parse_mermaid(graph).nodes))
        else:  # no stored graph (a run recorded before it was stored): the path taken
            svg = graph_svg(path, [f"n{i}" for i in range(len(run["steps"]) + 2)])
        meta = {k: v for k, v in run["metadata"].items() if k != "graph_mermaid"} if isinstance(run["metadata"], dict) else run["metadata"]
        return templates.TemplateResponse(request, "run.html", {
            "run": run, "graph": graph, "path": path, "graph_svg": svg,
            "metadata": json.dumps(meta, indent=2, default=str)})

    @app.get("/api/runs")
    def api_runs(request: Request) -> Any:
        """Runs started at or after ``since`` (epoch seconds) matching the runs list's filters, newest first:
        what the runs list's script polls to show new runs live."""
        p = request.query_params
        since = _float(p.get("since"))
        if since is None and p.get("since"):
            return JSONResponse({"error": f"since must be epoch seconds (a number), not {str(p.get('since'))[:40]!r}"},
                                status_code=400)
        rows = list_runs(store, _filter(p, 100), since=since)
        return JSONResponse({"runs": [{"id": r["id"], "flow": r["flow"], "status": r["status"], "steps": r["steps"],
                                       "decisions": r["decisions"], "cost_usd": r["cost_usd"], "started_at": r["started_at"],
                                       "started": _ts(r["started_at"]), "input": (r["input"] or "")[:80]} for r in rows]})

    @app.get("/routers", response_class=HTMLResponse)
    def routers(request: Request) -> Any:
        p = request.query_params
        margin = _float(p.get("margin"))
        sample = _float(p.get("sample"))
        hours = _float(p.get("hours"))
        stats = router_stats(store, margin_below=margin if margin is not None else 0.1,
                             sample=int(sample) if sample and sample >= 1 else ROUTER_SAMPLE,
                             hours=hours if hours and hours > 0 else None)
        for r in stats:
            r["series_svg"] = stacked_series_svg(r["series"])
            r["score_svg"] = histogram_svg(r["score_hist"], label="chosen candidate's score")
            r["margin_svg"] = histogram_svg(r["margin_hist"], label="top-2 margin")
        return templates.TemplateResponse(request, "routers.html", {
            "routers": stats, "margin": margin if margin is not None else 0.1, "hours": hours or "",
            "sample": int(sample) if sample and sample >= 1 else ROUTER_SAMPLE})

    evals = EvalStore(store)

    def _eval_or_404(request: Request, run_id: str) -> Any:
        try:
            return evals.get(run_id)
        except TraceStoreError as exc:
            return templates.TemplateResponse(request, "missing.html", {"message": str(exc)}, status_code=404)

    @app.get("/evals", response_class=HTMLResponse)
    def eval_list(request: Request) -> Any:
        suite = request.query_params.get("suite") or None
        rows = evals.list(limit=200, suite=suite)
        return templates.TemplateResponse(request, "evals.html", {"evals": rows, "suite": suite or ""})

    @app.get("/evals/compare", response_class=HTMLResponse)
    def eval_compare(request: Request) -> Any:
        p = request.query_params
        if not p.get("a") or not p.get("b"):
            return templates.TemplateResponse(request, "missing.html", {
                "message": "choose two eval runs to compare: /evals/compare?a=<run id>&b=<run id> (pick A and B on "
                           "the evals page)"}, status_code=400)
        a = _eval_or_404(request, p.get("a") or "")
        if isinstance(a, Response):
            return a
        b = _eval_or_404(request, p.get("b") or "")
        if isinstance(b, Response):
            return b
        all_metrics = p.get("all") == "1"
        return templates.TemplateResponse(request, "compare.html", {
            "a": a, "b": b, "rows": compare_table(a, b, all_metrics=all_metrics), "all": all_metrics,
            "same_kind": a["kind"] == b["kind"], "test_set_differences": test_set_differences(a, b),
            "warnings": compare_warnings(a, b)})

    @app.get("/evals/{run_id}", response_class=HTMLResponse)
    def eval_page(request: Request, run_id: str) -> Any:
        run = _eval_or_404(request, run_id)
        if isinstance(run, Response):
            return run
        return templates.TemplateResponse(request, "eval.html", {
            "run": run, "table": eval_table(run), "plots": eval_plots(run),
            "summary": json.dumps(run["summary"], indent=2, default=str)})

    return app
