"""The folder index's side of the SentenceStore protocol (qa.stores): how retrieval's questions
become searches of one immutable generation. `qa.index.Index` inherits it; rows are the ids."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from ..store import current_generation

MAX_WIDEN = 50  # a date filter searches at most this many times deeper for dense candidates


@dataclass
class FolderLexical:
    """BM25 hits of one question from the folder's sparse scores (qa.stores.LexicalHits)."""

    bm: object  # lexical.SparseScores
    top: np.ndarray
    term_rows: dict  # query token -> the live rows holding it (ascending)
    docs_of: Callable[[np.ndarray], np.ndarray]  # the document of each row
    _holding: dict = field(default_factory=dict, init=False, repr=False)  # token -> its documents, once asked

    @property
    def best(self) -> float:
        return self.bm.max()

    def scores(self, ids) -> np.ndarray:
        return self.bm[ids]

    def terms_in(self, ids, texts=None) -> list[set[str]]:
        """The query's tokens each sentence holds, from the postings already read."""
        ids = np.asarray(ids, dtype=np.int64)
        held = {tok: np.isin(ids, rows) for tok, rows in self.term_rows.items()}
        return [{tok for tok, has in held.items() if has[i]} for i in range(len(ids))]

    def terms_in_document(self, doc: int, terms=None) -> set[str]:
        """From the postings already read: the tokens (of `terms`, default all) with a row in that document."""
        wanted = self.term_rows if terms is None else [t for t in terms if t in self.term_rows]
        return {tok for tok in wanted if doc in self._documents_holding(tok)}

    def _documents_holding(self, tok: str) -> set[int]:
        """Remembered: a question asks about several documents."""
        if tok not in self._holding:
            self._holding[tok] = set(np.unique(self.docs_of(self.term_rows[tok])).tolist())
        return self._holding[tok]


def _headlines(info: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Which rows are a text file's one-sentence headline line (paragraph 0) above a body.

    A headline counts through the title feature but is not cited as an answer: the body states
    the same fact with its details, and a bare label ("Super Bowl 50") was the top answer to
    1.8 % of tune questions, always wrongly (R@1 +0.5 points). A first line that is a whole
    paragraph of several sentences, or a file with nothing below its first line, stays citable.
    """
    n = len(info)
    doc, para = info["doc"], info["paragraph"]
    nxt, prv = np.minimum(rows + 1, n - 1), np.maximum(rows - 1, 0)
    first = (rows == 0) | (doc[prv] != doc[rows])
    body_follows = (rows + 1 < n) & (doc[nxt] == doc[rows]) & (para[nxt] > 0)
    return (para[rows] == 0) & first & body_follows


class FolderSearch:
    """Mixed into qa.index.Index, which opens the segments (qa.segment.Segment) with their first
    sentence and passage rows (_sbase, _pbase), bm25, documents_dated. Rows are the index's (a
    segment's first row plus its own): here they are routed to their segments and merged back."""

    def _split(self, rows, base: np.ndarray):
        """Yield (segment number, segment, positions in `rows`, rows in that segment)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= base[-1]):
            raise IndexError(f"row out of range 0..{int(base[-1]) - 1}")
        which = np.searchsorted(base, rows, side="right") - 1
        for i in np.unique(which).tolist():
            at = np.flatnonzero(which == i)
            yield i, self.segments[i], at, rows[at] - base[i]

    def search_sentences(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest live sentences for each query vector: every segment is
        searched and the results merged on their exact cosines (-1 padding when fewer)."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        faiss = sys.modules.get("faiss") if any(not g.flat for g in self.segments) else None
        before = None
        if faiss is not None:
            # One question at a time does not parallelise; OpenMP spinning only costs (flat 50k:
            # 3.0 ms on one thread vs 7.1 ms on two, measured in ../shared/notes/measurements.md).
            # The setting is the process's, so it is put back afterwards.
            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        try:
            found = [g.search(queries, k) for g in self.segments]
        finally:
            if before is not None:
                faiss.omp_set_num_threads(before)
        scores = np.concatenate([f[0] for f in found], axis=1).astype(np.float32)
        rows = np.concatenate([np.where(f[1] >= 0, f[1] + base, -1) for f, base in zip(found, self._sbase.tolist())], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, self.sentence_count)]
        best, rows = np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)
        return np.where(np.isfinite(best), rows, -1), best

    def sentence_vectors_at(self, rows) -> np.ndarray:
        """The exact stored vectors of sentence rows (from the float32 files, never decoded SQ8)."""
        out = np.zeros((len(np.asarray(rows).ravel()), int(self.manifest["model"]["dim"])), np.float32)
        for _, g, at, local in self._split(rows, self._sbase):
            out[at] = g.vectors_at(local)
        return out

    def passage_vectors_at(self, rows) -> np.ndarray:
        out = np.zeros((len(np.asarray(rows).ravel()), int(self.manifest["model"]["dim"])), np.float32)
        for _, g, at, local in self._split(rows, self._pbase):
            out[at] = np.asarray(g.pvectors[local], dtype=np.float32)
        return out

    def docs_of(self, rows) -> np.ndarray:
        """Document id of each row."""
        out = np.zeros(len(np.asarray(rows).ravel()), np.int64)
        for _, g, at, local in self._split(rows, self._sbase):
            out[at] = g.rows["doc"][local]
        return out

    @cached_property
    def rows(self) -> np.ndarray:
        """The row table of the whole index (passage rows as the index numbers them). O(rows):
        for tools and tests; questions read only their candidates' rows (row_info)."""
        parts = []
        for g, pbase in zip(self.segments, self._pbase.tolist()):
            table = np.array(g.rows)
            for slot in ("passage0", "passage1"):
                table[slot] = np.where(table[slot] >= 0, table[slot] + pbase, -1)
            parts.append(table)
        return np.concatenate(parts)

    @cached_property
    def sentence_ids(self) -> np.ndarray:
        """Sentence id of every row (tombstoned rows included)."""
        return np.concatenate([np.asarray(g.ids) for g in self.segments])

    @cached_property
    def passage_ids(self) -> np.ndarray:
        return np.concatenate([np.asarray(g.pids) for g in self.segments])

    def live_rows(self) -> np.ndarray:
        """Every row that is not tombstoned, ascending."""
        return np.concatenate([np.setdiff1d(np.arange(g.n), g.dead) + base for g, base in zip(self.segments, self._sbase.tolist())])

    def nearest(self, query_vec: np.ndarray, k: int, dates=None) -> np.ndarray:
        """Rows of the k nearest sentences (fewer, or -1 padding, in a small index). With `dates`
        (a recency.DateRange) only rows of documents in range: the search then looks wider, in
        proportion to what the filter leaves out."""
        if not dates:
            return self.search_sentences(query_vec[None, :], k)[0][0]
        allowed = self._dated(dates)
        docs = np.concatenate([np.asarray(g.rows["doc"]) for g in self.segments])
        share = allowed[docs].mean() if len(docs) else 1.0
        widen = int(min(MAX_WIDEN, np.ceil(1.0 / max(share, 1e-9))))
        rows = self.search_sentences(query_vec[None, :], k * widen)[0][0]
        rows = rows[rows >= 0]
        return rows[allowed[self.docs_of(rows)]][:k]

    def lexical(self, terms: list[str], k: int, dates=None) -> "FolderLexical":
        # Sparse: only the rows the query's terms occur in (no per-question array of the collection's size).
        term_rows: dict = {}
        bm, _, _ = self.bm25.sparse_scores_and_matches(terms, term_rows)
        if dates:
            from ..lexical import SparseScores

            allowed = self._dated(dates)[self.docs_of(bm.rows)]
            bm = SparseScores(bm.rows, np.where(allowed, bm.values, 0).astype(bm.values.dtype), bm.size)
        return FolderLexical(bm, bm.top(k), term_rows, self.docs_of)

    def row_info(self, rows) -> np.ndarray:
        """Per row: its segment's row table, neighbours and headline flag (documents never span
        segments), in the index's numbering."""
        from . import ROW_INFO

        out = np.zeros(len(np.asarray(rows).ravel()), dtype=ROW_INFO)
        for i, g, at, local in self._split(rows, self._sbase):
            info, n, base, pbase = g.rows, g.n, int(self._sbase[i]), int(self._pbase[i])
            docs = info["doc"][local]
            out["doc"][at], out["paragraph"][at] = docs, info["paragraph"][local]
            for slot in ("passage0", "passage1"):
                p = info[slot][local]
                out[slot][at] = np.where(p >= 0, p + pbase, -1)
            prev = (local > 0) & (info["doc"][np.maximum(local - 1, 0)] == docs)
            nxt = (local + 1 < n) & (info["doc"][np.minimum(local + 1, n - 1)] == docs)
            out["prev"][at] = np.where(prev, local - 1 + base, -1)
            out["next"][at] = np.where(nxt, local + 1 + base, -1)
            out["headline"][at] = _headlines(info, local)
        return out

    def any_dated(self, dates) -> bool:
        return bool(self.documents_dated(dates).any())

    def newer(self):
        live = current_generation(self.root)
        if live is None or live.name == self.folder.name:
            return None
        return type(self).open(self.root)

    def _dated(self, dates) -> np.ndarray:
        """documents_dated, remembered for the last range (asked twice per question)."""
        last = self.__dict__.get("_last_dated")
        if last is None or last[0] != dates:
            last = self._last_dated = (dates, self.documents_dated(dates))
        return last[1]
