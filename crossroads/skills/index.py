"""A skill index persisted to disk: one embedding matrix per indexed view plus metadata.

Layout of an index directory (no pickle: plain ``.npy`` arrays and JSON)::

    meta.json               {"format": 1, "model_id": ..., "views": [...], "skills": [{"name", "hash"}, ...]}
    vectors.<view>.npy      float32 (n_skills, dim), unit rows, in the order of meta.json's skills

``SkillIndex.build(registry, path=...)`` re-embeds only skills whose content hash changed since the
index on disk was written (added or edited skills); removed skills are dropped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SkillError
from .registry import SkillRegistry
from .skill import SkillView

__all__ = ["SkillIndex"]

FORMAT = 1
VIEWS: tuple[SkillView, ...] = ("name", "name_description", "full")


class SkillIndex:
    """Embeddings of a registry's skills under one or more views, with a record of what was rebuilt.

    Example::

        index = SkillIndex.build(registry, embedder, path="skills.index")   # embeds what changed
        scores = index.vectors["full"] @ embedder.embed_one("book a flight to Rome")
    """

    def __init__(self, names: Sequence[str], hashes: Sequence[str], vectors: dict[str, np.ndarray], *,
                 model_id: str, embedded: int = 0, build_s: float = 0.0) -> None:
        self.names = list(names)
        self.hashes = list(hashes)
        self.vectors = vectors
        self.model_id = model_id
        self.embedded = embedded
        """How many skills were (re-)embedded when this index was built (0 when loaded unchanged)."""
        self.build_s = build_s
        self.position = {n: i for i, n in enumerate(self.names)}

    @property
    def views(self) -> list[str]:
        return list(self.vectors)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def build(cls, registry: SkillRegistry, embedder: Any, *, views: Sequence[SkillView] = ("full",),
              path: str | Path | None = None) -> SkillIndex:
        """Embed the registry under ``views``; with ``path``, reuse the vectors of unchanged skills
        from the index stored there and write the result back."""
        for v in views:
            if v not in VIEWS:
                raise SkillError(f"skill index view must be one of {list(VIEWS)}, not {v!r}")
        start = time.perf_counter()
        skills = list(registry)
        old: SkillIndex | None = None
        if path is not None and (Path(path) / "meta.json").exists():
            try:
                old = cls.load(path)
            except SkillError:
                old = None  # an unreadable index is rebuilt whole
            if old is not None and (old.model_id != getattr(embedder, "model_id", "") or
                                    not set(views) <= set(old.views)):
                old = None
        dim = int(getattr(embedder, "dimension", 384))
        vectors: dict[str, np.ndarray] = {v: np.zeros((len(skills), dim), dtype=np.float32) for v in views}
        todo = []
        for i, s in enumerate(skills):
            j = old.position.get(s.name) if old is not None else None
            if old is not None and j is not None and old.hashes[j] == s.content_hash:
                for v in views:
                    vectors[v][i] = old.vectors[v][j]
            else:
                todo.append(i)
        for v in views:
            if todo:
                vectors[v][todo] = embedder.embed([skills[i].text(v) for i in todo])
        index = cls([s.name for s in skills], [s.content_hash for s in skills], vectors,
                    model_id=getattr(embedder, "model_id", ""), embedded=len(todo),
                    build_s=time.perf_counter() - start)
        if path is not None:
            index.save(path)
        return index

    def save(self, path: str | Path) -> None:
        """Write atomically (arrays first, then meta.json by rename)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for v, arr in self.vectors.items():
            np.save(path / f"vectors.{v}.npy", arr, allow_pickle=False)
        meta = {"format": FORMAT, "model_id": self.model_id, "views": self.views,
                "skills": [{"name": n, "hash": h} for n, h in zip(self.names, self.hashes, strict=False)]}
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".meta.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(tmp, path / "meta.json")

    @classmethod
    def load(cls, path: str | Path) -> SkillIndex:
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SkillError(f"{path}: no skill index here (meta.json missing); build one with "
                             "SkillIndex.build(registry, embedder, path=...)") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SkillError(f"{path / 'meta.json'}: not a valid skill index (unreadable JSON); rebuild it") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SkillError(f"{path / 'meta.json'}: field 'format' must be {FORMAT}; rebuild the index")
        skills = meta.get("skills")
        if not isinstance(skills, list) or not all(isinstance(s, dict) and "name" in s and "hash" in s for s in skills):
            raise SkillError(f"{path / 'meta.json'}: field 'skills' must list {{name, hash}} objects; rebuild the index")
        vectors = {}
        for v in meta.get("views", []):
            try:
                arr = np.load(path / f"vectors.{v}.npy", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise SkillError(f"{path / f'vectors.{v}.npy'}: cannot read ({exc}); rebuild the index") from None
            if arr.ndim != 2 or arr.shape[0] != len(skills):
                raise SkillError(f"{path / f'vectors.{v}.npy'}: shape {arr.shape} does not match "
                                 f"{len(skills)} skills in meta.json; rebuild the index")
            vectors[v] = arr.astype(np.float32, copy=False)
        return cls([s["name"] for s in skills], [s["hash"] for s in skills], vectors,
                   model_id=str(meta.get("model_id", "")))
