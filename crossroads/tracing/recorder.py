"""The one interface through which anything is traced, and its implementations.

:class:`SQLRecorder` keeps writes off the hot path: ``record`` only enqueues; a background thread
converts records to rows and bulk-inserts them, one transaction per batch. ``flush`` blocks until
everything recorded so far is committed; recorders are flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import TraceStoreError, TraceStoreLockedError, TraceStoreReadOnlyError
from .records import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, StepRecord, TraceRecord
from .redact import redact, redact_obj, refresh_env_secrets
from .schema import CallRow, DecisionRow, EventRow, RunRow, StepRow
from .spill import SpillFile
from .store import TraceStore

__all__ = ["MemoryRecorder", "NullRecorder", "Recorder", "SQLRecorder"]

SUMMARY_CHARS = 2000
"""Inputs/outputs are stored truncated to this many characters."""
DEFAULT_BATCH = 2000
DEFAULT_FLUSH_INTERVAL_S = 0.05


@runtime_checkable
class Recorder(Protocol):
    """Receives trace records. Implementations must be thread-safe and must not block callers."""

    def record(self, item: TraceRecord) -> None:
        """Accept one record."""
        ...

    def flush(self) -> None:
        """Block until every record accepted so far is durable."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


class NullRecorder:
    """Discards everything (tracing off)."""

    def record(self, item: TraceRecord) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryRecorder:
    """Keeps records in a list: for tests and for inspecting a run in-process."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self._lock = threading.Lock()

    def record(self, item: TraceRecord) -> None:
        with self._lock:
            self.records.append(item)

    def of_type(self, cls: type) -> list[Any]:
        """Records of one type, in order."""
        with self._lock:
            return [r for r in self.records if isinstance(r, cls)]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _summary(text: str | None) -> str:
    if not text:
        return ""
    text = redact(text)
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + f"... [{len(text)} chars]"


def _dumps(obj: Any) -> str:
    return json.dumps(redact_obj(obj), default=str, allow_nan=False) if obj else "{}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def to_row(item: TraceRecord) -> tuple[type, dict[str, Any]]:
    """Map a record to (table, row values). Secrets are redacted here, for every store."""
    if isinstance(item, StepRecord):
        return StepRow, {
            "id": item.step_id, "run_id": item.run_id, "node": item.node, "kind": item.kind,
            "graph_step": item.graph_step, "status": item.status,
            "input_summary": _summary(item.input_summary), "output_summary": _summary(item.output_summary),
            "started_at": item.started_at, "ended_at": item.ended_at,
            "latency_ms": (item.ended_at - item.started_at) * 1e3, "cost_usd": item.cost_usd,
            "error": _summary(item.error) if item.error else None,
        }
    if isinstance(item, DecisionRecord):
        d = item.decision
        return DecisionRow, {
            "id": d.decision_id, "run_id": item.run_id, "source": item.source, "router": d.router,
            "step_index": item.step_index, "query": _summary(item.query),
            "candidates_json": json.dumps([{"name": n, "score": _finite(float(s))} for n, s in d.scores.items()]),
            "chosen_json": json.dumps(list(d.targets)), "rationale": _summary(d.rationale),
            "latency_ms": d.latency_ms, "cost_usd": d.cost_usd, "created_at": item.created_at,
            "metadata_json": _dumps(dict(d.metadata)),
        }
    if isinstance(item, CallRecord):
        u = item.usage
        return CallRow, {
            "run_id": item.run_id, "step_id": item.step_id, "target": u.target, "kind": u.kind.value,
            "model": u.model, "tokens_in": u.input_tokens, "tokens_out": u.output_tokens,
            "cost_usd": u.cost_usd, "latency_ms": u.latency_ms,
            "error": _summary(u.error) if u.error else None, "created_at": item.created_at,
        }
    if isinstance(item, EventRecord):
        return EventRow, {
            "run_id": item.run_id, "step_id": item.step_id, "decision_id": item.decision_id,
            "kind": item.kind, "target": item.target, "detail_json": _dumps(dict(item.detail)),
            "created_at": item.created_at,
        }
    if isinstance(item, RunStart):
        return RunRow, {
            "id": item.run_id, "flow": item.flow, "thread_id": item.thread_id, "status": "running",
            "input": _summary(item.input), "started_at": item.started_at,
            "metadata_json": _dumps(dict(item.metadata)),
        }
    raise TypeError(f"not a trace record: {type(item).__name__}")


_live: weakref.WeakSet[SQLRecorder] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for rec in list(_live):
        try:
            rec.close()
        except Exception:  # pragma: no cover - never break interpreter exit
            pass


def clean_text(value: str) -> str:
    """``value`` as valid Unicode: lone surrogates (from undecodable bytes, e.g. ``\\udcff``) become U+FFFD and
    surrogate pairs are joined, so SQLite's UTF-8 encoder never rejects a row."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: clean_text(v) if isinstance(v, str) else v for k, v in row.items()}


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


DEFAULT_LOCK_RETRY_S = 300.0
"""How long the writer keeps retrying a DB locked by another process before spilling the rows to
``<db>.spill.jsonl`` (env ``CROSSROADS_TRACE_LOCK_RETRY_S``)."""


class SQLRecorder:
    """Batched, thread-safe recorder writing to a :class:`TraceStore`.

    Example::

        recorder = SQLRecorder(TraceStore("crossroads.db"))
        compiled = flow.compile(recorder=recorder)

    No row is dropped silently: a batch the DB refuses is retried (a DB locked past the busy timeout for
    up to ``lock_retry_s``), a bad row is written alone with its text made valid Unicode, and whatever
    still cannot be written is appended to ``<db>.spill.jsonl`` (``crossroads trace recover`` imports
    it). :meth:`flush` raises :class:`TraceStoreError` describing what was spilled; :meth:`close` logs it.
    """

    def __init__(
        self,
        store: TraceStore | str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        lock_retry_s: float | None = None,
    ) -> None:
        self.store = store if isinstance(store, TraceStore) else TraceStore(store)
        refresh_env_secrets()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self.lock_retry_s = lock_retry_s if lock_retry_s is not None else _env_float(
            "CROSSROADS_TRACE_LOCK_RETRY_S", DEFAULT_LOCK_RETRY_S)
        self._closed = False
        self._error: str | None = None
        self._error_cause: BaseException | None = None
        self.last_error: str | None = None
        """The last problem :meth:`close` reported (it does not raise)."""
        self._lock_exhausted = False
        self.written = 0
        self.spilled = 0
        """Rows appended to the spill file instead of the DB."""
        self.dropped = 0
        """Rows lost: only when the spill file could not be written either."""
        self._thread = threading.Thread(target=self._loop, name="crossroads-trace-writer", daemon=True)
        self._thread.start()
        _live.add(self)

    def record(self, item: TraceRecord) -> None:
        if self._closed:
            raise TraceStoreError("recorder is closed; create a new SQLRecorder")
        self._queue.put(item)

    def flush(self) -> None:
        """Block until every record accepted so far is in the DB or the spill file; raises
        :class:`TraceStoreError` if some went to the spill file (or were lost) since the last flush."""
        if not self._thread.is_alive():
            self._raise_if_failed()
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise_if_failed()

    def close(self) -> None:
        """Flush and stop the writer. Never raises for write problems: they are logged and kept in
        :attr:`last_error` (call :meth:`flush` first to get them as an exception)."""
        if self._closed:
            return
        try:
            self.flush()
        except TraceStoreError as exc:
            self.last_error = str(exc)
            logging.getLogger("crossroads.tracing").warning("%s", exc)
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            msg, cause = self._error, self._error_cause
            self._error = self._error_cause = None
            raise TraceStoreError(f"trace writer failed: {msg}") from cause

    def _fail(self, msg: str, cause: BaseException | None) -> None:
        self._error = msg if self._error is None else f"{self._error}; {msg}"
        self._error_cause = self._error_cause or cause

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            items = [first]
            while len(items) < self._batch_size:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            waiters: list[threading.Event] = []
            records: list[TraceRecord] = []
            for it in items:
                if it is None:
                    stop = True
                elif isinstance(it, threading.Event):
                    waiters.append(it)
                else:
                    records.append(it)
            if records:
                try:
                    self._write(records)
                except Exception as exc:  # pragma: no cover - the writer thread must never die
                    self._fail(f"unexpected error: {exc}", exc)
            for w in waiters:
                w.set()
            if stop:
                return

    def _write(self, records: list[TraceRecord]) -> None:
        inserts: dict[type, list[dict[str, Any]]] = defaultdict(list)
        updates: list[Mapping[str, Any]] = []
        for r in records:
            if isinstance(r, RunEnd):
                if r.status == "running":  # a resumed run
                    updates.append({"id": r.run_id, "status": "running"})
                else:
                    updates.append({"id": r.run_id, "status": r.status, "output": _summary(r.output) or None,
                                    "error": _summary(r.error) or None, "ended_at": r.ended_at})
                continue
            try:
                table, row = to_row(r)
            except Exception as conv_error:  # a record that cannot become a row: keep an event saying so
                table, row = EventRow, {
                    "run_id": getattr(r, "run_id", None), "step_id": None, "decision_id": None,
                    "kind": "trace_record_error", "target": None, "created_at": time.time(),
                    "detail_json": json.dumps({"record": type(r).__name__, "error": redact(str(conv_error))})}
            inserts[table].append(row)
        self._write_rows(inserts, updates)

    def _attempt(self, inserts: Mapping[type, list[dict[str, Any]]], updates: Sequence[Mapping[str, Any]]) -> bool:
        """Write, retrying while another process holds the DB locked. Returns False when the rows were
        spilled instead (lock outlasted ``lock_retry_s``, or the DB is read-only); other errors raise."""
        started = time.monotonic()
        delay = 0.05
        while True:
            try:
                self.store.write_batch(inserts, updates)
                self._lock_exhausted = False
                self.written += sum(len(v) for v in inserts.values()) + len(updates)
                return True
            except TraceStoreLockedError as exc:
                waited = time.monotonic() - started
                if self._lock_exhausted or waited >= self.lock_retry_s:
                    self._lock_exhausted = True  # the next batches spill at once until a write succeeds
                    self._spill(_flat(inserts), list(updates), f"trace DB locked for {waited:.1f} s ({short_error(exc)})", exc)
                    return False
                time.sleep(min(delay, max(self.lock_retry_s - waited, 0.0)))
                delay = min(delay * 2, 2.0)
            except TraceStoreReadOnlyError as exc:
                self._spill(_flat(inserts), list(updates), short_error(exc), exc)
                return False

    def _write_rows(self, inserts: Mapping[type, list[dict[str, Any]]], updates: list[Mapping[str, Any]]) -> None:
        if not inserts and not updates:
            return
        try:
            self._attempt(inserts, updates)
            return
        except Exception as exc:  # one bad row must not lose the batch
            first_error: BaseException = exc
        clean = {t: [_clean_row(r) for r in rows] for t, rows in inserts.items()}  # e.g. lone surrogates
        clean_updates = [_clean_row(u) for u in updates]
        try:
            self._attempt(clean, clean_updates)
            return
        except Exception:
            pass
        failed: list[tuple[str, Mapping[str, Any]]] = []
        failed_updates: list[Mapping[str, Any]] = []
        row_error: BaseException = first_error
        for table, rows in clean.items():
            for row in rows:
                try:
                    self._attempt({table: [row]}, [])
                except Exception as exc:
                    row_error = exc
                    failed.append((table.__tablename__, row))  # type: ignore[attr-defined]
        for upd in clean_updates:
            try:
                self._attempt({}, [upd])
            except Exception as exc:
                row_error = exc
                failed_updates.append(upd)
        if failed or failed_updates:
            self._spill(failed, failed_updates, short_error(row_error), row_error)

    def _spill(self, rows: list[tuple[str, Mapping[str, Any]]], updates: list[Mapping[str, Any]], reason: str,
               cause: BaseException | None) -> None:
        n = len(rows) + len(updates)
        if not n:
            return
        spill = SpillFile(self.store.spill_path)
        try:
            spill.append(rows, updates, redact(reason))
        except OSError as exc:
            self.dropped += n
            self._fail(f"{n} trace rows lost: the DB refused them ({reason}) and the spill file {spill.path} "
                       f"could not be written ({exc})", cause)
            return
        self.spilled += n
        where = self.store.path or self.store.url
        self._fail(f"{n} trace rows were not written to {where} ({reason}); they were saved to {spill.path}: "
                   f"import them with 'crossroads trace recover --db {where}'", cause)


def short_error(exc: BaseException) -> str:
    """One line naming the error, without the SQL statement and parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None)
    base = orig if isinstance(orig, BaseException) else exc
    return " ".join(f"{type(base).__name__}: {base}".split())


def _flat(inserts: Mapping[type, list[dict[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(t.__tablename__, r) for t, rows in inserts.items() for r in rows]  # type: ignore[attr-defined]
