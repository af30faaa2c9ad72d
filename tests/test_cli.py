"""The real `crossroads` command, run as a subprocess."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
V1_FIXTURE = ROOT / "tests" / "data" / "trace_v1.db"
SECRET = "sk-abcdefghijklmnopqrstuvwx123456"
FLOWS = f"""
import time
from pathlib import Path
from crossroads import Flow, agent

def _count(text):
    return f"{{len(text)}} chars, ends {{text[-6:]}}"

echo = Flow("echo").add(agent("count", _count))

def _slow(text):
    Path(text).write_text("started")
    time.sleep(60)
    return "late"

slow = Flow("slow").add(agent("wait", _slow))

def _leak(text):
    raise RuntimeError("upstream refused api_key={SECRET}\\nsecond line " + "x" * 300)

leaky = Flow("leaky").add(agent("leak", _leak))
"""


def cli(*args, db=None, check=True, env_extra=None, input=None, columns="200"):
    env = {**os.environ, "CROSSROADS_DB": str(db) if db else os.environ.get("CROSSROADS_DB", "")}
    env.pop("COLUMNS", None)
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "crossroads.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "COLUMNS": columns}, input=input)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def flows(tmp_path):
    """A module of small Python flows, importable by the CLI as cliflows:NAME."""
    (tmp_path / "cliflows.py").write_text(FLOWS)
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}


def test_version():
    assert cli("--version").stdout.startswith("crossroads 0.1.0")


def test_quickstart_run_then_trace_show_and_export(db_path):
    run = cli("run", "examples/quickstart.yaml", "--input", "what is 12 * (3 + 4)?", db=db_path)
    assert "12 * (3 + 4) = 84" in run.stdout
    run_id = run.stdout.split("run id:")[1].split()[0]
    listed = json.loads(cli("trace", "list", "--json", db=db_path).stdout)
    assert listed[0]["id"] == run_id and listed[0]["decisions"] == 1 and listed[0]["status"] == "succeeded"
    shown = cli("trace", "show", run_id[:10], db=db_path).stdout
    assert "decision at START by triage → calculator" in shown
    assert "converter  score=" in shown and "closest example of 'calculator'" in shown
    detail = json.loads(cli("trace", "show", run_id, "--json", db=db_path).stdout)
    assert detail["decisions"][0]["chosen"] == ["calculator"]
    lines = cli("trace", "export", run_id, "--format", "jsonl", db=db_path).stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run", "step", "decision", "call"]
    scores = {c["name"]: c["score"] for c in detail["decisions"][0]["candidates"]}
    assert scores["calculator"] > scores["converter"] and scores["calculator"] > scores["faq"]


def test_run_json_output(db_path):
    out = json.loads(cli("run", "examples/quickstart.yaml", "-i", "convert 10 kg to lb", "--json", db=db_path).stdout)
    assert out["status"] == "succeeded" and out["output"].startswith("10 kg = 22.04")


@pytest.mark.slow  # several CLI processes; runs in CI's slow step
def test_errors_are_one_line_and_nonzero(tmp_path, db_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [\n")
    proc = cli("run", str(bad), "-i", "x", db=db_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "malformed YAML" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("--debug", "run", str(bad), "-i", "x", db=db_path, check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_corrupt_trace_db_is_a_clear_error(tmp_path):
    db = tmp_path / "broken.db"
    db.write_text("definitely not sqlite")
    proc = cli("trace", "list", "--db", str(db), check=False)
    assert proc.returncode == 1 and "not an SQLite database" in proc.stderr
    assert db.read_text() == "definitely not sqlite"


def test_routers_listing():
    names = [r["name"] for r in json.loads(cli("routers", "--json").stdout)]
    assert {"rules", "fixed", "random", "cheapest", "most_capable", "human"} <= set(names)


@pytest.mark.slow  # several CLI processes; runs in CI's slow step
def test_input_over_the_os_argument_limit_via_file_and_stdin(tmp_path, db_path, flows):
    text = "word " * 60_000 + "final"  # 300,005 chars: one argv string may hold at most 131,072 bytes on Linux
    with pytest.raises(OSError, match="Argument list too long"):
        cli("run", "cliflows:echo", "--input", text, db=db_path, env_extra=flows)
    big = tmp_path / "big.txt"
    big.write_text(text)
    out = cli("run", "cliflows:echo", "--input-file", str(big), db=db_path, env_extra=flows).stdout
    assert out.startswith("300005 chars, ends  final")
    out = cli("run", "cliflows:echo", "--input", "-", db=db_path, env_extra=flows, input=text).stdout
    assert out.startswith("300005 chars, ends  final")
    listed = json.loads(cli("trace", "list", "--json", db=db_path).stdout)
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]


def test_input_over_max_input_chars_is_refused_before_anything_runs(tmp_path, db_path, flows):
    f = tmp_path / "in.txt"
    f.write_text("x" * 11)
    proc = cli("run", "cliflows:echo", "--input-file", str(f), "--max-input-chars", "10", db=db_path,
               env_extra=flows, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: the input from") and "11 characters, over the limit of 10" in proc.stderr
    assert not db_path.exists()  # refused before the trace DB was even opened
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9")
    proc = cli("run", "cliflows:echo", "--input-file", str(bad), db=db_path, env_extra=flows, check=False)
    assert proc.returncode == 2 and "not valid UTF-8 (byte 3)" in proc.stderr


def test_ctrl_c_exits_130_with_a_message(tmp_path, db_path, flows):
    marker = tmp_path / "started"
    env = {**os.environ, **flows, "CROSSROADS_DB": str(db_path)}
    # a job started in the background by a non-interactive shell (a CI runner's `cmd &`) inherits SIGINT
    # ignored, and Python keeps it ignored: give the CLI the default disposition a terminal's process has
    proc = subprocess.Popen([sys.executable, "-m", "crossroads.cli", "run", "cliflows:slow", "--input", str(marker)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1].startswith("interrupted: stopped by Ctrl-C")


def test_errors_are_one_redacted_line_at_any_terminal_width(db_path, flows):
    proc = cli("run", "cliflows:leaky", "--input", "go", db=db_path, env_extra=flows, check=False, columns="30")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error (RuntimeError): upstream refused")
    assert SECRET not in proc.stderr and "api_key=[REDACTED] second line xxx" in proc.stderr


def _hold_lock_until(db, stop, ready):
    conn = sqlite3.connect(db, timeout=5, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    stop.wait()
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.slow  # several CLI processes; runs in CI's slow step
def test_a_trace_write_failure_never_loses_the_answer(db_path, flows):
    cli("run", "cliflows:echo", "--input", "first", db=db_path, env_extra=flows)
    stop, ready = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_lock_until, args=(str(db_path), stop, ready))
    locker.start()
    ready.wait()
    try:
        proc = cli("run", "cliflows:echo", "--input", "second", db=db_path, check=False,
                   env_extra={**flows, "CROSSROADS_TRACE_BUSY_TIMEOUT_S": "0.1", "CROSSROADS_TRACE_LOCK_RETRY_S": "0.5"})
    finally:
        stop.set()
        locker.join()
    assert proc.returncode == 0 and proc.stdout.startswith("6 chars, ends second")
    warning = proc.stderr.strip().splitlines()[-1]
    assert warning.startswith("warning: trace writer failed:") and "spill.jsonl" in warning
    assert "crossroads trace recover" in warning
    rec = json.loads(cli("trace", "recover", "--json", db=db_path).stdout)
    assert rec["imported"] >= 3 and rec["skipped"] == 0
    runs = json.loads(cli("trace", "list", "--json", db=db_path).stdout)
    assert [(r["input"], r["status"], r["output"]) for r in runs][0] == ("second", "succeeded", "6 chars, ends second")


@pytest.mark.slow  # several CLI processes; runs in CI's slow step
def test_read_only_commands_create_nothing_and_v1_dbs_upgrade(tmp_path):
    missing = tmp_path / "nested" / "trace.db"
    for cmd in ("list", "upgrade"):
        proc = cli("trace", cmd, "--db", str(missing), check=False)
        assert proc.returncode == 1 and "no trace DB at" in proc.stderr and not (tmp_path / "nested").exists()
    db = tmp_path / "v1.db"
    shutil.copy(V1_FIXTURE, db)
    raw = db.read_bytes()
    assert len(json.loads(cli("trace", "list", "--json", "--db", str(db)).stdout)) == 5
    assert db.read_bytes() == raw  # reading a v1 DB neither upgrades nor writes it
    out = cli("trace", "upgrade", "--db", str(db)).stdout
    assert "from schema v1 to v2" in out and "cr_runs: 5 rows before, 5 after" in out and "writes: 47 rows before, 47 after" in out
    assert (tmp_path / "v1.db.v1.bak").exists()
    assert "nothing to do" in cli("trace", "upgrade", "--db", str(db)).stdout


def test_another_applications_db_is_refused_untouched(tmp_path, flows):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("create table orders (id integer primary key)")
    conn.commit()
    conn.close()
    raw = db.read_bytes()
    proc = cli("run", "cliflows:echo", "--input", "x", "--db", str(db), env_extra=flows, check=False)
    assert proc.returncode == 1 and "another application" in proc.stderr and db.read_bytes() == raw


def test_json_output_is_strict_json_without_nan():
    import io
    import json as _json
    from contextlib import redirect_stdout

    from crossroads.cli import _print_json

    buf = io.StringIO()
    with redirect_stdout(buf):
        _print_json({"apgr": float("nan"), "points": [1.0, float("inf")], "ok": 0.5})
    assert _json.loads(buf.getvalue(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))) == {
        "apgr": None, "points": [1.0, None], "ok": 0.5}


def test_trace_show_to_a_pipe_or_file_cuts_no_line(tmp_path, monkeypatch):
    """Not a terminal (typer's CliRunner, like `crossroads trace show X > f.txt`): a 200-character rationale and
    the run's header line come out whole, not cropped at rich's default 80 columns."""
    from typer.testing import CliRunner

    from crossroads import Decision, SQLRecorder
    from crossroads.cli import app
    from crossroads.tracing import DecisionRecord, RunEnd, RunStart

    db = tmp_path / "wide.db"
    rationale = ("the query asks about a refund for a double charge on the last invoice, which is billing's job; "
                 "faq has no refund answers and calculator does no money transfers at all, so it goes to: billing, final!!!")
    assert len(rationale) == 200
    rec = SQLRecorder(str(db))
    rec.record(RunStart(run_id="runWIDE0001", flow="a-flow-with-a-rather-long-name-for-the-header", thread_id="t",
                        input="refund", started_at=1.0))
    d = Decision(targets=("billing",), scores={"billing": 0.9, "faq": 0.1}, router="triage", rationale=rationale)
    rec.record(DecisionRecord(run_id="runWIDE0001", source="__start__", decision=d, created_at=1.1))
    rec.record(RunEnd(run_id="runWIDE0001", status="succeeded", output="ok", ended_at=2.0))
    rec.close()
    rec.store.close()
    monkeypatch.setenv("COLUMNS", "80")
    res = CliRunner().invoke(app, ["trace", "show", "runWIDE", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert f"rationale: {rationale}\n" in res.output
    assert "1 decisions  $0.000000" in res.output  # the header's tail, past column 80


def test_help_keeps_bracketed_words_and_its_panels(monkeypatch):
    """Typer renders help as rich markup, which used to eat "[train]", "[default: ...]" and "[env: ...]"."""
    from typer.testing import CliRunner

    from crossroads.cli import app

    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()

    def help_of(*cmd):
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0, res.output
        return res.output

    train = help_of("train")
    assert "needs the [train] extra" in train and 'pip install -e ".[train]"' in train
    assert "╭─ Options" in train and "╭─ Arguments" in train  # still typer's rich panels
    # one page for every kind, naming both kinds' stages
    for kind in ("encoder", "llm-router"):
        page = help_of("train", kind)
        assert page == train
        assert "[1/4 warm-start head]" in page and "[4/4" in page and "calibrate" in page  # encoder
        assert "[2/4 sft] trl SFTTrainer" in page and "[3/4 grpo]" in page and "[4/4 export] router.gguf" in page
    assert "Report folder [default: ./crossroads-evals/SUITE-RUNID]." in help_of("eval", "run")
    assert "[env: CROSSROADS_DB; default: ./crossroads.db]" in help_of("trace", "show")
    assert "[default: the flow's max_input_chars, 1,000,000]" in help_of("run")
    assert help_of("trace", "show").count("\\[") == 0  # escaped for rich, printed without the backslash
