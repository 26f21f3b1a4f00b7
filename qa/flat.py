"""Exact search over a FAISS IndexFlatIP file without importing faiss.

Importing faiss costs ~0.18 s of wall time (its AVX2 library and OpenMP), a third of a one-shot
`qa ask`. A flat inner-product index is one float32 matrix behind a fixed header, so collections
small enough for exact search (qa.ann.FLAT_MAX) are read and searched with numpy: the same
vectors, the same exact top-k. Anything else - IVF indexes, another metric, a header this code does
not recognise - returns None from `read_flat`, and the caller loads the file with faiss.

File layout (faiss/impl/index_write.cpp, stable across faiss releases): fourcc "IxFI", then the
index header (int32 d, int64 ntotal, two int64 placeholders, bool is_trained, int32 metric type),
then the codes as a size_t count of floats followed by the floats.
"""

from __future__ import annotations

import os
import struct

import numpy as np

_HEADER = struct.Struct("<4siqqq?i")  # fourcc, d, ntotal, 2 placeholders, is_trained, metric type
_COUNT = struct.Struct("<Q")
_FLAT_INNER_PRODUCT = b"IxFI"
_METRIC_INNER_PRODUCT = 0


def read_flat(path: str | os.PathLike) -> np.ndarray | None:
    """The (ntotal, d) float32 matrix of an IndexFlatIP file, or None if the file is not one."""
    with open(path, "rb") as f:
        head = f.read(_HEADER.size + _COUNT.size)
        if len(head) < _HEADER.size + _COUNT.size:
            return None
        fourcc, d, ntotal, _, _, _, metric = _HEADER.unpack_from(head)
        (count,) = _COUNT.unpack_from(head, _HEADER.size)
        if fourcc != _FLAT_INNER_PRODUCT or metric != _METRIC_INNER_PRODUCT or d <= 0 or count != d * ntotal:
            return None
        if os.fstat(f.fileno()).st_size != len(head) + 4 * count:
            return None
        # Read into aligned memory: the floats start at byte 45, and BLAS wants aligned rows.
        return np.fromfile(f, dtype="<f4", count=count).reshape(ntotal, d)


class FlatVectors:
    """The part of the faiss Index interface that qa uses, over an in-memory matrix."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.ntotal, self.d = vectors.shape

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the k largest inner products per query, best first, like faiss."""
        k = min(k, self.ntotal)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        scores = queries @ self.vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)

    def reconstruct_batch(self, rows: np.ndarray) -> np.ndarray:
        return self.vectors[rows]
