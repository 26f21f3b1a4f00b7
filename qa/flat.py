"""Exact search over the canonical float32 vectors of a generation, with numpy alone.

Importing faiss costs ~0.18 s of wall time (its AVX2 library and OpenMP), a third of a one-shot
`qa ask`. Up to qa.ann.FLAT_MAX sentences the search is exact: one matrix product over
`sentences.vectors.npy`, memory-mapped, so opening an index reads no vectors and the pages a query
touches stay in the page cache (shared by every process on the machine, dropped under pressure)
instead of a private copy per process.
"""

from __future__ import annotations

import os

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


class RowFile:
    """Rows of a float32 .npy matrix, read with pread: for the few hundred rows a question needs
    from a matrix it never scans (passages; sentences above FLAT_MAX). Mapping the file instead
    put ~1.4 MB into RSS per row touched (80 random rows of a 460 MB file: +113 MB), as the page
    cache hands out large folios whatever madvise says."""

    def __init__(self, path: str, shape: tuple[int, int], offset: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.shape, self._offset = shape, offset
        self._row_bytes = 4 * shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        """The rows asked for, in the order asked; runs of consecutive rows are read at once."""
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.shape[0]))
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row out of range 0..{self.shape[0] - 1}")
        if not len(rows):
            return np.zeros((0, self.shape[1]), dtype=np.float32)
        ascending = bool(np.all(np.diff(rows) > 0))  # a block copied by an update: no reordering
        wanted = rows if ascending else np.unique(rows)
        out = np.empty((len(wanted), self.shape[1]), dtype=np.float32)
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(wanted)].tolist()):
            target = memoryview(out[lo:hi]).cast("B")  # read straight into the result
            done = os.preadv(self._fd, [target], self._offset + int(wanted[lo]) * self._row_bytes)
            if done != len(target):
                raise ValueError(f"vector file ends early ({done} of {len(target)} bytes)")
        return out if ascending else out[np.searchsorted(wanted, rows)]

    def __del__(self) -> None:
        try:
            os.close(self._fd)
        except (AttributeError, OSError):
            pass
