"""The one interface through which anything is traced, and its implementations.

:class:`SQLRecorder` keeps writes off the hot path: ``record`` only enqueues; a background thread
converts records to rows and bulk-inserts them, one transaction per batch. ``flush`` blocks until
everything recorded so far is committed; recorders are flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import json
import math
import queue
import threading
import weakref
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import TraceStoreError
from .records import CallRecord, DecisionRecord, EventRecord, RunEnd, RunStart, StepRecord, TraceRecord
from .redact import redact, redact_obj, refresh_env_secrets
from .schema import CallRow, DecisionRow, EventRow, RunRow, StepRow
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


_live: "weakref.WeakSet[SQLRecorder]" = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for rec in list(_live):
        try:
            rec.close()
        except Exception:  # pragma: no cover - never break interpreter exit
            pass


class SQLRecorder:
    """Batched, thread-safe recorder writing to a :class:`TraceStore`.

    Example::

        recorder = SQLRecorder(TraceStore("crossroads.db"))
        compiled = flow.compile(recorder=recorder)
    """

    def __init__(
        self,
        store: TraceStore | str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    ) -> None:
        self.store = store if isinstance(store, TraceStore) else TraceStore(store)
        refresh_env_secrets()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._closed = False
        self._error: BaseException | None = None
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="crossroads-trace-writer", daemon=True)
        self._thread.start()
        _live.add(self)

    def record(self, item: TraceRecord) -> None:
        if self._closed:
            raise TraceStoreError("recorder is closed; create a new SQLRecorder")
        self._queue.put(item)

    def flush(self) -> None:
        if not self._thread.is_alive():
            self._raise_if_failed()
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise_if_failed()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise TraceStoreError(f"trace writer failed: {err}") from err

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
                self._write(records)
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
            table, row = to_row(r)
            inserts[table].append(row)
        try:
            self.store.write_batch(inserts, updates)
            self.written += len(records)
            return
        except Exception as exc:  # one bad row must not lose the batch: retry one by one
            first_error: BaseException = exc
        failed = 0
        for table, rows in inserts.items():
            for row in rows:
                try:
                    self.store.write_batch({table: [row]})
                    self.written += 1
                except Exception:
                    failed += 1
        for upd in updates:
            try:
                self.store.write_batch({}, [upd])
                self.written += 1
            except Exception:
                failed += 1
        if failed:
            self.dropped += failed
            self._error = first_error
