"""`qa index --milvus URI`: index articles into a Milvus collection, incrementally.

The same add/change/delete semantics as the folder index (qa.build): a file whose bytes hash the
same is not parsed; a document whose content hash is the same is kept; a changed document's
sentences are replaced; a document no longer found under the indexed roots is deleted.

Write order, so that an interrupted run is repaired by the next one: a document's old sentences
and passages are deleted by its key, the new ones inserted, and only then its manifest row
(with the new content hash) upserted. Until that row is written the document counts as changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..build import IndexReport, _Silent
from ..chunk import chunk
from ..errors import QAError
from ..ingest import SUPPORTED_SUFFIXES, read_changed
from ..lexical import TERMS_VERSION, K1, B, tokenize
from ..roots import find_sources, resolve_roots
from .milvus import MANIFEST_KEY, _esc, _short, connect, read_documents

BATCH = 512  # rows per insert
TEXT_MAX = 65_535
FIELD_MAX = 4_096


def _id(*parts) -> int:
    """A 63-bit id from its parts (collisions: ~0.05 expected among 10^9 sentences)."""
    h = hashlib.blake2b("\x00".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") & ((1 << 63) - 1)


def _create(client, name: str, dim: int, lite: bool) -> None:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    # qa's own tokens (lexical.tokenize), space-joined: Milvus's standard tokenizer splits them back,
    # so BM25 matches words exactly as the folder index does.
    s.add_field("terms", DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True, analyzer_params={"tokenizer": "standard"})
    s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]))
    s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    for f in ("doc", "paragraph", "start", "end", "byte_start", "byte_end", "passage0", "passage1", "prev", "next"):
        s.add_field(f, DataType.INT64)
    s.add_field("headline", DataType.BOOL)
    for f in ("key", "source", "title", "date", "url", "record"):
        s.add_field(f, DataType.VARCHAR, max_length=FIELD_MAX)
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
    # qa's BM25 parameters. Milvus Lite 3.2 reads them only nested under "params" (pymilvus sends
    # them flat, which Lite ignores for its defaults k1 1.5, b 0.75); a server reads them flat.
    bm25 = {"bm25_k1": K1, "bm25_b": B}
    ip.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"params": bm25} if lite else bm25)
    client.create_collection(name, schema=s, index_params=ip)

    p = client.create_schema(auto_id=False)
    p.add_field("id", DataType.INT64, is_primary=True)
    p.add_field("doc", DataType.INT64)
    p.add_field("key", DataType.VARCHAR, max_length=FIELD_MAX)
    p.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
    client.create_collection(f"{name}_passages", schema=p, index_params=ip)

    d = client.create_schema(auto_id=False)
    d.add_field("key", DataType.VARCHAR, max_length=FIELD_MAX, is_primary=True)
    d.add_field("doc", DataType.INT64)
    d.add_field("sentences", DataType.INT64)
    for f in ("source", "file_hash", "content_hash", "title", "date", "url", "record"):
        d.add_field(f, DataType.VARCHAR, max_length=FIELD_MAX)
    d.add_field("info", DataType.VARCHAR, max_length=TEXT_MAX)  # the manifest row's JSON
    d.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires a vector field
    ip = client.prepare_index_params()
    ip.add_index("unused", index_type="FLAT", metric_type="L2")
    client.create_collection(f"{name}_docs", schema=d, index_params=ip)


def drop(uri: str, name: str) -> None:
    client = connect(uri)
    try:
        for c in (name, f"{name}_passages", f"{name}_docs"):
            if client.has_collection(c):
                client.drop_collection(c)
    finally:
        client.close()


def build_milvus(uri: str, name: str, paths: list[Path] | None = None, model: Path | None = None, rebuild: bool = False,
                 progress=None, warn=None, embed=None) -> IndexReport:
    """Index `paths` (plus the roots indexed before) into collection `name` at `uri`.
    `embed(texts, folder, tick)` replaces local embedding (qa.distributed: Ray)."""
    from ..embed import OnnxEncoder, encoder_folder

    t0 = time.perf_counter()
    progress = progress or _Silent()
    report = IndexReport(generation=name)

    def _warn(msg: str) -> None:
        report.warnings.append(msg)
        if warn:
            warn(msg)

    if rebuild:
        drop(uri, name)
    client = connect(uri)
    try:
        exists = client.has_collection(f"{name}_docs")
        manifest = {}
        if exists:
            for c in (name, f"{name}_passages", f"{name}_docs"):
                client.load_collection(c)
            rows = client.get(f"{name}_docs", ids=[MANIFEST_KEY], output_fields=["info"])
            manifest = json.loads(rows[0]["info"]) if rows else {}
        folder = encoder_folder(model)
        encoder = OnnxEncoder(folder)
        if manifest and manifest["model"]["model_id"] != encoder.spec.model_id:
            raise QAError(f"collection '{name}' was built with model {manifest['model']['model_id']}, not {encoder.spec.model_id}; "
                          "pass --rebuild to re-embed it")
        roots = resolve_roots(manifest.get("roots", []), paths, _warn)
        for r in roots:
            if not r.path.exists():
                raise QAError(f"corpus path '{r.name}' not found; pass existing files or folders to `qa index`")
        files = find_sources(roots)
        if not files:
            raise QAError(f"no articles found in {', '.join(r.name for r in roots)} (looked for {', '.join(sorted(SUPPORTED_SUFFIXES))})")
        if not exists:
            _create(client, name, encoder.dim, lite=uri.endswith(".db"))
        old = {d["key"]: d for d in read_documents(client, name, "", ["key", "source", "file_hash", "content_hash"])}
        old_files: dict[str, str] = {d["source"]: d["file_hash"] for d in old.values()}
        seen, fresh, hashes = set(), [], {}
        for f, h, docs in read_changed(files, old_files.get, _warn):
            hashes[f.source] = h
            if docs is None:  # the file's bytes are unchanged
                seen.update(k for k, d in old.items() if d["source"] == f.source)
                continue
            for doc in docs:
                seen.add(doc.key)
                prev = old.get(doc.key)
                if prev and prev["content_hash"] == doc.content_hash:
                    if prev["file_hash"] != h:  # same content, the file around it changed: remember its new hash
                        client.upsert(f"{name}_docs", [_doc_row_update(client, name, doc.key, h)])
                    continue
                fresh.append((doc, h))
                report.changed += prev is not None
                report.added += prev is None
        gone = [k for k in old if k not in seen]
        report.removed, report.unchanged = len(gone), len(seen) - len(fresh)
        report.documents = len(seen)
        if not seen:
            raise QAError(f"no readable articles in {', '.join(r.name for r in roots)}; nothing was indexed")
        for lo in range(0, len(gone), BATCH):
            keys = ", ".join(f'"{_esc(k)}"' for k in gone[lo : lo + BATCH])
            for c in (name, f"{name}_passages"):
                client.delete(c, filter=f"key in [{keys}]")
            client.delete(f"{name}_docs", filter=f"key in [{keys}]")
        _add(client, name, fresh, encoder, folder, progress, report, embed)
        info = {"format": "milvus-1", "terms": TERMS_VERSION, "bm25": {"k1": K1, "b": B},
                "model": {"model_id": encoder.spec.model_id, "model_path": encoder.spec.model_path, "dim": encoder.dim},
                "roots": [r.to_json() for r in roots]}
        client.upsert(f"{name}_docs", [_row(MANIFEST_KEY, 0, 0, "", "", "", {}, json.dumps(info))])
        client.flush(name)
        (count,) = client.query(name, filter="", output_fields=["count(*)"])
        report.sentences = int(count["count(*)"])
    except QAError:
        raise
    except Exception as e:
        raise QAError(f"Milvus at {uri} failed while indexing collection '{name}' ({_short(e)}); run `qa index` again to finish") from None
    finally:
        client.close()
    report.seconds = time.perf_counter() - t0
    return report


def _row(key, doc, sentences, source, file_hash_, content_hash, meta: dict, info: str = "") -> dict:
    return {"key": key, "doc": doc, "sentences": sentences, "source": source, "file_hash": file_hash_,
            "content_hash": content_hash, "title": meta.get("title") or "", "date": meta.get("date") or "",
            "url": meta.get("url") or "", "record": meta.get("record") or "", "info": info, "unused": [0.0, 0.0]}


def _doc_row_update(client, name: str, key: str, new_hash: str) -> dict:
    (row,) = client.get(f"{name}_docs", ids=[key], output_fields=["key", "doc", "sentences", "source", "file_hash",
                                                                  "content_hash", "title", "date", "url", "record", "info"])
    row = {k: row[k] for k in ("key", "doc", "sentences", "source", "file_hash", "content_hash", "title", "date", "url", "record", "info")}
    row["file_hash"], row["unused"] = new_hash, [0.0, 0.0]
    return row


GROUP_TEXTS = 20_000  # texts embedded, then written, at a time: the driver never holds every vector


def _add(client, name, fresh, encoder, folder, progress, report, embed) -> None:
    """Chunk the new and changed documents, then embed and write them a group at a time."""
    chunks = []
    tick = progress.task("Reading articles", len(fresh))
    for doc, h in fresh:
        sentences, passages = chunk(doc, encoder.count_tokens, encoder.token_budget)
        chunks.append((doc, h, sentences, passages))
        tick(1)
    groups, size = [[]], 0
    for c in chunks:
        if size >= GROUP_TEXTS:
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += len(c[2]) + len(c[3])
    embed_tick = progress.task("Embedding", sum(len(ss) + len(ps) for _, _, ss, ps in chunks))
    write_tick = progress.task("Writing to Milvus", len(chunks))
    for group in groups:
        _write_group(client, name, group, encoder, folder, report, embed, embed_tick, write_tick)


def _write_group(client, name, chunks, encoder, folder, report, embed, embed_tick, tick) -> None:
    texts = [s.text for _, _, ss, ps in chunks for s in ss] + [p.text for _, _, _, ps in chunks for p in ps]
    distinct = list(dict.fromkeys(texts))
    t0 = time.perf_counter()
    vectors = embed(distinct, folder, embed_tick) if embed else encoder.encode(distinct, progress=embed_tick)
    embed_tick(len(texts) - len(distinct))
    report.embed_seconds += time.perf_counter() - t0
    report.embedded += len(distinct)
    vector_of = {t: i for i, t in enumerate(distinct)}
    for doc, h, sentences, passages in chunks:
        key_expr = f'key == "{_esc(doc.key)}"'
        client.delete(name, filter=key_expr)
        client.delete(f"{name}_passages", filter=key_expr)
        did = _id(doc.key, doc.content_hash)
        sids = [_id(did, "s", i) for i in range(len(sentences))]
        pids = [_id(did, "p", i) for i in range(len(passages))]
        slots = [[-1, -1] for _ in sentences]
        for pid, p in zip(pids, passages):
            for r in range(p.first, p.last + 1):
                slots[r][0 if slots[r][0] < 0 else 1] = pid
        terms = tokenize([s.text for s in sentences])
        meta = {"title": doc.title, "date": doc.date, "url": doc.url, "record": doc.record}
        rows = []
        for i, s in enumerate(sentences):
            headline = s.paragraph == 0 and i == 0 and i + 1 < len(sentences) and sentences[i + 1].paragraph > 0
            rows.append({"id": sids[i], "vector": vectors[vector_of[s.text]].tolist(), "terms": " ".join(terms[i]), "text": s.text,
                         "doc": did, "paragraph": s.paragraph, "start": s.start, "end": s.end,
                         "byte_start": doc.bom + len(doc.text[: s.start].encode()), "byte_end": doc.bom + len(doc.text[: s.end].encode()),
                         "passage0": slots[i][0], "passage1": slots[i][1], "prev": sids[i - 1] if i else -1,
                         "next": sids[i + 1] if i + 1 < len(sentences) else -1, "headline": headline,
                         "key": doc.key, "source": doc.source, **{k: v or "" for k, v in meta.items()}})
        for lo in range(0, len(rows), BATCH):
            client.insert(name, rows[lo : lo + BATCH])
        prow = [{"id": pid, "doc": did, "key": doc.key, "vector": vectors[vector_of[p.text]].tolist()} for pid, p in zip(pids, passages)]
        for lo in range(0, len(prow), BATCH):
            client.insert(f"{name}_passages", prow[lo : lo + BATCH])
        client.upsert(f"{name}_docs", [_row(doc.key, did, len(sentences), doc.source, h, doc.content_hash, meta)])
        tick(1)
