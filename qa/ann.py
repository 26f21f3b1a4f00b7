"""Which FAISS index to build for a collection of normalised embeddings, and a benchmark at scale.

Measured on this 2-core machine with all-MiniLM-L6-v2 vectors (384-d, L2-normalised, inner
product = cosine), queries = real SQuAD question embeddings, recall@10 against exact search:

* Up to FLAT_MAX vectors an exact IndexFlatIP: no training, exact results. One query scans
  100k vectors in ~6 ms on an idle core (twice the 3 ms measured at 50k); with another job busy
  on one core it took 10 / 19 / 39 ms at 50k / 100k / 200k. It grows linearly past the budget.
* Above it IVF + 8-bit scalar quantizer (IndexIVFScalarQuantizer, QT_8bit, residuals): at 1M
  vectors 395 MB on disk, 378 MB RSS (codes 384 MB + ids 8 MB + 3 MB of centroids), builds in
  ~80 s, and at nprobe = nlist/32 gives recall@10 0.98 at p50 5 ms / p95 9 ms single-threaded
  (with another job busy on one core; scale_benchmark reproduces these) on a synthetic cloud;
  real sentence vectors need more lists probed (nprobe_for). SQ8 caps recall
  near 0.983 (ties broken by quantisation error); probing more lists buys nothing beyond that.
  HNSW32 + SQ8 at 1M was faster per query (0.7 ms) but larger (656 MB), took 10 min to build
  and reached only recall 0.945 at efSearch 128. IVF-PQ without re-ranking tops out near 0.65.

Query processes should call faiss.omp_set_num_threads(1): a single query does not parallelise
and OpenMP spinning costs more than it saves on 2 cores (flat 50k: 3.0 ms vs 7.1 ms idle,
10 ms vs 49 ms with another job running).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

# Largest collection kept exact; see the module docstring for the measurements behind it.
FLAT_MAX = 100_000
SEED = 1234
# faiss warns below 39 training points per list. 40 per list and 10 k-means iterations train 2048
# lists in 30-45 s on 2 cores; 4096 lists on 64 per list for 20 iterations took 7 min, no better recall.
TRAIN_PER_LIST = 40
KMEANS_ITERATIONS = 10


def nlist_for(n: int) -> int:
    """Inverted lists for n vectors: the power of two nearest 2*sqrt(n) (2048 at 1M), capped so
    every list gets TRAIN_PER_LIST training points."""
    wanted = 2 ** round(math.log2(2 * math.sqrt(max(n, 1))))
    return max(1, min(wanted, n // TRAIN_PER_LIST))


def nprobe_for(nlist: int) -> int:
    """Lists scanned per query: 1/16 of them, at least 64 (64 of 512 lists just above FLAT_MAX,
    128 of 2048 at 1M). On real sentence vectors (91,579 SQuAD train sentences, 512 lists;
    scripts/ann_sweep.py) 16 lists found 0.818 of the 40 nearest, 64 find 0.956 at 0.57 ms per
    query: real text clusters far less than the synthetic 1M cloud, where 1/32 already gave 0.97."""
    return min(nlist, max(64, nlist // 16))


def index_type(n: int) -> str:
    """What build_ann makes for n vectors, as recorded in the manifest."""
    return "flat" if n <= FLAT_MAX else f"ivf{nlist_for(n)}-sq8"


def build_ann(vectors: np.ndarray) -> "faiss.Index":
    """An inner-product index holding `vectors` (rows = ids 0..n-1), exact or approximate by size."""
    if len(vectors) <= FLAT_MAX:
        index = faiss.IndexFlatIP(vectors.shape[1])
        add_in_blocks(index, vectors)
        return index
    return build_ivf_sq8(vectors)


def build_ivf_sq8(x: np.ndarray, seed: int = SEED) -> "faiss.IndexIVFScalarQuantizer":
    """IVF + 8-bit SQ, trained deterministically: a seeded sample, seeded k-means."""
    n, d = x.shape
    nlist = nlist_for(n)
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = KMEANS_ITERATIONS
    index.cp.seed = seed
    index.cp.max_points_per_centroid = TRAIN_PER_LIST  # we hand over the sample; no re-sampling
    sample = np.sort(np.random.default_rng(seed).choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False))
    index.train(np.ascontiguousarray(x[sample], dtype=np.float32))
    add_in_blocks(index, x)
    configure_for_search(index)
    return index


def add_in_blocks(index: "faiss.Index", x: np.ndarray, block: int = 65_536) -> None:
    """Add rows of a (possibly memory-mapped) matrix without a second full copy in memory."""
    for lo in range(0, len(x), block):
        index.add(np.ascontiguousarray(x[lo : lo + block], dtype=np.float32))


def configure_for_search(index: "faiss.Index") -> None:
    """Set the query-time parameters chosen by measurement (a flat index has none)."""
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = nprobe_for(index.nlist)


def load_ann(path: str | os.PathLike) -> "faiss.Index":
    """Read an index for searching only. IO_FLAG_MMAP_IFC maps flat codes and IVF lists in place
    (every type we tried accepts the flag in faiss 1.15); older faiss may refuse it, so fall back."""
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError:
        index = faiss.read_index(str(path))
    configure_for_search(index)
    return index


# -- benchmark at scale -----------------------------------------------------------------------


def synthetic_cloud(base: np.ndarray, n: int, seed: int = 0, noise: float = 0.03) -> np.ndarray:
    """n vectors shaped like a large real collection, from real embeddings `base`:
    normalise(a*x_i + (1-a)*x_j + noise*gaussian), a ~ U(0.5, 1), i, j random rows.

    Never uniform random vectors: ANN recall on those says nothing about real text. At 10k, this
    cloud with noise 0.03 was slightly harder than the real sentences it came from, for IVF and
    HNSW alike; at 1M it has median nearest-neighbour cosine 0.68 (real 10k: 0.63).
    """
    rng = np.random.default_rng(seed)
    base = np.asarray(base, dtype=np.float32)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for lo in range(0, n, 100_000):  # in chunks, so the noise never needs a second n x d array
        m = min(100_000, n - lo)
        i, j = rng.integers(0, len(base), m), rng.integers(0, len(base), m)
        a = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        v = a * base[i] + (1 - a) * base[j] + noise * rng.standard_normal((m, base.shape[1]), dtype=np.float32)
        out[lo : lo + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _probe(index_path: str, queries_path: str, k: int, out_path: str) -> None:
    """Run in a fresh process: RAM of the index loaded fully and via load_ann, then single-query
    latency with one thread on the load_ann copy (as a query process would use it)."""
    faiss.omp_set_num_threads(1)
    queries = np.load(queries_path)
    r0 = _rss_mb()
    full = faiss.read_index(index_path)
    r1 = _rss_mb()
    del full
    r2 = _rss_mb()
    index = load_ann(index_path)
    r3 = _rss_mb()
    times, ids = [], np.empty((len(queries), k), dtype=np.int64)
    for q in range(len(queries)):
        t = time.perf_counter()
        _, ids[q : q + 1] = index.search(queries[q : q + 1], k)
        times.append(time.perf_counter() - t)
    np.save(out_path, ids)
    ms = np.array(times) * 1e3
    print(json.dumps({
        "ram_mb": r1 - r0,
        "ram_mmap_after_load_mb": r3 - r2,
        "ram_mmap_after_queries_mb": _rss_mb() - r2,
        "first_query_ms": float(ms[0]),
        "query_p50_ms": float(np.percentile(ms[1:], 50)),
        "query_p95_ms": float(np.percentile(ms[1:], 95)),
    }))


def scale_benchmark(base: np.ndarray, queries: np.ndarray, n: int = 1_000_000, k: int = 10, seed: int = 0) -> dict:
    """Build the approximate index over a synthetic_cloud of n vectors from real embeddings `base`
    and measure it. `queries` must be real embeddings outside the cloud (e.g. questions); use 200+.

    Returns build_s, disk_bytes, ram_mb (RSS delta of a full read, in a fresh process), the RSS of
    the load_ann (mmap) copy after loading and after all queries, first-query and p50/p95 latency
    in ms (single thread), and recall@k against exact inner-product search over the same n vectors.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    x = synthetic_cloud(base, n, seed)
    t = time.perf_counter()
    index = build_ivf_sq8(x)
    build_s = time.perf_counter() - t
    # Exact top-k: faiss.knn is the IndexFlatIP scan without copying the 1.5 GB of vectors.
    _, exact = faiss.knn(queries, x, k, faiss.METRIC_INNER_PRODUCT)
    del x
    with tempfile.TemporaryDirectory(prefix="qa-ann-") as tmp:
        path, qpath, out = (os.path.join(tmp, f) for f in ("index.faiss", "queries.npy", "ids.npy"))
        faiss.write_index(index, path)
        np.save(qpath, queries)
        figures = {"index": type(index).__name__, "n": n, "nlist": index.nlist, "nprobe": index.nprobe}
        del index
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        code = "import sys; from qa.ann import _probe; _probe(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])"
        done = subprocess.run([sys.executable, "-c", code, path, qpath, str(k), out],
                              env=env, check=True, capture_output=True, text=True)
        figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
        figures["disk_bytes"] = os.path.getsize(path)
        found = np.load(out)
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])
    figures.update(build_s=build_s, queries=len(queries), recall_at_k=float(recall), k=k)
    return figures
