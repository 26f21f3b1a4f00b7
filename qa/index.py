"""A built index, opened read-only: the segments, tombstones and BM25 statistics of one generation.

Files of a generation (format documented in embeddings/README.md):
    manifest.json   format version, model id and dimension, live counts, indexed roots, next ids,
                    the segments in row order, BM25 statistics over the live rows
    meta.sqlite     files (every indexed file and its hash), dead (tombstoned document ids)
    vocab.json      BM25 vocabulary (token -> id, shared by every segment)
    df.npy          per term id: live rows holding it
    tombstones/     per segment with deleted rows: <segment>.rows.npy, <segment>.docs.npy
    seg-NNNNNN/     immutable segments (qa/segment.py), hard links shared with other generations
    readers.lock    readers hold a shared flock on it (see qa.store)

A row (the id a SentenceStore hands out) is a segment's first row plus the row in that segment;
tombstoned rows are never returned. `Index.open` opens every part at once, under the generation's
reader lock, and an Index never changes afterwards: a writer swapping in a new generation cannot
pull a file from under it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import store
from .errors import IndexUnusable, QAError
from .stores.folder import FolderSearch

FORMAT_VERSION = 4
MAX_ATTACHED = 10  # SQLite attaches at most 10 databases by default: the merge policy keeps fewer segments
REBUILD_HINT = "rebuild it with `qa index --rebuild`"
# What a damaged or truncated file raises while being read (faiss adds RuntimeError, see _ann).
# Anything else escaping a load is a bug in qa and is left to raise as itself.
DAMAGE = (OSError, ValueError, EOFError, sqlite3.DatabaseError)

SCHEMA = """
CREATE TABLE files (source TEXT PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE dead (doc INTEGER PRIMARY KEY);
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
    def open(cls, root: Path | str) -> "Index":
        root = Path(root)  # library callers pass strings too
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
        from .segment import Segment

        dim, infos = int(self.manifest["model"]["dim"]), self.manifest["segments"]
        self.db = self._guard("meta.sqlite", self._open_db)
        self.segments = [Segment(self.folder / info["name"], info, dim, self._tombstones(info), self._guard) for info in infos]
        self._sbase = np.concatenate([[0], np.cumsum([g.n for g in self.segments])]).astype(np.int64)
        self._pbase = np.concatenate([[0], np.cumsum([g.npass for g in self.segments])]).astype(np.int64)
        self.bm25 = self._guard("BM25 statistics", self._open_bm25)

    def _tombstones(self, info: dict) -> np.ndarray:
        if not info.get("dead"):
            return np.zeros(0, np.int64)
        path = self.folder / "tombstones" / f"{info['name']}.rows.npy"
        dead = self._guard(f"tombstones/{path.name}", lambda: np.load(path, allow_pickle=False))
        if dead.dtype != np.int64 or dead.shape != (int(info["dead"]),):
            raise IndexUnusable(f"index at {self.root} is unreadable (tombstones/{path.name} holds {dead.dtype} {dead.shape}); {REBUILD_HINT}")
        return dead

    def _open_bm25(self):
        from .lexical import SegmentedBm25

        stats = self.manifest["bm25"]
        vocab = json.loads((self.folder / "vocab.json").read_text())
        df = np.load(self.folder / "df.npy", allow_pickle=False)
        if not isinstance(vocab, dict) or df.dtype != np.int64 or df.shape != (len(vocab),):
            raise ValueError(f"df.npy holds {df.dtype} {df.shape} for {len(vocab)} terms")
        return SegmentedBm25(vocab, df, int(stats["rows"]), int(stats["length"]), list(zip(self._sbase.tolist(), self.segments)),
                             int(self._sbase[-1]), float(stats["k1"]), float(stats["b"]))

    def _open_db(self) -> sqlite3.Connection:
        """The generation's database with every segment's attached, and views over their live rows
        (rows numbered as the index numbers them) for whole-index queries; per-row lookups query
        one segment directly, by its own row (indexed)."""
        # immutable=1: a generation never changes, so SQLite takes no locks and looks for no journal.
        uri = lambda p: p.resolve().as_uri() + "?mode=ro&immutable=1"  # noqa: E731
        con = sqlite3.connect(uri(self.folder / "meta.sqlite"), uri=True, check_same_thread=False)
        con.execute("SELECT count(*) FROM dead").fetchone()
        views: dict[str, list[str]] = {"documents": [], "sentences": [], "passages": []}
        sbase = pbase = 0
        for i, info in enumerate(self.manifest["segments"]):
            con.execute(f"ATTACH DATABASE ? AS s{i}", (uri(self.folder / info["name"] / "meta.sqlite"),))
            (count,) = con.execute(f"SELECT count(*) FROM s{i}.sentences").fetchone()
            if count != int(info["sentences"]):
                raise ValueError(f"{info['name']} has {count} sentences, the manifest says {info['sentences']}")
            live = "NOT IN (SELECT doc FROM main.dead)"
            views["documents"].append(f"SELECT * FROM s{i}.documents WHERE id {live}")
            views["sentences"].append(f'SELECT id, doc, paragraph, start, "end", text, row + {sbase} AS row FROM s{i}.sentences WHERE doc {live}')
            views["passages"].append(f'SELECT id, doc, paragraph, first, last, start, "end", row + {pbase} AS row FROM s{i}.passages WHERE doc {live}')
            sbase, pbase = sbase + int(info["sentences"]), pbase + int(info["passages"])
        for name, parts in views.items():
            con.execute(f"CREATE TEMP VIEW {name} AS {' UNION ALL '.join(parts)}")
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
        """Live sentences (tombstoned ones not counted)."""
        return int(self.manifest["counts"]["sentences"])

    @property
    def row_space(self) -> int:
        """Rows numbered in this generation, tombstoned ones included: every row is below it."""
        return int(self._sbase[-1])

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def _sentence_query(self, columns: str, rows) -> list[tuple]:
        """`columns` of sentences s joined with documents d, for rows (first column: the row);
        tombstoned rows are left out."""
        out = []
        for i, g, _, local in self._split(rows, self._sbase):
            local = np.setdiff1d(local, g.dead) if len(g.dead) else np.unique(local)
            base = int(self._sbase[i])
            for lo in range(0, len(local), 900):  # SQLite's default bound on parameters
                part = [int(r) for r in local[lo : lo + 900]]
                q = (f"SELECT s.row + {base}, {columns} FROM s{i}.sentences s JOIN s{i}.documents d ON d.id = s.doc "
                     f"WHERE s.row IN ({','.join('?' * len(part))})")
                out += self._guard("meta.sqlite", lambda: self.db.execute(q, part).fetchall())
        return out

    def sentences_at(self, rows) -> list[StoredSentence]:
        """Sentence metadata for rows, in the order given."""
        rows = [int(r) for r in rows]
        if not rows:
            return []
        cols = 's.id, s.row, s.doc, s.paragraph, s.start, s."end", s.text, d.source, d.title, d.key, d.date, d.url, d.record'
        found = {}
        try:
            for r in self._sentence_query(cols, rows):
                found[r[0]] = StoredSentence(*r[1:])
                found[r[0]].row = r[0]
        except IndexError:
            pass  # a row beyond the index: reported as missing below
        missing = [r for r in rows if r not in found]
        if missing:  # dropping them would put features and metadata out of line
            raise IndexUnusable(f"index at {self.root} is unreadable (meta.sqlite has no sentence at rows "
                                f"{missing[:5]}); {REBUILD_HINT}")
        return [found[r] for r in rows]

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """Indexed documents, newest first (undated ones last), then by source; a page of them
        from `offset` when `limit` is given."""
        q = (
            "SELECT d.source, d.title, d.date, d.url, (SELECT count(*) FROM sentences s WHERE s.doc = d.id), d.record, d.id "
            "FROM documents d ORDER BY d.date IS NULL, d.date DESC, d.source, d.id LIMIT ? OFFSET ?"
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
        cols = 'd.bom + length(CAST(substr(d.text, 1, s.start) AS BLOB)), d.bom + length(CAST(substr(d.text, 1, s."end") AS BLOB))'
        return {row: (start, end) for row, start, end in self._sentence_query(cols, rows)}

    def paragraph_text(self, doc: int, paragraph: int) -> tuple[int, int, str]:
        """(start, end, text) of a whole paragraph: from its first to its last sentence."""
        if self.db.execute("SELECT 1 FROM dead WHERE doc = ?", (doc,)).fetchone() is None:
            for i in range(len(self.segments)):
                start, end, text = self.db.execute(
                    f'SELECT min(s.start), max(s."end"), d.text FROM s{i}.sentences s JOIN s{i}.documents d ON d.id = s.doc '
                    "WHERE s.doc = ? AND s.paragraph = ?", (doc, paragraph)).fetchone()
                if start is not None:
                    return start, end, text[start:end]
        raise KeyError(f"no paragraph {paragraph} in document {doc}")


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
        int(manifest["bm25"]["rows"]), int(manifest["bm25"]["length"])
        if not manifest["segments"] or any(not str(g["name"]).startswith("seg-") or "/" in g["name"] for g in manifest["segments"]):
            raise ValueError("segments")
        for g in manifest["segments"]:
            int(g["sentences"]), int(g["passages"])
        if len(manifest["segments"]) > MAX_ATTACHED:
            raise ValueError(f"{len(manifest['segments'])} segments")
    except (KeyError, TypeError, ValueError) as e:
        raise IndexUnusable(f"index at {root} is unreadable (manifest: missing {e}); {REBUILD_HINT}")
    return manifest
