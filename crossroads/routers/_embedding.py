"""The embedder that embedding-based routers share."""

from __future__ import annotations

from typing import Any

__all__ = ["UsesEmbedder"]


class UsesEmbedder:
    """Mixin: ``self.embedder`` is the one given (``self._embedder``) or, on first use, the process-wide
    local MiniLM (loaded lazily, so building a router never loads a model)."""

    _embedder: Any = None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from ..agents.embeddings import default_embedder

            self._embedder = default_embedder()
        return self._embedder
