"""The suites' data plumbing: the user's own train/test files for every kind, no re-split of a test file."""

import json

import numpy as np
import pytest

from crossroads import ConfigError
from crossroads.evals import SUITES_DIR
from crossroads.evals.suite import DataSpec, load_suite, load_train_test, resolve_data, run_suite


def rows_file(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p, "scores": {"a": 1, "b": 0},
                                        "price_per_1m_tokens": {"a": {"input": 1, "output": 2},
                                                                "b": {"input": 3, "output": 4}}}) + "\n"
                            for p in prompts))
    return path


def lines(path):
    return [json.loads(x)["prompt"] for x in path.read_text().splitlines()]


def split_called(calls):
    def split(rows, frac, seed):
        calls.append((frac, seed))
        k = int(round(frac * len(rows)))
        return rows[k:], rows[:k]
    return split


def test_a_given_test_file_is_used_as_is_and_never_re_split(tmp_path):
    train = rows_file(tmp_path / "tr.jsonl", [f"t{i}" for i in range(8)])
    test = rows_file(tmp_path / "te.jsonl", [f"x{i}" for i in range(3)])
    spec = DataSpec(train="tr.jsonl", test="te.jsonl", format="outcomes")
    files = resolve_data(spec, tmp_path)
    assert files.train == train and files.test == test and files.user_test
    calls: list = []
    tr, te = load_train_test(files, spec, load=lines, split=split_called(calls))
    assert te == ["x0", "x1", "x2"] and tr == [f"t{i}" for i in range(8)] and calls == []
    assert set(files.hashes()) == {"train:tr.jsonl", "test:te.jsonl"}
    assert "as given (no re-split)" in files.describe(spec)
    # a test file with a builtin dataset: train on every row of the dataset
    spec2 = DataSpec(dataset="builtin:routellm-2models", test=str(test))
    files2 = resolve_data(spec2, tmp_path)
    assert files2.format == "outcomes" and files2.prices is not None and files2.dataset is not None
    tr2, te2 = load_train_test(files2, spec2, load=lambda p: p.name, split=split_called(calls))
    assert (tr2, te2, calls) == ("routellm_2models_dev.jsonl.gz", "te.jsonl", [])


def test_without_a_test_file_the_dataset_or_train_file_is_split_by_seed(tmp_path):
    rows_file(tmp_path / "all.jsonl", [f"r{i}" for i in range(10)])
    spec = DataSpec(dataset="all.jsonl", format="outcomes", test_fraction=0.3, seed=7)
    calls: list = []
    tr, te = load_train_test(resolve_data(spec, tmp_path), spec, load=lines, split=split_called(calls))
    assert calls == [(0.3, 7)] and te == ["r0", "r1", "r2"] and len(tr) == 7
    # a limit keeps test_fraction of the rows for test, drawn by the kind's subsample
    spec_l = spec.model_copy(update={"limit": 10, "test_fraction": 0.5})
    tr, te = load_train_test(resolve_data(spec_l, tmp_path), spec_l, load=lines, split=split_called([]),
                             subsample=lambda rows, n, seed: rows[:n])
    assert (len(tr), len(te)) == (5, 5)
    with pytest.raises(ConfigError, match="limit is not supported"):
        load_train_test(resolve_data(spec_l, tmp_path), spec_l, load=lines, split=split_called([]))


def test_bad_data_specs_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"give data.dataset .* or data.train"):
        DataSpec()
    with pytest.raises(ConfigError, match=r"test file .*nope.jsonl does not exist"):
        resolve_data(DataSpec(dataset="builtin:llmrouter-9models", test="nope.jsonl"), tmp_path)
    rows_file(tmp_path / "x.jsonl", ["a"])
    with pytest.raises(ConfigError, match="data.format is required for x.jsonl"):
        resolve_data(DataSpec(train="x.jsonl", test="x.jsonl"), tmp_path)
    # a kind whose routers the suite does not train refuses a training file, saying why
    with pytest.raises(ConfigError, match="step_routing routers are not trained by the suite"):
        run_suite(SUITES_DIR / "twinrouterbench-static.yaml", train_file=tmp_path / "x.jsonl",
                  test_file=tmp_path / "x.jsonl")
    # and a test file that is not a question bank is an error naming the file
    with pytest.raises(ConfigError, match=r"x.jsonl"):
        run_suite(SUITES_DIR / "twinrouterbench-static.yaml", test_file=tmp_path / "x.jsonl")


def test_suite_yaml_takes_train_and_test(tmp_path):
    rows_file(tmp_path / "a.jsonl", ["p"])
    s = tmp_path / "s.yaml"
    s.write_text("name: mine\nkind: query_routing\ndata: {train: a.jsonl, test: a.jsonl, format: outcomes, "
                 "validation_fraction: 0.25}\nrouters: [{name: knn, type: knn}]\n")
    spec, base = load_suite(s)
    files = resolve_data(spec.data, base)
    assert files.train == files.test == tmp_path / "a.jsonl" and spec.data.validation_fraction == 0.25
    assert np.isclose(spec.data.test_fraction, 0.2)
