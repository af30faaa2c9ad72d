"""Run a backend's async code on one background event loop per process, for sync and async callers.

The provider backends run their async implementation on this loop: sync methods wait for it
(:func:`run_sync`, :func:`iterate_sync`), async methods await it from the caller's loop without
blocking it (:func:`on_loop`, :func:`aiterate_on_loop`). So sync and async share one code path, a
deadline really cancels the request (closing its connection) instead of abandoning a blocked
thread, and litellm's per-loop state (HTTP client cache, logging worker) lives on one long-lived
loop instead of the short-lived loops of ``asyncio.run`` or a test runner.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["aiterate_on_loop", "iterate_sync", "on_loop", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid = 0


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="crossroads-models-loop", daemon=True)
            thread.start()
            _loop, _thread, _pid = loop, thread, os.getpid()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result (exceptions propagate)."""
    loop = _background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("a sync model method was called from the models' own event loop; use the async method")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from sync code, item by item, on the background loop."""

    async def step() -> tuple[bool, Any]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    finished = False
    try:
        while True:
            more, item = run_sync(step())
            if not more:
                finished = True
                return
            yield item
    finally:
        if not finished:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                run_sync(aclose())


async def on_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the background loop; cancelling the caller cancels it there too."""
    loop = _background_loop()
    if asyncio.get_running_loop() is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def aiterate_on_loop(agen: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate an async iterator that lives on the background loop, from any loop."""
    loop = _background_loop()
    if asyncio.get_running_loop() is loop:
        async for item in agen:
            yield item
        return

    async def step() -> tuple[bool, Any]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    finished = False
    try:
        while True:
            more, item = await on_loop(step())
            if not more:
                finished = True
                return
            yield item
    finally:
        aclose = getattr(agen, "aclose", None)
        if not finished and aclose is not None:
            await on_loop(aclose())
