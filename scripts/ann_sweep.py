"""Recall/latency sweep of qa's IVF-SQ8 (qa/ann.py) on real sentence vectors, to choose nprobe.

Vectors: every sentence of SQuAD train (91,579, split as qa splits them, embedded with the shipped
encoder; cached by scripts/bench_scale.py in --work), queries: 400 train questions. Recall@k of the
k nearest against exact inner product; latency per single query, one thread, median.

    PYTHONPATH=. python scripts/ann_sweep.py --work /tmp/qa-scale-bench100k [--nlist 512] [--nprobe 16,32,64,128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import texts_and_questions  # noqa: E402
from qa.embed import OnnxEncoder  # noqa: E402
from qa.exports import SHIPPED_EXPORT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-scale-bench100k"))
    ap.add_argument("--nlist", default="256,512")
    ap.add_argument("--nprobe", default="8,16,32,64,128")
    ap.add_argument("--questions", type=int, default=400)
    args = ap.parse_args()
    import faiss

    from qa import ann

    faiss.omp_set_num_threads(1)
    (cache,) = sorted(args.work.glob("vectors-*.npy"))
    x = np.load(cache)
    _, qs = texts_and_questions(len(x), args.questions)
    q = OnnxEncoder(SHIPPED_EXPORT).encode(qs[: args.questions])
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, 40)
    rows = []
    for nlist in map(int, args.nlist.split(",")):
        ann.nlist_for = lambda n, nlist=nlist: nlist  # the sweep's own nlist, not the size rule
        index = ann.build_ivf_sq8(x)
        for nprobe in map(int, args.nprobe.split(",")):
            index.nprobe = nprobe
            _, found = index.search(q, 40)
            times = []
            for row in q[:200]:
                t = time.perf_counter()
                index.search(row[None, :], 40)
                times.append(time.perf_counter() - t)
            r40 = float(np.mean([len(set(f) & set(t)) / 40 for f, t in zip(found, truth)]))
            r10 = float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))
            r1 = float(np.mean(found[:, 0] == truth[:, 0]))
            rows.append({"n": len(x), "nlist": nlist, "nprobe": nprobe, "recall@40": round(r40, 3),
                         "recall@10": round(r10, 3), "recall@1": round(r1, 3),
                         "p50_ms": round(1000 * statistics.median(times), 2)})
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
