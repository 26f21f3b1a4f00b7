"""The index folder on disk: immutable generations swapped in atomically.

    <index>/
      CURRENT            name of the live generation, replaced with os.replace (atomic)
      gen-000003/        one complete, immutable index (see embeddings/README.md)
      models/<model-id>/ (qa before the shared export cache) the model's ONNX export; the next
                         `qa index` moves it to the cache (qa/exports.py)
      .lock              held while writing

A writer builds a new generation in a hidden temporary folder, fsyncs it, renames it into place,
then points CURRENT at it. A crash at any moment leaves either the old or the new generation live,
never a mix; leftover temporary folders are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import IndexUnusable, QAError

CURRENT = "CURRENT"
_GEN = re.compile(r"^gen-(\d{6})$")


def current_generation(root: Path) -> Path | None:
    """The live generation folder, or None when no index was ever written here."""
    pointer = root / CURRENT
    if not pointer.exists():
        return None
    try:
        name = pointer.read_text(errors="replace").strip()  # garbage is reported as corrupt below
    except OSError as e:
        raise IndexUnusable(f"cannot read index at {root} ({e.strerror}); rebuild it with `qa index --rebuild`")
    if not _GEN.match(name) or not (root / name).is_dir():
        raise IndexUnusable(f"index at {root} is corrupt (CURRENT points to {name!r}); rebuild it with `qa index --rebuild`")
    return root / name


@contextlib.contextmanager
def write_lock(root: Path) -> Iterator[None]:
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise QAError(f"cannot write index at {root}: {e.strerror}")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise QAError(f"another `qa index` is writing {root}; wait for it to finish")
        yield
    finally:
        os.close(fd)


def new_generation_dir(root: Path) -> Path:
    for leftover in root.glob(".gen-tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; an index is as readable as its parent folder
    return tmp


def commit_generation(root: Path, tmp: Path) -> Path:
    """Move a finished temporary generation into place and make it live."""
    _fsync_tree(tmp)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _GEN.match(p.name))]
    final = root / f"gen-{max(numbers, default=0) + 1:06d}"
    os.rename(tmp, final)
    pointer_tmp = root / f".{CURRENT}.tmp"
    pointer_tmp.write_text(final.name + "\n")
    _fsync(pointer_tmp)
    os.replace(pointer_tmp, root / CURRENT)
    _fsync(root)
    for p in root.iterdir():
        if _GEN.match(p.name) and p != final:
            shutil.rmtree(p, ignore_errors=True)
    return final


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder` (bm25/ included), then `folder` itself."""
    for child in folder.iterdir():
        if child.is_dir():
            _fsync_tree(child)
        else:
            _fsync(child)
    _fsync(folder)


def _fsync(path: Path) -> None:
    """fsync one file, or one folder's entry list."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
