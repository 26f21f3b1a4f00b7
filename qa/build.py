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
from .lexical import TERMS_VERSION
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
    """Write the next generation into `tmp`: new documents chunked, embedded and written as one new
    segment; the old segments hard-linked, with the documents not kept tombstoned (qa.segment_write).
    Returns its manifest."""
    from .segment_write import write_segments

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
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(distinct), encoder.dim)

    segments = write_segments(tmp, old, kept, chunks, vectors, vector_of, counters, encoder.dim)
    con = sqlite3.connect(tmp / "meta.sqlite")
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO files VALUES (?, ?)", sorted(file_hashes.items()))
    con.executemany("INSERT INTO dead VALUES (?)", ((d,) for d in sorted(segments.dead_docs)))
    con.commit()
    counts = {k: 0 for k in ("sentences", "passages")}
    for e in segments.entries:
        counts["sentences"] += int(e["sentences"]) - int(e["dead"])
    dead_passages = 0
    for i, e in enumerate(segments.entries):
        if e["dead"]:
            con.execute("ATTACH DATABASE ? AS seg", ((tmp / e["name"] / "meta.sqlite").as_posix(),))
            (k,) = con.execute("SELECT count(*) FROM seg.passages WHERE doc IN (SELECT doc FROM dead)").fetchone()
            dead_passages += k
            con.execute("DETACH DATABASE seg")
    counts["passages"] = sum(int(e["passages"]) for e in segments.entries) - dead_passages
    con.close()
    kinds = list(dict.fromkeys(e["index_type"] for e in segments.entries))

    manifest = {
        "format": FORMAT_VERSION,
        "terms": TERMS_VERSION,
        "model": {"model_id": encoder.spec.model_id, "model_path": encoder.spec.model_path, "dim": encoder.dim,
                  "onnx_file": encoder.spec.onnx_file},
        "roots": [r.to_json() for r in roots],
        "counts": {"documents": report.documents, **counts},
        "next_ids": counters,
        "index_type": "+".join(kinds),
        "segments": segments.entries,
        "next_segment": segments.next_segment,
        "bm25": segments.bm25,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
