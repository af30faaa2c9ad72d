"""Router-R1 training: the model-routing task, its replay reward, and running a trained policy in a shipped suite."""

from __future__ import annotations

import pytest

from crossroads.errors import ConfigError
from crossroads.evals import SUITES_DIR
from crossroads.evals.suite import load_suite, with_routers

TRAINED = {"name": "r1_trained", "type": "router_r1",
           "params": {"samples": 5, "model": {"provider": "llama_cpp", "path": "r1.gguf"}}}


def test_a_trained_router_joins_a_shipped_suite_run() -> None:
    spec, _ = load_suite(SUITES_DIR / "llmrouter-9models.yaml")
    both = with_routers(spec, [TRAINED], only=["knn", "r1_trained"])
    assert [(r.name, r.type) for r in both.routers] == [("knn", "knn"), ("r1_trained", "router_r1")]
    assert both.routers[1].params["model"] == {"provider": "llama_cpp", "path": "r1.gguf"}
    assert len(spec.routers) == 10  # the shipped spec is not changed
    assert [r.name for r in with_routers(spec, [TRAINED]).routers][-2:] == ["router_r1_smollm2", "r1_trained"]
    with pytest.raises(ConfigError, match="no router named 'knnn'.*routers: random"):
        with_routers(spec, [], only=["knnn"])
    with pytest.raises(ConfigError, match="added router #1.*invalid"):
        with_routers(spec, [{"name": "x", "typ": "knn"}])


def test_cli_router_option_parses_a_yaml_mapping() -> None:
    from crossroads.cli import _router_entry

    got = _router_entry("{name: r1_trained, type: router_r1, params: {samples: 5, model: {provider: llama_cpp, "
                        "path: r1.gguf}}}")
    assert got == TRAINED
    with pytest.raises(ConfigError, match="must be a mapping"):
        _router_entry("router_r1")
    with pytest.raises(ConfigError, match="not valid YAML"):
        _router_entry("{name: [")
