"""Build or update an index incrementally: only new and changed documents are embedded.

A document is unchanged when its file's bytes hash the same (the file is not even parsed) or,
for multi-record JSON files, when the record's content hash is the same. Ids only grow: a changed
document gets new sentence ids, and ids of removed ones are never handed out again.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from . import store
from .chunk import Passage, Sentence, chunk
from .config import default_model
from .errors import IndexUnusable, QAError
from .index import FORMAT_VERSION, REBUILD_HINT, SCHEMA, Index
from .lexical import TERMS_VERSION, Bm25
from .roots import find_sources, live_manifest, remembered, resolve_roots
from .ingest import SUPPORTED_SUFFIXES, Document, read_changed


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
    embed: Callable | None = None,
) -> IndexReport:
    """Index `paths` (plus the folders indexed before) into the index folder `root`.
    `embed(texts, export_folder, tick)`, when given, embeds instead of this process (qa.distributed)."""
    t0 = time.perf_counter()
    progress = progress or _Silent()
    report = IndexReport()

    def _warn(msg: str) -> None:
        report.warnings.append(msg)
        if warn:
            warn(msg)

    store.check_index_folder(root)
    before = set(os.listdir(root)) if root.is_dir() else None
    locked = False
    try:
        with store.write_lock(root):
            locked = True
            return _build_locked(root, paths, model, rebuild, progress, report, _warn, t0, embed)
    except BaseException:
        if locked and not (root / store.CURRENT).exists():
            _remove_new_entries(root, before)  # a failed first index leaves nothing behind
        raise


def _build_locked(root, paths, model, rebuild, progress, report, _warn, t0, embed=None) -> IndexReport:
    live = live_manifest(root)
    old = None
    if not rebuild and store.current_generation(root) is not None:  # a damaged CURRENT raises here
        if live is not None and isinstance(live.get("format"), int) and live["format"] < FORMAT_VERSION:
            _warn(f"the index at {root} was written by an older qa (format {live['format']}); rebuilding it (every article is embedded again)")
        else:
            old = Index.open(root)  # every part opened and checked, as `qa ask` does
    try:
        return _update(root, old, live, paths, model, progress, report, _warn, t0, embed)
    finally:
        if old is not None:
            old.close()


def _update(root, old, live, paths, model, progress, report, _warn, t0, embed=None) -> IndexReport:
    roots = resolve_roots(remembered(root, live), paths, _warn)
    for r in roots:
        if not r.path.exists():
            where = r.name if r.name == str(r.path) else f"{r.name}' ('{r.path}"
            raise QAError(f"corpus path '{where}' not found; pass existing files or folders to `qa index`")
    model_dir = _model_to_export(old, model)

    files = find_sources(roots)
    if not files:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise QAError(f"no articles found in {', '.join(r.name for r in roots)} (looked for {kinds})")

    old_files, old_docs = _old_state(old)
    kept: list[int] = []  # old document ids carried over unchanged
    fresh: list[Document] = []
    seen_keys: set[str] = set()
    file_hashes: dict[str, str] = {}
    for f, h, docs in read_changed(files, lambda source: old_files.get(source, (None,))[0], _warn):
        file_hashes[f.source] = h
        if docs is None:  # the file's bytes are unchanged
            for key in old_files[f.source][1]:
                kept.append(old_docs[key][0])
                seen_keys.add(key)
            continue
        for doc in docs:
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
        raise QAError(f"no readable articles in {', '.join(r.name for r in roots)}; nothing was indexed")

    roots_changed = old is None or old.manifest.get("roots") != [r.to_json() for r in roots]
    terms_changed = old is not None and old.manifest.get("terms", 1) != TERMS_VERSION
    if old and not fresh and not report.removed and not roots_changed and not terms_changed and file_hashes == {s: h for s, (h, _) in old_files.items()}:
        _ = old.encoder  # the model export is checked too: an emptied one is not "up to date"
        report.sentences = old.sentence_count
        store.drop_old_generations(root)  # generations a reader held at the last commit
        _drop_other_exports(root, keep=old.model_folder)
        report.seconds = time.perf_counter() - t0
        return report

    encoder = _encoder(root, old, model_dir)
    tmp = store.new_generation_dir(root)
    try:
        manifest = _write_generation(tmp, old, roots, encoder, kept, fresh, file_hashes, progress, report, embed)
        if old is not None:
            old.close()  # our own reader lock would keep the old generation alive
        gen = store.commit_generation(root, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store.drop_old_generations(root)
    report.generation = gen.name
    report.sentences = manifest["counts"]["sentences"]
    _drop_other_exports(root, keep=encoder.folder)
    report.seconds = time.perf_counter() - t0
    return report


def _remove_new_entries(root: Path, before: set[str] | None) -> None:
    """Undo a first index that failed: remove what it created (the folder itself if it was new)."""
    if before is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for name in set(os.listdir(root)) - before if root.is_dir() else ():
        p = root / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)


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


def _write_generation(tmp, old, roots, encoder, kept, fresh, file_hashes, progress, report, embed=None) -> dict:
    """Write the next generation into `tmp`: old rows copied in SQL and numpy (no Python loop over
    them), new documents chunked, embedded and appended. Returns its manifest."""
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
    vectors = embed(distinct, encoder.folder, tick) if embed else encoder.encode(distinct, progress=tick)
    report.embed_seconds = time.perf_counter() - t0
    report.embedded = len(distinct)
    vector_of = {t: i for i, t in enumerate(distinct)}

    con = sqlite3.connect(tmp / "meta.sqlite")
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO files VALUES (?, ?)", sorted(file_hashes.items()))

    # Old rows of kept documents. Rows follow id order and new ids are larger than every old one,
    # so kept rows keep their relative order and come first: new row = rank among kept rows.
    s_old = p_old = np.zeros(0, np.int64)
    if old and kept:
        kept_ids = np.array(sorted(kept), dtype=np.int64)
        s_old = np.flatnonzero(np.isin(old.rows["doc"], kept_ids))
        con.execute("ATTACH DATABASE ? AS old", ((old.folder / "meta.sqlite").as_posix(),))
        con.execute("CREATE TEMP TABLE kept (id INTEGER PRIMARY KEY)")
        con.executemany("INSERT INTO kept VALUES (?)", ((int(i),) for i in kept_ids))
        (rows_csv,) = con.execute("SELECT group_concat(row) FROM old.passages WHERE doc IN (SELECT id FROM kept)").fetchone()
        p_old = np.sort(np.array(rows_csv.split(","), dtype=np.int64)) if rows_csv else p_old
        con.execute("INSERT INTO documents SELECT * FROM old.documents WHERE id IN (SELECT id FROM kept)")
        con.execute('INSERT INTO sentences SELECT id, doc, paragraph, start, "end", text, row_number() OVER (ORDER BY id) - 1 '
                    "FROM old.sentences WHERE doc IN (SELECT id FROM kept)")
        con.execute('INSERT INTO passages SELECT id, doc, paragraph, first, last, start, "end", row_number() OVER (ORDER BY id) - 1 '
                    "FROM old.passages WHERE doc IN (SELECT id FROM kept)")
        con.commit()
        con.execute("DETACH DATABASE old")
        ns, np_ = con.execute("SELECT (SELECT count(*) FROM sentences), (SELECT count(*) FROM passages)").fetchone()
        if (ns, np_) != (len(s_old), len(p_old)):
            raise IndexUnusable(f"index at {old.root} is unreadable (meta.sqlite and sentences.rows.npy disagree); {REBUILD_HINT}")

    # New documents, appended after the kept rows.
    new_sent: list[tuple] = []
    new_pass: list[tuple] = []
    new_sent_vec: list[int] = []
    new_pass_vec: list[int] = []
    new_rows: list[tuple[int, int, int, int]] = []
    s_row, p_row = len(s_old), len(p_old)
    for doc_id, doc, sentences, passages in chunks:
        con.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc_id, doc.key, doc.source, doc.title, doc.date, doc.url, doc.content_hash, doc.text, doc.record, doc.bom),
        )
        first_row, ids = s_row + len(new_sent), []
        for s in sentences:
            ids.append(counters["sentence"])
            new_sent.append((counters["sentence"], doc_id, s.paragraph, s.start, s.end, s.text, first_row + len(ids) - 1))
            new_sent_vec.append(vector_of[s.text])
            new_rows.append([doc_id, s.paragraph, -1, -1])
            counters["sentence"] += 1
        for p in passages:
            prow = p_row + len(new_pass)
            new_pass.append((counters["passage"], doc_id, p.paragraph, ids[p.first], ids[p.last], p.start, p.end, prow))
            new_pass_vec.append(vector_of[p.text])
            counters["passage"] += 1
            for r in range(p.first, p.last + 1):
                slots = new_rows[first_row - s_row + r]
                slots[2 if slots[2] < 0 else 3] = prow
    con.executemany("INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?, ?)", new_sent)
    con.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", new_pass)
    con.commit()

    dim = encoder.dim
    n_sent, n_pass = len(s_old) + len(new_sent), len(p_old) + len(new_pass)
    sent_matrix = _write_vectors(tmp / "sentences.vectors.npy", old._sentence_matrix if old else None, s_old, vectors[new_sent_vec], dim)
    _write_vectors(tmp / "passages.vectors.npy", old.passage_vectors[0].vectors if old else None, p_old, vectors[new_pass_vec], dim)
    sent_ids = np.concatenate([np.asarray(old.sentence_vectors[1])[s_old] if old else np.zeros(0, np.int64),
                               np.array([t[0] for t in new_sent], dtype=np.int64)])
    pass_ids = np.concatenate([np.asarray(old.passage_vectors[1])[p_old] if old else np.zeros(0, np.int64),
                               np.array([t[0] for t in new_pass], dtype=np.int64)])
    np.save(tmp / "sentences.ids.npy", sent_ids)
    np.save(tmp / "passages.ids.npy", pass_ids)
    np.save(tmp / "sentences.rows.npy", _row_table(old, s_old, p_old, new_rows))

    from .ann import build_ann, index_type, refill

    kind = index_type(n_sent)
    if kind != "flat":  # the approximate structure, built from the exact vectors
        import faiss

        same_lists = old is not None and old.manifest.get("index_type") == kind
        ann = refill(old.folder / "sentences.faiss", sent_matrix) if same_lists else build_ann(sent_matrix)
        faiss.write_index(ann, str(tmp / "sentences.faiss"))

    (tmp / "bm25").mkdir()
    old_terms = old.folder / "bm25" if old else None
    if old_terms and old.manifest.get("terms") == TERMS_VERSION and (old_terms / "terms.npy").is_file():
        Bm25.update(old_terms, s_old, [t[5] for t in new_sent], tmp / "bm25")  # only new sentences tokenized
    else:
        Bm25.build([t for (t,) in con.execute("SELECT text FROM sentences ORDER BY row")], tmp / "bm25")
    con.close()

    manifest = {
        "format": FORMAT_VERSION,
        "terms": TERMS_VERSION,
        "model": {"model_id": encoder.spec.model_id, "model_path": encoder.spec.model_path, "dim": dim,
                  "onnx_file": encoder.spec.onnx_file},
        "roots": [r.to_json() for r in roots],
        "counts": {"documents": report.documents, "sentences": n_sent, "passages": n_pass},
        "next_ids": counters,
        "index_type": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


COPY_ROWS = 65_536  # old vectors are copied in blocks: memory stays bounded at any size


def _write_vectors(path: Path, old, old_rows: np.ndarray, new: np.ndarray, dim: int):
    """Write kept old vectors (exact copies) then the new ones into a .npy, in blocks with plain
    writes (a memory map would count every written page in this process's RSS: 5.5 GB at 1M).
    Returns the file as a RowFile, for building the IVF from it."""
    from .flat import RowFile

    n = len(old_rows) + len(new)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        offset = f.tell()
        for lo in range(0, len(old_rows), COPY_ROWS):
            f.write(np.ascontiguousarray(old[old_rows[lo : lo + COPY_ROWS]], dtype="<f4").tobytes())
        f.write(np.ascontiguousarray(new, dtype="<f4").reshape(len(new), dim).tobytes())
    return RowFile(str(path), (n, dim), offset)


ROW_TABLE = np.dtype([("doc", "<i4"), ("paragraph", "<i4"), ("passage0", "<i4"), ("passage1", "<i4")])


def _row_table(old, s_old: np.ndarray, p_old: np.ndarray, new_rows: list) -> np.ndarray:
    """Per sentence row: its document, paragraph and up to two passage rows holding it.

    Ranking reads these for ~100 candidates per question; as a memory-mapped array they cost
    nothing at start-up. Kept rows are copied with their passage rows renumbered (numpy);
    only the new rows are built in Python.
    """
    table = np.empty(len(s_old) + len(new_rows), dtype=ROW_TABLE)
    if len(s_old):
        kept = np.asarray(old.rows[s_old])
        renumber = np.full(int(old.manifest["counts"]["passages"]) + 1, -1, dtype=np.int64)  # [-1] stays -1
        renumber[p_old] = np.arange(len(p_old))
        table[: len(s_old)] = kept
        for slot in ("passage0", "passage1"):
            table[slot][: len(s_old)] = renumber[kept[slot]]
    if new_rows:
        table[len(s_old) :] = np.array([tuple(r) for r in new_rows], dtype=ROW_TABLE)
    return table
