"""Checks on a run's input before anything runs: text only, valid Unicode, bounded size."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InputError, InputTooLargeError

__all__ = ["DEFAULT_MAX_INPUT_CHARS", "validate_input"]

DEFAULT_MAX_INPUT_CHARS = 1_000_000
"""Default size limit of a run's input, in characters (``Flow(max_input_chars=...)``)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_input(text: Any, *, max_chars: int | None = DEFAULT_MAX_INPUT_CHARS) -> tuple[str, int]:
    """Return ``(text, replaced)``: the input with lone surrogates replaced by U+FFFD, and how many.

    Lone surrogates (what undecodable bytes become on a command line or in ``surrogateescape``
    text) cannot be encoded as UTF-8, so no trace writer, checkpoint or provider could take them:
    they are normalised before the run. Bytes are decoded as UTF-8 (invalid sequences replaced).
    Raises :class:`InputError` for non-text and :class:`InputTooLargeError` above ``max_chars``.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise InputError(f"a run's input must be text (str), got {type(text).__name__}; pass str(value) or json.dumps(value)")
    if max_chars is not None and len(text) > max_chars:
        raise InputTooLargeError(len(text), max_chars)
    replaced = 0
    if _SURROGATE.search(text) is not None:
        text, replaced = _SURROGATE.subn("\ufffd", text)
    return text, replaced
