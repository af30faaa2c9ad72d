"""The real `crossroads` command, run as a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, db=None, check=True):
    env = {**os.environ, "CROSSROADS_DB": str(db) if db else os.environ.get("CROSSROADS_DB", "")}
    env.pop("COLUMNS", None)
    proc = subprocess.run([sys.executable, "-m", "crossroads.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**env, "COLUMNS": "200"})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


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
