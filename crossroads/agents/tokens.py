"""Token counting with tiktoken's ``cl100k_base``, from a file shipped in the package (no download).

The field's cost metrics count prompt tokens with one stated tokenizer; this is it.
"""

from __future__ import annotations

import base64
import functools
import gzip
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["TOKENIZER_NAME", "count_tokens", "encoding"]

TOKENIZER_NAME = "cl100k_base"
_RANKS = Path(__file__).resolve().parent.parent / "data" / "tiktoken" / "cl100k_base.tiktoken.gz"
_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
_SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}


@functools.cache
def encoding() -> Any:
    """The ``cl100k_base`` tiktoken encoding, built from the shipped ranks."""
    try:
        import tiktoken
    except ImportError as exc:
        raise ConfigError("token counting needs tiktoken: pip install tiktoken") from exc
    ranks = {}
    with gzip.open(_RANKS, "rb") as fh:
        for line in fh:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return tiktoken.Encoding(name=TOKENIZER_NAME, pat_str=_PAT, mergeable_ranks=ranks, special_tokens=_SPECIAL)


def count_tokens(text: str) -> int:
    """Number of ``cl100k_base`` tokens in ``text`` (special-token text counts as ordinary text)."""
    return len(encoding().encode_ordinary(text)) if text else 0
