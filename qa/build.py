"""Build or update an index incrementally: only new and changed documents are embedded.

A document is unchanged when its file's bytes hash the same (the file is not even parsed) or,
for multi-record JSON files, when the record's content hash is the same. Ids only grow: a changed
document gets new sentence ids, and ids of removed ones are never handed out again.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from . import store
from .chunk import Passage, Sentence, chunk
from .config import default_corpus, default_model
from .errors import IndexUnusable, QAError
from .index import FORMAT_VERSION, REBUILD_HINT, SCHEMA, Index
from .lexical import TERMS_VERSION, Bm25
from .ingest import SUPPORTED_SUFFIXES, Document, file_hash, find_files, parse


class Progress(Protocol):
    def task(self, description: str, total: int) -> Callable[[int], None]: ...


class _Silent:
    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None


@dataclass
class IndexReport:
    documents: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    sentences: int = 0
    embedded: int = 0  # texts run through the model in this update
    embed_seconds: float = 0.0  # time spent in the model (the rest is reading, chunking, writing)
    warnings: list[str] = field(default_factory=list)
    generation: str | None = None  # None when nothing changed and nothing was written
    seconds: float = 0.0


def build(
    root: Path,
    paths: list[Path] | None = None,
    model: Path | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> IndexReport:
    """Index `paths` (plus the folders indexed before) into the index folder `root`."""
    t0 = time.perf_counter()
    progress = progress or _Silent()
    report = IndexReport()

    def _warn(msg: str) -> None:
        report.warnings.append(msg)
        if warn:
            warn(msg)

    with store.write_lock(root):
        old = None if rebuild or store.current_generation(root) is None else Index.open(root)
        roots = _roots(old, paths)
        for r in roots:
            if not r.exists():
                raise QAError(f"corpus path '{r}' not found; pass existing files or folders to `qa index`, or --corpus DIR")
        model_dir = _model_to_export(old, model)

        files = find_files(roots)
        if not files:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            raise QAError(f"no articles found in {', '.join(map(str, roots))} (looked for {kinds})")

        old_files, old_docs = _old_state(old)
        kept: list[int] = []  # old document ids carried over unchanged
        fresh: list[Document] = []
        seen_keys: set[str] = set()
        file_hashes: dict[str, str] = {}
        for f in files:
            try:
                data = f.read_bytes()
            except OSError as e:
                _warn(f"skipped {f.source}: {e.strerror or e}")
                continue
            h = file_hashes[f.source] = file_hash(data)
            if old_files.get(f.source, (None,))[0] == h:
                for key in old_files[f.source][1]:
                    kept.append(old_docs[key][0])
                    seen_keys.add(key)
                continue
            for doc in parse(f, data, _warn):
                seen_keys.add(doc.key)
                prev = old_docs.get(doc.key)
                if prev and prev[1] == doc.content_hash:
                    kept.append(prev[0])
                else:
                    fresh.append(doc)
                    report.changed += prev is not None
                    report.added += prev is None
        report.removed = len(set(old_docs) - seen_keys)
        report.unchanged = len(kept)
        report.documents = len(kept) + len(fresh)
        if report.documents == 0:
            raise QAError(f"no readable articles in {', '.join(map(str, roots))}; nothing was indexed")

        roots_changed = old is None or old.manifest.get("roots") != [str(r) for r in roots]
        terms_changed = old is not None and old.manifest.get("terms", 1) != TERMS_VERSION
        if old and not fresh and not report.removed and not roots_changed and not terms_changed and file_hashes == {s: h for s, (h, _) in old_files.items()}:
            report.sentences = old.sentence_count
            _drop_other_exports(root, keep=old.model_folder)
            report.seconds = time.perf_counter() - t0
            return report

        encoder = _encoder(root, old, model_dir)
        gen = _write_generation(root, old, roots, encoder, kept, fresh, file_hashes, progress, report)
        report.generation = gen.name
        _drop_other_exports(root, keep=encoder.folder)
        report.seconds = time.perf_counter() - t0
        return report


def _drop_other_exports(root: Path, keep: Path) -> None:
    """Retire the index's own models/ folder of earlier qa versions (~110 MB each): the export
    the live generation still reads from there moves to the shared cache, the rest goes.
    Runs under the write lock, after every `qa index`."""
    from .exports import retire_index_exports

    retire_index_exports(root, keep)


def _model_to_export(old: Index | None, model: Path | None) -> Path | None:
    """The model folder to embed with, checked; None means the export is there already: the one
    the old index was built with, or (a new index) the shipped default model's."""
    model_dir = model or default_model()
    if model_dir is not None:
        if not model_dir.is_dir():
            raise QAError(f"model folder '{model_dir}' not found; pass --model DIR (a sentence-transformers folder)")
        if old:
            old.check_model(model_dir)
    if old is None or old.find_model_folder() is not None:
        return model_dir  # None: the old index's export, or (a new index) the shipped one
    # The old index's export is gone from the cache: export its model again, if it is still there.
    from .embed import ensure_exported

    from .exports import SHIPPED_SOURCE

    source = model_dir or Path(old.manifest["model"].get("model_path", ""))
    if str(source) == SHIPPED_SOURCE:  # qa was upgraded to newly tuned default weights
        raise IndexUnusable(f"index at {old.root} was built with another version of qa's default model; {REBUILD_HINT}")
    if not (source / "config.json").is_file():
        raise IndexUnusable(
            f"index at {old.root} was built with model {old.model_id}, whose ONNX export is not in "
            f"{old.model_folder.parent} and whose folder '{source}' is gone; pass --model DIR (that model), "
            f"or {REBUILD_HINT}"
        )
    old.check_model(source)
    ensure_exported(source)
    return None


def _encoder(root: Path, old: Index | None, model_dir: Path | None):
    """Load the encoder only once there is something to embed: exporting a new model takes ~15 s."""
    from .embed import OnnxEncoder, ensure_exported
    from .exports import SHIPPED_EXPORT

    if model_dir is None:
        folder = old.model_folder if old else SHIPPED_EXPORT
    else:
        folder = ensure_exported(model_dir)
    try:
        return OnnxEncoder(folder)
    except Exception as e:  # a damaged export fails in onnxruntime or tokenizers, each with its own types
        if folder == SHIPPED_EXPORT:
            raise QAError(f"the model shipped with qa ({folder}) is unreadable ({e}); reinstall qa") from None
        if model_dir is None:
            raise IndexUnusable(
                f"model export {folder} is unreadable ({e}); delete that folder and run `qa index` to export "
                f"the model again, or {REBUILD_HINT}"
            ) from None
    # We were asked to export this model anyway: replace the damaged copy in the cache.
    shutil.rmtree(folder)
    return OnnxEncoder(ensure_exported(model_dir))


def _roots(old: Index | None, paths: list[Path] | None) -> list[Path]:
    before = [Path(p) for p in old.manifest.get("roots", [])] if old else []
    if not paths:
        return before or [default_corpus()]
    out = list(before)
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def _old_state(old: Index | None) -> tuple[dict[str, tuple[str, list[str]]], dict[str, tuple[int, str]]]:
    """{source: (file hash, [doc keys])} and {doc key: (doc id, content hash)} of the old index."""
    if old is None:
        return {}, {}
    files: dict[str, tuple[str, list[str]]] = {}
    docs: dict[str, tuple[int, str]] = {}
    try:
        for source, h in old.db.execute("SELECT source, hash FROM files"):
            files[source] = (h, [])
        for doc_id, key, source, h in old.db.execute("SELECT id, key, source, hash FROM documents"):
            docs[key] = (doc_id, h)
            if source in files:
                files[source][1].append(key)
    except sqlite3.Error as e:
        raise IndexUnusable(f"index at {old.root} is unreadable ({e}); {REBUILD_HINT}")
    return files, docs


def _write_generation(root, old, roots, encoder, kept, fresh, file_hashes, progress, report) -> Path:
    counters = dict(old.manifest["next_ids"]) if old else {"document": 1, "sentence": 1, "passage": 1}

    # Chunk and embed the new documents.
    chunks: list[tuple[int, Document, list[Sentence], list[Passage]]] = []
    tick = progress.task("Reading articles", len(fresh))
    for doc in fresh:
        sentences, passages = chunk(doc, encoder.count_tokens, encoder.token_budget)
        chunks.append((counters["document"], doc, sentences, passages))
        counters["document"] += 1
        tick(1)
    texts = [s.text for _, _, ss, _ in chunks for s in ss] + [p.text for _, _, _, ps in chunks for p in ps]
    distinct = list(dict.fromkeys(texts))  # embed each distinct text once
    tick = progress.task("Embedding", len(distinct))
    t0 = time.perf_counter()
    vectors = encoder.encode(distinct, progress=tick)
    report.embed_seconds = time.perf_counter() - t0
    report.embedded = len(distinct)
    vector_of = {t: i for i, t in enumerate(distinct)}

    tmp = store.new_generation_dir(root)
    try:
        con = sqlite3.connect(tmp / "meta.sqlite")
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO files VALUES (?, ?)", sorted(file_hashes.items()))
        if old and kept:
            con.execute("ATTACH DATABASE ? AS old", ((old.folder / "meta.sqlite").as_posix(),))
            con.execute("CREATE TEMP TABLE kept (id INTEGER PRIMARY KEY)")
            con.executemany("INSERT INTO kept VALUES (?)", [(i,) for i in kept])
            con.execute("INSERT INTO documents SELECT * FROM old.documents WHERE id IN (SELECT id FROM kept)")
            con.execute("INSERT INTO sentences SELECT id, doc, paragraph, start, \"end\", text, -1 - row FROM old.sentences WHERE doc IN (SELECT id FROM kept)")
            con.execute("INSERT INTO passages SELECT id, doc, paragraph, first, last, start, \"end\", -1 - row FROM old.passages WHERE doc IN (SELECT id FROM kept)")
            con.commit()
            con.execute("DETACH DATABASE old")

        new_sentence_vec: dict[int, int] = {}
        new_passage_vec: dict[int, int] = {}
        for doc_id, doc, sentences, passages in chunks:
            con.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, doc.key, doc.source, doc.title, doc.date, doc.url, doc.content_hash, doc.text, doc.record, doc.bom),
            )
            ids = []
            for s in sentences:
                sid = counters["sentence"]
                counters["sentence"] += 1
                ids.append(sid)
                new_sentence_vec[sid] = vector_of[s.text]
                con.execute(
                    "INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?, 0)", (sid, doc_id, s.paragraph, s.start, s.end, s.text)
                )
            for p in passages:
                pid = counters["passage"]
                counters["passage"] += 1
                new_passage_vec[pid] = vector_of[p.text]
                con.execute(
                    "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                    (pid, doc_id, p.paragraph, ids[p.first], ids[p.last], p.start, p.end),
                )

        # Rows follow id order. Old rows were stashed as -1 - row to find their vectors.
        sent_matrix, sent_ids, texts_by_row = _assign_rows(con, "sentences", old, "sentence_vectors", new_sentence_vec, vectors)
        pass_matrix, pass_ids, _ = _assign_rows(con, "passages", old, "passage_vectors", new_passage_vec, vectors)
        con.commit()
        np.save(tmp / "sentences.rows.npy", _row_table(con, len(sent_ids)))
        con.close()

        import faiss

        from .ann import build_ann, index_type

        for name, matrix, ids in (("sentences", sent_matrix, sent_ids), ("passages", pass_matrix, pass_ids)):
            faiss.write_index(build_ann(matrix), str(tmp / f"{name}.faiss"))
            np.save(tmp / f"{name}.ids.npy", ids)

        (tmp / "bm25").mkdir()
        Bm25.build(texts_by_row, tmp / "bm25")

        manifest = {
            "format": FORMAT_VERSION,
            "terms": TERMS_VERSION,
            "model": {"model_id": encoder.spec.model_id, "model_path": encoder.spec.model_path, "dim": encoder.dim,
                      "onnx_file": encoder.spec.onnx_file},
            "roots": [str(r) for r in roots],
            "counts": {"documents": report.documents, "sentences": len(sent_ids), "passages": len(pass_ids)},
            "next_ids": counters,
            "index_type": index_type(len(sent_ids)),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        report.sentences = len(sent_ids)
        return store.commit_generation(root, tmp)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


ROW_TABLE = np.dtype([("doc", "<i4"), ("paragraph", "<i4"), ("passage0", "<i4"), ("passage1", "<i4")])


def _row_table(con, n: int) -> np.ndarray:
    """Per sentence row: its document, paragraph and up to two passage rows holding it.

    Ranking reads these for ~100 candidates per question; as a memory-mapped array they cost
    nothing at start-up, where a SQLite scan of a million rows would take a second.
    """
    table = np.full(n, -1, dtype=ROW_TABLE)
    for row, doc, paragraph in con.execute("SELECT row, doc, paragraph FROM sentences"):
        table[row]["doc"], table[row]["paragraph"] = doc, paragraph
    spans = con.execute(
        "SELECT p.row, a.row, b.row FROM passages p JOIN sentences a ON a.id = p.first JOIN sentences b ON b.id = p.last ORDER BY p.row"
    )
    for prow, first, last in spans:
        for r in range(first, last + 1):
            slot = "passage0" if table[r]["passage0"] < 0 else "passage1"
            table[r][slot] = prow
    return table


def _assign_rows(con, table, old, vectors_attr, new_vec, vectors):
    rows = con.execute(f"SELECT id, row FROM {table} ORDER BY id").fetchall()
    dim = vectors.shape[1] if len(vectors) else (old.manifest["model"]["dim"] if old else 0)
    matrix = np.zeros((len(rows), dim), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    stashed = [(i, -1 - r[1]) for i, r in enumerate(rows) if r[1] < 0]
    if stashed:
        old_index, _ = getattr(old, vectors_attr)
        new_rows, old_rows = zip(*stashed)
        matrix[list(new_rows)] = old_index.reconstruct_batch(np.array(old_rows, dtype=np.int64))
    for i, (sid, _) in enumerate(rows):
        if sid in new_vec:
            matrix[i] = vectors[new_vec[sid]]
    con.executemany(f"UPDATE {table} SET row = ? WHERE id = ?", [(i, r[0]) for i, r in enumerate(rows)])
    texts = [t for (t,) in con.execute(f"SELECT text FROM {table} ORDER BY id")] if table == "sentences" else None
    return matrix, ids, texts
