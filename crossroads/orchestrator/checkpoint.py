"""Checkpoint savers for compiled flows: where checkpoints live and what they hold at rest.

- A file checkpointer is a SQLite file of its own (``<trace db stem>.checkpoints.db`` when it would
  otherwise share the trace DB), used through LangGraph's ``SqliteSaver`` in sync runs and its
  ``AsyncSqliteSaver`` (aiosqlite) in async runs.
- Payloads at rest are encrypted with AES (LangGraph's ``EncryptedSerializer``, pycryptodome) when
  ``CROSSROADS_CHECKPOINT_KEY`` is set, else scrubbed with the trace redactor: no secret is stored in
  clear.
- Large strings (an input of megabytes) are stored once, by content hash, in a blob table of the same
  file; checkpoints and pending writes hold a reference, so a 10 MB input does not multiply with
  every step's checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Send

from ..errors import ConfigError
from ..tracing.redact import redact

__all__ = [
    "BLOB_THRESHOLD_CHARS",
    "CHECKPOINT_KEY_ENV",
    "CheckpointSerializer",
    "checkpoint_path_for",
    "open_async_saver",
    "open_sync_saver",
]

CHECKPOINT_KEY_ENV = "CROSSROADS_CHECKPOINT_KEY"
"""Env var holding the checkpoint encryption passphrase (any string; an AES-256 key is derived from it)."""
BLOB_THRESHOLD_CHARS = 16_384
"""Strings at least this long are stored once by hash instead of inside every checkpoint."""
_BLOB = "\x00crossroads-blob:"  # a stored string that starts with this is a reference to the blob table


def checkpoint_path_for(trace_db: str | Path) -> Path:
    """Where the checkpoints of a trace DB go: ``runs/crossroads.db`` -> ``runs/crossroads.checkpoints.db``."""
    p = Path(trace_db)
    return p.with_name(f"{p.stem}.checkpoints.db")


def _aes_key(passphrase: str) -> bytes:
    return hashlib.sha256(passphrase.encode("utf-8")).digest()


class _BlobTable:
    """Content-addressed storage of large strings in the checkpoint file (one row per distinct value)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS crossroads_blobs (hash TEXT PRIMARY KEY, type TEXT, data BLOB)")
        self._conn.commit()
        self._lock = threading.Lock()
        self._known: set[str] = set()

    def put(self, digest: str, typed: tuple[str, bytes]) -> None:
        if digest in self._known:
            return
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO crossroads_blobs VALUES (?, ?, ?)", (digest, typed[0], typed[1]))
            self._conn.commit()
            self._known.add(digest)

    def get(self, digest: str) -> tuple[str, bytes]:
        with self._lock:
            row = self._conn.execute("SELECT type, data FROM crossroads_blobs WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise ConfigError(f"checkpoint blob {digest[:12]} is missing from the checkpoint file; the file was edited")
        return row[0], row[1]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CheckpointSerializer(SerializerProtocol):
    """LangGraph serializer: redact or encrypt, and store large strings once.

    ``key``: AES key bytes (encrypt); ``None`` -> strings are redacted before they are written.
    ``blob_path``: the SQLite file whose blob table holds large strings (``None``: keep them inline).
    """

    def __init__(self, *, key: bytes | None = None, blob_path: str | None = None,
                 threshold: int = BLOB_THRESHOLD_CHARS) -> None:
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

        plain = JsonPlusSerializer()
        self.encrypted = key is not None
        self._inner: SerializerProtocol = (
            EncryptedSerializer.from_pycryptodome_aes(plain, key=key) if key is not None else plain
        )
        self._blobs = _BlobTable(blob_path) if blob_path else None
        self._threshold = threshold
        # the same large string is in every checkpoint of a run: hash (and redact) it once
        self._memo: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._memo_lock = threading.Lock()

    @classmethod
    def from_env(cls, blob_path: str | None) -> CheckpointSerializer:
        """Encrypt when ``CROSSROADS_CHECKPOINT_KEY`` is set, else redact."""
        passphrase = os.environ.get(CHECKPOINT_KEY_ENV)
        return cls(key=_aes_key(passphrase) if passphrase else None, blob_path=blob_path)

    # -- the walk -------------------------------------------------------------------------------
    def _out(self, obj: Any) -> Any:
        if isinstance(obj, str):
            if self._blobs is not None and len(obj) >= self._threshold:
                return self._blob_ref(obj)
            return obj if self.encrypted else redact(obj)
        if isinstance(obj, dict):
            return {k: self._out(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._out(v) for v in obj]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return tuple(self._out(v) for v in obj)
        if isinstance(obj, BaseMessage):
            changes: dict[str, Any] = {"content": self._out(obj.content)}
            if getattr(obj, "tool_calls", None):
                changes["tool_calls"] = self._out(list(obj.tool_calls))  # type: ignore[attr-defined]
            return obj.model_copy(update=changes)
        if isinstance(obj, Send):
            return Send(obj.node, self._out(obj.arg))
        return obj

    def _blob_ref(self, obj: str) -> str:
        with self._memo_lock:
            hit = self._memo.get(id(obj))
            if hit is not None and hit[0] is obj:
                return hit[1]
        text = obj if self.encrypted else redact(obj)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        assert self._blobs is not None
        self._blobs.put(digest, self._inner.dumps_typed(text))
        ref = _BLOB + digest
        with self._memo_lock:
            self._memo[id(obj)] = (obj, ref)
            while len(self._memo) > 8:
                self._memo.popitem(last=False)
        return ref

    def _in(self, obj: Any) -> Any:
        if isinstance(obj, str):
            if obj.startswith(_BLOB) and self._blobs is not None:
                return self._inner.loads_typed(self._blobs.get(obj[len(_BLOB):]))
            return obj
        if isinstance(obj, dict):
            return {k: self._in(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._in(v) for v in obj]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return tuple(self._in(v) for v in obj)
        if isinstance(obj, BaseMessage):
            changes: dict[str, Any] = {"content": self._in(obj.content)}
            if getattr(obj, "tool_calls", None):
                changes["tool_calls"] = self._in(list(obj.tool_calls))  # type: ignore[attr-defined]
            return obj.model_copy(update=changes)
        if isinstance(obj, Send):
            return Send(obj.node, self._in(obj.arg))
        return obj

    # -- SerializerProtocol ---------------------------------------------------------------------
    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self._inner.dumps_typed(self._out(obj))

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self._in(self._inner.loads_typed(data))

    def close(self) -> None:
        if self._blobs is not None:
            self._blobs.close()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def open_sync_saver(path: str | Path, serde: CheckpointSerializer) -> Any:
    """LangGraph's ``SqliteSaver`` on ``path`` with crossroads' serializer."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    saver = SqliteSaver(_connect(str(path)), serde=serde)
    saver.setup()
    return saver


async def open_async_saver(path: str | Path, serde: CheckpointSerializer) -> Any:
    """LangGraph's ``AsyncSqliteSaver`` (aiosqlite) on ``path``, bound to the running event loop."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = aiosqlite.connect(str(path), timeout=30)
    worker = getattr(conn, "_thread", None)  # a daemon worker: an unclosed flow never blocks interpreter exit
    if worker is not None and not worker.is_alive():
        worker.daemon = True
    conn = await conn
    await conn.execute("PRAGMA journal_mode=WAL")
    saver = AsyncSqliteSaver(conn, serde=serde)
    await saver.setup()
    return saver

