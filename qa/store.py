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

Readers and old generations (a reader lock, not a grace period): every generation holds an empty
`readers.lock`. A reader (`open_current`) takes a shared flock on it before it opens anything and
keeps it while the generation is open. After a commit the writer tries an exclusive, non-blocking
flock on each older generation: when it gets one, no reader holds that generation, and the writer
renames it out of the way (`.gen-del-*`) before letting go of the lock and deleting it. A reader
that was waiting for that lock then finds its folder gone and starts again from CURRENT. A
generation still held is left in place and tried again at the next `qa index`.
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
READERS_LOCK = "readers.lock"
_GEN = re.compile(r"^gen-(\d{6})$")
# What a qa index folder may hold besides generations (embeddings/README.md is part of the repository).
_INDEX_ENTRIES = {CURRENT, f".{CURRENT}.tmp", ".lock", "models", "README.md"}
_INDEX_PREFIXES = ("gen-", ".gen-tmp-", ".gen-del-")


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


def foreign_entries(root: Path) -> list[str]:
    """Names in `root` that no qa index puts there (a folder of articles, say); [] for an index."""
    try:
        names = sorted(p.name for p in root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return [] if not root.exists() else [root.name]
    except OSError:
        return []  # unreadable: the caller's own error says so
    return [n for n in names if n not in _INDEX_ENTRIES and not n.startswith(_INDEX_PREFIXES)]


def check_index_folder(root: Path) -> None:
    """Refuse an --index folder that holds other files: qa would write its index among them."""
    if root.exists() and not root.is_dir():
        raise QAError(f"'{root}' is a file, not an index folder; pass --index DIR (a new or empty folder, or an index)")
    other = foreign_entries(root)
    if other:
        shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise QAError(f"'{root}' holds other files ({shown}), so it is not a qa index folder; "
                      "pass --index DIR (a new or empty folder, or an index)")


def open_current(root: Path, attempts: int = 20) -> tuple[Path, object] | None:
    """(live generation folder, open lock file holding a shared flock on it), or None when no
    index was ever written here. Close the file to let the generation go. The lock is None when
    the generation has no lock file (written by an older qa, or damaged)."""
    for _ in range(attempts):
        folder = current_generation(root)
        if folder is None:
            return None
        try:
            lock = open(folder / READERS_LOCK, "rb")
        except FileNotFoundError:
            if current_generation(root) != folder:
                continue  # swapped and deleted between the two reads: try the new one
            return folder, None  # an older format, or damage: the caller reads the manifest and says which
        except OSError as e:
            raise IndexUnusable(f"cannot read index at {root} ({e.strerror}); rebuild it with `qa index --rebuild`")
        fcntl.flock(lock, fcntl.LOCK_SH)  # waits only while a writer renames it away
        if (folder / READERS_LOCK).exists():
            return folder, lock
        lock.close()  # it was being deleted: CURRENT names a newer one by now
    raise IndexUnusable(f"index at {root} keeps changing under this reader; try again")


def drop_old_generations(root: Path) -> list[str]:
    """Delete generations other than the live one that no reader holds; returns those kept
    (held by a reader; tried again at the next commit). Runs under the write lock."""
    live = current_generation(root)
    for leftover in root.glob(".gen-del-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    held = []
    for p in sorted(root.iterdir()):
        if not _GEN.match(p.name) or p == live:
            continue
        try:
            lock = open(p / READERS_LOCK, "rb")
        except OSError:  # no lock file (damaged): nobody can be reading it through qa
            _remove(root, p)
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(p.name)
            lock.close()
            continue
        try:
            _remove(root, p)
        finally:
            lock.close()
    return held


def _remove(root: Path, generation: Path) -> None:
    """Rename first (atomic: a waiting reader sees it gone), then delete at leisure."""
    gone = Path(tempfile.mkdtemp(prefix=f".gen-del-{generation.name}-", dir=root))
    os.replace(generation, gone / generation.name)
    shutil.rmtree(gone, ignore_errors=True)


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
    (tmp / READERS_LOCK).touch()
    return tmp


def commit_generation(root: Path, tmp: Path) -> Path:
    """Move a finished temporary generation into place and make it live. Older generations stay
    until `drop_old_generations` (a reader may still hold them)."""
    _fsync_tree(tmp)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _GEN.match(p.name))]
    final = root / f"gen-{max(numbers, default=0) + 1:06d}"
    os.rename(tmp, final)
    pointer_tmp = root / f".{CURRENT}.tmp"
    pointer_tmp.write_text(final.name + "\n")
    _fsync(pointer_tmp)
    os.replace(pointer_tmp, root / CURRENT)
    _fsync(root)
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
