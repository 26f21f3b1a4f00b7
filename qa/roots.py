"""The folders and files an index remembers ("roots"), and the sources found under them.

A root is remembered by absolute path, so `qa index` finds the same files from any working
directory, and by the name the user gave it, so sources (and document keys, citations) read as the
user named them. An older qa remembered roots relative to its working directory; those are
resolved once against the current directory, only when they exist there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import store
from .config import default_corpus
from .errors import QAError
from .ingest import SourceFile, find_files


@dataclass(frozen=True)
class Root:
    """A folder or file the index remembers: where it is (absolute) and how the user named it.
    Sources are named from `name` (as before), files are found at `path` whatever the cwd."""

    path: Path
    name: str

    def to_json(self) -> dict:
        return {"path": str(self.path), "name": self.name}


def live_manifest(root: Path) -> dict | None:
    """The live generation's manifest as plain JSON (any format), None when there is none or it
    cannot be read (Index.open then says why)."""
    try:
        folder = store.current_generation(root)
        return json.loads((folder / "manifest.json").read_text()) if folder else None
    except (QAError, OSError, ValueError):
        return None


def remembered(root: Path, live: dict | None) -> list:
    """The roots the index remembers: from the live manifest, else (CURRENT damaged) from the
    newest generation whose manifest still reads."""
    if live is None:
        for folder in sorted(root.glob("gen-*"), reverse=True):
            try:
                live = json.loads((folder / "manifest.json").read_text())
                break
            except (OSError, ValueError):
                continue
    roots = live.get("roots", []) if isinstance(live, dict) else []
    return roots if isinstance(roots, list) else []


def resolve_roots(remembered: list, paths: list[Path] | None, warn) -> list[Root]:
    """The remembered roots (migrating an older qa's relative ones), then `paths` not among them;
    ./seeds (or $QA_CORPUS) only when nothing is remembered and nothing given."""
    out: list[Root] = []
    for r in remembered:
        if isinstance(r, dict) and "path" in r:
            out.append(Root(Path(r["path"]), str(r.get("name") or r["path"])))
        elif isinstance(r, str) and Path(r).is_absolute():
            out.append(Root(Path(r), r))
        elif isinstance(r, str):
            # An older qa remembered folders relative to the cwd of the time. Read from here only
            # when the folder exists here, once: from now on it is remembered by absolute path.
            here = Path(os.path.abspath(r))
            if not here.exists():
                raise QAError(f"the index remembers folder '{r}' relative to the folder it was indexed from "
                              f"(an older qa), and there is no '{r}' here; run `qa index --rebuild FOLDERS` "
                              "naming the article folders")
            warn(f"remembered folder '{r}' (stored relative by an older qa) read as {here}; it is remembered by that path from now on")
            out.append(Root(here, r))
    if not paths and not out:
        paths = [default_corpus()]
    for p in paths or ():
        absolute = Path(os.path.abspath(p))
        if any(r.path == absolute for r in out):
            continue
        name = p.as_posix()
        if any(r.name == name for r in out):  # the same name from another folder: name it fully
            name = absolute.as_posix()
        out.append(Root(absolute, name))
    return out


def find_sources(roots: list[Root]) -> list[SourceFile]:
    """Supported files under every root, found by absolute path, their sources named as the user
    named the root (so sources, and document keys, do not depend on the current folder)."""
    found: dict[str, SourceFile] = {}
    for r in roots:
        prefix = r.path.as_posix()
        for f in find_files([r.path]):
            source = r.name + f.source[len(prefix):] if f.source.startswith(prefix) else f.source
            found.setdefault(source, dataclasses.replace(f, source=source))
    return list(found.values())
