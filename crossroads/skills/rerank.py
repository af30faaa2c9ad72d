"""Stage 2: rerank a retrieved shortlist with a learned fusion of scorers.

Each (query, skill) pair of the shortlist is described by the dense cosines under every indexed view
(full body, name + description, name), the lexical TF-IDF cosine, their gaps to the shortlist's best,
the stage-1 rank and the share of the skill name's words found in the query. A logistic regression
(scikit-learn) trained on the training queries' shortlists (gold = 1) turns that into a probability.
Measured against the alternatives on the bfcl-skills train/test split (README, "Skills"): it beats
retrieval alone; the untrained local LLM's label scores route near chance, so they are not used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SkillError
from .lexical import split_words

__all__ = ["FEATURES", "FusionReranker", "pair_features"]

FEATURES = ("cos_full", "cos_name_description", "cos_name", "lexical", "gap_full", "gap_lexical",
            "inv_rank", "name_overlap")


def pair_features(dense: Mapping[str, np.ndarray], lexical: np.ndarray, rows: np.ndarray, query: str,
                  names: Sequence[str]) -> np.ndarray:
    """Feature matrix (len(rows), len(FEATURES)) for the shortlist ``rows`` (in stage-1 order).

    ``dense[view]`` and ``lexical`` hold the scores of the shortlist rows, aligned with ``rows``."""
    n = len(rows)
    full = dense["full"]
    nd = dense.get("name_description", full)
    nm = dense.get("name", nd)
    qwords = set(split_words(query).split())
    overlap = np.zeros(n, dtype=np.float32)
    for j, r in enumerate(rows):
        words = split_words(names[int(r)]).split()
        if words:
            overlap[j] = sum(w in qwords for w in words) / len(words)
    return np.column_stack([
        full, nd, nm, lexical,
        full - (full.max() if n else 0.0), lexical - (lexical.max() if n else 0.0),
        1.0 / (1.0 + np.arange(n, dtype=np.float32)), overlap,
    ]).astype(np.float32)


class FusionReranker:
    """Standardised features -> logistic regression; saved as plain JSON (no pickle)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float) -> None:
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, float(intercept)

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, *, C: float = 1.0) -> FusionReranker:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        if len(set(y.tolist())) < 2:
            raise SkillError("reranker training needs shortlists that contain gold skills and ones that do not; "
                             "give training queries whose gold skill is in the registry")
        scaler = StandardScaler().fit(X)
        lr = LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(X), y)
        return cls(scaler.mean_.astype(np.float32), np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float32),
                   lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))

    def score(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "reranker") -> FusionReranker:
        if list(data.get("features", [])) != list(FEATURES):
            raise SkillError(f"{where}: field 'features' does not match this version's {list(FEATURES)}; refit the router")
        try:
            return cls(np.asarray(data["mean"], np.float32), np.asarray(data["scale"], np.float32),
                       np.asarray(data["coef"], np.float32), float(data["intercept"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SkillError(f"{where}: malformed reranker ({exc}); refit the router") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()), encoding="utf-8")
