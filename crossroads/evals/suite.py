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
the same format. ``data.train`` / ``data.test`` (or ``crossroads eval run SUITE --train FILE --test
FILE``) evaluate on the user's own split: a given test file is used as is, never re-split. Every suite
kind loads its rows through :func:`resolve_data` and :func:`load_train_test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._io import file_sha256, read_yaml
from .._version import __version__
from ..data import DATA_DIR
from ..errors import ConfigError, UnknownNameError

__all__ = ["BUILTIN_DATA", "DataFiles", "SuiteResult", "SuiteSpec", "load_suite", "load_train_test", "resolve_data",
           "query_outcomes", "run_suite", "with_routers"]

T = TypeVar("T")

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

    dataset: str | None = Field(None, description="builtin:NAME or a path (relative to the suite file); split by "
                                "test_fraction/seed unless a test file is given")
    train: str | None = Field(None, description="the user's training file (instead of the dataset)")
    test: str | None = Field(None, description="the user's test file: evaluated as is, no re-split")
    format: Literal["outcomes", "clinc150", "banking77", "bank", "fixtures", "scenarios", "skills"] | None = Field(
        None, description="inferred for builtins; bank = a TwinRouterBench question bank JSONL, fixtures = a folder of fixture tasks")
    prices: str | None = Field(None, description="outcomes: JSON prices for files without per-row prices")
    skills: str | None = Field(None, description="skill_routing: the skill pool (Agent Skills folder, MCP tools/list "
                               "JSON or OpenAI/BFCL functions), relative to the suite file; builtin: the BFCL pool")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="share of the training rows held out to choose "
                                       "operating points (lambda, thresholds) before the test split is scored once")
    seed: int = 0
    limit: int | None = Field(None, ge=10, description="use at most this many rows (small CI versions)")
    strong: str | None = Field(None, description="two-model data: the strong model (for APGR)")
    weak: str | None = Field(None, description="two-model data: the weak model (for APGR)")
    generated: int = Field(0, ge=0, description="tool_graph: also run this many generated compound-failure scenarios")

    @model_validator(mode="after")
    def _needs_rows(self) -> DataSpec:
        if self.dataset is None and self.train is None:
            raise ValueError("give data.dataset (split by test_fraction/seed) or data.train (with data.test)")
        return self


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
    settings: SettingsSpec = SettingsSpec.model_validate({})


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


def with_routers(spec: SuiteSpec, extra: Sequence[Mapping[str, Any]] = (), only: Sequence[str] | None = None) -> SuiteSpec:
    """``spec`` with ``extra`` router entries appended, then (with ``only``) just the named routers, in suite order.
    The run's stored config shows the routers that ran."""
    entries = list(spec.routers)
    for i, raw in enumerate(extra):
        try:
            entries.append(RouterEntry.model_validate(dict(raw)))
        except (ValidationError, TypeError, ValueError) as exc:
            raise ConfigError(f"suite {spec.name!r}: added router #{i + 1} {raw!r} is invalid: {exc}; give "
                              "{name: NAME, type: TYPE, params: {...}}") from exc
    if only:
        known = [e.name for e in entries]
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ConfigError(f"suite {spec.name!r}: no router named {', '.join(map(repr, unknown))}; "
                              f"routers: {', '.join(known)}")
        entries = [e for e in entries if e.name in set(only)]
    return spec.model_copy(update={"routers": entries})


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


@dataclass(frozen=True)
class DataFiles:
    """The files a suite reads, resolved: ``dataset`` (split by ``test_fraction``/``seed``) or the user's
    ``train`` / ``test`` files (a given test file is never re-split), plus optional ``prices``."""

    format: str
    dataset: Path | None = None
    train: Path | None = None
    test: Path | None = None
    prices: Path | None = None

    @property
    def user_test(self) -> bool:
        """True when the test rows come from a file given as such (no seeded split)."""
        return self.test is not None

    def row_files(self) -> list[Path]:
        """Every file holding rows (a folder dataset lists its ``*.json`` files)."""
        out: list[Path] = []
        for p in (self.dataset if self.train is None else None, self.train, self.test):
            if p is not None:
                out += sorted(p.glob("*.json")) if p.is_dir() else [p]
        return out

    def hashes(self) -> dict[str, str]:
        """sha256 of every file read, keyed by role and file name."""
        out: dict[str, str] = {}
        for role, p in (("dataset", self.dataset if self.train is None else None), ("train", self.train),
                        ("test", self.test), ("prices", self.prices)):
            if p is None:
                continue
            for f in (sorted(p.glob("*.json")) if p.is_dir() else [p]):
                out[f.name if role in ("dataset", "prices") else f"{role}:{f.name}"] = file_sha256(f)
        return out

    def describe(self, spec: DataSpec) -> str:
        """One line saying where the train and test rows come from (for reports)."""
        if self.test is not None:
            src = self.train or self.dataset
            return f"train: {src.name if src else '?'} (all rows); test: {self.test.name} as given (no re-split)"
        src = self.train or self.dataset
        return (f"seeded split of {src.name if src else '?'}: test_fraction {spec.test_fraction}, seed {spec.seed}")


def _user_path(value: str, base: Path, what: str) -> Path:
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist")
    return p


def resolve_data(spec: DataSpec, base: Path) -> DataFiles:
    """Resolve ``spec`` against the suite's folder ``base``: builtins by name, user files by path; the
    format comes from ``data.format`` or the builtin dataset. Errors name the missing file or field."""
    fmt: str | None = spec.format
    dataset: Path | None = None
    prices: Path | None = None
    if spec.dataset is not None:
        if spec.dataset.startswith("builtin:"):
            name = spec.dataset.split(":", 1)[1]
            if name not in BUILTIN_DATA:
                raise UnknownNameError("built-in dataset", name, BUILTIN_DATA)
            bfmt, dataset, prices = BUILTIN_DATA[name]
            fmt = fmt or bfmt
        else:
            dataset = _user_path(spec.dataset, base, "dataset")
    if spec.prices:
        prices = _user_path(spec.prices, base, "prices file")
    train = _user_path(spec.train, base, "training file") if spec.train else None
    test = _user_path(spec.test, base, "test file") if spec.test else None
    if fmt is None:
        where = spec.dataset or spec.train
        raise ConfigError(f"data.format is required for {where} (one of: outcomes, clinc150, banking77, bank, fixtures, "
                          "scenarios)")
    return DataFiles(format=fmt, dataset=dataset, train=train, test=test, prices=prices)


def load_train_test(
    files: DataFiles,
    spec: DataSpec,
    *,
    load: Callable[[Path], T],
    split: Callable[[T, float, int], tuple[T, T]],
    subsample: Callable[[T, int, int], T] | None = None,
) -> tuple[T, T]:
    """The (train, test) rows a suite kind evaluates, read with the kind's ``load(path)``.

    - A test file (``data.test`` / ``--test``): test = exactly its rows; train = ``data.train`` or,
      without one, every row of ``data.dataset``. Nothing is re-split.
    - Otherwise ``split(rows, test_fraction, seed)`` of ``data.train`` or ``data.dataset``.

    ``data.limit`` keeps at most that many rows in all (test gets ``test_fraction`` of them), drawn by
    ``subsample(rows, n, seed)``; a kind without ``subsample`` refuses a limit.
    """
    if files.test is not None:
        src = files.train or files.dataset
        if src is None:
            raise ConfigError(f"a test file ({files.test}) needs training rows too: give data.train / --train or "
                              "data.dataset")
        train, test = load(src), load(files.test)
    else:
        src = files.train or files.dataset
        assert src is not None  # DataSpec requires dataset or train
        train, test = split(load(src), spec.test_fraction, spec.seed)
    if spec.limit is not None:
        if subsample is None:
            raise ConfigError("data.limit / --limit is not supported for this suite kind")
        n_test = max(5, int(round(spec.limit * spec.test_fraction)))
        train, test = subsample(train, max(5, spec.limit - n_test), spec.seed), subsample(test, n_test, spec.seed + 1)
    return train, test


def seeded_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of a seeded shuffle with ``round(test_fraction * n)`` test rows."""
    idx = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(test_fraction * n)))
    return idx[k:], idx[:k]


def seeded_subsample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(size, n)`` rows drawn without replacement (all rows when size >= n)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _resolve(spec: DataSpec, base: Path) -> tuple[str, Path, Path | None]:
    """(format, rows, prices) of the dataset, for kinds not yet on :func:`load_train_test`."""
    files = resolve_data(spec, base)
    rows = files.train or files.dataset
    if rows is None:
        raise ConfigError("data.dataset or data.train is required")
    return files.format, rows, files.prices


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
    return seeded_split(n, test_fraction, seed)


def query_outcomes(files: DataFiles, data: DataSpec, name: str) -> tuple[Any, Any]:
    """The train and test :class:`~crossroads.agents.backends.replay.RecordedOutcomes` of a query-routing
    suite's data, split exactly as the suite splits them (training an LLM router reuses this split)."""
    from ..agents.backends.replay import RecordedOutcomes
    from .query_routing import outcomes_subset

    def load_outcomes(p: Path) -> RecordedOutcomes:
        o = RecordedOutcomes.load(p, prices=files.prices)
        for model_name in (data.strong, data.weak):
            if model_name is not None and model_name not in o.models:
                raise ConfigError(f"suite {name!r}: model {model_name!r} is not in {p.name}; "
                                  f"models: {', '.join(o.models)}")
        return o

    def split_outcomes(o: RecordedOutcomes, frac: float, seed: int) -> tuple[RecordedOutcomes, RecordedOutcomes]:
        if len(o) < 2:
            raise ConfigError(f"{o.source}: {len(o)} row(s); a train/test split needs at least 2 (or give a test file)")
        tr, te = seeded_split(len(o), frac, seed)
        return outcomes_subset(o, np.sort(tr)), outcomes_subset(o, np.sort(te))

    train_o, test_o = load_train_test(
        files, data, load=load_outcomes, split=split_outcomes,
        subsample=lambda o, n, seed: outcomes_subset(o, seeded_subsample(len(o), n, seed)))
    if train_o.models != test_o.models:
        raise ConfigError(f"suite {name!r}: train and test must score the same models; train: "
                          f"{', '.join(train_o.models)}; test: {', '.join(test_o.models)}")
    return train_o, test_o


def run_suite(
    suite: str | Path | SuiteSpec,
    *,
    base_dir: Path | None = None,
    embedder: Any = None,
    limit: int | None = None,
    on_router: Callable[[str], None] | None = None,
    include_slow: bool | None = None,
    train_file: str | Path | None = None,
    test_file: str | Path | None = None,
    prices_file: str | Path | None = None,
    extra_routers: Sequence[Mapping[str, Any]] | None = None,
    only: Sequence[str] | None = None,
) -> SuiteResult:
    """Run every router of the suite on its data. Nothing is stored: see ``EvalStore.save``.

    Entries marked ``slow`` run only with ``include_slow`` (default: env ``CROSSROADS_EVAL_SLOW=1``).
    ``train_file`` / ``test_file`` / ``prices_file`` replace the suite's ``data.train`` / ``data.test`` /
    ``data.prices`` (paths relative to the current directory); a test file is evaluated as is, with no
    re-split. ``extra_routers`` (``{name, type, params, slow}`` mappings, e.g. a trained model's entry)
    are appended to the suite's routers; ``only`` keeps just the named routers (the suite's or the extra ones)."""
    if isinstance(suite, SuiteSpec):
        spec, base = suite, base_dir or Path.cwd()
    else:
        spec, base = load_suite(suite)
    if extra_routers or only:
        spec = with_routers(spec, extra_routers or (), only)
    update: dict[str, Any] = {}
    if limit is not None:
        update["limit"] = limit
    for key, value in (("train", train_file), ("test", test_file), ("prices", prices_file)):
        if value is not None:
            update[key] = str(Path(value).expanduser().resolve())
    if update:
        spec = spec.model_copy(update={"data": spec.data.model_copy(update=update)})
    files = resolve_data(spec.data, base)
    if (files.train or files.test) and spec.kind not in USER_SPLIT_KINDS:
        raise ConfigError(f"suite {spec.name!r}: --train/--test (data.train/data.test) are not supported yet for "
                          f"{spec.kind} suites; supported: {', '.join(sorted(USER_SPLIT_KINDS))}")
    fmt, prices_path = files.format, files.prices
    rows_path = files.train or files.dataset
    assert rows_path is not None
    hashes = files.hashes()
    router_files: dict[str, tuple[Path, list[str]]] = {}
    if spec.kind == "query_routing":  # bad router params and files fail before any embedding or training
        spec, router_files = _query_router_files(spec)
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
        if files.format != "outcomes":
            raise ConfigError(f"suite {spec.name!r}: query_routing needs recorded-outcomes data, not {files.format}")
        from .llm_routers import LLM_QUERY_ROUTERS, evaluate_router_r1
        from .metrics import CurvePoint, aiq_scores
        from .query_routing import QUERY_ROUTERS, evaluate_query_routers, prepare_query_data

        for _, kind, _ in routers:  # fail before any work on an unknown router
            if kind not in QUERY_ROUTERS and kind not in LLM_QUERY_ROUTERS:
                raise UnknownNameError("query router", kind, {**QUERY_ROUTERS, **LLM_QUERY_ROUTERS})

        train_o, test_o = query_outcomes(files, spec.data, spec.name)
        _check_router_file_models(spec.name, router_files, train_o.models, str(train_o.source))
        sw = None
        if spec.data.strong or spec.data.weak:
            if not (spec.data.strong and spec.data.weak):
                raise ConfigError(f"suite {spec.name!r}: give both data.strong and data.weak (for APGR)")
            sw = (spec.data.strong, spec.data.weak)
        train_d = prepare_query_data(train_o, embedder)
        test_d = prepare_query_data(test_o, embedder, models=train_d.models)
        file_facts = _check_router_file_embeddings(spec.name, router_files, train_d.X, test_d.X)
        kw: dict[str, Any] = {}
        if spec.settings.lambdas:
            kw["lambdas"] = spec.settings.lambdas
        learned = [r for r in routers if r[1] not in LLM_QUERY_ROUTERS]
        results = evaluate_query_routers(train_d, test_d, learned, bootstrap=spec.settings.bootstrap,
                                         latency_embedder=embedder, latency_samples=spec.settings.latency_samples,
                                         strong_weak=sw, validation_fraction=spec.data.validation_fraction,
                                         seed=spec.data.seed, on_router=progress, **kw)
        for r in routers:
            if r[1] in LLM_QUERY_ROUTERS:  # through the router protocol, on a sample
                progress(r[0])
                results["routers"][r[0]] = evaluate_router_r1(train_d, test_d, test_o, r[2], seed=spec.data.seed)
        if len(results["routers"]) > len(learned):  # one AIQ for the whole run: the shared max cost
            curves = {k: [CurvePoint(p["cost"], p["quality"]) for p in v["points"]] for k, v in results["routers"].items()}
            aiqs, results["aiq_max_cost"] = aiq_scores(curves)
            for k, v in aiqs.items():
                results["routers"][k]["aiq"] = v
        results["routers"] = {r[0]: results["routers"][r[0]] for r in routers}  # suite order
        for label, (path, _) in router_files.items():
            if label in results["routers"]:  # which file was scored (not trained in the run)
                results["routers"][label].update({"loaded_from": str(path), "file_sha256": file_sha256(path),
                                                  **file_facts.get(label, {})})
        results["split"] = files.describe(spec.data)
    elif spec.kind == "online_routing":
        from ..agents.backends.replay import RecordedOutcomes
        from .online import ONLINE_ROUTERS, evaluate_online, latency_learning_on_off
        from .query_routing import prepare_query_data

        for _, kind, _ in routers:
            if kind not in ONLINE_ROUTERS:
                raise UnknownNameError("online router", kind, ONLINE_ROUTERS)
        from .query_routing import outcomes_subset

        def split_stream(o: RecordedOutcomes, frac: float, seed: int) -> tuple[RecordedOutcomes, RecordedOutcomes]:
            tr, te = seeded_split(len(o), frac, seed)
            return outcomes_subset(o, tr), outcomes_subset(o, te)

        train_o, stream_o = load_train_test(
            files, spec.data, load=lambda p: RecordedOutcomes.load(p, prices=files.prices), split=split_stream,
            subsample=lambda o, n, seed: outcomes_subset(o, seeded_subsample(len(o), n, seed)))
        train_q = prepare_query_data(train_o, embedder)
        stream_q = prepare_query_data(stream_o, embedder, models=train_q.models)
        for label, _, _ in routers:
            progress(label)
        results = evaluate_online(train_q, stream_q, routers, embedder, window=max(10, min(200, len(stream_q) // 5)),
                                  seed=spec.data.seed)
        if spec.settings.latency_samples:
            results["latency_learning_on_off"] = latency_learning_on_off(
                train_q, stream_q, embedder, requests=max(100, spec.settings.latency_samples))
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
        if files.train is not None:
            raise ConfigError(f"suite {spec.name!r}: tool_graph controllers are not trained; give only --test "
                              "(a scenario file, run as is)")
        scenarios = load_scenarios(files.test or rows_path)  # a user's test file: exactly its scenarios
        if spec.data.limit is not None:
            scenarios = scenarios[: spec.data.limit]
        controllers: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for label, kind, params in routers:
            if kind not in ("self_healing", "react", "static"):
                raise UnknownNameError("tool-graph controller", kind, ["self_healing", "react", "static"])
            if params.get("model", "local") != "local":
                raise ConfigError(f"suite {spec.name!r}: controller {label!r}: unknown model {params.get('model')!r}; supported: local")
            if params.get("escalation", "local") not in ("local", "none"):
                raise ConfigError(f"suite {spec.name!r}: controller {label!r}: escalation must be local (the local LLM) "
                                  f"or none (stop without a model), not {params.get('escalation')!r}")
        for label, kind, params in routers:
            if kind == "static":
                controllers[label] = static_workflow
                continue
            if kind == "self_healing" and params.get("escalation", "local") == "none":
                controllers[label] = self_healing_controller(None)
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
        if spec.data.generated and files.test is None:
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
        # --train/--test: the user's query files as given; without --train, a test file is scored against a
        # router fitted on every row of data.dataset (no re-split); neither: the dataset's split field
        queries = files.dataset or files.train
        assert queries is not None
        train_queries_file = files.train or (files.dataset if files.test is not None else None)
        results = run_skill_suite(pool, queries, routers, embedder, train_path=train_queries_file, test_path=files.test,
                                  latency_samples=spec.settings.latency_samples, limit=spec.data.limit,
                                  seed=spec.data.seed, progress=progress)
        results["split"] = files.describe(spec.data) if (files.train or files.test) else "the dataset's train/test field"
    elif spec.kind == "step_routing":
        from .metrics import percentile
        from .step_routing import fixtures_to_bank, load_bank, predict_tiers, score_bank

        if files.train is not None:
            raise ConfigError(f"suite {spec.name!r}: step_routing routers are not trained by the suite; give only "
                              "--test FILE (a question bank JSONL), scored as given")
        if files.test is not None:  # the user's question bank, as given
            bank = load_bank(files.test)
        elif fmt == "fixtures":
            bank = fixtures_to_bank(files.row_files())
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
        from .agent_selection import (
            agent_router_kind,
            evaluate_agent_routers,
            limit_selection_data,
            prepare_selection_data,
        )
        from .llm_routers import LLM_AGENT_ROUTERS, evaluate_reasoning_router

        for _, kind, _ in routers:  # fail before any work on an unknown router
            if kind not in LLM_AGENT_ROUTERS:
                agent_router_kind(kind, also=LLM_AGENT_ROUTERS)
        if fmt not in ("clinc150", "banking77"):
            raise ConfigError(f"suite {spec.name!r}: agent_selection needs clinc150 or banking77 data, not {fmt}")

        sel = prepare_selection_data(fmt, files.dataset, train_file=files.train, test_file=files.test,
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


_FILE_ROUTER_KEYS = {"trained": {"path"}, "cascade": {"path", "thresholds"}}
"""Query-routing entries that score a trained file (``params.path``) and the params each accepts."""


def _query_router_files(spec: SuiteSpec) -> tuple[SuiteSpec, dict[str, tuple[Path, list[str]]]]:
    """Check a query-routing suite's router params before any work: ``type: trained`` (and ``type: cascade``
    with ``params.path``) name a readable ``crossroads train`` file (made absolute in the returned spec, so
    the stored config says which file ran); the suite's own knn/mlp/mf take only their predictor's params.
    Returns the spec and {entry name: (file, the models the file was trained on)}."""
    import inspect

    from ..routers.learned import PREDICTORS, LearnedRouter

    files: dict[str, tuple[Path, list[str]]] = {}
    entries = []
    for e in spec.routers:
        where = f"suite {spec.name!r}: router {e.name!r} (type: {e.type})"
        if e.type in PREDICTORS:
            if "path" in e.params:
                raise ConfigError(f"{where}: type {e.type} trains a new {e.type} router on the suite's training rows "
                                  f"and takes no path; to score the trained file {e.params['path']!r} use "
                                  f"'{{name: {e.name}, type: trained, params: {{path: {e.params['path']}}}}}' "
                                  "(or type: cascade)")
            known = [k for k in inspect.signature(PREDICTORS[e.type].__init__).parameters if k != "self"]
            unknown = sorted(set(e.params) - set(known))
            if unknown:
                raise ConfigError(f"{where}: unknown param(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if e.type == "trained" or (e.type == "cascade" and "path" in e.params):
            allowed = _FILE_ROUTER_KEYS[e.type]
            if "path" not in e.params:
                raise ConfigError(f"{where}: give the file to score: params: {{path: FILE.npz}} (written by "
                                  "'crossroads train knn|mlp|mf')")
            extra = sorted(set(e.params) - allowed)
            if extra:
                swept = "the suite sweeps the willingness (settings.lambdas)" if e.type == "trained" else \
                    "the suite sweeps the threshold (params.thresholds)"
                raise ConfigError(f"{where}: unknown param(s) {', '.join(extra)} for a trained file ({swept}); "
                                  f"known: {', '.join(sorted(allowed))}")
            raw = e.params["path"]
            if not isinstance(raw, str) or not raw.strip():
                raise ConfigError(f"{where}: params.path must be a file path, got {raw!r}")
            path = Path(raw).expanduser().resolve()
            try:
                loaded = LearnedRouter.load(path, as_type=e.type)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            files[e.name] = (path, list(loaded.targets))
            e = e.model_copy(update={"params": {**e.params, "path": str(path)}})
        entries.append(e)
    return spec.model_copy(update={"routers": entries}), files


def _check_router_file_models(suite: str, files: Mapping[str, tuple[Path, Sequence[str]]], pool: Sequence[str],
                              source: str) -> None:
    """A trained file must score exactly the suite's models (any order: routers map columns by name)."""
    for label, (path, targets) in files.items():
        missing, extra = [m for m in pool if m not in targets], [m for m in targets if m not in pool]
        if missing or extra:
            what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                         f"not in the suite {', '.join(extra)}" if extra else "") if x)
            raise ConfigError(f"suite {suite!r}: router {label!r}: {path} was trained on models {', '.join(targets)}; "
                              f"the suite's data ({source}) scores {', '.join(pool)} ({what}). Score it on data with "
                              "the same models, or retrain it on this data with 'crossroads train ... --data'")


def _check_router_file_embeddings(suite: str, files: Mapping[str, tuple[Path, Sequence[str]]], train_x: np.ndarray,
                                  test_x: np.ndarray) -> dict[str, dict[str, Any]]:
    """A trained file must read the suite's embeddings (same width), checked before any router runs. A kNN file
    keeps its training embeddings: ``test_rows_in_training_file`` counts the test rows it was trained on
    (cosine >= 0.9999), which inflate its figures; other predictors cannot tell (None)."""
    from ..routers.learned import KNNPredictor, LearnedRouter

    out: dict[str, dict[str, Any]] = {}
    for label, (path, _) in files.items():
        pred = LearnedRouter.load(path).predictor
        dim = pred.input_dim()
        if dim is not None and dim != train_x.shape[1]:
            raise ConfigError(f"suite {suite!r}: router {label!r}: {path} was trained on {dim}-dimensional embeddings; "
                              f"the suite embeds prompts in {train_x.shape[1]} dimensions. Retrain it with "
                              "'crossroads train' (the suite's embedder)")
        seen: int | None = None
        if isinstance(pred, KNNPredictor) and pred.X is not None and len(test_x):
            def unit(a: np.ndarray) -> np.ndarray:
                a = np.asarray(a, np.float32)
                return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
            seen = int(((unit(test_x) @ unit(pred.X).T).max(axis=1) >= 0.9999).sum())
        out[label] = {"test_rows_in_training_file": seen}
    return out


USER_SPLIT_KINDS = {"query_routing", "online_routing", "agent_selection", "tool_graph", "skill_routing", "step_routing"}
"""Suite kinds that read ``data.train`` / ``data.test`` through :func:`load_train_test` (a kind's engineer
adds it here when its branch of :func:`run_suite` does)."""


def _summary(kind: str, results: dict[str, Any]) -> dict[str, Any]:
    routers = results["routers"]
    if kind == "query_routing":
        real = {k: v for k, v in routers.items() if v.get("registered_as") != "eval-only"} or routers
        best = max(real, key=lambda k: (np.nan_to_num(real[k]["quality_at_half_cost"], nan=-1.0)))
        return {"best_single_model": results["best_single_model"], "best_single_quality": results["best_single_quality"],
                "best_router_at_half_cost": best, "its_quality": real[best]["quality_at_half_cost"],
                "its_cost": real[best]["quality_at_half_cost_cost"],
                "aiq": {k: v["aiq"] for k, v in routers.items()},
                "aiq_max_cost": results.get("aiq_max_cost")}  # AIQ's ceiling M: AIQ compares within one M only
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
