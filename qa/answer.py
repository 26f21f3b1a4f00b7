"""Turn ranked candidates into an answer: verbatim sentences with citations, or an abstention."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .index import StoredSentence
from .stores import SentenceStore
from .questions import clean_question
from .rerank import shipped_cross_encoder
from .recency import DateRange, newer_first, search_text
from .retrieve import Ranker, candidates
from .slots import demote_non_answers, demote_other_subjects

if TYPE_CHECKING:
    from .chat import Conversation

DUPLICATE_COSINE = 0.95  # two sentences this close say the same thing (syndicated copies)
DEFAULT_TOP = 3


@dataclass
class Citation:
    source: str  # file path as named when indexed
    title: str
    start: int  # character offsets [start, end) into the document text
    end: int
    paragraph: int
    doc: int  # internal document id
    date: str | None = None  # the article's publication date (ISO 8601), when known
    url: str | None = None
    record: str | None = None  # the record of a multi-record JSON file: its id, or "line N"
    byte_start: int | None = None  # the same span in bytes of the document text as UTF-8
    byte_end: int | None = None
    row: int = -1  # internal sentence row

    def to_dict(self) -> dict:
        # Every field is a plain value: read them directly (dataclasses.asdict deep-copies, ~17x
        # slower, ~0.1-0.4 ms of a served answer's CPU).
        return {name: getattr(self, name) for name in _CITATION_KEYS}


@dataclass
class AnswerSentence:
    text: str
    score: float
    citation: Citation
    also: list[Citation] = field(default_factory=list)  # near-identical sentences elsewhere
    row: int = -1

    def to_dict(self) -> dict:
        d = {"text": self.text, **self.citation.to_dict(), "score": round(self.score, 4)}
        if self.also:
            d["also"] = [c.to_dict() for c in self.also]
        return d


@dataclass
class Answer:
    question: str
    answered: bool
    sentences: list[AnswerSentence]
    more: list[AnswerSentence] = field(default_factory=list)  # the next best, for `:more`
    score: float = 0.0  # probability that the collection answers this at all (vs. the threshold)
    # In a conversation: the query actually used when the question was read in the light of the
    # earlier turns ("When did Mongke Khan die?" for "When did he die?"); None when it was asked as is.
    interpreted: str | None = None
    # When the follow-up named nothing and only the earlier turn's words were added: the title of
    # the article that turn was answered from, for the terminal's "(following: <title>)" line.
    following: str | None = None

    def to_dict(self) -> dict:
        d = {
            "question": self.question,
            "answered": self.answered,
            "score": round(self.score, 4),
            "sentences": [s.to_dict() for s in self.sentences],
        }
        if self.interpreted is not None:
            d["interpreted"] = self.interpreted
        return d


class Bot:
    """Answers questions from one index. `Bot.open("embeddings").ask("...")`."""

    def __init__(self, index: SentenceStore, ranker: Ranker | None = None, model: Path | None = None) -> None:
        self.index = index
        self.ranker = ranker or Ranker.default()
        self.model = model  # the --model asked for: a newer generation must have been built with it too
        self._blas = None

    @classmethod
    def open(cls, index: str | Path = "embeddings", model: str | Path | None = None, *, milvus: str | None = None,
             collection: str | None = None) -> "Bot":
        """The folder index at `index`, or the Milvus collection `collection` at URI `milvus`
        (a `*.db` file: Milvus Lite; `http(s)://host:19530`: a server; qa.stores.milvus)."""
        from .stores import open_store

        idx = open_store(index, milvus, collection)
        try:
            idx.check_model(Path(model) if model else None)
        except BaseException:
            idx.close()
            raise
        return cls(idx, model=Path(model) if model else None)

    def refresh(self) -> bool:
        """Switch to the live generation if `qa index` committed a newer one since this Bot opened
        its index (call it between questions). True when it switched."""
        new = self.index.newer()
        if new is None:
            return False
        try:
            new.check_model(self.model)
        except BaseException:
            new.close()
            raise
        old, self.index = self.index, new
        # Only the lock: a question still running on the old index in another thread finishes on
        # it (its files stay open); the rest closes when the last reference goes.
        old.release()
        return True

    def _one_blas_thread(self):
        """Questions come one at a time: BLAS threads in the exact search would only spin against
        onnxruntime's (warm p50 12 ms with one BLAS thread, 21 ms with two). Limited for the call
        only, and put back afterwards: the host process keeps its own setting. (faiss's OpenMP
        threads are scoped the same way in Index.search_sentences.)"""
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()  # finds the loaded BLAS libraries once
        return self._blas.limit(limits=1, user_api="blas")

    def reranker_threads(self) -> int | None:
        """The reranker runs with as many threads as the index's encoder (one in `qa serve`)."""
        encoder = getattr(self.index, "__dict__", {}).get("encoder")
        return getattr(encoder, "threads", None)

    @property
    def display_floor(self) -> float:
        """The `floor` the terminal uses: weaker secondary sentences are not shown to a reader."""
        return self.ranker.floor

    def ask(self, question: str, top: int = DEFAULT_TOP, *, query: str | None = None, floor: float = 0.0,
            dates: DateRange | None = None) -> Answer:
        """Answer one question with its `top` best sentences, best first, each with its score.

        In a conversation (`qa.chat`), `query` is a follow-up's standalone reading, searched for
        instead of the question. Secondary sentences scoring below `floor` are held back (in
        `Answer.more`); the first is always given. `dates` (a recency.DateRange) keeps only
        articles published in that range.
        """
        q = clean_question(question)
        reading = query or q
        search = search_text(reading)
        with self._one_blas_thread():
            vec = self.index.embed([search])[0]
            return self._answer(q, reading, search, vec, top, floor, dates)

    def ask_many(self, questions: list[str], top: int = DEFAULT_TOP, floor: float = 0.0,
                 dates: DateRange | None = None) -> list[Answer]:
        """Answer a batch; questions are embedded together. Empty questions raise UsageError."""
        qs = [clean_question(q) for q in questions]
        searches = [search_text(q) for q in qs]
        with self._one_blas_thread():
            vecs = self.index.embed(searches) if qs else np.zeros((0, 1), np.float32)
            return [self._answer(q, q, s, v, top, floor, dates) for q, s, v in zip(qs, searches, vecs)]

    def chat(self) -> "Conversation":
        from .chat import Conversation

        return Conversation(self)

    def _answer(self, question: str, reading: str, search: str, vec: np.ndarray, top: int, floor: float,
                dates: DateRange | None = None) -> Answer:
        """`reading` is the question as understood (a follow-up's standalone reading); `search` its
        search text (recency.search_text: without words that only ask for the latest, which the
        recency rules read from `reading` instead) and `vec` the embedding of `search`."""
        cands = candidates(self.index, vec, search, dates)
        if not len(cands.rows):
            return Answer(question, False, [], score=0.0)
        scores = self.ranker.score(cands.features)
        demoted = np.zeros(len(scores), bool)
        if self.ranker.slot_demotion != 1.0:
            scores, demoted = demote_non_answers(reading, scores, [m.text for m in cands.meta], self.ranker.slot_demotion)
        order = np.argsort(-scores, kind="stable")
        judged: dict[int, float] = {}

        def judge(rows: np.ndarray) -> np.ndarray:
            """The cross-encoder's logits of these candidates, each pair judged once (the best two
            may serve both answerability and the re-ordering)."""
            more = [int(i) for i in rows if int(i) not in judged]
            if more:
                logits = shipped_cross_encoder(self.reranker_threads()).logits(reading, [cands.meta[i].text for i in more])
                judged.update(zip(more, logits.tolist()))
            return np.array([judged[int(i)] for i in rows], np.float32)

        # Is the question answered at all? The cross-encoder's judgment of the best few is asked
        # only when the ranker's evidence alone does not settle it.
        best = self.ranker.answerability(cands.features, scores, cands.docs, cands.document_evidence,
                                         lambda: judge(order[: self.ranker.reranker_top]))
        if demoted[order[0]]:  # even the best sentence cannot answer it (qa.slots): unlikely answered
            best *= self.ranker.slot_demotion
        if best < self.ranker.threshold:
            return Answer(question, False, [], score=best)
        if self.ranker.slot_demotion != 1.0 and cands.names:
            # Which sentence answers it: not one of an article that names less of what the question
            # names than another of the best ("Northgate ... third quarter" for Northwind's).
            scores, other = demote_other_subjects(scores, cands.docs, cands.document_evidence, self.ranker.slot_demotion)
            demoted |= other
            order = np.argsort(-scores, kind="stable")
        # Unless the ranker is sure, the cross-encoder re-orders the best few.
        depth = self.ranker.reorder_depth(scores[order])
        if depth:
            scores = self.ranker.reordered(scores, order, judge(order[:depth]))
            order = np.argsort(-scores, kind="stable")
            # The cross-encoder may prefer a demoted sentence ("third quarter" for a question on the
            # second): the best sentence names another year/quarter or subject after all.
            if demoted[order[0]] and best * self.ranker.slot_demotion < self.ranker.threshold:
                return Answer(question, False, [], score=best * self.ranker.slot_demotion)
        keep = order[: max(top, 1) * 3 + 10]
        merged = self._newer_first(reading, *self._merge_duplicates([cands.meta[i] for i in keep], scores[keep]))
        _add_byte_spans(self.index, merged)
        # After the first, sentences are in score order: the ones shown are a prefix.
        n = 1 + sum(s.score >= floor for s in merged[1:top])
        return Answer(question, True, merged[:n], more=merged[n:], score=best)

    def _newer_first(self, question: str, ranked: list[AnswerSentence], cosines: np.ndarray) -> list[AnswerSentence]:
        """Put a newer article's sentence on the same thing first where time matters (qa.recency).
        `cosines`: the (n, n) similarities of `ranked`, from _merge_duplicates."""
        if not any(s.citation.date for s in ranked):
            return ranked  # an undated collection: nothing to weigh
        order = newer_first(question, np.array([s.score for s in ranked]), [s.citation.date for s in ranked], cosines,
                            floor=self.ranker.floor)
        return [ranked[i] for i in order]

    def _merge_duplicates(self, ranked: list[StoredSentence], scores: np.ndarray) -> tuple[list[AnswerSentence], np.ndarray]:
        """Fold near-identical sentences (same fact syndicated twice) into one, citing each source.
        Also returns the cosine matrix of the sentences kept (the recency rules read it)."""
        vecs = self.index.sentence_vectors_at([s.row for s in ranked])
        cosines = vecs @ vecs.T
        similar = cosines >= DUPLICATE_COSINE
        out: list[AnswerSentence] = []
        kept: list[int] = []  # position in `ranked` of each entry of `out`
        for i, (s, score) in enumerate(zip(ranked, scores)):
            dup = next((j for j, k in enumerate(kept) if similar[k, i]), None)
            if dup is None:
                out.append(AnswerSentence(s.text, float(score), _citation(s), row=s.row))
                kept.append(i)
            elif s.doc != out[dup].citation.doc and all(c.doc != s.doc for c in out[dup].also):
                out[dup].also.append(_citation(s))
        return out, cosines[np.ix_(kept, kept)]


_CITATION_KEYS = [f.name for f in fields(Citation) if f.name not in ("doc", "row")]


def _citation(s: StoredSentence) -> Citation:
    return Citation(s.source, s.title, s.start, s.end, s.paragraph, s.doc, s.date, s.url, s.record, row=s.row)


def _add_byte_spans(index: SentenceStore, sentences: list[AnswerSentence]) -> None:
    """Fill in byte offsets of every citation of an answer, in one query."""
    citations = [c for s in sentences for c in (s.citation, *s.also)]
    spans = index.byte_spans([c.row for c in citations])
    for c in citations:
        c.byte_start, c.byte_end = spans[c.row]
