"""Unique ids without a syscall per id: a random per-process prefix plus a counter.

``os.urandom``/``uuid4`` per step would release the GIL on every node run, letting the trace writer
thread hold it (a convoy that slowed traced runs measurably); ``next(count)`` is atomic under the GIL.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_id"]

_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def new_id() -> str:
    """32 hex characters, unique across processes (64 random bits) and within one (a counter)."""
    return f"{_PREFIX}{next(_COUNTER):016x}"
