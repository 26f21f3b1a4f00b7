"""`qa bench --sizes`: cold `qa ask` and incremental updates as the collection grows.

Embedding a million real sentences takes hours on a laptop CPU, so larger indexes are made from
the real one (`inflate`): the articles are copied (hard links, in `copy-NNN/` folders, so `qa
index` sees real files), their SQLite rows copied with new ids, their BM25 fitted again over all
the texts (from the source's token ids), and their vectors are the real ones for the first copy and the real ones plus Gaussian
noise (sigma 0.03 per dimension, renormalised) for the others. Queries and updates then run
through the real `qa ask` and `qa index` in fresh processes. The vectors of copies are synthetic;
every other part (texts, tables, BM25, IVF, files) is what a collection of that size holds.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

import numpy as np

NOISE = 0.03


def inflate(src_root: Path, out: Path, copies: int, corpus: Path, seed: int = 0) -> int:
    """Write into `out` an index of `copies` copies of the index at `src_root` (one segment, no
    tombstones: a fresh `qa index`), over article files linked into `corpus`/copy-NNN/, as one
    segment, as a first `qa index` of that many articles writes it. Returns its sentence count."""
    from . import store
    from .ann import build_ann, index_type
    from .index import SCHEMA, Index
    from .lexical import document_frequency, postings
    from .segment import SEGMENT_SCHEMA

    corpus = corpus.resolve()
    src = Index.open(src_root)
    if len(src.segments) != 1 or len(src.segments[0].dead):
        raise ValueError("inflate needs an index of one segment without tombstones (run `qa index --rebuild`)")
    seg = src.segments[0]
    (root,) = src.manifest["roots"]
    old_prefix, src_dir = root["name"], Path(root["path"])
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(corpus, ignore_errors=True)
    out.mkdir(parents=True)
    for r in range(copies):
        shutil.copytree(src_dir, corpus / f"copy-{r:03d}", copy_function=os.link)

    nxt = src.manifest["next_ids"]
    n0, p0 = seg.n, seg.npass
    tmp = store.new_generation_dir(out)
    folder = tmp / "seg-000001"
    folder.mkdir()
    gen = sqlite3.connect(tmp / "meta.sqlite")
    gen.executescript(SCHEMA)
    gen.execute("ATTACH DATABASE ? AS gsrc", ((src.folder / "meta.sqlite").as_posix(),))
    con = sqlite3.connect(folder / "meta.sqlite")
    con.executescript(SEGMENT_SCHEMA)
    con.execute("ATTACH DATABASE ? AS src", ((seg.folder / "meta.sqlite").as_posix(),))
    doc_cols = [c[1] for c in con.execute("PRAGMA src.table_info(documents)")]
    renamed = {"id": "id + :do", "key": ":new || substr(key, :cut)", "source": ":new || substr(source, :cut)"}
    doc_select = ", ".join(renamed.get(c, f'"{c}"') for c in doc_cols)
    for r in range(copies):
        p = {"new": f"{corpus.as_posix()}/copy-{r:03d}", "cut": len(old_prefix) + 1, "do": r * nxt["document"],
             "so": r * nxt["sentence"], "po": r * nxt["passage"], "sr": r * n0, "pr": r * p0}
        gen.execute("INSERT INTO files SELECT :new || substr(source, :cut), hash FROM gsrc.files", {k: p[k] for k in ("new", "cut")})
        con.execute(f"INSERT INTO documents SELECT {doc_select} FROM src.documents", {k: p[k] for k in ("new", "cut", "do")})
        con.execute('INSERT INTO sentences SELECT id + :so, doc + :do, paragraph, start, "end", text, row + :sr FROM src.sentences',
                    {k: p[k] for k in ("so", "do", "sr")})
        con.execute('INSERT INTO passages SELECT id + :po, doc + :do, paragraph, first + :so, last + :so, start, "end", row + :pr '
                    "FROM src.passages", {k: p[k] for k in ("po", "do", "so", "pr")})
    con.commit()
    gen.commit()
    con.close()
    gen.close()

    rng = np.random.default_rng(seed)
    for name, base, n in (("sentences", seg.vectors, n0), ("passages", seg.pvectors, p0)):
        m = np.lib.format.open_memmap(folder / f"{name}.vectors.npy", mode="w+", dtype=np.float32, shape=(copies * n, src.manifest["model"]["dim"]))
        for r in range(copies):
            v = np.asarray(base[np.arange(n)], dtype=np.float32)
            if r:
                v += NOISE * rng.standard_normal(v.shape, dtype=np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
            m[r * n : (r + 1) * n] = v
        m.flush()
        del m
    for name, ids, step in (("sentences", seg.ids, nxt["sentence"]), ("passages", seg.pids, nxt["passage"])):
        np.save(folder / f"{name}.ids.npy", np.concatenate([np.asarray(ids) + r * step for r in range(copies)]))
    rows = np.concatenate([np.asarray(seg.rows).copy() for _ in range(copies)])
    for r in range(copies):
        block = rows[r * n0 : (r + 1) * n0]
        block["doc"] += r * nxt["document"]
        for slot in ("passage0", "passage1"):
            block[slot] = np.where(block[slot] >= 0, block[slot] + r * p0, -1)
    np.save(folder / "sentences.rows.npy", rows)
    n = copies * n0
    kind = index_type(n)
    if kind != "flat":
        import faiss

        faiss.write_index(build_ann(np.load(folder / "sentences.vectors.npy", mmap_mode="r")), str(folder / "sentences.faiss"))
    # The copies' token ids are the source's, repeated: no text is tokenized again.
    terms0, starts0 = np.load(seg.folder / "terms.npy"), np.load(seg.folder / "starts.npy")
    terms = np.tile(terms0, copies)
    starts = np.concatenate([[0], np.cumsum(np.tile(np.diff(starts0), copies))]).astype(np.int64)
    nvocab = len(src.bm25.vocab)
    np.save(folder / "terms.npy", terms)
    np.save(folder / "starts.npy", starts)
    for name, array in zip(("indptr", "rows", "tf", "lengths"), postings(terms, starts, nvocab)):
        np.save(folder / f"postings.{name}.npy", array)
    shutil.copy(src.folder / "vocab.json", tmp / "vocab.json")
    np.save(tmp / "df.npy", document_frequency(terms, starts, nvocab).astype(np.int64))
    info = {"name": folder.name, "sentences": n, "passages": copies * p0, "documents": copies * src.manifest["counts"]["documents"],
            "index_type": kind, "dead": 0}
    manifest = dict(src.manifest, index_type=kind, roots=[{"path": str(corpus.resolve()), "name": corpus.as_posix()}],
                    counts={"documents": copies * src.manifest["counts"]["documents"], "sentences": n, "passages": copies * p0},
                    next_ids={k: copies * v for k, v in nxt.items()}, segments=[info], next_segment=2,
                    bm25=dict(src.manifest["bm25"], rows=n, length=int(starts[-1])))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    src.close()
    store.commit_generation(out, tmp)
    return n


def measure(work: Path, src_root: Path, sizes: list[int], questions: list[str], new_articles: list, qa, log) -> list[dict]:
    """Per size: build (inflate), cold `qa ask` x3 (after one page-cache warm-up), an update that
    adds the 10 `new_articles`, and a no-op `qa index`."""
    from .eval import write_articles
    from .index import Index

    n0 = Index.open(src_root).sentence_count
    out = []
    for target in sizes:
        copies = max(1, round(target / n0))
        index, corpus = work / f"size-{target}", work / f"size-{target}-articles"
        log(f"inflating to {copies} x {n0:,} sentences ...")
        t = time.perf_counter()
        n = inflate(src_root, index, copies, corpus)
        made_s = time.perf_counter() - t
        qa("ask", "--index", str(index), questions[0])
        cold = [qa("ask", "--index", str(index), q)[:2] for q in questions[1:4]]
        write_articles(new_articles, corpus / "zz-new")
        wall, rss, report = qa("index", "--index", str(index), "--json")
        rep = json.loads(report)
        noop = qa("index", "--index", str(index), "--json")[0]
        out.append({
            "sentences": n, "index_type": Index.open(index).manifest["index_type"], "made_s": round(made_s, 1),
            "cold_ask_s": round(statistics.median(c[0] for c in cold), 2), "cold_ask_rss_mb": round(max(c[1] for c in cold)),
            "update_s": round(wall, 1), "update_embed_s": round(rep["embed_seconds"], 1), "update_added": rep["added"],
            "update_rss_mb": round(rss), "noop_index_s": round(noop, 2),
        })
        log(f"size {n:,}: {out[-1]}")
        shutil.rmtree(index, ignore_errors=True)
        shutil.rmtree(corpus, ignore_errors=True)
    return out


def markdown_rows(sizes: list[dict]) -> list[str]:
    lines = ["", "Size table (`qa bench --sizes ...`; larger indexes inflated from the real one, see qa/bench_sizes.py: "
             "copies' vectors are the real ones plus noise):", "",
             "| sentences | index | cold `qa ask` (median of 3) | its peak RSS | update adding 10 articles (embedding) | its peak RSS | no-op `qa index` |",
             "|---|---|---|---|---|---|---|"]
    for s in sizes:
        lines.append(f"| {s['sentences']:,} | {s['index_type']} | {s['cold_ask_s']:.2f} s | {s['cold_ask_rss_mb']} MB | "
                     f"{s['update_s']:.1f} s ({s['update_embed_s']:.1f} s) | {s['update_rss_mb']} MB | {s['noop_index_s']:.2f} s |")
    return lines
