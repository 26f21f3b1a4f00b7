"""Where sentences live: the seam between retrieval and storage.

Retrieval (`qa.retrieve.candidates`), the Bot, chat and output ask a `SentenceStore` for:
- the nearest sentences to a question's vector (`nearest`),
- the best BM25 sentences for its terms (`lexical`, which also scores any other sentence),
- per sentence: its document, paragraph, passages, neighbours (`row_info`), stored vector,
  metadata and byte offsets.

A sentence is named by an int64 id that only means something to its store: a row of the folder
index (`qa.index.Index`, the default), a primary key in Milvus (`qa.stores.milvus`). The ranker,
answerability, chat and output are the same code over both. `open_store` picks one from options;
pymilvus is imported only when a Milvus URI is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

MILVUS_ENV = "QA_MILVUS"
MILVUS_TOKEN_ENV = "QA_MILVUS_TOKEN"  # read from the environment only: never an option, never printed
DEFAULT_COLLECTION = "qa"

# What `row_info` returns for each id: its document, paragraph, the (up to 2) passages holding it,
# the sentences before and after it in the same document (-1: none), and whether it is a text
# file's headline line (counted through the title feature, not cited; see qa.stores.folder._headlines).
ROW_INFO = np.dtype([("doc", np.int64), ("paragraph", np.int64), ("passage0", np.int64), ("passage1", np.int64),
                     ("prev", np.int64), ("next", np.int64), ("headline", bool)])


class LexicalHits(Protocol):
    """BM25 for one question: the best sentences, and the score of any other sentence."""

    top: np.ndarray  # ids of the (up to) k best sentences with a positive score
    best: float  # the best score over the whole (date-filtered) collection

    def scores(self, ids: np.ndarray) -> np.ndarray:
        """BM25 score of each id (0 where none of the terms occurs, or outside the date filter)."""

    def terms_in(self, ids: np.ndarray, texts: list[str]) -> list[set[str]]:
        """Which of the question's terms each sentence holds (`texts` are theirs)."""

    def terms_in_document(self, doc: int, terms=None) -> set[str]:
        """Which of the question's terms (or of `terms`, a subset) a document holds in any of its sentences."""


class SentenceStore(Protocol):
    manifest: dict  # model id and dimension, counts, "terms" (the tokenizer version)
    sentence_count: int
    model_id: str

    def embed(self, texts: list[str]) -> np.ndarray: ...
    def check_model(self, model_dir: Path | None) -> None: ...
    def nearest(self, query_vec: np.ndarray, k: int, dates=None) -> np.ndarray: ...
    def lexical(self, terms: list[str], k: int, dates=None) -> LexicalHits: ...
    def row_info(self, ids: np.ndarray) -> np.ndarray: ...
    def sentence_vectors_at(self, ids) -> np.ndarray: ...
    def passage_vectors_at(self, ids) -> np.ndarray: ...
    def sentences_at(self, ids) -> list: ...  # qa.index.StoredSentence, in the order given
    def byte_spans(self, ids) -> dict[int, tuple[int, int]]: ...
    def paragraph_text(self, doc: int, paragraph: int) -> tuple[int, int, str]: ...
    def articles(self, offset: int = 0, limit: int | None = None) -> list: ...  # qa.index.Article, newest first
    def any_dated(self, dates) -> bool: ...
    def newer(self) -> "SentenceStore | None": ...  # a newer generation, opened; None when this is current
    def release(self) -> None: ...
    def close(self) -> None: ...


def milvus_uri(option: str | None) -> str | None:
    """The Milvus URI asked for (--milvus, else $QA_MILVUS), or None for the folder index."""
    return option or os.environ.get(MILVUS_ENV) or None


def open_store(index: str | Path = "embeddings", milvus: str | None = None, collection: str | None = None) -> SentenceStore:
    """The folder index at `index`, or, given a Milvus URI, the collection there."""
    if milvus:
        from .milvus import MilvusStore

        return MilvusStore.open(milvus, collection or DEFAULT_COLLECTION)
    from ..index import Index

    return Index.open(Path(index))
