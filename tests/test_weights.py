"""The default model: the bundled MiniLM with the shipped fine-tuned top layers."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file

from qa.config import bundled_model_path, default_model
from qa.embed import model_id
from qa.weights import WEIGHTS, encode_tuned, shipped_model, tuned_tensors


def test_default_model_is_the_base_with_the_shipped_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QA_MODEL", raising=False)
    assert default_model() is None  # the shipped export: nothing to materialise or export
    earlier = tmp_path / "cache" / "models" / f"{bundled_model_path().name}-squad-0123456789ab"  # an upgrade's leftover
    earlier.mkdir(parents=True)
    other = tmp_path / "cache" / "models" / "someone-elses-model"
    other.mkdir()
    folder = shipped_model()
    assert folder == shipped_model()  # made once, then found
    assert folder.is_relative_to(tmp_path / "cache")
    # no temp folder left behind, the earlier shipped layers gone, nothing else touched
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([folder.name, other.name])

    base = load_file(str(bundled_model_path() / "model.safetensors"))
    tuned = load_file(str(folder / "model.safetensors"))
    shipped = tuned_tensors(WEIGHTS, base)
    assert set(tuned) == set(base)
    assert shipped and all(k.startswith("encoder.layer.") for k in shipped)
    for name, value in tuned.items():
        if name in shipped:
            np.testing.assert_array_equal(value, shipped[name])
            assert not np.array_equal(value, base[name])
        else:
            np.testing.assert_array_equal(value, base[name])
    # A different model from the base, so an index records which one it was built with.
    assert model_id(folder) != model_id(bundled_model_path())


def test_model_env_overrides_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_MODEL", str(tmp_path))
    assert default_model() == tmp_path


def test_weights_are_stored_as_small_differences_from_the_base(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    base = {"w": rng.normal(0, 0.05, (8, 16)).astype(np.float32), "b": rng.normal(0, 0.05, 16).astype(np.float32)}
    tuned = {k: v + rng.normal(0, 1e-3, v.shape).astype(np.float32) for k, v in base.items()}
    save_file(encode_tuned(tuned, base), str(tmp_path / "w.safetensors"))
    back = tuned_tensors(tmp_path / "w.safetensors", base)
    assert set(back) == {"w", "b"}
    # int8 per row: error at most half a step (max |delta| of the row / 254); float16 for vectors.
    step = np.abs(tuned["w"] - base["w"]).max(axis=1, keepdims=True) / 127
    assert (np.abs(back["w"] - tuned["w"]) <= step / 2 + 1e-7).all()
    np.testing.assert_allclose(back["b"], tuned["b"], atol=2e-6)
