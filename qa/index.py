"""A built index, opened read-only: FAISS vectors, BM25, and SQLite metadata of one generation.

Files of a generation (format documented in embeddings/README.md):
    manifest.json      format version, model id and dimension, counts, indexed roots, next ids
    meta.sqlite        files, documents (with full text), sentences, passages
    sentences.faiss    one normalised vector per sentence row (inner product = cosine)
    sentences.ids.npy  sentence id of each FAISS row
    sentences.rows.npy per sentence row: document id, paragraph, the (up to 2) passage rows holding it
    passages.faiss     one vector per passage row
    passages.ids.npy   passage id of each row
    bm25/              bm25s index over sentence rows
"""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import store
from .errors import IndexUnusable, QAError

FORMAT_VERSION = 2
REBUILD_HINT = "rebuild it with `qa index --rebuild`"

SCHEMA = """
CREATE TABLE files (source TEXT PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
    date TEXT, url TEXT, hash TEXT NOT NULL, text TEXT NOT NULL);
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


@dataclass
class StoredSentence:
    id: int
    row: int
    doc: int
    paragraph: int
    start: int
    end: int
    text: str
    source: str
    title: str
    key: str
    date: str | None = None  # the article's publication date, ISO 8601
    url: str | None = None


@dataclass
class Article:
    """One indexed document, as `qa sources` lists it."""

    source: str
    title: str
    date: str | None
    url: str | None
    sentences: int
    key: str

    def to_dict(self) -> dict:
        return {"source": self.source, "title": self.title, "date": self.date, "url": self.url, "sentences": self.sentences}


class Index:
    """Read side of one generation. Opening is cheap; every part loads on first use."""

    def __init__(self, root: Path, folder: Path, manifest: dict) -> None:
        self.root = root
        self.folder = folder
        self.manifest = manifest

    @classmethod
    def open(cls, root: Path) -> "Index":
        folder = store.current_generation(root)
        if folder is None:
            raise IndexUnusable(f"no index at {root}; build it with `qa index`")
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            raise IndexUnusable(f"index at {root} is unreadable (manifest: {e}); {REBUILD_HINT}")
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexUnusable(
                f"index at {root} has format {manifest.get('format')!r}, this qa reads {FORMAT_VERSION}; {REBUILD_HINT}"
            )
        return cls(root, folder, manifest)

    # -- model ---------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.manifest["model"]["model_id"]

    @property
    def model_folder(self) -> Path:
        return self.root / "models" / self.model_id

    def check_model(self, model_dir: Path | None) -> None:
        """Refuse a model other than the one the index was built with."""
        if model_dir is None:
            return
        from .embed import model_id

        wanted = model_id(model_dir)
        if wanted != self.model_id:
            raise IndexUnusable(
                f"index at {self.root} was built with model {self.model_id}, not {wanted}; "
                f"use that model, or {REBUILD_HINT} --model {model_dir}"
            )

    @cached_property
    def encoder(self):
        from .embed import OnnxEncoder

        if not (self.model_folder / "model.onnx").is_file():
            raise IndexUnusable(f"index at {self.root} is missing its model export; {REBUILD_HINT}")
        return self._guard("model export", lambda: OnnxEncoder(self.model_folder))

    # -- parts ---------------------------------------------------------------------------------
    def _guard(self, what: str, load):
        try:
            return load()
        except QAError:
            raise
        except Exception as e:  # a damaged file surfaces as many exception types; all mean the same
            raise IndexUnusable(f"index at {self.root} is unreadable ({what}: {e}); {REBUILD_HINT}") from None

    @cached_property
    def db(self) -> sqlite3.Connection:
        def load():
            uri = (self.folder / "meta.sqlite").resolve().as_uri() + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            con.execute("SELECT count(*) FROM sentences").fetchone()
            return con

        return self._guard("meta.sqlite", load)

    def _faiss(self, name: str):
        def load():
            from .flat import FlatVectors, read_flat

            path = self.folder / f"{name}.faiss"
            flat = read_flat(path)  # exact indexes are read without importing faiss (~0.18 s)
            if flat is not None:
                index = FlatVectors(flat)
            else:
                from .ann import load_ann

                index = load_ann(path)
            ids = np.load(self.folder / f"{name}.ids.npy", mmap_mode="r")
            if index.ntotal != len(ids):
                raise ValueError(f"{index.ntotal} vectors but {len(ids)} ids")
            return index, ids

        return self._guard(f"{name}.faiss", load)

    @cached_property
    def sentence_vectors(self):
        return self._faiss("sentences")

    @cached_property
    def passage_vectors(self):
        return self._faiss("passages")

    @cached_property
    def rows(self) -> np.ndarray:
        """Structured array per sentence row: doc, paragraph, passage0, passage1 (-1 = none)."""
        return self._guard("sentences.rows.npy", lambda: np.load(self.folder / "sentences.rows.npy", mmap_mode="r"))

    @cached_property
    def bm25(self):
        from .lexical import Bm25

        return self._guard("bm25", lambda: Bm25.load(self.folder / "bm25"))

    # -- queries -------------------------------------------------------------------------------
    @property
    def sentence_count(self) -> int:
        return int(self.manifest["counts"]["sentences"])

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def search_sentences(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest sentences for each query vector."""
        index, _ = self.sentence_vectors
        if "faiss" in sys.modules:
            # One question at a time does not parallelise; OpenMP spinning only costs (flat 50k:
            # 3.0 ms on one thread vs 7.1 ms on two, measured in ../shared/notes/measurements.md).
            sys.modules["faiss"].omp_set_num_threads(1)
        k = min(k, index.ntotal)
        scores, rows = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return rows, scores

    def sentence_vectors_at(self, rows) -> np.ndarray:
        return _reconstruct(self.sentence_vectors[0], rows)

    def passage_vectors_at(self, rows) -> np.ndarray:
        return _reconstruct(self.passage_vectors[0], rows)

    def sentences_at(self, rows) -> list[StoredSentence]:
        """Sentence metadata for FAISS/BM25 rows, in the order given."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        q = (
            "SELECT s.id, s.row, s.doc, s.paragraph, s.start, s.\"end\", s.text, d.source, d.title, d.key, d.date, d.url "
            f"FROM sentences s JOIN documents d ON d.id = s.doc WHERE s.row IN ({','.join('?' * len(rows))})"
        )
        found = {r[1]: StoredSentence(*r) for r in self._guard("meta.sqlite", lambda: self.db.execute(q, rows).fetchall())}
        return [found[r] for r in rows if r in found]

    def articles(self) -> list[Article]:
        """Every indexed document, newest first (undated ones last), then by source."""
        q = (
            "SELECT d.source, d.title, d.date, d.url, count(s.id), d.key FROM documents d "
            "LEFT JOIN sentences s ON s.doc = d.id GROUP BY d.id "
            "ORDER BY d.date IS NULL, d.date DESC, d.source, d.id"
        )
        return [Article(*row) for row in self._guard("meta.sqlite", lambda: self.db.execute(q).fetchall())]

    def documents_dated(self, dates) -> np.ndarray:
        """A boolean per document id: is the document's date within `dates` (a recency.DateRange)?"""
        found = self._guard("meta.sqlite", lambda: self.db.execute("SELECT id, date FROM documents").fetchall())
        allowed = np.zeros(max((i for i, _ in found), default=0) + 1, dtype=bool)
        for doc, when in found:
            allowed[doc] = dates.holds(when)
        return allowed

    def byte_spans(self, rows) -> dict[int, tuple[int, int]]:
        """{row: (byte_start, byte_end)}: a sentence's offsets in its document text encoded as UTF-8.

        SQLite stores text as UTF-8, so the byte length of the text before a sentence is the
        length of that prefix cast to a blob; no document is read into Python.
        """
        rows = [int(r) for r in rows]
        if not rows:
            return {}
        q = (
            "SELECT s.row, length(CAST(substr(d.text, 1, s.start) AS BLOB)), length(CAST(substr(d.text, 1, s.\"end\") AS BLOB)) "
            f"FROM sentences s JOIN documents d ON d.id = s.doc WHERE s.row IN ({','.join('?' * len(rows))})"
        )
        return {row: (start, end) for row, start, end in self.db.execute(q, rows)}

    def paragraph_text(self, doc: int, paragraph: int) -> tuple[int, int, str]:
        """(start, end, text) of a whole paragraph: from its first to its last sentence."""
        row = self.db.execute(
            'SELECT min(s.start), max(s."end"), d.text FROM sentences s JOIN documents d ON d.id = s.doc '
            "WHERE s.doc = ? AND s.paragraph = ?",
            (doc, paragraph),
        ).fetchone()
        start, end, text = row
        return start, end, text[start:end]


def _reconstruct(index, rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return np.zeros((0, index.d), np.float32)
    if hasattr(index, "make_direct_map") and index.direct_map.type == 0:  # IVF: row -> list position, once
        index.make_direct_map()
    return index.reconstruct_batch(rows)
