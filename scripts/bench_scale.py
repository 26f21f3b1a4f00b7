"""Measure what BENCHMARKS.md "Beyond one machine" reports (needs qa[scale]):

1. one-process vs Ray Data embedding throughput (sentences/s) on the same texts;
2. recall@40 / @1 of Milvus Lite's dense search against the exact search of the folder index
   (and qa's own IVF-SQ8, what the folder uses above ann.FLAT_MAX), on real sentence vectors
   (SQuAD train contexts, split as qa splits them) and real questions.

    PYTHONPATH=. python scripts/bench_scale.py --sentences 20000 --questions 500 --work /tmp/qa-scale-bench
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.embed import OnnxEncoder  # noqa: E402
from qa.exports import SHIPPED_EXPORT  # noqa: E402
from qa.sentences import split_sentences  # noqa: E402

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-train" / "train-v1.1-explorer.json.gz"


def texts_and_questions(n: int, nq: int) -> tuple[list[str], list[str]]:
    data = json.load(gzip.open(TRAIN))["data"]
    sents, qs = [], []
    for art in data:
        for p in art["paragraphs"]:
            ctx = p["context"]
            sents += [ctx[a:b] for a, b in split_sentences(ctx, 0, len(ctx))]
            qs += [q["question"] for q in p["qas"]]
        if len(sents) >= n:
            break
    return sents[:n], qs[::max(1, len(qs) // nq)][:nq]


def throughput(texts: list[str], folder: Path) -> dict:
    enc = OnnxEncoder(folder)
    t = time.perf_counter()
    local = enc.encode(texts)
    one = time.perf_counter() - t
    import ray

    from qa.distributed import embed_with_ray

    t = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t
    t = time.perf_counter()
    remote = embed_with_ray(texts, folder)
    ray_s = time.perf_counter() - t
    ray.shutdown()
    return {"texts": len(texts), "one_process_per_s": len(texts) / one, "ray_per_s": len(texts) / ray_s,
            "ray_start_s": start, "max_abs_diff": float(np.abs(local - remote).max())}


def recall(found: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    at_k = np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])
    at_1 = np.mean([f[0] == e[0] for f, e in zip(found, exact)])
    return float(at_k), float(at_1)


def milvus_recall(vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, work: Path, k: int) -> dict:
    from pymilvus import DataType, MilvusClient

    out = {}
    for kind, params in (("FLAT", {}), ("AUTOINDEX", {}), ("IVF_SQ8", {"nlist": 1024}), ("HNSW", {"M": 16, "efConstruction": 200})):
        db = work / f"{kind}.db"
        shutil.rmtree(db, ignore_errors=True)
        c = MilvusClient(str(db))
        s = c.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
        ip = c.prepare_index_params()
        ip.add_index("vector", index_type=kind, metric_type="IP", params=params)
        c.create_collection("v", schema=s, index_params=ip)
        t = time.perf_counter()
        for lo in range(0, len(vectors), 5000):
            c.insert("v", [{"id": i, "vector": v.tolist()} for i, v in enumerate(vectors[lo : lo + 5000], start=lo)])
        c.flush("v")
        c.load_collection("v")
        load_s = time.perf_counter() - t
        found, times = [], []
        sp = {"metric_type": "IP", "params": {"nprobe": 32} if kind == "IVF_SQ8" else ({"ef": 128} if kind == "HNSW" else {})}
        for q in queries:
            t = time.perf_counter()
            hits = c.search("v", data=[q.tolist()], anns_field="vector", limit=k, search_params=sp)[0]
            times.append(time.perf_counter() - t)
            found.append([h["id"] for h in hits] + [-1] * (k - len(hits)))
        c.close()
        r_k, r_1 = recall(np.array(found), exact)
        out[kind] = {"recall_at_k": r_k, "recall_at_1": r_1, "query_ms_p50": 1000 * statistics.median(times), "insert_s": load_s}
        print(kind, out[kind], file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=20000)
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--throughput-texts", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-scale-bench"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    texts, qs = texts_and_questions(a.sentences, a.questions)
    report = {"throughput": throughput(texts[: a.throughput_texts], SHIPPED_EXPORT)}
    print(report, file=sys.stderr, flush=True)
    cache = a.work / f"vectors-{len(texts)}.npy"
    enc = OnnxEncoder(SHIPPED_EXPORT)
    vectors = np.load(cache) if cache.exists() else enc.encode(texts)
    np.save(cache, vectors)
    queries = enc.encode(qs)
    k = 40
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    from qa.ann import build_ivf_sq8

    _, ivf = build_ivf_sq8(vectors).search(queries, k)  # what the folder index uses above ann.FLAT_MAX
    report["qa_ivf_sq8"] = dict(zip(("recall_at_k", "recall_at_1"), recall(ivf, exact)))
    report["milvus_lite"] = milvus_recall(vectors, queries, exact, a.work, k)
    report.update(sentences=len(texts), questions=len(qs), k=k)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
