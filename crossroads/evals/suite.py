"""Eval suites: a documented YAML schema (datasets x routers x settings) and the runner.

Example::

    name: llmrouter-9models
    kind: query_routing
    data: {dataset: builtin:llmrouter-9models, test_fraction: 0.2, seed: 0}
    routers:
      - {name: knn, type: knn, params: {k: 10}}
      - {name: mf, type: mf}
    settings: {bootstrap: 1000}

Datasets are referenced by path (or ``builtin:NAME``), so a suite can point at a user's own files in
the same format.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._io import file_sha256, read_yaml
from .._version import __version__
from ..data import DATA_DIR
from ..errors import ConfigError, UnknownNameError

__all__ = ["BUILTIN_DATA", "SuiteResult", "SuiteSpec", "load_suite", "run_suite"]

BUILTIN_DATA: dict[str, tuple[str, Path, Path | None]] = {
    "llmrouter-9models": ("outcomes", DATA_DIR / "routing" / "llmrouter_9models_train.jsonl.gz", None),
    "routellm-2models": ("outcomes", DATA_DIR / "routing" / "routellm_2models_dev.jsonl.gz",
                         DATA_DIR / "routing" / "routellm_2models_prices.json"),
    "clinc150": ("clinc150", DATA_DIR / "intent" / "clinc150_trainval.jsonl.gz", None),
    "banking77": ("banking77", DATA_DIR / "intent" / "banking77_train.csv.gz", None),
    "twinrouterbench-fixtures": ("fixtures", DATA_DIR / "twinrouterbench", None),
    "self-healing-19": ("scenarios", DATA_DIR / "tools" / "self_healing_router_scenarios_19.json", None),
    "bfcl-skills": ("skills", DATA_DIR / "skills" / "bfcl_queries.jsonl.gz", DATA_DIR / "skills" / "bfcl_skills.jsonl.gz"),
}
"""``builtin:NAME`` datasets shipped with crossroads: (format, rows, prices)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Where the rows come from and how they are split."""

    dataset: str = Field(description="builtin:NAME or a path (relative to the suite file)")
    format: Literal["outcomes", "clinc150", "banking77", "bank", "fixtures", "scenarios", "skills"] | None = Field(
        None, description="inferred for builtins; bank = a TwinRouterBench question bank JSONL, fixtures = a folder of fixture tasks")
    prices: str | None = Field(None, description="outcomes: JSON prices for files without per-row prices")
    skills: str | None = Field(None, description="skill_routing: the skill pool (Agent Skills folder, MCP tools/list "
                               "JSON or OpenAI/BFCL functions), relative to the suite file; builtin: the BFCL pool")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    limit: int | None = Field(None, ge=10, description="use at most this many rows (small CI versions)")
    strong: str | None = Field(None, description="two-model data: the strong model (for APGR)")
    weak: str | None = Field(None, description="two-model data: the weak model (for APGR)")
    generated: int = Field(0, ge=0, description="tool_graph: also run this many generated compound-failure scenarios")


class RouterEntry(_Strict):
    """One router of the suite."""

    name: str
    type: str
    params: dict[str, Any] = {}
    slow: bool = Field(False, description="run only with include_slow (CLI --slow or CROSSROADS_EVAL_SLOW=1): "
                                          "LLM routers on a CPU")


class SettingsSpec(_Strict):
    """Run settings."""

    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for 95% confidence intervals (0: off)")
    latency_samples: int = Field(100, ge=0, description="decisions timed through the router protocol")
    lambdas: list[float] | None = Field(None, description="willingness-to-pay sweep for cost-quality curves")


class SuiteSpec(_Strict):
    """A whole suite file."""

    name: str
    kind: Literal["query_routing", "agent_selection", "step_routing", "tool_graph", "online_routing", "skill_routing"]
    description: str = ""
    data: DataSpec
    routers: list[RouterEntry] = Field(min_length=1)
    settings: SettingsSpec = SettingsSpec()


def load_suite(path: str | Path) -> tuple[SuiteSpec, Path]:
    """Read and validate a suite file; errors name the file and the field."""
    path = Path(path)
    raw = read_yaml(path, "suite")
    try:
        return SuiteSpec.model_validate(raw), path.parent
    except ValidationError as exc:
        lines = [f"{path}: invalid suite ({exc.error_count()} problem(s))"]
        lines += [f"  {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from exc


@dataclass
class SuiteResult:
    """What a suite run produced."""

    id: str
    spec: SuiteSpec
    results: dict[str, Any]
    data_hashes: dict[str, str]
    created_at: float
    duration_s: float
    code_version: str
    summary: dict[str, Any] = field(default_factory=dict)


def _resolve(spec: DataSpec, base: Path) -> tuple[str, Path, Path | None]:
    if spec.dataset.startswith("builtin:"):
        name = spec.dataset.split(":", 1)[1]
        if name not in BUILTIN_DATA:
            raise UnknownNameError("built-in dataset", name, BUILTIN_DATA)
        fmt, rows, prices = BUILTIN_DATA[name]
        return spec.format or fmt, rows, prices
    rows = Path(spec.dataset)
    rows = rows if rows.is_absolute() else base / rows
    if not rows.exists():
        raise ConfigError(f"dataset {rows} does not exist")
    if spec.format is None:
        raise ConfigError(f"data.format is required for {rows} (outcomes, clinc150 or banking77)")
    prices = None
    if spec.prices:
        prices = Path(spec.prices) if Path(spec.prices).is_absolute() else base / spec.prices
    return spec.format, rows, prices


def code_version() -> str:
    """The crossroads version plus the git commit of the source tree, when there is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        commit = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(test_fraction * n)))
    return idx[k:], idx[:k]


def run_suite(
    suite: str | Path | SuiteSpec,
    *,
    base_dir: Path | None = None,
    embedder: Any = None,
    limit: int | None = None,
    on_router: Callable[[str], None] | None = None,
    include_slow: bool | None = None,
) -> SuiteResult:
    """Run every router of the suite on its data. Nothing is stored: see ``EvalStore.save``.

    Entries marked ``slow`` run only with ``include_slow`` (default: env ``CROSSROADS_EVAL_SLOW=1``)."""
    if isinstance(suite, SuiteSpec):
        spec, base = suite, base_dir or Path.cwd()
    else:
        spec, base = load_suite(suite)
    if limit is not None:
        spec = spec.model_copy(update={"data": spec.data.model_copy(update={"limit": limit})})
    fmt, rows_path, prices_path = _resolve(spec.data, base)
    files = sorted(rows_path.glob("*.json")) if rows_path.is_dir() else [rows_path]
    hashes = {f.name: file_sha256(f) for f in files}
    if prices_path is not None:
        hashes[prices_path.name] = file_sha256(prices_path)
    if embedder is None and spec.kind in ("query_routing", "agent_selection", "online_routing", "skill_routing"):
        from ..agents.embeddings import default_embedder

        embedder = default_embedder()
    started = time.time()
    if include_slow is None:
        include_slow = os.environ.get("CROSSROADS_EVAL_SLOW", "") == "1"
    skipped_slow = [r.name for r in spec.routers if r.slow and not include_slow]
    routers = [(r.name, r.type, r.params) for r in spec.routers if r.name not in skipped_slow]
    names = [r.name for r in spec.routers]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {spec.name!r}: router names must be unique, got {names}")
    progress = on_router or (lambda _: None)
    if spec.kind == "query_routing":
        if fmt != "outcomes":
            raise ConfigError(f"suite {spec.name!r}: query_routing needs recorded-outcomes data, not {fmt}")
        from ..agents.backends.replay import RecordedOutcomes
        from .llm_routers import LLM_QUERY_ROUTERS, evaluate_router_r1
        from .query_routing import QUERY_ROUTERS, evaluate_query_routers, prepare_query_data

        for _, kind, _ in routers:  # fail before any work on an unknown router
            if kind not in QUERY_ROUTERS and kind not in LLM_QUERY_ROUTERS:
                raise UnknownNameError("query router", kind, {**QUERY_ROUTERS, **LLM_QUERY_ROUTERS})
        outcomes = RecordedOutcomes.load(rows_path, prices=prices_path)
        sw = None
        if spec.data.strong or spec.data.weak:
            for m in (spec.data.strong, spec.data.weak):
                if m not in outcomes.models:
                    raise ConfigError(f"suite {spec.name!r}: model {m!r} is not in {rows_path.name}; models: {', '.join(outcomes.models)}")
            sw = (spec.data.strong, spec.data.weak)
        data = prepare_query_data(outcomes, embedder, limit=spec.data.limit, seed=spec.data.seed)
        tr, te = _split(len(data), spec.data.test_fraction, spec.data.seed)
        kw: dict[str, Any] = {}
        if spec.settings.lambdas:
            kw["lambdas"] = spec.settings.lambdas
        results: dict[str, Any] = {"routers": {}}
        for r in routers:
            progress(r[0])
            if r[1] in LLM_QUERY_ROUTERS:  # through the router protocol, on a sample
                results["routers"][r[0]] = evaluate_router_r1(data.subset(tr), data.subset(te), outcomes, r[2],
                                                              seed=spec.data.seed)
                continue
            one = evaluate_query_routers(data.subset(tr), data.subset(te), [r], bootstrap=spec.settings.bootstrap,
                                         latency_embedder=embedder, latency_samples=spec.settings.latency_samples,
                                         strong_weak=sw, **kw)
            results["routers"].update(one.pop("routers"))
            results.update(one)
    elif spec.kind == "online_routing":
        from ..agents.backends.replay import RecordedOutcomes
        from .online import ONLINE_ROUTERS, evaluate_online, latency_learning_on_off
        from .query_routing import prepare_query_data

        for _, kind, _ in routers:
            if kind not in ONLINE_ROUTERS:
                raise UnknownNameError("online router", kind, ONLINE_ROUTERS)
        data = prepare_query_data(RecordedOutcomes.load(rows_path, prices=prices_path), embedder,
                                  limit=spec.data.limit, seed=spec.data.seed)
        tr, te = _split(len(data), spec.data.test_fraction, spec.data.seed)
        train, stream = data.subset(tr), data.subset(te)
        for label, _, _ in routers:
            progress(label)
        results = evaluate_online(train, stream, routers, embedder, window=max(10, min(200, len(stream) // 5)),
                                  seed=spec.data.seed)
        if spec.settings.latency_samples:
            results["latency_learning_on_off"] = latency_learning_on_off(
                train, stream, embedder, requests=max(100, spec.settings.latency_samples))
    elif spec.kind == "tool_graph":
        from .tool_graph import (
            generate_scenarios,
            load_scenarios,
            local_model,
            react_controller,
            run_scenarios,
            self_healing_controller,
            static_workflow,
        )

        if fmt != "scenarios":
            raise ConfigError(f"suite {spec.name!r}: tool_graph needs a scenarios file, not {fmt}")
        scenarios = load_scenarios(rows_path)
        if spec.data.limit is not None:
            scenarios = scenarios[: spec.data.limit]
        controllers: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for label, kind, params in routers:
            if kind not in ("self_healing", "react", "static"):
                raise UnknownNameError("tool-graph controller", kind, ["self_healing", "react", "static"])
            if params.get("model", "local") != "local":
                raise ConfigError(f"suite {spec.name!r}: controller {label!r}: unknown model {params.get('model')!r}; supported: local")
        for label, kind, _params in routers:
            if kind == "static":
                controllers[label] = static_workflow
                continue
            model, note = local_model(f"baseline {label!r} of suite {spec.name!r}" if kind == "react"
                                      else f"the LLM escalation of {label!r} in suite {spec.name!r}")
            if note:
                print(note, file=sys.stderr)  # the core install runs the suite without its local LLM
            if kind == "self_healing":
                controllers[label] = self_healing_controller(model)
                if note:
                    skipped[f"{label} escalation LLM"] = note
            elif model is None:
                skipped[label] = note or ""
            else:
                controllers[label] = react_controller(model)
        for label in controllers:
            progress(label)
        results = run_scenarios(scenarios, controllers)
        results["skipped"] = skipped
        if spec.data.generated:
            n = spec.data.generated if spec.data.limit is None else min(spec.data.generated, spec.data.limit * 10)
            gen = run_scenarios(generate_scenarios(n, seed=spec.data.seed), controllers)
            results["generated"] = {"n": gen["n"], "feasible": gen["feasible"],
                                    "routers": {k: {x: y for x, y in m.items() if x != "scenarios"} for k, m in gen["routers"].items()}}
    elif spec.kind == "skill_routing":
        from .skill_routing import run_skill_suite

        if fmt != "skills":
            raise ConfigError(f"suite {spec.name!r}: skill_routing needs skill queries (format: skills), not {fmt}")
        # data.dataset: the queries (JSONL with a train/test "split" field); data.skills: the pool
        pool = prices_path
        if spec.data.skills:
            pool = Path(spec.data.skills) if Path(spec.data.skills).is_absolute() else base / spec.data.skills
        results = run_skill_suite(pool, rows_path, routers, embedder,
                                  latency_samples=spec.settings.latency_samples, limit=spec.data.limit,
                                  seed=spec.data.seed, progress=progress)
    elif spec.kind == "step_routing":
        from .metrics import percentile
        from .step_routing import fixtures_to_bank, load_bank, predict_tiers, score_bank

        if fmt == "fixtures":
            bank = fixtures_to_bank(files)
        elif fmt == "bank":
            bank = load_bank(rows_path)
        else:
            raise ConfigError(f"suite {spec.name!r}: step_routing needs a question bank or fixtures, not {fmt}")
        results = {"routers": {}, "n_rows": len(bank), "trajectories": len({r.instance_id for r in bank})}
        for label, kind, params in routers:
            progress(label)
            preds, lat = predict_tiers(bank, kind, params, seed=spec.data.seed)
            m = score_bank(bank, preds)
            m.update({"latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
                      "errored": sum(1 for v in preds.values() if v is None)})
            results["routers"][label] = m
    else:
        from .agent_selection import agent_router_kind, evaluate_agent_routers, limit_selection_data, prepare_selection_data
        from .llm_routers import LLM_AGENT_ROUTERS, evaluate_reasoning_router

        for _, kind, _ in routers:  # fail before any work on an unknown router
            if kind not in LLM_AGENT_ROUTERS:
                agent_router_kind(kind, also=LLM_AGENT_ROUTERS)
        if fmt not in ("clinc150", "banking77"):
            raise ConfigError(f"suite {spec.name!r}: agent_selection needs clinc150 or banking77 data, not {fmt}")

        def user_file(name: str) -> Path | None:
            v = getattr(spec.data, name, None)
            if not v:
                return None
            f = Path(v) if Path(v).is_absolute() else base / v
            if not f.exists():
                raise ConfigError(f"suite {spec.name!r}: data.{name} file {f} does not exist")
            return f

        sel = prepare_selection_data(fmt, rows_path, train_file=user_file("train"), test_file=user_file("test"),
                                     test_fraction=spec.data.test_fraction, seed=spec.data.seed)
        if spec.data.limit is not None:
            sel = limit_selection_data(sel, spec.data.limit, seed=spec.data.seed)
        results = {"routers": {}}
        for r in routers:
            progress(r[0])
            if r[1] in LLM_AGENT_ROUTERS:  # through the router protocol, on a sample
                results["routers"][r[0]] = evaluate_reasoning_router(sel.fit, sel.test, r[2], embedder, seed=spec.data.seed)
                continue
            one = evaluate_agent_routers(sel, [r], embedder, bootstrap=spec.settings.bootstrap,
                                         latency_samples=spec.settings.latency_samples, seed=spec.data.seed)
            results["routers"].update(one.pop("routers"))
            results.update(one)
    for m in results["routers"].values():
        m.pop("_router", None)
    if skipped_slow:
        results["skipped_slow"] = skipped_slow
    duration = time.time() - started
    return SuiteResult(id=uuid.uuid4().hex, spec=spec, results=results, data_hashes=hashes, created_at=started,
                       duration_s=duration, code_version=code_version(), summary=_summary(spec.kind, results))


def _summary(kind: str, results: dict[str, Any]) -> dict[str, Any]:
    routers = results["routers"]
    if kind == "query_routing":
        real = {k: v for k, v in routers.items() if k != "oracle"}
        best = max(real, key=lambda k: (np.nan_to_num(real[k]["quality_at_half_cost"], nan=-1.0)))
        return {"best_single_model": results["best_single_model"], "best_single_quality": results["best_single_quality"],
                "best_router_at_half_cost": best, "its_quality": real[best]["quality_at_half_cost"],
                "its_cost": real[best]["quality_at_half_cost_cost"],
                "aiq": {k: v["aiq"] for k, v in routers.items()}}
    if kind == "online_routing":
        return {k: {"quality": v["quality"], "cost": v["cost"], "last_window_quality": v["last_window_quality"]}
                for k, v in routers.items()}
    if kind == "tool_graph":
        return {k: {"correct": f"{v['correct']}/{v['n']}", "llm_calls": v["llm_calls"], "silent_failures": v["silent_failures"]}
                for k, v in routers.items()}
    if kind == "skill_routing":
        return {k: {m: v.get(m) for m in ("recall@1", "recall@10", "mrr", "latency_p50_ms")} for k, v in routers.items()}
    if kind == "step_routing":
        real = {k: v for k, v in routers.items() if k != "gold"}
        best = max(real, key=lambda k: np.nan_to_num(real[k]["combined"], nan=-1e9))
        return {"best_router": best, "combined": real[best]["combined"], "n_rows": results.get("n_rows")}
    best = max(routers, key=lambda k: routers[k]["top1_accuracy"])
    return {"best_router": best, "top1_accuracy": routers[best]["top1_accuracy"],
            "set_accuracy": routers[best]["set_accuracy"], "n_test": results.get("n_test")}
