"""Eval suites run for real (small versions of each shipped suite) and bad input fails cleanly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossroads import ConfigError, UnknownNameError
from crossroads.evals import SUITES_DIR
from crossroads.evals.suite import load_suite, run_suite
from crossroads.tracing import EvalStore, TraceStore

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # embeds real data with the local model


def test_every_shipped_suite_runs_small(tmp_path):
    names = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
    assert {"llmrouter-9models", "routellm-2models", "clinc150", "banking77"} <= set(names)
    for name in ["llmrouter-9models", "routellm-2models"]:
        res = run_suite(SUITES_DIR / f"{name}.yaml", limit=300)
        r = res.results["routers"]
        assert r["oracle"]["best_quality"] >= r["best_single"]["best_quality"]
        assert r["oracle"]["registered_as"] == "eval-only" and r["mf"]["registered_as"] == "trained"
        assert res.results["n_test"] == 60 and res.results["n_validation"] + res.results["n_fit"] == 240
        m = res.results["aiq_max_cost"]
        # one AIQ against the run's shared maximum cost: the best single model is one point at cost 1.0
        bs = r["best_single"]["points"][0]
        assert bs["cost"] == pytest.approx(1.0)
        assert r["best_single"]["aiq"] == pytest.approx(bs["quality"] * (m - 1.0) / m)
        if name == "routellm-2models":
            # RouteLLM calibration on the validation slice: the test sweep runs from all-strong to all-weak
            shares = r["mf"]["strong_shares"]
            assert len(shares) == 11 and max(shares) >= 0.85 and min(shares) <= 0.15
            assert "input-only elsewhere" in res.results["cost_basis"]
        else:
            assert res.results["cost_basis"].startswith("input-only")
    for name in ["clinc150", "banking77"]:
        res = run_suite(SUITES_DIR / f"{name}.yaml", limit=800)
        r = res.results["routers"]
        assert r["random"]["top1_accuracy"] < 0.2 < r["centroid"]["top1_accuracy"]
        assert res.data_hashes and res.code_version.startswith("0.1.0")


def test_tool_graph_and_step_suites_run_small():
    spec, _ = load_suite(SUITES_DIR / "self-healing.yaml")  # the shipped suite without its local-LLM parts
    routers = [r.model_copy(update={"params": {"escalation": "none"}}) if r.type == "self_healing" else r
               for r in spec.routers if r.type != "react"]
    res = run_suite(spec.model_copy(update={"routers": routers}), limit=6)
    sh, st = res.results["routers"]["self_healing"], res.results["routers"]["static"]
    assert sh["correct"] == sh["n"] == 6 and sh["silent_failures"] == 0
    # CS-1..CS-6: CS-5 (both payments down) and CS-6 (both notifications down) end in a skipped step
    assert (st["reached"], st["silent_failures"], st["correct"]) == (4, 2, 4)
    assert res.results["generated"]["routers"]["self_healing"]["correct"] == 60
    gen = res.results["generated"]["routers"]
    assert set(gen) == set(res.results["routers"])  # every baseline runs on the generated scenarios too
    trb = run_suite(SUITES_DIR / "twinrouterbench-static.yaml")
    assert trb.results["routers"]["gold"]["combined"] > trb.results["routers"]["always_low"]["combined"]


def test_online_suite_runs_small():
    res = run_suite(SUITES_DIR / "pheromone-online.yaml", limit=400)
    r = res.results["routers"]
    assert set(r) == {"pheromone", "pheromone_exploit", "random", "best_single", "bandit", "knn"}
    assert r["pheromone"]["updates"] == res.results["n"] and r["best_single"]["cost"] == pytest.approx(1.0)
    lat = res.results["latency_learning_on_off"]
    assert lat["p50_ms_on"] > 0 and lat["p50_ms_off"] > 0


def write_suite(tmp_path, data_line, router="knn", extra=""):
    data = tmp_path / "d.jsonl"
    data.write_text(data_line)
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: mine\nkind: query_routing\ndata: {{dataset: d.jsonl, format: outcomes{extra}}}\n"
                     f"routers: [{{name: r, type: {router}}}]\n")
    return suite


ROW = {"prompt": "what is 2+2", "scores": {"a": 1, "b": 0}, "price_per_1m_tokens": {"a": {"input": 1, "output": 1}, "b": {"input": 2, "output": 2}}}


def test_bad_input_errors_name_file_line_field(tmp_path):
    bad = json.dumps(ROW) + "\n" + json.dumps({**ROW, "prompt": ""}) + "\n"
    with pytest.raises(ConfigError, match=r"d.jsonl:2: missing or empty field 'prompt'"):
        run_suite(write_suite(tmp_path, bad))
    with pytest.raises(ConfigError, match="no rows"):
        run_suite(write_suite(tmp_path, ""))
    with pytest.raises(UnknownNameError, match="unknown query router 'knnn'.*did you mean 'knn'"):
        run_suite(write_suite(tmp_path, json.dumps(ROW) + "\n", router="knnn"))
    with pytest.raises(ConfigError, match="model 'gpt-9' is not in d.jsonl"):
        run_suite(write_suite(tmp_path, json.dumps(ROW) + "\n", extra=", strong: gpt-9, weak: a"))
    s = tmp_path / "broken.yaml"
    s.write_text("name: x\nkind: query_routing\nrouters: []\n")
    with pytest.raises(ConfigError, match="data: Field required"):
        run_suite(s)


def cli(*args, db):
    env = {**os.environ, "CROSSROADS_DB": str(db), "COLUMNS": "200",
           "CROSSROADS_EMBEDDING_CACHE": str(Path(db).parent / "emb-cache.db")}
    return subprocess.run([sys.executable, "-m", "crossroads.cli", *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_cli_eval_run_list_show_compare_and_nothing_half_written(tmp_path):
    db = tmp_path / "e.db"
    runs = []
    for seed_out in ("a", "b"):
        p = cli("eval", "run", "llmrouter-9models", "--limit", "300", "--out", str(tmp_path / seed_out), "--json", db=db)
        assert p.returncode == 0, p.stderr
        runs.append(json.loads(p.stdout)["id"])
        assert (tmp_path / seed_out / "report.md").exists() and (tmp_path / seed_out / "cost_quality.png").exists()
    listed = json.loads(cli("eval", "list", "--json", db=db).stdout)
    assert [r["id"] for r in listed] == runs[::-1]
    shown = json.loads(cli("eval", "show", runs[0][:10], "--json", db=db).stdout)
    assert shown["results"]["mf"]["points"] and shown["config"]["data"]["limit"] == 300
    cmp = json.loads(cli("eval", "compare", runs[0], runs[1], "--json", db=db).stdout)
    assert {r["router"] for r in cmp["rows"]} >= {"knn", "mf"}
    # same suite, same seed: every metric but wall-clock latency is reproduced exactly
    assert all(r["delta"] in (0, 0.0, None) for r in cmp["rows"] if r["metric"] != "latency_p50_ms")
    # a failing suite writes nothing
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: query_routing\ndata: {dataset: 'builtin:llmrouter-9models'}\nrouters: [{name: x, type: nope}]\n")
    p = cli("eval", "run", str(bad), db=db)
    assert p.returncode == 1 and "unknown query router 'nope'" in p.stderr
    assert len(EvalStore(TraceStore(db)).list()) == 2


def test_cli_train_then_load(tmp_path):
    import csv
    import gzip

    from crossroads import create_router
    from crossroads.agents.backends.replay import RecordedOutcomes
    from crossroads.data import DATA_DIR

    db = tmp_path / "t.db"
    data = tmp_path / "few.jsonl"
    two = RecordedOutcomes.builtin("routellm-2models")
    with data.open("w") as fh:
        for r in two.rows[:60]:
            fh.write(json.dumps({"prompt": r.prompt, "correct": {m: bool(v) for m, v in r.scores.items()}}) + "\n")
    out = tmp_path / "mf.npz"
    p = cli("train", "mf", "--data", str(data), "--prices", str(DATA_DIR / "routing" / "routellm_2models_prices.json"),
            "--out", str(out), "-p", "epochs=3", db=db)
    assert p.returncode == 0, p.stderr
    r = create_router("trained", {"path": str(out), "willingness": 0.0})
    assert set(r.targets) == set(two.models) and r.predictor.kind == "mf"
    with gzip.open(DATA_DIR / "intent" / "banking77_train.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    small = tmp_path / "b.csv"
    with small.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["text", "category"])
        w.writeheader()
        for cat in ("card_arrival", "lost_or_stolen_card", "top_up_failed"):
            for row in [r for r in rows if r["category"] == cat][:50]:
                w.writerow(row)
    p = cli("train", "classifier", "--data", str(small), "--out", str(tmp_path / "c.npz"), "-p", "epochs=5", db=db)
    assert p.returncode == 0, p.stderr
    assert "3 agents" in p.stdout
    clf = create_router("classifier", {"path": str(tmp_path / "c.npz")})
    assert clf.classifier.classes == ["card_arrival", "lost_or_stolen_card", "top_up_failed"]


def test_cli_eval_on_the_users_own_train_and_test_files(tmp_path):
    """The held-out command: train on one file, score a separate test file as is (no re-split)."""
    from crossroads.agents.backends.replay import RecordedOutcomes

    two = RecordedOutcomes.builtin("routellm-2models")
    rng = np.random.default_rng(3)
    idx = rng.permutation(len(two.rows))[:260]

    def write(path, rows):
        with path.open("w") as fh:
            for r in rows:
                fh.write(json.dumps({"prompt": r.prompt, "correct": {m: bool(v) for m, v in r.scores.items()}}) + "\n")
        return path

    train = write(tmp_path / "train.jsonl", [two.rows[i] for i in idx[:200]])
    test = write(tmp_path / "test.jsonl", [two.rows[i] for i in idx[200:]])
    db = tmp_path / "e.db"
    p = cli("eval", "run", "routellm-2models", "--train", str(train), "--test", str(test), "--out", str(tmp_path / "rep"),
            "--json", db=db)
    assert p.returncode == 0, p.stderr
    run = json.loads(p.stdout)
    res = run["results"]
    assert res["n_test"] == 60 and res["n_train"] == 200 and "as given (no re-split)" in res["split"]
    assert set(run["data_hashes"]) >= {"train:train.jsonl", "test:test.jsonl"}
    assert "test.jsonl as given" in (tmp_path / "rep" / "report.md").read_text()
