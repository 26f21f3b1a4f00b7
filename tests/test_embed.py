"""The ONNX encoder agrees with sentence-transformers, and answering never imports torch."""

from __future__ import annotations

import subprocess
import sys

from dataclasses import asdict

import numpy as np
import pytest

from conftest import REPO, SEED, qa_env
from qa.chunk import split_sentences
from qa.embed import (INT8_FILE, INT8_MIN_COSINE, PARITY_MIN_COSINE, PARITY_SENTENCES, EncoderSpec, OnnxEncoder, export,
                      load_sentence_transformer)
from qa.exports import SHIPPED_EXPORT, SHIPPED_SOURCE, model_source


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


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory):
    """The default model rebuilt from its shipped layers and exported again, as
    scripts/ship_export.py does (~20 s: the suite's one export of the default model)."""
    from qa.weights import shipped_model

    out = tmp_path_factory.mktemp("fresh-export")
    spec = export(shipped_model(), out)
    return out, spec


def test_shipped_export_matches_sentence_transformers(model_export, fresh_export):
    """The int8 file qa ships agrees with sentence-transformers on the fine-tuned model it was
    made from, and a fresh export of that model gives it again."""
    assert model_export == SHIPPED_EXPORT
    shipped = EncoderSpec.load(SHIPPED_EXPORT)
    assert shipped.model_path == SHIPPED_SOURCE and shipped.onnx_file == INT8_FILE
    texts = PARITY_SENTENCES + seed_sentences() + ["What did London agree?", "Who led them?"]
    assert len(texts) > 20
    out, spec = fresh_export
    # the same model: the materialised fine-tuned folder hashes to the id the shipped export names
    assert spec.model_id == shipped.model_id and spec.onnx_file == INT8_FILE
    st = load_sentence_transformer(model_source(asdict(shipped)))
    reference = st.encode(texts, convert_to_numpy=True)
    ours = OnnxEncoder(SHIPPED_EXPORT).encode(texts)
    assert cosines(reference, ours).min() >= INT8_MIN_COSINE
    # The fp32 reference of the fresh export is within the fp32 parity bound.
    assert cosines(reference, OnnxEncoder(out, onnx_file="model.onnx").encode(texts)).min() >= PARITY_MIN_COSINE
    # The fresh int8 export embeds every text exactly as the shipped file does.
    np.testing.assert_array_equal(OnnxEncoder(out).encode(texts), ours)
    assert {k: v for k, v in asdict(spec).items() if k != "model_path"} == {
        k: v for k, v in asdict(shipped).items() if k != "model_path"}


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
