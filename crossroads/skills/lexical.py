"""Word-level TF-IDF over skill texts (scikit-learn), scored only where needed.

Identifiers are split into words (``getWeather``/``get_weather`` -> ``get weather``) so a query's
words meet a skill's name. ``scores(query, rows)`` costs the query's terms times their postings, not
the pool size: the term-major copy of the matrix is sliced by the query's terms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["LexicalIndex"]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def split_words(text: str) -> str:
    return _NON_WORD.sub(" ", _CAMEL.sub(" ", text)).lower()


class LexicalIndex:
    """TF-IDF (sublinear tf, unigrams + bigrams, English stop words removed) over one text per skill."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.vectorizer = TfidfVectorizer(preprocessor=split_words, ngram_range=(1, 2), sublinear_tf=True,
                                          stop_words="english", min_df=1, dtype=np.float32)
        self.matrix = self.vectorizer.fit_transform(list(texts)).tocsr()   # skills x terms, unit rows
        self._by_term = self.matrix.T.tocsr()                              # terms x skills

    def query_vector(self, query: str) -> sparse.csr_matrix:
        return self.vectorizer.transform([query])

    def scores(self, query: str, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Cosine of the query with every skill (``rows=None``) or with the given rows only."""
        q = self.query_vector(query)
        if rows is not None:
            return np.asarray((self.matrix[np.asarray(rows)] @ q.T).todense()).ravel()
        out = np.zeros(self.matrix.shape[0], dtype=np.float32)
        if q.nnz:
            part = self._by_term[q.indices]           # the query's terms only
            out += np.asarray(part.T @ q.data).ravel()
        return out
