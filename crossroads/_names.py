"""Lists of names in one-line messages: the first few, then how many more."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["name_list"]


def name_list(names: Iterable[str], *, limit: int = 10) -> str:
    """``a, b, c`` for up to ``limit`` names; past that the first ``limit`` then ``… and N more``."""
    items = list(names)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} … and {len(items) - limit} more"
