"""One immutable segment of an index (format 4), opened read-only.

A generation is a manifest listing segments plus tombstones (embeddings/README.md). A segment
holds the documents it was written with, in its own files, under its own row numbers (0..n-1):

    meta.sqlite            documents, sentences, passages (row = the segment's row)
    sentences.vectors.npy  float32 (rows x dim), the canonical vectors
    sentences.ids.npy      int64 sentence id per row
    sentences.rows.npy     per row: document id, paragraph, up to two passage rows (the segment's)
    passages.vectors.npy, passages.ids.npy
    sentences.faiss        only above ann.FLAT_MAX rows: IVF-SQ8 built once from the vectors
    terms.npy, starts.npy  each row's BM25 token ids (CSR; ids of the generation's vocab.json)
    postings.indptr.npy, postings.rows.npy, postings.tf.npy, postings.lengths.npy
                           term id -> rows holding it, how often, and those rows' lengths

A segment is never written again once committed: updates hard-link it into the next generation
and name its deleted rows in that generation's tombstones.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

SEGMENT_SCHEMA = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
    date TEXT, url TEXT, hash TEXT NOT NULL, text TEXT NOT NULL,
    record TEXT, bom INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, paragraph INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL, row INTEGER NOT NULL);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, paragraph INTEGER NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    row INTEGER NOT NULL);
CREATE INDEX sentences_doc ON sentences (doc);
CREATE INDEX sentences_row ON sentences (row);
CREATE INDEX passages_doc ON passages (doc);
"""

ROW_TABLE = np.dtype([("doc", "<i4"), ("paragraph", "<i4"), ("passage0", "<i4"), ("passage1", "<i4")])


class Segment:
    """Vectors, rows and postings of one segment; `dead` are its tombstoned rows (sorted)."""

    def __init__(self, folder: Path, info: dict, dim: int, dead: np.ndarray, guard) -> None:
        self.folder, self.info, self.dead = folder, info, dead
        n, npass = self.n, self.npass = int(info["sentences"]), int(info["passages"])
        where = f"{folder.name}/"
        self.flat = info.get("index_type", "flat") == "flat"
        if self.flat:  # the exact search scans every row: mapped
            self.vectors = guard(where + "sentences.vectors.npy", lambda: _vectors(folder / "sentences.vectors.npy", n, dim))
            self.ann = None
        else:
            self.vectors = guard(where + "sentences.vectors.npy", lambda: _row_file(folder / "sentences.vectors.npy", n, dim))
            self.ann = guard(where + "sentences.faiss", lambda: _ann(folder / "sentences.faiss", n), RuntimeError)
        self.ids = guard(where + "sentences.ids.npy", lambda: _ids(folder / "sentences.ids.npy", n))
        self.rows = guard(where + "sentences.rows.npy", lambda: _rows(folder / "sentences.rows.npy", n))
        self.pvectors = guard(where + "passages.vectors.npy", lambda: _row_file(folder / "passages.vectors.npy", npass, dim))
        self.pids = guard(where + "passages.ids.npy", lambda: _ids(folder / "passages.ids.npy", npass))
        self.indptr, self.prows, self.tf, self.plen = guard(where + "postings", lambda: _postings(folder, n))

    # -- dense -----------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(exact cosines, rows) of the k best live rows per query, best first; -inf/-1 padding."""
        k = min(k, self.n)
        if self.flat:
            scores = np.asarray(queries @ self.vectors.T)
            if len(self.dead):
                scores[:, self.dead] = -np.inf
        else:
            import faiss

            params = None
            if len(self.dead):  # the selectors are kept in locals: faiss holds raw pointers to them
                batch = faiss.IDSelectorBatch(self.dead)
                skip = faiss.IDSelectorNot(batch)
                params = faiss.SearchParametersIVF(sel=skip, nprobe=self.ann.nprobe)
            _, found = self.ann.search(queries, k, params=params)
            scores = np.full(found.shape, -np.inf, dtype=np.float32)
            for q, rows in enumerate(found):  # exact cosines of the candidates, from the float32 file
                ok = rows >= 0
                scores[q, ok] = self.vectors[rows[ok]] @ queries[q]
            top = np.argsort(-scores, axis=1, kind="stable")
            best = np.take_along_axis(scores, top, axis=1)
            return best, np.where(np.isfinite(best), np.take_along_axis(found, top, axis=1), -1)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        best, rows = np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)
        return best, np.where(np.isfinite(best), rows, -1)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[rows], dtype=np.float32)

    # -- lexical ---------------------------------------------------------------------------------
    def postings(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(live rows, term frequencies, row lengths) of the rows holding term id `t`."""
        if t + 1 >= len(self.indptr):  # a term first seen after this segment was written
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        lo, hi = int(self.indptr[t]), int(self.indptr[t + 1])
        rows, tf, lengths = np.asarray(self.prows[lo:hi], dtype=np.int64), np.asarray(self.tf[lo:hi]), np.asarray(self.plen[lo:hi])
        if len(self.dead) and len(rows):
            live = ~np.isin(rows, self.dead, assume_unique=True)
            rows, tf, lengths = rows[live], tf[live], lengths[live]
        return rows, tf, lengths


def _ann(path: Path, n: int):
    from .ann import load_ann

    index = load_ann(path)
    if index.ntotal != n:
        raise ValueError(f"{index.ntotal} vectors, expected {n}")
    return index


def _postings(folder: Path, n: int):
    arrays = [_random_access(np.load(folder / f"postings.{name}.npy", mmap_mode="r", allow_pickle=False))
              for name in ("indptr", "rows", "tf", "lengths")]
    indptr, rows, tf, lengths = arrays
    # Only checks that read no more than the files' headers: a scan (rows.max(), say) would map
    # every page of the postings into a cold `qa ask` (measured: +80 MB RSS at 1M rows).
    if indptr.ndim != 1 or not len(rows) == len(tf) == len(lengths) == int(indptr[-1]):
        raise ValueError(f"postings of a {n}-row segment cut short")
    return indptr, rows, tf, lengths


def _random_access(m: np.ndarray) -> np.ndarray:
    """Tell the kernel rows are read at random: without it every page fault reads ahead (measured:
    80 rows of a 300k-row matrix added 51 MB to a cold `qa ask`'s RSS)."""
    raw = getattr(m, "_mmap", None)
    if raw is not None and hasattr(mmap, "MADV_RANDOM"):
        raw.madvise(mmap.MADV_RANDOM)
    return m


def _vectors(path: Path, n: int, dim: int) -> np.ndarray:
    """The (n, dim) float32 matrix, memory-mapped (for the exact search, which reads every row)."""
    m = np.load(path, mmap_mode="r", allow_pickle=False)
    if m.dtype != np.float32 or m.shape != (n, dim):
        raise ValueError(f"holds {m.dtype} {m.shape}, expected float32 ({n}, {dim})")
    return m


def _row_file(path: Path, n: int, dim: int):
    """The same matrix as a RowFile: rows read on demand, nothing mapped."""
    from .flat import RowFile

    m = _vectors(path, n, dim)  # checks the header and the file's length
    rows = RowFile(str(path), m.shape, m.offset)
    del m
    return rows


def _ids(path: Path, n: int) -> np.ndarray:
    ids = _random_access(np.load(path, mmap_mode="r", allow_pickle=False))
    if ids.dtype != np.int64 or ids.shape != (n,):
        raise ValueError(f"holds {ids.dtype} {ids.shape}, expected int64 ({n},)")
    return ids


def _rows(path: Path, n: int) -> np.ndarray:
    """Structured array per sentence row: doc, paragraph, passage0, passage1 (-1 = none)."""
    rows = _random_access(np.load(path, mmap_mode="r", allow_pickle=False))
    if rows.shape != (n,) or rows.dtype.names != ("doc", "paragraph", "passage0", "passage1"):
        raise ValueError(f"holds {rows.dtype} {rows.shape}, expected {n} rows")
    return rows
