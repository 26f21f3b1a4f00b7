"""A built index, opened read-only: vectors, BM25 and SQLite metadata of one generation.

Files of a generation (format documented in embeddings/README.md):
    manifest.json        format version, model id and dimension, counts, indexed roots, next ids
    meta.sqlite          files, documents (with full text), sentences, passages
    sentences.vectors.npy  float32, one normalised vector per sentence row: the canonical vectors
                         (exact search reads them memory-mapped; updates copy them, never decode them)
    sentences.faiss      only above ann.FLAT_MAX sentences: IVF-SQ8 built from sentences.vectors.npy
    sentences.ids.npy    sentence id of each row
    sentences.rows.npy   per sentence row: document id, paragraph, the (up to 2) passage rows holding it
    passages.vectors.npy one vector per passage row (read per candidate, never searched)
    passages.ids.npy     passage id of each row
    bm25/                bm25s index over sentence rows
    readers.lock         readers hold a shared flock on it (see qa.store)

`Index.open` opens every part at once, under the generation's reader lock, and an Index never
changes afterwards: a writer swapping in a new generation cannot pull a file from under it.
"""

from __future__ import annotations

import json
import mmap
import sqlite3
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import store
from .errors import IndexUnusable, QAError
from .stores.folder import FolderSearch

FORMAT_VERSION = 3
REBUILD_HINT = "rebuild it with `qa index --rebuild`"
# What a damaged or truncated file raises while being read (faiss adds RuntimeError, see _ann).
# Anything else escaping a load is a bug in qa and is left to raise as itself.
DAMAGE = (OSError, ValueError, EOFError, sqlite3.DatabaseError)

SCHEMA = """
CREATE TABLE files (source TEXT PRIMARY KEY, hash TEXT NOT NULL);
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
    record: str | None = None  # which record of a multi-record JSON file


@dataclass
class Article:
    """One indexed document, as `qa sources` lists it."""

    source: str
    title: str
    date: str | None
    url: str | None
    sentences: int
    record: str | None
    doc: int  # internal document id (the HTTP API's paragraph requests name it)

    def to_dict(self) -> dict:
        return {"source": self.source, "record": self.record, "title": self.title, "date": self.date, "url": self.url,
                "sentences": self.sentences}


class Index(FolderSearch):
    """Read side of one generation, every part opened by `Index.open`; close() lets it go."""

    def __init__(self, root: Path, folder: Path, manifest: dict, lock=None) -> None:
        self.root = root
        self.folder = folder
        self.manifest = manifest
        self._lock = lock  # open readers.lock with a shared flock: the writer leaves this generation alone

    @classmethod
    def open(cls, root: Path) -> "Index":
        opened = store.open_current(root)
        if opened is None:
            raise IndexUnusable(f"no index at {root}; build it with `qa index`")
        folder, lock = opened
        try:
            index = cls(root, folder, read_manifest(root, folder), lock)  # an older format says so here
            if lock is None:
                raise IndexUnusable(f"index at {root} is unreadable ({folder.name} has no {store.READERS_LOCK}); {REBUILD_HINT}")
            index._open_parts()
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        return index

    def release(self) -> None:
        """Let a writer delete this generation. The Index keeps working: every part is open (file
        descriptors, memory maps), so a question already running on it, in another thread, ends
        normally; on POSIX a deleted file stays readable while it is open."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        """Release the generation and close its database. The Index is unusable after."""
        self.release()
        if "db" in self.__dict__:
            self.db.close()

    def _open_parts(self) -> None:
        self.db = self._guard("meta.sqlite", self._open_db)
        n, dim = self.sentence_count, int(self.manifest["model"]["dim"])
        vectors = self._guard("sentences.vectors.npy", lambda: _vectors(self.folder / "sentences.vectors.npy", n, dim))
        ids = self._guard("sentences.ids.npy", lambda: _ids(self.folder / "sentences.ids.npy", n))
        from .flat import FlatVectors

        if self.manifest.get("index_type", "flat") == "flat":
            searchable = FlatVectors(vectors)  # the exact search scans every row: mapped
            self._sentence_matrix = vectors
        else:
            searchable = self._guard("sentences.faiss", lambda: _ann(self.folder / "sentences.faiss", n), RuntimeError)
            self._sentence_matrix = self._guard("sentences.vectors.npy", lambda: _row_file(self.folder / "sentences.vectors.npy", n, dim))
        self.sentence_vectors = (searchable, ids)
        npass = int(self.manifest["counts"]["passages"])
        pvectors = self._guard("passages.vectors.npy", lambda: _row_file(self.folder / "passages.vectors.npy", npass, dim))
        pids = self._guard("passages.ids.npy", lambda: _ids(self.folder / "passages.ids.npy", npass))
        self.passage_vectors = (FlatVectors(pvectors), pids)
        self.rows = self._guard("sentences.rows.npy", lambda: _rows(self.folder / "sentences.rows.npy", n))
        from .lexical import Bm25

        self.bm25 = self._guard("bm25", lambda: _bm25(Bm25, self.folder / "bm25", n))

    def _open_db(self) -> sqlite3.Connection:
        # immutable=1: a generation never changes, so SQLite takes no locks and looks for no journal.
        uri = (self.folder / "meta.sqlite").resolve().as_uri() + "?mode=ro&immutable=1"
        con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        (count,) = con.execute("SELECT count(*) FROM sentences").fetchone()
        if count != self.sentence_count:
            raise ValueError(f"{count} sentences, the manifest says {self.sentence_count}")
        return con

    # -- model ---------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.manifest["model"]["model_id"]

    def find_model_folder(self) -> Path | None:
        """The export this index embeds with: shipped, in the user cache, or (indexes of earlier
        qa versions) in its own models/ folder; None when none of them holds it."""
        from .exports import find_export

        return find_export(self.model_id, self.root)

    @property
    def model_folder(self) -> Path:
        """Where the export is, or where `qa index` would put it back (the user cache)."""
        from .exports import exports_dir

        return self.find_model_folder() or exports_dir() / self.model_id

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

        folder = self.find_model_folder()
        if folder is None:
            from .exports import SHIPPED_SOURCE

            source = self.manifest["model"].get("model_path", "?")
            if source == SHIPPED_SOURCE:  # qa was upgraded to newly tuned default weights
                raise IndexUnusable(f"index at {self.root} was built with another version of qa's default model; {REBUILD_HINT}")
            raise IndexUnusable(
                f"index at {self.root} embeds with model {self.model_id}, whose ONNX export is missing from "
                f"{self.model_folder.parent}; run `qa index --index {self.root}` to export {source} again, or {REBUILD_HINT}"
            )
        # onnxruntime and tokenizers raise plain Exception subclasses for a damaged file.
        return self._guard(f"model export {folder}", lambda: OnnxEncoder(folder), Exception)

    # -- parts ---------------------------------------------------------------------------------
    def _guard(self, what: str, load, *more_damage: type[BaseException]):
        """Run `load`; what a damaged file raises becomes IndexUnusable naming `what`. Any other
        exception is a bug and raises as itself."""
        try:
            return load()
        except QAError:
            raise
        except DAMAGE + more_damage as e:
            raise IndexUnusable(f"index at {self.root} is unreadable ({what}: {e}); {REBUILD_HINT}") from None

    # -- queries -------------------------------------------------------------------------------
    @property
    def sentence_count(self) -> int:
        return int(self.manifest["counts"]["sentences"])

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def search_sentences(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of the k nearest sentences for each query vector."""
        index, _ = self.sentence_vectors
        k = min(k, index.ntotal)
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss = sys.modules.get("faiss") if not hasattr(index, "vectors") else None
        if faiss is None:
            scores, rows = index.search(queries, k)
            return rows, scores
        # One question at a time does not parallelise; OpenMP spinning only costs (flat 50k:
        # 3.0 ms on one thread vs 7.1 ms on two, measured in ../shared/notes/measurements.md).
        # The setting is the process's, so it is put back afterwards.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, rows = index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(before)
        return rows, scores

    def sentence_vectors_at(self, rows) -> np.ndarray:
        """The exact stored vectors of sentence rows (from sentences.vectors.npy, never decoded SQ8)."""
        return np.asarray(self._sentence_matrix[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def passage_vectors_at(self, rows) -> np.ndarray:
        return np.asarray(self.passage_vectors[0].vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def sentences_at(self, rows) -> list[StoredSentence]:
        """Sentence metadata for FAISS/BM25 rows, in the order given."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        q = (
            "SELECT s.id, s.row, s.doc, s.paragraph, s.start, s.\"end\", s.text, d.source, d.title, d.key, d.date, d.url, d.record "
            f"FROM sentences s JOIN documents d ON d.id = s.doc WHERE s.row IN ({','.join('?' * len(rows))})"
        )
        found = {r[1]: StoredSentence(*r) for r in self._guard("meta.sqlite", lambda: self.db.execute(q, rows).fetchall())}
        missing = [r for r in rows if r not in found]
        if missing:  # dropping them would put features and metadata out of line
            raise IndexUnusable(f"index at {self.root} is unreadable (meta.sqlite has no sentence at rows "
                                f"{missing[:5]}); {REBUILD_HINT}")
        return [found[r] for r in rows]

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """Indexed documents, newest first (undated ones last), then by source; a page of them
        from `offset` when `limit` is given."""
        q = (
            "SELECT d.source, d.title, d.date, d.url, count(s.id), d.record, d.id FROM documents d "
            "LEFT JOIN sentences s ON s.doc = d.id GROUP BY d.id "
            "ORDER BY d.date IS NULL, d.date DESC, d.source, d.id LIMIT ? OFFSET ?"
        )
        rows = self._guard("meta.sqlite", lambda: self.db.execute(q, (-1 if limit is None else limit, offset)).fetchall())
        return [Article(*row) for row in rows]

    def documents_dated(self, dates) -> np.ndarray:
        """A boolean per document id: is the document's date within `dates` (a recency.DateRange)?"""
        found = self._guard("meta.sqlite", lambda: self.db.execute("SELECT id, date FROM documents").fetchall())
        allowed = np.zeros(max((i for i, _ in found), default=0) + 1, dtype=bool)
        for doc, when in found:
            allowed[doc] = dates.holds(when)
        return allowed

    def byte_spans(self, rows) -> dict[int, tuple[int, int]]:
        """{row: (byte_start, byte_end)}: a sentence's span in bytes of its file (a text file's BOM
        counted) or of its JSON record's text as UTF-8.

        SQLite stores text as UTF-8, so the byte length of the text before a sentence is the
        length of that prefix cast to a blob; no document is read into Python.
        """
        rows = [int(r) for r in rows]
        if not rows:
            return {}
        q = (
            "SELECT s.row, d.bom + length(CAST(substr(d.text, 1, s.start) AS BLOB)), "
            "d.bom + length(CAST(substr(d.text, 1, s.\"end\") AS BLOB)) "
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


def read_manifest(root: Path, folder: Path) -> dict:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise IndexUnusable(f"index at {root} is unreadable (manifest: {e}); {REBUILD_HINT}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        version = manifest.get("format") if isinstance(manifest, dict) else None
        raise IndexUnusable(f"index at {root} has format {version!r}, this qa reads {FORMAT_VERSION}; {REBUILD_HINT}")
    try:
        int(manifest["counts"]["sentences"]), int(manifest["counts"]["passages"]), int(manifest["model"]["dim"])
    except (KeyError, TypeError, ValueError) as e:
        raise IndexUnusable(f"index at {root} is unreadable (manifest: missing {e}); {REBUILD_HINT}")
    return manifest


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


def _ann(path: Path, n: int):
    from .ann import load_ann

    index = load_ann(path)
    if index.ntotal != n:
        raise ValueError(f"{index.ntotal} vectors, expected {n}")
    return index


def _bm25(cls, folder: Path, n: int):
    bm25 = cls.load(folder)
    if bm25.num_docs != n or not len(bm25.data) == len(bm25.indices) == int(bm25.indptr[-1]):
        raise ValueError(f"{bm25.num_docs} rows (the index has {n}), or its postings are cut short")
    return bm25
