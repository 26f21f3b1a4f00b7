"""Sentences in Milvus (a server, a cluster, or Milvus Lite for a `*.db` URI): the read side.

Three collections per name (written by qa.stores.milvus_build):
    NAME          one row per sentence: id (int64, primary), vector (FLOAT_VECTOR, IP), `terms`
                  (qa's own BM25 tokens, space-joined) feeding a BM25 Function into `sparse`,
                  the text, offsets (characters and bytes), paragraph, document id, the ids of
                  the sentences before and after it in its document and of its (up to 2)
                  passages, a headline flag, and the document's key, source, title, date, url,
                  record (denormalised: one get answers a candidate)
    NAME_passages one row per passage: id, doc, vector (read per candidate, never searched)
    NAME_docs     the document manifest: key (primary), doc id, source, file and content hashes,
                  metadata, sentence count; plus one row MANIFEST_KEY holding the model and roots

Ids are 63-bit hashes (document key + content hash + position), so several machines can index
into one collection without handing out ids; neighbours are stored ids, not row arithmetic.

BM25: Milvus scores with its own statistics (per segment) and parameters; scores come back as
negative distances and are turned back into scores, divided by (k1 + 1) to be on the Lucene
scale of the folder index. The collection is created with qa's k1 and b (qa.lexical), so the
scores equal the folder's where Milvus's statistics cover the same sentences; Milvus keeps them
per segment (IDF differs slightly once a collection spans several segments; BENCHMARKS.md).
"""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import IndexUnusable, QAError
from ..index import Article, StoredSentence
from ..lexical import term_sets
from . import MILVUS_TOKEN_ENV, ROW_INFO

MANIFEST_KEY = "\x00qa-manifest"
MILVUS_LITE_K1 = 1.5  # Milvus Lite's default, for a collection whose manifest does not say
LEXICAL_POOL = 10  # the BM25 search returns this many times LEXICAL_K; others are scored on demand
PAGE = 10_000  # rows per query page (Milvus caps offset + limit at 16384)
META_FIELDS = ["id", "doc", "paragraph", "start", "end", "text", "source", "title", "key", "date", "url", "record",
               "passage0", "passage1", "prev", "next", "headline", "byte_start", "byte_end"]


def connect(uri: str):
    """A MilvusClient for `uri`; the token, if any, only from $QA_MILVUS_TOKEN (never printed)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise QAError("--milvus needs the scale extra: pip install 'qa[scale]'") from None
    # Both log failures with tracebacks on stderr; qa says what failed in its own one line.
    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    lite = uri.endswith(".db")
    if lite:
        Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    token = os.environ.get(MILVUS_TOKEN_ENV)
    try:
        return MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
    except Exception as e:  # pymilvus raises its own types, grpc its own; the token is not in either message
        hint = "; Milvus Lite opens a .db from one process at a time: is another qa using it?" if lite else ""
        raise QAError(f"cannot connect to Milvus at {uri} ({_short(e)}){hint}") from None


def _short(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    token = os.environ.get(MILVUS_TOKEN_ENV)
    if token:
        msg = msg.replace(token, "***")
    return msg.splitlines()[0][:300] if msg else type(e).__name__


def date_filter(dates) -> str | None:
    """A recency.DateRange as a Milvus expression over the ISO `date` field ("" when undated).
    A date's prefix compares to a bound as the whole date does, and '~' sorts after every
    character of an ISO date, so `until` includes every date that starts with it."""
    if not dates:
        return None
    parts = ['date != ""']
    if dates.since:
        parts.append(f'date >= "{dates.since}"')
    if dates.until:
        parts.append(f'date < "{dates.until}~"')
    return " and ".join(parts)


class MilvusStore:
    """qa.stores.SentenceStore over a Milvus collection."""

    def __init__(self, client, uri: str, name: str, manifest: dict) -> None:
        self.client, self.uri, self.name, self.manifest = client, uri, name, manifest
        self.root = f"{uri} collection {name}"  # for messages, as Index.root
        self.k1 = float(manifest.get("bm25", {}).get("k1", MILVUS_LITE_K1))
        self._meta: dict[int, dict] = {}  # metadata of recently fetched sentences

    @classmethod
    def open(cls, uri: str, name: str) -> "MilvusStore":
        client = connect(uri)
        try:
            for c in (name, f"{name}_passages", f"{name}_docs"):
                if not client.has_collection(c):
                    raise IndexUnusable(f"no collection '{name}' at {uri}; build it with `qa index --milvus {uri} --collection {name}`")
                client.load_collection(c)  # a collection must be loaded again after a restart
            rows = client.get(f"{name}_docs", ids=[MANIFEST_KEY], output_fields=["info"])
            if not rows:
                raise IndexUnusable(f"collection '{name}' at {uri} has no manifest (an interrupted first `qa index`?); run `qa index --milvus {uri} --collection {name}`")
            manifest = json.loads(rows[0]["info"])
            (count,) = client.query(name, filter="", output_fields=["count(*)"])
            (docs,) = client.query(f"{name}_docs", filter=f'key != "{MANIFEST_KEY}"', output_fields=["count(*)"])
            manifest["counts"] = {"sentences": int(count["count(*)"]), "documents": int(docs["count(*)"])}
        except QAError:
            client.close()
            raise
        except Exception as e:
            client.close()
            raise IndexUnusable(f"cannot read collection '{name}' at {uri} ({_short(e)})") from None
        return cls(client, uri, name, manifest)

    # -- model ---------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.manifest["model"]["model_id"]

    @property
    def sentence_count(self) -> int:
        return int(self.manifest["counts"]["sentences"])

    def check_model(self, model_dir: Path | None) -> None:
        if model_dir is None:
            return
        from ..embed import model_id

        if model_id(model_dir) != self.model_id:
            raise IndexUnusable(f"collection '{self.name}' was built with model {self.model_id}, not {model_id(model_dir)}")

    @cached_property
    def encoder(self):
        from ..embed import OnnxEncoder
        from ..exports import find_export

        folder = find_export(self.model_id)
        if folder is None:
            raise IndexUnusable(f"collection '{self.name}' embeds with model {self.model_id}, whose ONNX export is not here; "
                                f"run `qa index --milvus {self.uri} --collection {self.name} --model DIR` to export it")
        return OnnxEncoder(folder)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    # -- searches ------------------------------------------------------------------------------
    def _call(self, what: str, fn):
        try:
            return fn()
        except QAError:
            raise
        except Exception as e:
            raise IndexUnusable(f"Milvus {what} on collection '{self.name}' at {self.uri} failed ({_short(e)})") from None

    def nearest(self, query_vec: np.ndarray, k: int, dates=None) -> np.ndarray:
        hits = self._call("search", lambda: self.client.search(
            self.name, data=[np.asarray(query_vec, np.float32).tolist()], anns_field="vector", limit=k,
            filter=date_filter(dates) or "", output_fields=["id"], search_params={"metric_type": "IP"}))[0]
        return np.array([h["id"] for h in hits], dtype=np.int64)

    def lexical(self, terms: list[str], k: int, dates=None) -> "MilvusLexical":
        return MilvusLexical(self, terms, k, date_filter(dates))

    def _bm25(self, text: str, limit: int, expr: str) -> dict[int, float]:
        hits = self._call("BM25 search", lambda: self.client.search(
            self.name, data=[text], anns_field="sparse", limit=limit, filter=expr, output_fields=["id"],
            search_params={"metric_type": "BM25"}))[0]
        # Distances are negated scores; Milvus's tf part carries a (k1 + 1) factor Lucene's lacks.
        return {int(h["id"]): -float(h["distance"]) / (self.k1 + 1.0) for h in hits if h["distance"] < 0}

    # -- per sentence --------------------------------------------------------------------------
    def _fetch(self, ids) -> list[dict]:
        ids = [int(i) for i in ids]
        missing = [i for i in dict.fromkeys(ids) if i not in self._meta]
        if missing:
            if len(self._meta) > 50_000:
                self._meta.clear()
            for row in self._call("get", lambda: self.client.get(self.name, ids=missing, output_fields=META_FIELDS)):
                self._meta[int(row["id"])] = row
        absent = [i for i in ids if i not in self._meta]
        if absent:
            raise IndexUnusable(f"collection '{self.name}' at {self.uri} has no sentence {absent[:5]} (changed while reading?); ask again")
        return [self._meta[i] for i in ids]

    def row_info(self, ids) -> np.ndarray:
        rows = self._fetch(ids)
        out = np.zeros(len(rows), dtype=ROW_INFO)
        for name in ROW_INFO.names:
            out[name] = [r[name] for r in rows]
        return out

    def _vectors(self, collection: str, ids) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, int(self.manifest["model"]["dim"])), np.float32)
        got = {int(r["id"]): r["vector"] for r in self._call("get", lambda: self.client.get(collection, ids=ids, output_fields=["vector"]))}
        return np.array([got[i] for i in ids], dtype=np.float32)

    def sentence_vectors_at(self, ids) -> np.ndarray:
        return self._vectors(self.name, ids)

    def passage_vectors_at(self, ids) -> np.ndarray:
        return self._vectors(f"{self.name}_passages", ids)

    def sentences_at(self, ids) -> list[StoredSentence]:
        return [StoredSentence(r["id"], r["id"], r["doc"], r["paragraph"], r["start"], r["end"], r["text"], r["source"],
                               r["title"], r["key"], r["date"] or None, r["url"] or None, r["record"] or None)
                for r in self._fetch(ids)]

    def byte_spans(self, ids) -> dict[int, tuple[int, int]]:
        return {int(r["id"]): (int(r["byte_start"]), int(r["byte_end"])) for r in self._fetch(ids)}

    def paragraph_text(self, doc: int, paragraph: int) -> tuple[int, int, str]:
        """(start, end, text) of a paragraph; its sentences joined by a space (the document's own
        text between them is not stored in Milvus)."""
        rows = self._call("query", lambda: self.client.query(self.name, filter=f"doc == {int(doc)} and paragraph == {int(paragraph)}",
                                                              output_fields=["start", "end", "text"]))
        rows.sort(key=lambda r: r["start"])
        return rows[0]["start"], rows[-1]["end"], " ".join(r["text"] for r in rows)

    # -- documents -----------------------------------------------------------------------------
    def documents(self, expr: str = "", fields=("key", "doc", "source", "title", "date", "url", "record", "sentences",
                                                "file_hash", "content_hash")) -> list[dict]:
        return read_documents(self.client, self.name, expr, list(fields))

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """As the folder's: newest first (undated last), then by source; a page when `limit` is given."""
        docs = self.documents()
        docs.sort(key=lambda d: (d["source"], d["key"]))
        docs.sort(key=lambda d: d["date"] or "", reverse=True)
        docs.sort(key=lambda d: not d["date"])
        docs = docs[offset:] if limit is None else docs[offset : offset + limit]
        return [Article(d["source"], d["title"], d["date"] or None, d["url"] or None, int(d["sentences"]), d["record"] or None,
                        int(d["doc"])) for d in docs]

    def any_dated(self, dates) -> bool:
        return bool(self.documents(date_filter(dates) or "", fields=("key",)))

    def newer(self) -> None:
        return None  # a collection is always the live one

    def release(self) -> None:
        pass

    def close(self) -> None:
        self.client.close()


def read_documents(client, name: str, expr: str, fields: list[str]) -> list[dict]:
    """Every document row (the manifest row left out), page by page."""
    where = f'key != "{MANIFEST_KEY}"' + (f" and ({expr})" if expr else "")
    out: list[dict] = []
    while True:
        page = client.query(f"{name}_docs", filter=where + (f' and key > "{_esc(out[-1]["key"])}"' if out else ""),
                            output_fields=fields, limit=PAGE)
        page.sort(key=lambda d: d["key"])
        out.extend(page)
        if len(page) < PAGE:
            return out


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


class MilvusLexical:
    """BM25 for one question from Milvus (qa.stores.LexicalHits). One search returns a pool of
    LEXICAL_POOL x k; a candidate outside it (a dense hit, a neighbour) is scored by a second
    search restricted to those ids."""

    def __init__(self, store: MilvusStore, terms: list[str], k: int, expr: str | None) -> None:
        self.store, self.terms, self.expr = store, terms, expr or ""
        self.text = " ".join(terms)
        self.limit = k * LEXICAL_POOL
        self.found = store._bm25(self.text, self.limit, self.expr) if terms else {}
        self.top = np.array(list(self.found)[:k], dtype=np.int64)
        self.best = max(self.found.values(), default=0.0)
        self.held: dict[int, set[str]] = {}  # document -> the question's terms it holds, once asked

    def scores(self, ids) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        missing = [int(i) for i in dict.fromkeys(ids.tolist()) if i not in self.found]
        if missing and self.terms and len(self.found) >= self.limit:  # a shorter pool holds every match
            expr = f"id in {missing}" + (f" and ({self.expr})" if self.expr else "")
            self.found.update(self.store._bm25(self.text, len(missing), expr))
        return np.array([self.found.get(int(i), 0.0) for i in ids], dtype=np.float32)

    def terms_in(self, ids, texts: list[str]) -> list[set[str]]:
        wanted = set(self.terms)
        return [wanted & t for t in term_sets(texts)]

    def terms_in_document(self, doc: int, terms=None) -> set[str]:
        """One query per document (remembered) for its sentences' stored BM25 tokens."""
        wanted = set(self.terms) if terms is None else set(self.terms) & set(terms)
        if not wanted:
            return set()
        if doc not in self.held:
            store = self.store
            rows = store._call("query", lambda: store.client.query(store.name, filter=f"doc == {int(doc)}", output_fields=["terms"]))
            self.held[doc] = set(self.terms) & {t for r in rows for t in r["terms"].split()}
        return wanted & self.held[doc]

