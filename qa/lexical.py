"""BM25 over sentences: bm25s's Lucene scores, computed and read with numpy alone.

The index (format 4) keeps per segment each row's token ids and the postings with raw term
frequencies; `SegmentedBm25` scores a question's terms from them and the live statistics of the
whole index, with the same formula and rounding as bm25s (tests/test_segments.py compares an
updated index with a rebuilt one; tests/test_retrieve.py `Bm25` with bm25s). `Bm25` is the
precomputed-score matrix in bm25s's layout, for `qa eval`'s plain baseline and tests. Reading
arrays directly (memory-mapped) keeps `import bm25s` - and the scipy and tqdm it pulls in, ~0.3 s
- out of every one-shot `qa ask`.
Tokens: lowercase words of 2+ characters (scikit-learn's pattern, as bm25s), minus bm25s's English
stopwords, Snowball-stemmed (see `_stem`). Questions are tokenized the same way, minus the words
that only make them questions (`query_terms`).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

_WORD = re.compile(r"(?u)\b\w\w+\b")
# bm25s.stopwords.STOPWORDS_EN (MIT), copied so that queries need not import bm25s.
# Question words stay terms on purpose: as stopwords they lifted BM25 alone on the SQuAD tune
# split (R@1 0.626 -> 0.639) and the ranker by 0.5 points, but the answerability model then
# declined "What did London agree?", whose only evidence besides "London" is lexical.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


# Bumped whenever `tokenize` or the BM25 parameters change: an index records the version its BM25
# was built with, and `qa index` rebuilds the BM25 of an older one (without re-embedding anything).
TERMS_VERSION = 3

# BM25 parameters (bm25s's Lucene variant). A sentence seldom repeats a word because it is more
# relevant, and length is already a ranker feature, so term frequency and length get little credit.
# Chosen on the SQuAD tune split by 2-fold CV of the whole ranker (grid in BENCHMARKS.md): R@1
# 0.739 with bm25s's defaults (k1 1.5, b 0.75), 0.750 at k1 0.2, b 0.3, flat for k1 0.1-0.5, b 0.2-0.4.
K1, B = 0.2, 0.3
PLAIN_K1, PLAIN_B = 1.5, 0.75  # bm25s's defaults: the plain-BM25 baseline of `qa eval`

# Words that make a sentence a question but say nothing about its answer. Dropped from a question's
# terms (not from the index: "what" in an article is a word like any other), unless nothing else
# is left. As terms they matched any sentence holding "what had become ...".
QUESTION_WORDS = frozenset("what who whom whose when where which why how do does did".split())


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _stem(words: list[str]) -> list[str]:
    """Snowball stems, with "-ment" nouns joined to their verb ("agreement" -> "agre", like "agreed").

    Snowball only removes "-ment" when enough of the word remains (development -> develop, but
    agreement, settlement, statement stay whole), so a question's "agree" never met an article's
    "agreement". A stem of four or more letters before "-ment" is stemmed again.
    """
    stem = _stemmer().stemWords
    out = stem(words)
    long = [i for i, s in enumerate(out) if s.endswith("ment") and len(s) >= 8]
    if long:
        for i, s in zip(long, stem([out[i][:-4] for i in long])):
            out[i] = s
    return out


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    return [_stem(_words(t)) for t in texts]


def term_sets(texts: Sequence[str]) -> list[set[str]]:
    """The distinct terms of each text, as `tokenize` gives them; each distinct word is stemmed once."""
    words = [_words(t) for t in texts]
    distinct = list({w for ws in words for w in ws})
    stems = dict(zip(distinct, _stem(distinct)))
    return [{stems[w] for w in ws} for ws in words]


def query_terms(question: str) -> list[str]:
    """A question's search terms: its tokens without question words (all tokens if only those)."""
    words = _words(question)
    content = [w for w in words if w not in QUESTION_WORDS]
    return _stem(content or words)


class Bm25:
    """Scores of every sentence row for a query, from a bm25s index saved on disk."""

    def __init__(self, vocab: dict[str, int], data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, num_docs: int) -> None:
        self.vocab = vocab
        self.data, self.indices, self.indptr = data, indices, indptr
        self.num_docs = num_docs

    @staticmethod
    def _fit(texts: Sequence[str], k1: float, b: float):
        import bm25s

        model = bm25s.BM25(k1=k1, b=b)
        model.index(tokenize(texts), show_progress=False)
        return model

    @classmethod
    def build(cls, texts: Sequence[str], folder: Path, k1: float = K1, b: float = B) -> None:
        """Tokenize every text and write the index (and its token lists, for later updates)."""
        vocab: dict[str, int] = {}
        terms, starts = _term_ids(tokenize(texts), vocab)
        _write(folder, terms, starts, vocab, k1, b)

    @classmethod
    def in_memory(cls, texts: Sequence[str], k1: float = K1, b: float = B) -> "Bm25":
        model = cls._fit(texts, k1, b)
        s = model.scores
        return cls(model.vocab_dict, s["data"], s["indices"], s["indptr"], num_docs=int(s["num_docs"]))

    @classmethod
    def load(cls, folder: Path) -> "Bm25":
        params = json.loads((folder / "params.index.json").read_text())
        vocab = json.loads((folder / "vocab.index.json").read_text())
        arrays = [np.load(folder / f"{name}.csc.index.npy", mmap_mode="r") for name in ("data", "indices", "indptr")]
        return cls(vocab, *arrays, num_docs=int(params["num_docs"]))

    def sparse_scores_and_matches(self, tokens: list[str]) -> tuple["SparseScores", "SparseScores", int]:
        """As `scores_and_matches`, but over the union of the query terms' posting rows only: no
        array of the collection's size is made per question (2 x 1M entries at 1M sentences)."""
        cols = [t for t in (self.vocab.get(tok) for tok in tokens) if t is not None]
        if not cols:
            empty = SparseScores(np.zeros(0, np.int64), np.zeros(0, np.float32), self.num_docs)
            return empty, SparseScores(empty.rows, np.zeros(0, np.int16), self.num_docs), len(set(tokens))
        spans = [(int(self.indptr[t]), int(self.indptr[t + 1])) for t in cols]
        postings = [(np.asarray(self.indices[lo:hi], dtype=np.int64), np.asarray(self.data[lo:hi], dtype=np.float32)) for lo, hi in spans]
        return _sum_postings(cols, postings, self.num_docs, len(set(tokens)))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every sentence row for all of the query's tokens (zeros when none match)."""
        return self.scores_and_matches(tokenize([query])[0])[0]

    def scores_and_matches(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(BM25 score per row, distinct terms per row, distinct terms) for tokenised terms.

        The matches come from the same postings as the scores, so the word coverage of a
        candidate costs nothing extra at query time: no candidate text is tokenised.
        """
        out = np.zeros(self.num_docs, dtype=np.float32)
        matches = np.zeros(self.num_docs, dtype=np.int16)
        for token in tokens:
            t = self.vocab.get(token)
            if t is not None:
                lo, hi = self.indptr[t], self.indptr[t + 1]
                out[self.indices[lo:hi]] += self.data[lo:hi]  # a sentence appears once per column
        for token in set(tokens):
            t = self.vocab.get(token)
            if t is not None:
                matches[self.indices[self.indptr[t] : self.indptr[t + 1]]] += 1
        return out, matches, len(set(tokens))


def _sum_postings(cols: list[int], postings: list[tuple[np.ndarray, np.ndarray]], size: int, n_terms: int):
    """(scores, matches, n_terms) from each query term's (rows, scores), in the order of the terms."""
    rows = np.concatenate([r for r, _ in postings])
    data = np.concatenate([d for _, d in postings])
    distinct = np.zeros(len(rows), dtype=bool)  # the first occurrence of each term counts once
    at, seen = 0, set()
    for t, (r, _) in zip(cols, postings):
        if t not in seen:
            distinct[at : at + len(r)] = True
            seen.add(t)
        at += len(r)
    uniq, inverse = np.unique(rows, return_inverse=True)
    # Summed in float32 in the order of the terms, like the dense version, so scores are equal.
    scores = np.zeros(len(uniq), dtype=np.float32)
    np.add.at(scores, inverse, data)
    matches = np.bincount(inverse[distinct], minlength=len(uniq)).astype(np.int16)
    return SparseScores(uniq, scores, size), SparseScores(uniq, matches, size), n_terms


class SegmentedBm25:
    """BM25 over the live rows of several segments (index format 4), scored per question.

    Each segment keeps raw term frequencies (postings) and row lengths, never scores; the scores
    come from statistics over the live rows of the whole index (rows, total length, document
    frequency per term: O(vocabulary)), so an update rewrites no posting. Same formula and
    rounding as `_write` (bm25s's), so the scores equal a from-scratch index's bit for bit.
    `segments` are (first global row, qa.segment.Segment) pairs."""

    def __init__(self, vocab: dict[str, int], df: np.ndarray, rows: int, length: int, segments: list, size: int,
                 k1: float = K1, b: float = B) -> None:
        self.vocab, self.df, self.segments, self.num_docs = vocab, df, segments, size
        self.live, self.avg = rows, (length / rows if rows else 1.0)
        self.k1, self.b = k1, b

    def idf(self, t: int) -> np.float32:
        d = int(self.df[t]) if t < len(self.df) else 0
        return np.float32(math.log(1 + (self.live - d + 0.5) / (d + 0.5)))

    def term_scores(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(global rows, float32 scores) of the live rows holding term id `t`."""
        idf, rows, data = np.float64(self.idf(t)), [], []
        for base, seg in self.segments:
            local, tf, lengths = seg.postings(t)
            if len(local):
                tf = tf.astype(np.float64)
                norm = self.k1 * ((1 - self.b) + self.b * lengths / self.avg)
                rows.append(local + base)
                data.append((idf * (tf / (norm + tf))).astype(np.float32))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(data)

    def sparse_scores_and_matches(self, tokens: list[str], term_rows: dict[str, np.ndarray] | None = None
                                  ) -> tuple["SparseScores", "SparseScores", int]:
        """Scores over the union of the query terms' live posting rows. `term_rows`, when given, is
        filled with each known token's rows (ascending), which the ranker's focus feature reads."""
        cols = [t for t in (self.vocab.get(tok) for tok in tokens) if t is not None]
        if not cols:
            empty = SparseScores(np.zeros(0, np.int64), np.zeros(0, np.float32), self.num_docs)
            return empty, SparseScores(empty.rows, np.zeros(0, np.int16), self.num_docs), len(set(tokens))
        scored = {t: self.term_scores(t) for t in set(cols)}
        if term_rows is not None:
            for tok in set(tokens):
                if tok in self.vocab:
                    term_rows[tok] = scored[self.vocab[tok]][0]
        return _sum_postings(cols, [scored[t] for t in cols], self.num_docs, len(set(tokens)))

    def scores_and_matches(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """Dense over the index's row space (tombstoned rows score 0): for tests and evaluation."""
        bm, matches, n = self.sparse_scores_and_matches(tokens)
        out, hits = np.zeros(self.num_docs, np.float32), np.zeros(self.num_docs, np.int16)
        out[bm.rows], hits[matches.rows] = bm.values, matches.values
        return out, hits, n

    def scores(self, query: str) -> np.ndarray:
        return self.scores_and_matches(tokenize([query])[0])[0]


def postings(terms: np.ndarray, starts: np.ndarray, nvocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, rows, tf, lengths): the rows holding each term id (CSC, rows ascending), how often,
    and each such row's length in tokens. The lengths are repeated per posting so that a question
    reads them contiguously with the rows: looking them up per row touched pages all over a
    memory-mapped file (measured +20 MB RSS in a cold `qa ask` at 1M rows)."""
    n = len(starts) - 1
    row_lengths = np.diff(starts)
    key = terms.astype(np.int64) * max(n, 1) + np.repeat(np.arange(n, dtype=np.int64), row_lengths)
    pairs, tf = np.unique(key, return_counts=True)
    cols, rows = pairs // max(n, 1), pairs % max(n, 1)
    indptr = np.zeros(nvocab + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=nvocab), out=indptr[1:])
    return indptr, rows.astype(np.int32), tf.astype(np.int32), row_lengths[rows].astype(np.int32)


def row_terms(terms: np.ndarray, starts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token ids of `rows` (in that order) as (terms, starts), copied with numpy."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = starts[rows + 1] - starts[rows]
    offsets = np.repeat(starts[rows] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) if len(rows) else lengths
    picked = terms[offsets + np.arange(int(lengths.sum()))] if len(rows) else terms[:0]
    return np.asarray(picked, dtype=np.int32), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def document_frequency(terms: np.ndarray, starts: np.ndarray, nvocab: int) -> np.ndarray:
    """Per term id, how many rows hold it (for the index's live statistics)."""
    indptr = postings(terms, starts, nvocab)[0]
    return np.diff(indptr)


def term_ids(token_lists: list[list[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    return _term_ids(token_lists, vocab)


class SparseScores:
    """Per-row values that are zero outside `rows` (sorted): indexed like the dense array."""

    def __init__(self, rows: np.ndarray, values: np.ndarray, size: int) -> None:
        self.rows, self.values, self.size = rows, values, size

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.rows, rows), max(len(self.rows) - 1, 0))
        hit = (self.rows[pos] == rows) if len(self.rows) else np.zeros(rows.shape, bool)
        return np.where(hit, self.values[pos] if len(self.rows) else 0, 0).astype(self.values.dtype)

    def max(self) -> float:
        return float(self.values.max()) if len(self.values) else 0.0

    def top(self, k: int) -> np.ndarray:
        """Rows of the k largest positive values."""
        positive = np.flatnonzero(self.values > 0)
        if len(positive) > k:
            positive = positive[np.argpartition(-self.values[positive], k - 1)[:k]]
        return self.rows[positive]


def _term_ids(token_lists: list[list[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Token lists as one int32 array of vocabulary ids plus row starts (CSR); new tokens are added
    to `vocab`."""
    ids = [vocab.setdefault(t, len(vocab)) for tokens in token_lists for t in tokens]
    starts = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_lists], out=starts[1:])
    return np.array(ids, dtype=np.int32), starts


def _write(folder: Path, terms: np.ndarray, starts: np.ndarray, vocab: dict[str, int], k1: float, b: float) -> None:
    """bm25s's Lucene BM25 as a CSC matrix (term columns), computed with numpy from the token ids,
    in bm25s's file layout. Same formula and rounding steps as bm25s 0.3 (tested against it):
    score = idf * tf / (tf + k1 * (1 - b + b * len / avg_len)), idf = ln(1 + (N - df + .5) / (df + .5))."""
    n, nvocab = len(starts) - 1, len(vocab)
    lengths = np.diff(starts)
    avg = float(lengths.mean()) if n else 1.0
    key = terms.astype(np.int64) * max(n, 1) + np.repeat(np.arange(n, dtype=np.int64), lengths)
    pairs, tf = np.unique(key, return_counts=True)  # sorted by term, then row: CSC order
    cols, rows = pairs // max(n, 1), pairs % max(n, 1)
    df = np.bincount(cols, minlength=nvocab)
    idf = np.zeros(nvocab, dtype=np.float32)
    seen = df > 0
    # math.log per term, as bm25s does (np.log differs in the last bit for a third of the terms).
    idf[seen] = [math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in df[seen].tolist()]
    # As bm25s: the length norm is a float64 scalar there, so tf / (norm + tf) is float64, times
    # the float32 idf, rounded to float32 once at the end.
    norm = k1 * ((1 - b) + b * lengths / avg)
    tf = tf.astype(np.float64)
    data = idf[cols].astype(np.float64) * (tf / (norm[rows] + tf))
    indptr = np.zeros(nvocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "data.csc.index.npy", data.astype(np.float32))
    np.save(folder / "indices.csc.index.npy", rows.astype(np.int32))
    np.save(folder / "indptr.csc.index.npy", indptr)
    np.save(folder / "terms.npy", terms)
    np.save(folder / "starts.npy", starts)
    (folder / "vocab.index.json").write_text(json.dumps(vocab))
    (folder / "params.index.json").write_text(json.dumps({"k1": k1, "b": b, "method": "lucene", "idf_method": "lucene",
                                                          "num_docs": n, "written_by": "qa.lexical (bm25s layout)"}))
