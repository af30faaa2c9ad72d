"""TwinRouterBench static-track scoring on hand-computed cases and on the fixture tasks."""

import dataclasses
import json
import re

import pytest

from crossroads import ConfigError
from crossroads.agents.tokens import count_tokens
from crossroads.data import DATA_DIR
from crossroads.evals.step_routing import (
    BankRow,
    fixtures_to_bank,
    load_bank,
    score_bank,
    step_costs,
)
from crossroads.evals.suite import run_suite

S0 = ({"role": "user", "content": "hello"},)
S1 = S0 + ({"role": "assistant", "content": "ok"},)


def traj(gold=(0, 1), bench="x", iid="A"):
    return [BankRow(id=f"{iid}0", benchmark=bench, scenario="", instance_id=iid, step_index=0, total_steps=2, messages=S0, target_tier_id=gold[0]),
            BankRow(id=f"{iid}1", benchmark=bench, scenario="", instance_id=iid, step_index=1, total_steps=2, messages=S1, target_tier_id=gold[1])]


def test_token_assumptions():
    assert count_tokens("hello") == 1 and count_tokens("ok") == 1


def test_step_costs_by_hand():
    # prompt tokens: step0 = 1 + 4 = 5; step1 = 5 + (1 + 4) = 10; output: step0 = "ok" + 4 = 5, step1 = mean = 5
    high = step_costs(traj(), ["high", "high"])
    assert high[0] == pytest.approx((5 * 6.25 + 5 * 25) / 1e6)              # first step: all cache writes
    assert high[1] == pytest.approx((5 * 0.5 + 5 * 6.25 + 5 * 25) / 1e6)     # same tier, prefix: 5 read, 5 written
    mixed = step_costs(traj(), ["low", "mid"])
    assert mixed[1] == pytest.approx((10 * 0.30 + 5 * 2) / 1e6)              # tier switch: all writes


def test_scores_by_hand():
    rows = traj()
    perfect = score_bank(rows, {"A0": 0, "A1": 1})
    assert perfect["case_pass"] == perfect["exact_match"] == perfect["trajectory_pass"] == 100.0
    D = 156.25 + 158.75
    N = (156.25 - 3.8) + (158.75 - 13.0)
    assert perfect["cost_savings"] == pytest.approx(100 * N / D)
    assert perfect["combined"] == pytest.approx((300 + 100 * N / D) / 4)
    under = score_bank(rows, {"A0": 0, "A1": 0})
    assert (under["case_pass"], under["exact_match"], under["trajectory_pass"]) == (50.0, 50.0, 0.0)
    assert under["cost_savings"] == pytest.approx(-100 * (3.8 + 0.65 + 1.3 + 2.5) / D)  # a failed trajectory pays and saves nothing
    errored = score_bank(rows, {"A0": None, "A1": 3})
    assert errored["case_pass"] == 50.0 and errored["trajectory_pass"] == 0.0


def test_benchmarks_weighted_by_rows():
    rows = traj(bench="x", iid="A") + traj(bench="y", iid="B")[:1]
    s = score_bank(rows, {"A0": 3, "A1": 3, "B0": 3})
    assert s["cost_savings"] == pytest.approx(0.0) and s["trajectory_pass"] == 100.0


def test_bank_loading_and_errors(tmp_path):
    p = tmp_path / "bank.jsonl"
    good = {"id": "1", "benchmark": "b", "scenario": "s", "instance_id": "i", "step_index": 0, "total_steps": 1,
            "messages": [{"role": "user", "content": "hi"}], "target_tier": "mid", "target_tier_id": 1}
    p.write_text(json.dumps(good) + "\n")
    assert load_bank(p)[0].target_tier == "mid"
    p.write_text(json.dumps({**good, "target_tier": "high"}) + "\n")
    with pytest.raises(ConfigError, match="bank.jsonl:1: target_tier 'high' disagrees with target_tier_id 1"):
        load_bank(p)
    p.write_text(json.dumps({k: v for k, v in good.items() if k != "messages"}) + "\n")
    with pytest.raises(ConfigError, match="missing field 'messages'"):
        load_bank(p)


def test_fixture_tasks_and_suite():
    rows = fixtures_to_bank(sorted((DATA_DIR / "twinrouterbench").glob("*.json")))
    assert len(rows) == 10 and len({r.instance_id for r in rows}) == 6
    res = run_suite(DATA_DIR.parent / "evals" / "suites" / "twinrouterbench-static.yaml").results["routers"]
    # gold tiers of the 10 rows: low x5, mid x3, mid_high x1, high x1; trajectories entirely <= low: the two
    # one-step mtrag tasks (2 rows); entirely <= mid: mtrag x2, pinch (2 rows), qmsum (5 rows)
    low, mid = res["always_low"], res["always_mid"]
    assert (low["case_pass"], low["exact_match"], low["trajectory_pass"]) == (50.0, 50.0, 20.0)
    assert (mid["case_pass"], mid["exact_match"], mid["trajectory_pass"]) == (80.0, 30.0, 50.0)
    assert res["always_high"]["cost_savings"] == 0.0 and res["always_high"]["case_pass"] == 100.0


def test_fixture_prefixes_do_not_name_a_tier():
    # the fixtures' per-step "hint" (low, mid, not_downgradeable) once went into the assistant turns of later
    # prefixes ("Step 1: low action."): a router could read tiers off the prefix
    rows = fixtures_to_bank(sorted((DATA_DIR / "twinrouterbench").glob("*.json")))
    for r in rows:
        words = set(re.findall(r"[a-z_]+", " ".join(str(m.get("content")) for m in r.messages).lower()))
        assert not words & {"low", "mid", "mid_high", "high", "not_downgradeable"}, r.id
    swe = [r for r in rows if r.instance_id == "fixture__swe-1"]
    assert [m["content"] for m in swe[2].messages[2:]] == [
        "Step 1: tool call.", "The relevant parser implementation was located.",
        "Step 2: tool call.", "The source file was patched and focused tests passed."]


def test_step_suite_scores_a_users_bank_as_given_and_refuses_train(tmp_path):
    from crossroads.evals import SUITES_DIR
    from crossroads.evals.step_routing import fixtures_to_bank
    from crossroads.evals.suite import run_suite

    bank = fixtures_to_bank(sorted((SUITES_DIR.parent.parent / "data" / "twinrouterbench").glob("*.json")))[:5]
    path = tmp_path / "bank.jsonl"
    path.write_text("\n".join(json.dumps({**dataclasses.asdict(r), "messages": list(r.messages),
                                           "functions": list(r.functions)}) for r in bank))
    res = run_suite(SUITES_DIR / "twinrouterbench-static.yaml", test_file=path)
    assert res.results["n_rows"] == 5
    with pytest.raises(ConfigError, match="not trained by the suite"):
        run_suite(SUITES_DIR / "twinrouterbench-static.yaml", train_file=path, test_file=path)
