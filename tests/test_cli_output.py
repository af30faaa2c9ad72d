"""CLI output to a pipe or file (not a terminal: typer's CliRunner, like `crossroads trace list | cat`) crops
nothing; `eval run` refuses a bad --out/--limit before any work; ui/serve bind messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crossroads.cli import app


@pytest.fixture(autouse=True)
def _narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what rich assumes for a pipe


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_trace_list_piped_prints_whole_ids_flows_and_costs(tmp_path: Path) -> None:
    from crossroads import SQLRecorder
    from crossroads.tracing import RunEnd, RunStart, StepRecord

    db = tmp_path / "t.db"
    rec = SQLRecorder(str(db))
    run_id = "454b46c0ffee4d2a9e1b7c3d5f6a8b90"
    flow = "a-flow-with-a-rather-long-name-for-the-table"
    rec.record(RunStart(run_id=run_id, flow=flow, thread_id="t", input="what is 12 * (3 + 4)?\nline two", started_at=1.0))
    rec.record(StepRecord(run_id=run_id, node="calc", started_at=1.1, ended_at=1.2, cost_usd=0.0000123))
    rec.record(RunEnd(run_id=run_id, status="succeeded", output="84", ended_at=2.0))
    rec.close()
    rec.store.close()
    res = _invoke("trace", "list", "--db", str(db))
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if run_id in x)  # the whole id, on one line
    assert flow in line and "succeeded" in line and "0.000012" in line and "…" not in line
    assert "what is 12 * (3 + 4)? line two" in line  # the input summary, newline folded
    rec = SQLRecorder(str(db))
    long_id = "5" * 32
    rec.record(RunStart(run_id=long_id, flow=flow, thread_id="t2", input="x" * 39 + "yz and more", started_at=3.0))
    rec.close()
    rec.store.close()
    line = next(x for x in _invoke("trace", "list", "--db", str(db)).output.splitlines() if long_id in x)
    assert "x" * 39 + "…" in line and "yz" not in line  # a cut input says so


def test_eval_list_piped_prints_whole_ids_and_summary(tmp_path: Path) -> None:
    from crossroads.tracing import EvalStore, TraceStore

    db = tmp_path / "e.db"
    summary = {"best_single_model": "gpt-4-1106-preview", "routers": {"knn": 0.572, "mlp": 0.589, "mf": 0.585}}
    run = {"id": "736992f0123456789abcdef012345678", "suite": "llmrouter-9models", "kind": "query_routing",
           "created_at": 1.0, "duration_s": 30.7, "code_version": "abc1234", "summary": summary}
    EvalStore(TraceStore(str(db))).save(run, {"knn": {"aiq": 0.5}})
    res = _invoke("eval", "list", "--db", str(db))
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if run["id"] in x)
    assert "llmrouter-9models" in line and '"mf": 0.585}}' in line and "…" not in line


def test_eval_table_piped_keeps_router_names(capsys: pytest.CaptureFixture[str]) -> None:
    from crossroads.cli import _print_eval_table

    m = {"top1_accuracy": 0.9104, "in_scope_top1_accuracy": 0.9104, "set_accuracy": 0.95, "mean_set_size": 1.2,
         "latency_p50_ms": 1.0}
    _print_eval_table({"suite": "banking77", "kind": "agent_selection",
                       "results": {"routers": {"classifier": m, "a_router_with_a_long_name": m}}})
    text = capsys.readouterr().out
    assert "classifier" in text and "a_router_with_a_long_name" in text and "…" not in text


def test_routers_piped_whole_first_paragraph_without_sphinx_markup() -> None:
    from crossroads.cli import _plain_doc
    from crossroads.routers import available_routers, get_router_class

    res = _invoke("routers")
    assert res.exit_code == 0, res.output
    assert "``" not in res.output and not re.search(r":(class|func|meth|mod|attr):`", res.output)
    lines = res.output.splitlines()
    assert len(lines) == len(available_routers())
    for n in available_routers():  # each router's whole first paragraph, on its line
        assert f"{n}  {_plain_doc(get_router_class(n).__doc__ or '')}" in lines


def test_plain_doc_hand_made() -> None:
    from crossroads.cli import _plain_doc

    doc = """Scores are class probabilities from a :class:`~crossroads.routers.intent.SoftmaxClassifier`;
    below ``threshold`` it answers :data:`OOS` (see :func:`crossroads.evals.run_suite`).

    Second paragraph, not shown."""
    assert _plain_doc(doc) == ("Scores are class probabilities from a SoftmaxClassifier; below threshold it answers "
                               "OOS (see crossroads.evals.run_suite).")


# -- eval run: --out a file, --limit < 1: refused before any work ------------------------------------------------

class _Worked(Exception):
    pass


@pytest.fixture
def no_suite_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import crossroads.evals.suite as suite

    def stop(*a: Any, **k: Any) -> Any:
        raise _Worked

    monkeypatch.setattr(suite, "run_suite", stop)


def test_eval_run_out_an_existing_file_is_refused_first(tmp_path: Path, no_suite_run: None) -> None:
    f = tmp_path / "afile.txt"
    f.write_text("keep")
    res = _invoke("eval", "run", "llmrouter-9models", "--out", str(f), "--db", str(tmp_path / "e.db"))
    assert not isinstance(res.exception, _Worked)
    assert f"--out {f} is a file; the report is a folder" in str(res.exception)
    assert f.read_text() == "keep" and not (tmp_path / "e.db").exists()
    (tmp_path / "adir").mkdir()  # a folder (new or existing) gets past the check
    res = _invoke("eval", "run", "llmrouter-9models", "--out", str(tmp_path / "adir"), "--db", str(tmp_path / "e.db"))
    assert isinstance(res.exception, _Worked)


@pytest.mark.parametrize("n", ["0", "-5"])
def test_eval_run_limit_below_one_names_limit(n: str, tmp_path: Path, no_suite_run: None) -> None:
    res = _invoke("eval", "run", "llmrouter-9models", "--limit", n, "--db", str(tmp_path / "e.db"))
    assert str(res.exception).startswith(f"--limit {n}: use at least 1 row")


# -- ui / serve bind messages ---------------------------------------------------------------------------------

def test_ui_empty_host_and_empty_key_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _invoke("ui", "--host", "", "--db", str(tmp_path / "none.db"))
    assert "--host is empty, which to the OS means every interface" in str(res.exception)
    assert "listen on  without" not in str(res.exception)
    monkeypatch.setenv("CR_EMPTY_KEY", "")
    res = _invoke("ui", "--host", "0.0.0.0", "--api-key-env", "CR_EMPTY_KEY", "--db", str(tmp_path / "none.db"))
    assert "--api-key-env CR_EMPTY_KEY: that env var is set but empty" in str(res.exception)
    monkeypatch.delenv("CR_EMPTY_KEY")
    res = _invoke("ui", "--host", "0.0.0.0", "--api-key-env", "CR_EMPTY_KEY", "--db", str(tmp_path / "none.db"))
    assert "--api-key-env CR_EMPTY_KEY: that env var is not set" in str(res.exception)
    assert not (tmp_path / "none.db").exists()
