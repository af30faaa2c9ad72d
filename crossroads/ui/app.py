"""``crossroads ui``: a local, read-only web app over a trace DB (any SQLAlchemy URL).

Server-side Jinja2 templates and one stylesheet shipped in the wheel (no CDN, no JavaScript needed):
the runs list (filters, search), a run page (path taken, steps timeline, every decision with each
candidate's score as a bar, calls, events) and a routers page (decisions per target, p50/p99 latency,
error and fallback rates, low-confidence decisions). The same key rule as ``crossroads serve``: with an
API key every page needs it (``Authorization: Bearer <key>``, or ``?key=<key>`` once, which sets a cookie).
"""

# no `from __future__ import annotations`: FastAPI resolves the handlers' annotations at definition time

import datetime as dt
import hmac
import json
from pathlib import Path
from typing import Any

from ..errors import TraceStoreError
from ..tracing.store import TraceStore
from .queries import RunFilter, candidate_bars, distinct_values, list_runs, router_stats, top2_margin

__all__ = ["build_ui_app", "mermaid_path"]

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

    def _float(v: str | None) -> float | None:
        try:
            return float(v) if v not in (None, "") else None
        except ValueError:
            return None

    @app.get("/", response_class=HTMLResponse)
    async def runs(request: Request) -> Any:
        p = request.query_params
        f = RunFilter(flow=p.get("flow") or None, status=p.get("status") or None, router=p.get("router") or None,
                      target=p.get("target") or None, min_cost=_float(p.get("min_cost")), q=p.get("q") or None,
                      limit=int(p.get("limit") or 50) if (p.get("limit") or "50").isdigit() else 50)
        rows = list_runs(store, f)
        return templates.TemplateResponse(request, "runs.html", {"runs": rows, "f": f, "menus": distinct_values(store)})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> Any:
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
        return templates.TemplateResponse(request, "run.html", {
            "run": run, "graph": graph, "path": path,
            "metadata": json.dumps(run["metadata"], indent=2, default=str)})

    @app.get("/routers", response_class=HTMLResponse)
    async def routers(request: Request) -> Any:
        margin = _float(request.query_params.get("margin"))
        stats = router_stats(store, margin_below=margin if margin is not None else 0.1)
        return templates.TemplateResponse(request, "routers.html",
                                          {"routers": stats, "margin": margin if margin is not None else 0.1})

    return app
