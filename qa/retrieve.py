"""Find and score candidate sentences for a question.

Retrieval is hybrid: the union of the nearest sentences by embedding and the best BM25 matches.
Every candidate gets the features in `FEATURES` (similarities of the sentence, its passage and its
neighbours; BM25; ranks; document-level evidence; word coverage; question-type cues), and
`Ranker` - a linear model fitted on the SQuAD tune split by scripts/fit_ranker.py - turns
them into the probability that the sentence answers the question. That probability orders the
answer and, against `threshold`, decides whether to answer at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .chunk import PASSAGE_SENTENCES, PASSAGE_STRIDE
from .features import QTYPE_FEATURES, question_type, ranks, type_match
from .features import coverage as title_coverage
from .features import focus, name_coverage, name_terms
from .index import StoredSentence
from .lexical import query_terms, term_sets, tokenize
from .recency import DateRange
from .stores import LexicalHits, SentenceStore

DENSE_K = 40  # nearest sentences by embedding
LEXICAL_K = 40  # best BM25 sentences
BM25_SATURATION = 5.0  # the bm25 feature is b / (b + this): comparable across collections

FEATURES = (
    "dense", "passage", "neighbor", "bm25", "bm25_rel", "neighbor_bm25", "dense_rr", "bm25_rr",
    "doc_dense", "doc_bm25", "para_dense", "para_bm25", "coverage", "title", *QTYPE_FEATURES, "length",
    "dense_x_bm25", "dense_x_coverage", "focus",
)
_F = {name: i for i, name in enumerate(FEATURES)}
# Question-level evidence that the collection holds an answer at all. Each must mean the same in a
# collection of one article and of thousands:
# - "top_documents" (log of the distinct documents among the 10 best candidates): an answerable
#   question's evidence gathers in one article, an unanswerable one's is scattered.
# - No absolute BM25 score: its IDF part grows with the number of sentences, so a fit on a
#   2,400-sentence index declined 4-7 % of answerable questions on 12-paragraph collections of
#   tune articles, 1-5 % without it. Word coverage carries the lexical evidence instead.
# - "reranker_best" / "reranker_first": the cross-encoder's logits (qa.rerank) for the ranker's
#   `reranker_top` best candidates (their maximum, and the first's). It judges one pair at a time,
#   so it does not grow with the collection; it declines 5-8 points more foreign questions at every
#   size (BENCHMARKS.md, issue 14).
# - "document_names": the share of the names the question mentions that the best candidate's
#   document holds anywhere (qa.features.name_coverage): a question about something the collection
#   never mentions still finds a related sentence, the likelier the more articles.
RANKER_ANSWERABILITY_FEATURES = (
    "top_probability", "max_dense", "max_passage", "max_coverage", "top_coverage", "top_title", "top_dense",
    "top_documents", "document_names",
)
ANSWERABILITY_FEATURES = RANKER_ANSWERABILITY_FEATURES + ("reranker_best", "reranker_first")


@dataclass
class Candidates:
    rows: np.ndarray  # sentence rows
    features: np.ndarray  # (len(rows), len(FEATURES))
    meta: list[StoredSentence]
    docs: np.ndarray  # document id of each row
    names: set[str] = field(default_factory=set)  # the search terms of the names the question mentions
    lexical: LexicalHits | None = None  # the question's BM25 hits

    def document_evidence(self, doc: int) -> float:
        """"document_names" of one of the candidates' documents: the share of the question's names it holds."""
        if not self.names:
            return 1.0
        return name_coverage(self.names, self.lexical.terms_in_document(doc, self.names) if self.lexical is not None else set())


@dataclass
class Ranker:
    """Two linear models fitted on the SQuAD tune split (scripts/fit_ranker.py).

    `score`: probability that a candidate sentence answers the question (orders the answer); the
    weights were fitted to rank each question's candidates (listwise), then scaled to probabilities.
    `answerability`: probability that the collection answers the question at all, from the best
    candidates' evidence; below `threshold` the bot declines. Ranking features are partly
    relative to the other candidates, so they cannot tell an unanswerable question on their own.
    """

    weights: list[float]  # one per name in FEATURES
    bias: float
    answerability_weights: list[float]  # one per name in ANSWERABILITY_FEATURES (RANKER_... if reranker_top is 0)
    answerability_bias: float
    threshold: float  # answer only when answerability reaches this
    floor: float  # the terminal does not show secondary sentences with a lower probability
    # A sentence whose key slot conflicts with the question's (another year, quarter or numbered
    # name, qa/slots.py) has its probability multiplied by this (1: off); chosen on tune (issue 14).
    slot_demotion: float = 1.0
    # The answerability model reads the reranker's logits for this many of the best candidates
    # (0: no reranker runs, and the model reads RANKER_ANSWERABILITY_FEATURES).
    reranker_top: int = 0
    # Questions the ranker's evidence alone settles skip the reranker: the answerability model
    # before the reranker ("weights", "bias", RANKER_ANSWERABILITY_FEATURES) declines below
    # "decline_below" and answers from "answer_above" (None: the reranker always runs).
    reranker_gate: dict | None = None
    # The reranker also re-orders up to `rerank_top` of the ranker's best candidates (0: it does
    # not): those whose ranker logit is within `rerank_within` of the first's (None: all of them),
    # by ranker logit + `rerank_weight` x reranker logit; their probability becomes
    # sigmoid(scale x that + bias) (`rerank_calibration`, fitted on tune). Skipped when the ranker's
    # first leads its second by more than `rerank_margin` in logit, for speed: at 1.5, 59 % of tune
    # questions skip it (BENCHMARKS.md, "The reranker trained on a GPU", "Deeper re-ordering",
    # "Does the answer's article name what the question names?").
    rerank_top: int = 0
    rerank_weight: float = 0.0
    rerank_margin: float | None = None
    rerank_within: float | None = None
    rerank_calibration: list[float] = field(default_factory=lambda: [1.0, 0.0])
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    fitted: dict = field(default_factory=dict)  # provenance: data, split, figures

    @classmethod
    @lru_cache(maxsize=1)
    def default(cls) -> "Ranker":
        return cls.load(Path(__file__).with_name("ranker.json"))

    @classmethod
    def load(cls, path: Path) -> "Ranker":
        data = json.loads(path.read_text())
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"{path} was fitted for other features; re-run scripts/fit_ranker.py")
        return cls(**data)

    def score(self, features: np.ndarray) -> np.ndarray:
        return _sigmoid(features @ np.asarray(self.weights, dtype=np.float32) + self.bias)

    def answerability(self, features: np.ndarray, scores: np.ndarray, docs: np.ndarray,
                      document: Callable[[int], float],
                      reranker: Callable[[], np.ndarray] | None = None) -> float:
        """`document(doc)` gives "document_names" of a document (`Candidates.document_evidence`);
        `reranker()` the cross-encoder's logits of the `reranker_top` best candidates by `scores`,
        best first; it is called only when `reranker_top` is set and the gate does not settle the
        question."""
        if not len(scores):
            return 0.0
        x = answerability_features(features, scores, docs, document)
        if self.reranker_top:
            if reranker is None:
                raise ValueError("this ranker's answerability model reads the reranker: pass reranker=")
            gate = self.reranker_gate
            if gate:
                sure = float(_sigmoid(x @ np.asarray(gate["weights"]) + gate["bias"]))
                if sure < gate["decline_below"] or sure >= gate["answer_above"]:
                    return sure
            x = np.r_[x, reranker_evidence(reranker())]
        return float(_sigmoid(x @ np.asarray(self.answerability_weights) + self.answerability_bias))

    def reorder_depth(self, best_first: np.ndarray) -> int:
        """How many of these candidates (their probabilities, best first) the reranker re-orders:
        0 when it does not."""
        return reorder_count(_logit(best_first[: self.rerank_top]), self.rerank_top, self.rerank_margin, self.rerank_within)

    def reordered(self, scores: np.ndarray, order: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """`scores` after re-ordering: the best len(`logits`) candidates by `order` re-scored with
        the reranker's `logits` for them (best first), every other candidate kept below them."""
        top, rest = order[: len(logits)], order[len(logits):]
        scale, bias = self.rerank_calibration
        out = scores.astype(np.float64)
        out[top] = _sigmoid(scale * (_logit(scores[top]) + self.rerank_weight * np.asarray(logits, np.float64)) + bias)
        out[rest] = np.minimum(scores[rest], out[top].min() * (1 - 1e-6))
        return out


def reorder_count(logits: np.ndarray, top: int, margin: float | None, within: float | None) -> int:
    """How many of the best candidates (their ranker logits, best first) the reranker re-orders:
    none when `top` is 0, when there is a single candidate, or when the first leads the second by
    more than `margin`; else up to `top` of them, those within `within` of the first (at least
    two; None: no window)."""
    z = np.asarray(logits)[:top]
    if len(z) < 2 or margin is not None and z[0] - z[1] > margin:
        return 0
    return len(z) if within is None else max(2, int(np.sum(z[0] - z <= within)))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def answerability_features(X: np.ndarray, scores: np.ndarray, docs: np.ndarray,
                           document: Callable[[int], float],
                           reranker: np.ndarray | None = None) -> np.ndarray:
    """RANKER_ANSWERABILITY_FEATURES (`document(doc)`: "document_names" of a document), followed
    by the two reranker ones when its logits are given (the reranker's logits of the best
    candidates by `scores`, best first)."""
    best = np.argsort(-scores, kind="stable")[:10]
    top = int(best[0])
    ranker_evidence = [
        scores[top], X[:, _F["dense"]].max(), X[:, _F["passage"]].max(), X[:, _F["coverage"]].max(),
        X[top, _F["coverage"]], X[top, _F["title"]], X[top, _F["dense"]],
        np.log(len(np.unique(docs[best]))), document(int(docs[top])),
    ]
    if reranker is not None:
        ranker_evidence += reranker_evidence(reranker)
    return np.array(ranker_evidence, dtype=np.float64)


def reranker_evidence(logits: np.ndarray) -> list[float]:
    """"reranker_best" and "reranker_first" from the reranker's logits of the best candidates."""
    return [float(logits.max()), float(logits[0])]


def _coverage(matches: np.ndarray, n_terms: int) -> np.ndarray:
    return matches.astype(np.float32) / n_terms if n_terms else np.zeros(len(matches), np.float32)


def _union(*row_lists: np.ndarray) -> np.ndarray:
    """Distinct non-negative rows, in order of first appearance."""
    rows = np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in row_lists])
    rows = rows[rows >= 0]
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


def candidates(index: SentenceStore, query_vec: np.ndarray, query_text: str, dates: DateRange | None = None) -> Candidates:
    """Retrieve candidates for one question from a store (qa.stores) and compute their features.

    `dates` (a recency.DateRange) restricts the answer to documents published in that range.
    """
    drows = index.nearest(query_vec, DENSE_K, dates or None)
    terms = query_terms(query_text)
    lex = index.lexical(terms, LEXICAL_K, dates or None)
    rows = _union(drows, lex.top)
    info = index.row_info(rows)
    keep = ~info["headline"]
    rows, info = rows[keep], info[keep]
    docs = info["doc"]

    # Neighbours in the same document, and the passages holding each sentence.
    prev_rows, next_rows = info["prev"], info["next"]
    need = _union(rows, prev_rows, next_rows)
    pos = {int(r): i for i, r in enumerate(need)}
    sims = index.sentence_vectors_at(need) @ query_vec
    dense = sims[[pos[int(r)] for r in rows]]
    neighbor = np.array([max(sims[pos[int(p)]] if p >= 0 else 0.0, sims[pos[int(n)]] if n >= 0 else 0.0)
                         for p, n in zip(prev_rows, next_rows)], dtype=np.float32)
    prow = np.stack([info["passage0"], info["passage1"]], axis=1)
    uniq = _union(prow.ravel())
    pcos = dict(zip(uniq.tolist(), (index.passage_vectors_at(uniq) @ query_vec).tolist()))
    passage = np.array([max(pcos.get(int(a), 0.0), pcos.get(int(b), 0.0)) for a, b in prow], dtype=np.float32)

    # One lookup for the candidates and both neighbours (a round trip each, for a remote store).
    around = lex.scores(np.concatenate([rows, np.maximum(prev_rows, 0), np.maximum(next_rows, 0)]))
    n = len(rows)
    b = around[:n]
    nb = np.maximum(np.where(prev_rows >= 0, around[n : 2 * n], 0), np.where(next_rows >= 0, around[2 * n :], 0))
    meta = index.sentences_at(rows)
    texts = [m.text for m in meta]
    # Paragraph groups (document ids of a remote store are 63-bit hashes: no room to pack the paragraph in).
    paragraphs = np.unique(docs, return_inverse=True)[1].astype(np.int64) << 32 | info["paragraph"]
    held = lex.terms_in(rows, texts)  # which question terms each candidate holds: coverage and focus
    coverage = _coverage(np.array([len(h) for h in held], dtype=np.int64), len(set(terms)))
    X = feature_matrix(query_text, dense, passage, neighbor, b, nb, lex.best,
                       coverage, docs, paragraphs, texts, [m.title for m in meta], held)
    return Candidates(rows, X, meta, docs, name_terms(query_text), lex)


def feature_matrix(
    question: str,
    dense: np.ndarray,
    passage: np.ndarray,
    neighbor: np.ndarray,
    bm25: np.ndarray,
    neighbor_bm25: np.ndarray,
    best_bm25: float,
    coverage: np.ndarray,
    docs: np.ndarray,
    paragraphs: np.ndarray,
    texts: list[str],
    titles: list[str],
    terms: list[set[str]] | None = None,
) -> np.ndarray:
    """The (n, len(FEATURES)) matrix for n candidate sentences of one question.

    `best_bm25` is the best BM25 score over the whole collection for this question, so that the
    relative BM25 features mean the same whether the candidates were retrieved or given.
    `coverage` is the share of the question's distinct terms each sentence holds.
    `terms` (optional): which of the question's terms each sentence holds; tokenized from `texts` if not given.
    """
    rel = bm25 / best_bm25 if best_bm25 > 0 else np.zeros_like(bm25)
    X = np.zeros((len(dense), len(FEATURES)), dtype=np.float32)
    X[:, _F["dense"]] = dense
    X[:, _F["passage"]] = passage
    X[:, _F["neighbor"]] = neighbor
    X[:, _F["bm25"]] = bm25 / (bm25 + BM25_SATURATION)
    X[:, _F["bm25_rel"]] = rel
    X[:, _F["neighbor_bm25"]] = neighbor_bm25 / best_bm25 if best_bm25 > 0 else 0.0
    X[:, _F["dense_rr"]] = 1.0 / (1.0 + ranks(dense))
    X[:, _F["bm25_rr"]] = 1.0 / (1.0 + ranks(bm25))
    # Evidence pooled over the candidates of the same document and of the same paragraph.
    for group, (fd, fb) in ((docs, ("doc_dense", "doc_bm25")), (paragraphs, ("para_dense", "para_bm25"))):
        X[:, _F[fd]] = _group_max(group, dense)
        X[:, _F[fb]] = _group_max(group, rel)
    X[:, _F["coverage"]] = coverage
    q_tokens = set(query_terms(question))
    distinct_titles = list(dict.fromkeys(titles))
    title_tokens = {t: set(tokens) for t, tokens in zip(distinct_titles, tokenize(distinct_titles))}
    qtype = question_type(question)
    for i, (text, title) in enumerate(zip(texts, titles)):
        X[i, _F["title"]] = title_coverage(q_tokens, title_tokens[title])
        X[i, _F["wants_date_has_date"] : _F["wants_name_has_new_name"] + 1] = type_match(qtype, question, text)
        X[i, _F["length"]] = math.log1p(len(text)) / 6.0
    X[:, _F["dense_x_bm25"]] = dense * rel
    X[:, _F["dense_x_coverage"]] = dense * X[:, _F["coverage"]]
    if texts:
        terms = terms if terms is not None else term_sets(texts)  # the question's terms suffice
        X[:, _F["focus"]] = focus(q_tokens, terms, docs, [title_tokens[t] for t in titles])
    return X


def _group_max(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each element, the largest of `values` over the elements with the same `group`."""
    keys, inverse = np.unique(group, return_inverse=True)
    best = np.full(len(keys), -np.inf)
    np.maximum.at(best, inverse, values)
    return best[inverse]


def passage_windows(n: int, size: int = PASSAGE_SENTENCES, stride: int = PASSAGE_STRIDE) -> list[tuple[int, int]]:
    """(first, last) of overlapping windows over n consecutive sentences, like the chunker's
    (which also caps each window at the model's word-piece budget)."""
    out, i = [], 0
    while i < n:
        j = min(i + size - 1, n - 1)
        out.append((i, j))
        if j == n - 1:
            break
        i += stride
    return out


def rank_given(question: str, texts: list[str], title: str, rows: np.ndarray, encoder, bm25, ranker: Ranker,
               plain_bm25=None) -> dict[str, np.ndarray]:
    """Score a fixed list of consecutive candidate sentences (answer-sentence selection).

    The features are those of `candidates`, with the list standing in for one document:
    neighbours are the sentences before and after, passages are windows like the chunker's.
    `rows` are the texts' rows in `bm25`. Returns the shipped scores beside plain dense and BM25
    (from `plain_bm25`, another parameterisation over the same rows, when given).
    """
    qv = encoder.encode([question])[0]
    dense = encoder.encode(texts) @ qv
    n = len(texts)
    windows = passage_windows(n)
    pcos = encoder.encode([" ".join(texts[a : b + 1]) for a, b in windows]) @ qv
    passage = np.zeros(n, dtype=np.float32)
    for (a, b), c in zip(windows, pcos):
        passage[a : b + 1] = np.maximum(passage[a : b + 1], c)
    pad = lambda v: np.concatenate([[0.0], v, [0.0]]).astype(np.float32)  # noqa: E731
    all_bm, all_matches, n_terms = bm25.scores_and_matches(query_terms(question))
    d, bm = pad(dense), all_bm[rows]
    b = pad(bm)
    neighbor = np.maximum(d[:-2], d[2:])
    neighbor_bm = np.maximum(b[:-2], b[2:])
    one = np.zeros(n, dtype=np.int64)  # the candidates stand for one paragraph of one document
    X = feature_matrix(question, dense, passage, neighbor, bm, neighbor_bm, float(all_bm.max()) if all_bm.size else 0.0,
                       _coverage(all_matches[rows], n_terms), one, one, texts, [title] * n)
    plain = plain_bm25.scores_and_matches(query_terms(question))[0][rows] if plain_bm25 is not None else bm
    return {"shipped": ranker.score(X), "bm25": plain, "dense": dense}
