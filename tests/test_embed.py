"""The ONNX encoder agrees with sentence-transformers, and answering never imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import REPO, SEED, qa_env
from qa.chunk import split_sentences
from qa.embed import INT8_FILE, EncoderSpec, OnnxEncoder, load_sentence_transformer


def seed_sentences() -> list[str]:
    text = (REPO / SEED).read_text(encoding="utf-8")
    return [text[s:e] for line_start, line in _lines(text) for s, e in split_sentences(text, line_start, line_start + len(line))]


def _lines(text: str):
    pos = 0
    for line in text.splitlines(keepends=True):
        yield pos, line.rstrip("\n")
        pos += len(line)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_onnx_export_matches_sentence_transformers(model_export):
    texts = seed_sentences() + ["What did London agree?", "Who led them?"]
    assert len(texts) > 15
    spec = EncoderSpec.load(model_export)
    st = load_sentence_transformer(__import__("pathlib").Path(spec.model_path))
    reference = st.encode(texts, convert_to_numpy=True)
    fp32 = OnnxEncoder(model_export, onnx_file="model.onnx").encode(texts)
    assert cosines(reference, fp32).min() >= 0.999
    # The shipped int8 file stays close to it (per-channel quantisation).
    assert spec.onnx_file == INT8_FILE
    int8 = OnnxEncoder(model_export).encode(texts)
    assert cosines(reference, int8).min() >= 0.97


def test_int8_vectors_do_not_depend_on_the_batch(model_export):
    """A question embedded alone gets the vector its text gets inside a bulk batch."""
    texts = seed_sentences()
    enc = OnnxEncoder(model_export)
    together = enc.encode(texts)
    alone = np.vstack([enc.encode([t]) for t in texts[:5]])
    assert np.abs(together[:5] - alone).max() < 1e-6


def test_ask_on_an_existing_index_never_imports_torch(seed_index):
    code = (
        "import os, sys\n"
        "os._exit = sys.exit  # qa ask skips interpreter teardown; come back here instead\n"
        f"sys.argv = ['qa', 'ask', '--index', {str(seed_index)!r}, 'What did London agree?']\n"
        "from qa.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn', 'scipy', 'bm25s', 'faiss', 'rich') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=qa_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert "[1]" in proc.stdout  # it did answer
