"""qa.ann on real MiniLM embeddings: exact below the threshold, IVF-SQ8 above, mmap round trip."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from qa import ann

ROOT = Path(__file__).resolve().parents[1]
SEED_ARTICLE = ROOT / "seeds" / "000_a965798dc9f0230f.txt"
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"  # ../shared, as the other tests


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """(sentence vectors, question vectors): ~320 real sentences and 100 real questions."""
    from qa.chunk import split_sentences
    from qa.config import bundled_model_path
    from qa.embed import OnnxEncoder, ensure_exported

    if not SQUAD.is_file():
        pytest.skip(f"{SQUAD} not available")
    lines = SEED_ARTICLE.read_text().splitlines()
    sentences = [line[s:e] for line in lines for s, e in split_sentences(line, 0, len(line))]
    questions = []
    for article in json.load(gzip.open(SQUAD))["data"][:3]:
        for p in article["paragraphs"]:
            c = p["context"]
            sentences += [c[s:e] for s, e in split_sentences(c, 0, len(c))]
            questions += [q["question"] for q in p["qas"]]
    enc = OnnxEncoder(ensure_exported(bundled_model_path(), tmp_path_factory.mktemp("model")))
    return enc.encode(sentences[:320]), enc.encode(questions[:100])


def exact(x: np.ndarray, q: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    return flat.search(q, k)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)]))


def test_below_threshold_is_exact(real):
    x, q = real
    assert len(x) <= ann.FLAT_MAX
    index = ann.build_ann(x)
    assert isinstance(index, faiss.IndexFlatIP)
    scores, ids = index.search(q, 10)
    want_scores, want_ids = exact(x, q)
    assert (ids == want_ids).all()
    assert np.array_equal(scores, want_scores)


def test_above_threshold_is_approximate_with_high_recall(real, monkeypatch):
    x, q = real
    monkeypatch.setattr(ann, "FLAT_MAX", 100)
    # The real sentences themselves: few lists, all probed, so only SQ8 error remains.
    index = ann.build_ann(x)
    assert isinstance(index, faiss.IndexIVFScalarQuantizer)
    assert recall(index.search(q, 10)[1], exact(x, q)[1]) >= 0.9
    # A 20k cloud made from them: 256 lists, 16 probed, so the coarse search is really approximate.
    cloud = ann.synthetic_cloud(x, 20_000, seed=0)
    index = ann.build_ann(cloud)
    assert isinstance(index, faiss.IndexIVFScalarQuantizer)
    assert index.nprobe < index.nlist
    assert recall(index.search(q, 10)[1], exact(cloud, q)[1]) >= 0.9


def test_training_is_deterministic(real):
    cloud = ann.synthetic_cloud(real[0], 5_000, seed=1)
    a, b = ann.build_ivf_sq8(cloud), ann.build_ivf_sq8(cloud)
    assert np.array_equal(faiss.serialize_index(a), faiss.serialize_index(b))


@pytest.mark.parametrize("approximate", [False, True])
def test_load_ann_round_trips(real, tmp_path, monkeypatch, approximate):
    x, q = real
    if approximate:
        monkeypatch.setattr(ann, "FLAT_MAX", 100)
        x = ann.synthetic_cloud(x, 5_000, seed=2)
    built = ann.build_ann(x)
    path = tmp_path / "vectors.faiss"
    faiss.write_index(built, str(path))
    loaded = ann.load_ann(path)
    assert type(loaded) is type(built) and loaded.ntotal == len(x)
    if approximate:
        assert loaded.nprobe == ann.nprobe_for(loaded.nlist)
    scores, ids = loaded.search(q, 10)
    want_scores, want_ids = built.search(q, 10)
    assert (ids == want_ids).all()
    assert np.allclose(scores, want_scores)


def test_memory_mapped_vectors_are_searched_without_faiss_exactly_as_faiss_does(tmp_path):
    """qa.flat searches a memory-mapped .npy with numpy: the same top-k, in the same order, as faiss."""
    from qa.flat import FlatVectors

    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(tmp_path / "vectors.npy", x)
    vectors = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    assert isinstance(vectors, np.memmap)
    flat = faiss.IndexFlatIP(32)
    flat.add(x)
    q = x[:7] + 0.05 * rng.standard_normal((7, 32)).astype(np.float32)
    scores, ids = FlatVectors(vectors).search(q, 10)
    want_scores, want_ids = flat.search(q, 10)
    assert np.array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    assert np.array_equal(FlatVectors(vectors).reconstruct_batch(np.array([3, 1])), x[[3, 1]])
