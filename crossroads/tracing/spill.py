"""The spill file: trace rows the DB would not take (locked past the retry budget, read-only, a bad row)
are appended to ``<db>.spill.jsonl`` instead of being dropped; ``crossroads trace recover`` imports them.

One JSON object a line::

    {"spill_id": "...", "table": "cr_events", "row": {...}, "reason": "...", "spilled_at": 1733...}
    {"spill_id": "...", "run_update": {"id": "...", "status": "succeeded", ...}, "reason": "...", ...}

Writers and the recover command take an exclusive ``flock`` on the file, so lines from concurrent processes
never interleave and a recover never misses a line appended while it imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

try:  # POSIX; elsewhere the file is still written, without the cross-process lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["SpillFile"]


class SpillFile:
    """Append-only JSONL of trace rows that could not be written to the DB."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self, mode: str) -> Iterator[IO[str]]:
        while True:
            fh = open(self.path, mode, encoding="utf-8")
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:  # a recover may have archived the file while we waited: write to the live path
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        try:
            yield fh
        finally:
            fh.close()  # closing releases the flock

    def append(self, rows: Sequence[tuple[str, Mapping[str, Any]]], updates: Sequence[Mapping[str, Any]],
               reason: str) -> int:
        """Append inserts ``(table, row)`` and run updates; returns the number of lines written (fsynced)."""
        now = time.time()
        lines = [json.dumps({"spill_id": uuid.uuid4().hex, "table": t, "row": dict(r), "reason": reason,
                             "spilled_at": now}, default=str) for t, r in rows]
        lines += [json.dumps({"spill_id": uuid.uuid4().hex, "run_update": dict(u), "reason": reason,
                              "spilled_at": now}, default=str) for u in updates]
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked("a") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)

    @contextlib.contextmanager
    def claim(self) -> Iterator[list[dict[str, Any]]]:
        """Hold the file locked and yield its entries; when the block succeeds the file is archived as
        ``<spill>.recovered-<time>`` (kept, never deleted), so the next spill starts a new file."""
        if not self.path.exists():
            yield []
            return
        with self._locked("r") as fh:
            entries: list[dict[str, Any]] = []
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    if line.endswith("\n"):
                        from ..errors import TraceStoreError

                        raise TraceStoreError(
                            f"spill file {self.path} line {n} is not JSON; fix or delete that line and run "
                            "'crossroads trace recover' again (nothing was imported)") from None
                    # a last line cut short by a crash while writing: its rows were never acknowledged
            yield entries
            archived = self.path.with_name(f"{self.path.name}.recovered-{time.strftime('%Y%m%dT%H%M%S')}")
            n = 0
            while archived.exists():
                n += 1
                archived = archived.with_name(f"{self.path.name}.recovered-{time.strftime('%Y%m%dT%H%M%S')}-{n}")
            os.replace(self.path, archived)
