"""Writing segments (qa/segment.py) and the segment list of the next generation.

An update writes one segment with the new and changed documents, tombstones the rows of the
documents it replaces or removes, and hard-links every other segment of the old generation into
the new one: nothing old is copied or rewritten. BM25 keeps raw term frequencies per segment and
statistics over the live rows per generation (rows, total length, document frequency per term),
adjusted by the rows added and tombstoned. A tiered merge policy (`plan_merges`) rewrites a
segment only when it carries too many tombstones, or to keep at most MAX_SEGMENTS of them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import IndexUnusable
from .lexical import TERMS_VERSION, document_frequency, postings, row_terms, term_ids, tokenize
from .segment import ROW_TABLE, SEGMENT_SCHEMA

MAX_SEGMENTS = 8  # a question searches every segment; SQLite attaches at most 10 databases
MAX_DEAD_SHARE = 0.3  # a segment with more tombstoned rows than this is rewritten without them
COPY_ROWS = 65_536  # old vectors are copied in blocks: memory stays bounded at any size


@dataclass
class Source:
    """The live rows of an existing segment, to be copied into a merged one."""

    folder: Path
    info: dict
    dead_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dead_docs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def segment_name(number: int) -> str:
    return f"seg-{number:06d}"


def write_segment(folder: Path, dim: int, vocab: dict[str, int], sources: list[Source], chunks: list, vectors: np.ndarray,
                  vector_of: dict[str, int], counters: dict, retokenize: bool = False) -> dict:
    """Write a segment: the live rows of `sources` (copied in SQL and numpy, never re-embedded),
    then the new documents `chunks` ((doc id, Document, sentences, passages), embedded in `vectors`).
    New tokens are added to `vocab`; `retokenize` tokenizes every text again (a new tokenizer).
    Returns the segment's manifest entry."""
    from .flat import RowFile

    folder.mkdir()
    con = sqlite3.connect(folder / "meta.sqlite")
    con.executescript(SEGMENT_SCHEMA)
    con.execute("CREATE TEMP TABLE gone (doc INTEGER PRIMARY KEY)")
    s_parts, p_parts, ids, pids, tables, terms = [], [], [], [], [], []
    s_off = p_off = ndocs = 0
    for src in sources:
        n, npass = int(src.info["sentences"]), int(src.info["passages"])
        con.execute("ATTACH DATABASE ? AS src", ((src.folder / "meta.sqlite").as_posix(),))
        con.execute("DELETE FROM temp.gone")
        con.executemany("INSERT INTO temp.gone VALUES (?)", ((int(d),) for d in src.dead_docs))
        live = "NOT IN (SELECT doc FROM temp.gone)"
        ndocs += con.execute(f"INSERT INTO documents SELECT * FROM src.documents WHERE id {live}").rowcount
        con.execute('INSERT INTO sentences SELECT id, doc, paragraph, start, "end", text, row_number() OVER (ORDER BY row) - 1 + ? '
                    f"FROM src.sentences WHERE doc {live}", (s_off,))
        con.execute('INSERT INTO passages SELECT id, doc, paragraph, first, last, start, "end", row_number() OVER (ORDER BY row) - 1 + ? '
                    f"FROM src.passages WHERE doc {live}", (p_off,))
        kept_p = np.array([r for (r,) in con.execute(f"SELECT row FROM src.passages WHERE doc {live} ORDER BY row")], np.int64)
        con.commit()
        con.execute("DETACH DATABASE src")
        kept_s = np.setdiff1d(np.arange(n), src.dead_rows)
        (copied,) = con.execute("SELECT count(*) FROM sentences WHERE row >= ?", (s_off,)).fetchone()
        if copied != len(kept_s):
            raise IndexUnusable(f"segment {src.folder.name} is unreadable (meta.sqlite and its tombstones disagree); "
                                "rebuild it with `qa index --rebuild`")
        s_parts.append((RowFile(str(src.folder / "sentences.vectors.npy"), (n, dim), _npy_offset(src.folder / "sentences.vectors.npy")), kept_s))
        p_parts.append((RowFile(str(src.folder / "passages.vectors.npy"), (npass, dim), _npy_offset(src.folder / "passages.vectors.npy")), kept_p))
        ids.append(np.load(src.folder / "sentences.ids.npy", mmap_mode="r")[kept_s])
        pids.append(np.load(src.folder / "passages.ids.npy", mmap_mode="r")[kept_p])
        table = np.array(np.load(src.folder / "sentences.rows.npy", mmap_mode="r")[kept_s])
        renumber = np.full(npass + 1, -1, dtype=np.int64)  # [-1] stays -1
        renumber[kept_p] = np.arange(len(kept_p)) + p_off
        for slot in ("passage0", "passage1"):
            table[slot] = renumber[table[slot]]
        tables.append(table)
        if not retokenize:
            terms.append(row_terms(np.load(src.folder / "terms.npy", mmap_mode="r"), np.load(src.folder / "starts.npy"), kept_s))
        s_off, p_off = s_off + len(kept_s), p_off + len(kept_p)

    new_sent, new_pass, new_rows = _insert_new(con, chunks, counters, s_off, p_off)
    ndocs += len(chunks)
    con.commit()
    if retokenize:
        texts = [t for (t,) in con.execute("SELECT text FROM sentences ORDER BY row")]
    con.close()
    if not retokenize:
        terms.append(term_ids(tokenize([t[5] for t in new_sent]), vocab))
    else:
        terms = [term_ids(tokenize(texts), vocab)]

    n, npass = s_off + len(new_sent), p_off + len(new_pass)
    sent_file = _write_vectors(folder / "sentences.vectors.npy", s_parts, vectors[[vector_of[t[5]] for t in new_sent]], dim)
    _write_vectors(folder / "passages.vectors.npy", p_parts, vectors[[vector_of[t[-1]] for t in new_pass]], dim)
    np.save(folder / "sentences.ids.npy", np.concatenate(ids + [np.array([t[0] for t in new_sent], np.int64)]).astype(np.int64))
    np.save(folder / "passages.ids.npy", np.concatenate(pids + [np.array([t[0] for t in new_pass], np.int64)]).astype(np.int64))
    new_table = np.array([tuple(r) for r in new_rows], dtype=ROW_TABLE) if new_rows else np.zeros(0, ROW_TABLE)
    np.save(folder / "sentences.rows.npy", np.concatenate(tables + [new_table]).astype(ROW_TABLE))
    all_terms = np.concatenate([t for t, _ in terms]).astype(np.int32)
    lengths = np.concatenate([np.diff(s) for _, s in terms])
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    np.save(folder / "terms.npy", all_terms)
    np.save(folder / "starts.npy", starts)
    for name, array in zip(("indptr", "rows", "tf", "lengths"), postings(all_terms, starts, len(vocab))):
        np.save(folder / f"postings.{name}.npy", array)

    from . import ann

    kind = ann.index_type(n)
    if kind != "flat":  # the approximate structure, built once from the exact vectors
        import faiss

        faiss.write_index(ann.build_ann(sent_file), str(folder / "sentences.faiss"))
    return {"name": folder.name, "sentences": n, "passages": npass, "documents": ndocs, "index_type": kind, "dead": 0}


def _insert_new(con: sqlite3.Connection, chunks: list, counters: dict, s_row: int, p_row: int):
    """Insert the new documents' rows after the copied ones; returns their sentence rows (with
    text at [5]), passage rows (with text last) and row-table entries."""
    new_sent: list[tuple] = []
    new_pass: list[tuple] = []
    new_rows: list[list[int]] = []
    for doc_id, doc, sentences, passages in chunks:
        con.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc_id, doc.key, doc.source, doc.title, doc.date, doc.url, doc.content_hash, doc.text, doc.record, doc.bom),
        )
        first_row, ids = s_row + len(new_sent), []
        for s in sentences:
            ids.append(counters["sentence"])
            new_sent.append((counters["sentence"], doc_id, s.paragraph, s.start, s.end, s.text, first_row + len(ids) - 1))
            new_rows.append([doc_id, s.paragraph, -1, -1])
            counters["sentence"] += 1
        for p in passages:
            prow = p_row + len(new_pass)
            new_pass.append((counters["passage"], doc_id, p.paragraph, ids[p.first], ids[p.last], p.start, p.end, prow, p.text))
            counters["passage"] += 1
            for r in range(p.first, p.last + 1):
                slots = new_rows[first_row - s_row + r]
                slots[2 if slots[2] < 0 else 3] = prow
    con.executemany("INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?, ?)", new_sent)
    con.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [t[:-1] for t in new_pass])
    return new_sent, new_pass, new_rows


def _npy_offset(path: Path) -> int:
    m = np.load(path, mmap_mode="r", allow_pickle=False)
    offset = m.offset
    del m
    return offset


def _write_vectors(path: Path, parts: list, new: np.ndarray, dim: int):
    """Write the kept rows of each part (exact copies, read with pread) then the new vectors into
    a .npy, in blocks with plain writes (a memory map would count every written page in this
    process's RSS). Returns the file as a RowFile, for building an IVF from it."""
    from .flat import RowFile

    n = sum(len(rows) for _, rows in parts) + len(new)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, dim)})
        offset = f.tell()
        for source, rows in parts:
            for lo in range(0, len(rows), COPY_ROWS):
                f.write(np.ascontiguousarray(source[rows[lo : lo + COPY_ROWS]], dtype="<f4").tobytes())
        f.write(np.ascontiguousarray(new, dtype="<f4").reshape(len(new), dim).tobytes())
    return RowFile(str(path), (n, dim), offset)


def link_segment(src: Path, dst: Path) -> None:
    """Reuse an immutable segment in a new generation: a hard link per file, nothing copied
    (a copy only where the file system has no hard links)."""
    dst.mkdir()
    for f in src.iterdir():
        try:
            os.link(f, dst / f.name)
        except OSError:
            shutil.copy2(f, dst / f.name)


def plan_merges(segments: list[dict]) -> list[list[int]]:
    """Runs of adjacent segments (indexes into `segments`, oldest first) to merge into one each.

    Tiered, as Lucene's policy: a segment whose tombstones exceed MAX_DEAD_SHARE of its rows is
    rewritten; while there are more than MAX_SEGMENTS, the adjacent pair holding the fewest live
    rows is merged, so small segments merge with each other long before they touch a big one
    (a 1M-row segment is rewritten only when its tombstones call for it). Adjacent only: a
    segment's rows stay in the order documents were added, and documents never span segments."""
    live = [int(g["sentences"]) - int(g.get("dead", 0)) for g in segments]
    groups = [[i] for i in range(len(segments))]
    while len(groups) > MAX_SEGMENTS:
        sizes = [sum(live[i] for i in g) for g in groups]
        j = min(range(len(groups) - 1), key=lambda j: sizes[j] + sizes[j + 1])
        groups[j : j + 2] = [groups[j] + groups[j + 1]]
    dirty = {i for i, g in enumerate(segments) if int(g.get("dead", 0)) > MAX_DEAD_SHARE * max(int(g["sentences"]), 1)}
    return [g for g in groups if len(g) > 1 or g[0] in dirty]


def bm25_stats(terms: np.ndarray, starts: np.ndarray, nvocab: int) -> tuple[np.ndarray, int, int]:
    """(document frequency per term id, rows, total length) of a set of rows."""
    return document_frequency(terms, starts, nvocab), len(starts) - 1, int(starts[-1])


def write_tombstones(folder: Path, info: dict, rows: np.ndarray, docs: np.ndarray) -> None:
    (folder / "tombstones").mkdir(exist_ok=True)
    np.save(folder / "tombstones" / f"{info['name']}.rows.npy", np.sort(rows).astype(np.int64))
    np.save(folder / "tombstones" / f"{info['name']}.docs.npy", np.sort(docs).astype(np.int64))


def write_vocab(folder: Path, vocab: dict[str, int], df: np.ndarray) -> None:
    (folder / "vocab.json").write_text(json.dumps(vocab))
    np.save(folder / "df.npy", df.astype(np.int64))


@dataclass
class Segments:
    """What write_segments decided: the generation's segment list and BM25 statistics."""

    entries: list[dict]
    dead_docs: list[int]  # tombstoned document ids still held by a segment of the list
    bm25: dict  # rows, length (over live rows), k1, b
    next_segment: int


def write_segments(tmp: Path, old, kept: list[int], chunks: list, vectors: np.ndarray, vector_of: dict, counters: dict,
                   dim: int) -> Segments:
    """Fill the new generation `tmp` with segments: the old generation's, hard-linked, with the
    documents not in `kept` tombstoned; one new segment with `chunks`; then the merges
    plan_merges asks for. Without an old index (or with another tokenizer) one segment of all."""
    from .lexical import B, K1

    number = int(old.manifest.get("next_segment", 1)) if old else 1
    if old is None or old.manifest.get("terms") != TERMS_VERSION:
        vocab: dict[str, int] = {}
        sources = _sources(old, set(kept)) if old else []
        info = write_segment(tmp / segment_name(number), dim, vocab, sources, chunks, vectors, vector_of, counters, retokenize=bool(old))
        df, rows, length = bm25_stats(np.load(tmp / info["name"] / "terms.npy"), np.load(tmp / info["name"] / "starts.npy"), len(vocab))
        write_vocab(tmp, vocab, df)
        return Segments([info], [], {"rows": rows, "length": length, "k1": K1, "b": B}, number + 1)

    vocab = json.loads((old.folder / "vocab.json").read_text())
    df = np.array(np.load(old.folder / "df.npy"), dtype=np.int64)
    stats = dict(old.manifest["bm25"])
    sources = _sources(old, set(kept))
    for src, g in zip(sources, old.segments):  # take the newly tombstoned rows out of the statistics
        fresh_dead = np.setdiff1d(src.dead_rows, g.dead)
        if len(fresh_dead):
            t, st = row_terms(np.load(src.folder / "terms.npy", mmap_mode="r"), np.load(src.folder / "starts.npy"), fresh_dead)
            d, r, length = bm25_stats(t, st, len(df))
            df, stats["rows"], stats["length"] = df - d, stats["rows"] - r, stats["length"] - length
    entries: list[dict] = [dict(src.info, dead=len(src.dead_rows)) for src in sources]
    in_tmp: set[str] = set()
    if chunks:
        info = write_segment(tmp / segment_name(number), dim, vocab, [], chunks, vectors, vector_of, counters)
        number += 1
        d, r, length = bm25_stats(np.load(tmp / info["name"] / "terms.npy"), np.load(tmp / info["name"] / "starts.npy"), len(vocab))
        df = np.concatenate([df, np.zeros(len(vocab) - len(df), np.int64)]) + d
        stats["rows"], stats["length"] = stats["rows"] + r, stats["length"] + length
        entries.append(info)
        sources.append(Source(tmp / info["name"], info))
        in_tmp.add(info["name"])
    # A segment whose every document is tombstoned is simply left out.
    keep = [i for i, (e, src) in enumerate(zip(entries, sources)) if len(src.dead_docs) < int(e["documents"])]
    entries, sources = [entries[i] for i in keep], [sources[i] for i in keep]
    for run in reversed(plan_merges(entries)):  # from the end: indexes of earlier runs stay valid
        merged = write_segment(tmp / segment_name(number), dim, vocab, [sources[i] for i in run], [], vectors[:0], {}, counters)
        number += 1
        for i in run:
            if sources[i].info["name"] in in_tmp:
                shutil.rmtree(tmp / sources[i].info["name"])
        entries[run[0] : run[-1] + 1] = [merged]
        sources[run[0] : run[-1] + 1] = [Source(tmp / merged["name"], merged)]
        in_tmp.add(merged["name"])
    dead_docs: list[int] = []
    for e, src in zip(entries, sources):
        if e["name"] not in in_tmp:
            link_segment(old.folder / e["name"], tmp / e["name"])
        if e["dead"]:
            write_tombstones(tmp, e, src.dead_rows, src.dead_docs)
            dead_docs += src.dead_docs.tolist()
    write_vocab(tmp, vocab, df)
    return Segments(entries, dead_docs, stats, number)


def _sources(old, kept: set[int]) -> list[Source]:
    """The old index's segments with every document not in `kept` tombstoned (rows and ids)."""
    out = []
    for i, (info, g) in enumerate(zip(old.manifest["segments"], old.segments)):
        docs = [d for (d,) in old.db.execute(f"SELECT id FROM s{i}.documents")]
        gone = [d for d in docs if d not in kept]
        rows = []
        for lo in range(0, len(gone), 900):
            part = gone[lo : lo + 900]
            rows += [r for (r,) in old.db.execute(f"SELECT row FROM s{i}.sentences WHERE doc IN ({','.join('?' * len(part))})", part)]
        info = {k: v for k, v in info.items() if k != "dead"}
        out.append(Source(g.folder, info, np.unique(np.array(rows, np.int64)), np.array(sorted(gone), np.int64)))
    return out


__all__ = ["Source", "write_segment", "link_segment", "plan_merges", "segment_name", "TERMS_VERSION"]
