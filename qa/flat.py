"""Exact search over the canonical float32 vectors of a generation, with numpy alone.

Importing faiss costs ~0.18 s of wall time (its AVX2 library and OpenMP), a third of a one-shot
`qa ask`. Up to qa.ann.FLAT_MAX sentences the search is exact: one matrix product over
`sentences.vectors.npy`, memory-mapped, so opening an index reads no vectors and the pages a query
touches stay in the page cache (shared by every process on the machine, dropped under pressure)
instead of a private copy per process.
"""

from __future__ import annotations

import numpy as np


class FlatVectors:
    """The part of the faiss Index interface that qa uses, over a (memory-mapped) matrix."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.ntotal, self.d = vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k largest inner products per query, best first, like faiss."""
        k = min(k, self.ntotal)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        scores = np.asarray(queries @ self.vectors.T)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)

    def reconstruct_batch(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[rows], dtype=np.float32)
