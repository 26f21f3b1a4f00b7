"""Find and score candidate sentences for a question: dense (sentence and passage) + BM25.

Retrieval is hybrid: the union of the nearest sentences by embedding and the best BM25 matches.
Each candidate gets a few features; `Ranker` combines them into one score in [0, 1]-ish units
that also decides abstention. Weights live in `ranker.json` beside this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .index import Index

DENSE_K = 50  # nearest sentences by embedding
PASSAGE_K = 20  # nearest passages; their sentences inherit the passage similarity
LEXICAL_K = 50  # best BM25 sentences

FEATURES = ("dense", "passage", "bm25", "bm25_rel", "doc_boost")


@dataclass
class Candidate:
    row: int
    dense: float = 0.0  # cosine question-sentence
    passage: float = 0.0  # best cosine question-passage among passages holding the sentence
    bm25: float = 0.0  # raw BM25
    bm25_rel: float = 0.0  # BM25 / best BM25 for this question
    doc_boost: float = 0.0  # 1 when the sentence is in a document the conversation is about
    score: float = 0.0

    def features(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in FEATURES], dtype=np.float32)


@dataclass
class Ranker:
    weights: dict[str, float]
    bias: float
    bm25_saturation: float  # bm25 feature is b / (b + saturation)
    threshold: float  # abstain when the best score is below this
    floor: float  # secondary sentences below this are not shown

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> "Ranker":
        return cls(**json.loads((Path(__file__).with_name("ranker.json")).read_text()))

    def score(self, cands: list[Candidate]) -> None:
        for c in cands:
            z = self.bias + sum(self.weights.get(f, 0.0) * v for f, v in zip(FEATURES, self._transformed(c)))
            c.score = float(z)

    def _transformed(self, c: Candidate) -> list[float]:
        sat = c.bm25 / (c.bm25 + self.bm25_saturation) if c.bm25 > 0 else 0.0
        return [c.dense, c.passage, sat, c.bm25_rel, c.doc_boost]


def candidates(index: Index, query_vec: np.ndarray, query_text: str, boost_docs: set[int] | None = None) -> list[Candidate]:
    """Union of dense and lexical neighbours of one question, with their features filled in."""
    rows, cos = index.search_sentences(query_vec[None, :], DENSE_K)
    by_row: dict[int, Candidate] = {}
    for r, c in zip(rows[0], cos[0]):
        if r >= 0:
            by_row[int(r)] = Candidate(int(r), dense=float(c))

    bm = index.bm25.scores(query_text)
    if bm.size:
        top = np.argpartition(-bm, min(LEXICAL_K, bm.size - 1))[:LEXICAL_K]
        best = float(bm.max())
        for r in top:
            if bm[r] > 0:
                by_row.setdefault(int(r), Candidate(int(r)))
        for r, c in by_row.items():
            c.bm25 = float(bm[r])
            c.bm25_rel = c.bm25 / best if best > 0 else 0.0

    missing = [r for r, c in by_row.items() if c.dense == 0.0]
    if missing:  # lexical-only candidates still need their cosine
        vecs = index.sentence_vectors_at(missing)
        for r, v in zip(missing, vecs @ query_vec):
            by_row[r].dense = float(v)

    prow, pcos = index.search_passages(query_vec[None, :], PASSAGE_K)
    spans = index.passage_sentence_rows([r for r in prow[0] if r >= 0])
    for (first, last), c in zip(spans, pcos[0]):
        for r in range(first, last + 1):
            if r in by_row:
                by_row[r].passage = max(by_row[r].passage, float(c))

    if boost_docs:
        for s in index.sentences_at(list(by_row)):
            if s.doc in boost_docs:
                by_row[s.row].doc_boost = 1.0
    return list(by_row.values())
