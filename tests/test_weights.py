"""The default model: the bundled MiniLM with the shipped fine-tuned top layers."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file

from qa.config import bundled_model_path, default_model
from qa.embed import model_id
from qa.weights import TOP2, shipped_model


def test_default_model_is_the_base_with_the_shipped_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QA_MODEL", raising=False)
    folder = default_model()
    assert folder == shipped_model()  # made once, then found
    assert folder.is_relative_to(tmp_path / "cache")
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left behind

    base = load_file(str(bundled_model_path() / "model.safetensors"))
    tuned = load_file(str(folder / "model.safetensors"))
    shipped = load_file(str(TOP2))
    assert set(tuned) == set(base)
    assert shipped and all(".layer.4." in k or ".layer.5." in k for k in shipped)
    for name, value in tuned.items():
        if name in shipped:
            np.testing.assert_array_equal(value, shipped[name].astype(np.float32))
            assert not np.array_equal(value, base[name])
        else:
            np.testing.assert_array_equal(value, base[name])
    # A different model from the base, so an index records which one it was built with.
    assert model_id(folder) != model_id(bundled_model_path())


def test_model_env_overrides_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_MODEL", str(tmp_path))
    assert default_model() == tmp_path
