"""BM25 over sentences (bm25s, English stopwords, Snowball stemming)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


class Bm25:
    def __init__(self, model) -> None:
        self.model = model

    @classmethod
    def build(cls, texts: Sequence[str]) -> "Bm25":
        import bm25s

        model = bm25s.BM25()
        model.index(tokenize(texts), show_progress=False)
        return cls(model)

    def save(self, folder: Path) -> None:
        self.model.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> "Bm25":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), mmap=True))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every sentence row for the query (zeros when no term matches)."""
        tokens = tokenize([query])[0]
        vocab = self.model.vocab_dict
        known = [t for t in tokens if t in vocab]
        n = self.model.scores["num_docs"]
        if not known:
            return np.zeros(n, dtype=np.float32)
        return self.model.get_scores(known)
