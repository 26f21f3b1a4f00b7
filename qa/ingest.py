"""Read articles from files into `Document`s: the text that sentence offsets point into.

Supported: `.txt`, `.md` (the decoded file content is the document text, so offsets index the
file exactly), `.html`/`.htm` (main text extracted by trafilatura), `.json`/`.jsonl` (records with
`title`, `text`, optional `date`, `url`; one document per record).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger("qa")

TEXT_SUFFIXES = {".txt", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES


@dataclass
class Document:
    key: str  # unique id: the source path, plus "#n" for the n-th record of a JSON file
    source: str  # the file path as it was named when indexed
    title: str
    text: str  # sentence offsets index into this string
    skip: tuple[int, int] | None = None  # a span not to index: the title's verbatim repeat
    headline: bool = False  # the text opens with the title line (text files): paragraph 0
    date: str | None = None
    url: str | None = None

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.title, self.text, self.date or "", self.url or ""):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()


@dataclass
class SourceFile:
    path: Path
    source: str  # how the user named it (relative paths stay relative)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


Warn = Callable[[str], None]


def find_files(paths: Iterable[Path]) -> list[SourceFile]:
    """Expand files and folders (recursively) into supported files, in a stable order.

    Hidden files and folders are skipped. A file named explicitly with an unsupported suffix is an
    error the caller reports; inside folders, other files are ignored silently.
    """
    found: dict[str, SourceFile] = {}
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                # A broken link to an article is kept so that reading it warns, not dropped silently.
                wanted = p.is_file() or (p.is_symlink() and not p.exists())
                if wanted and p.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(p.as_posix(), SourceFile(p, p.as_posix()))
        elif root.is_file() or root.is_symlink():
            found.setdefault(root.as_posix(), SourceFile(root, root.as_posix()))
    return list(found.values())


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse(file: SourceFile, data: bytes, warn: Warn) -> list[Document]:
    """Turn one file's bytes into documents; a file that cannot be read is skipped with a warning."""
    suffix = file.path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        warn(f"skipped {file.source}: unsupported file type {suffix or '(none)'}")
        return []
    if b"\0" in data[:8192]:
        warn(f"skipped {file.source}: binary file")
        return []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        warn(f"skipped {file.source}: not UTF-8 text ({e.reason} at byte {e.start})")
        return []
    said: list[str] = []

    def _warn(msg: str) -> None:  # a file already reported (bad JSON) gets no second "no text"
        said.append(msg)
        warn(msg)

    if suffix in TEXT_SUFFIXES:
        docs = [_plain_document(file.source, file.source, text, markdown=suffix == ".md")]
    elif suffix in HTML_SUFFIXES:
        docs = [_html_document(file.source, text)]
    else:
        docs = _json_documents(file.source, text, jsonl=suffix == ".jsonl", warn=_warn)
    docs = [d for d in docs if d is not None and d.text.strip()]
    if not docs and not said:
        warn(f"skipped {file.source}: no text")
    return docs


def _plain_document(key: str, source: str, text: str, markdown: bool) -> Document:
    """Title = first non-empty line; a verbatim repeat of it right after is not indexed twice.

    The title line itself stays in the indexed text: a headline is often the best summary.
    """
    lines = text.splitlines(keepends=True)
    nonblank = [(i, line) for i, line in enumerate(lines) if line.strip()]
    if not nonblank:
        return Document(key, source, "", text)
    first_i, first = nonblank[0]
    title = first.strip().lstrip("#").strip() if markdown else first.strip()
    skip = None
    if len(nonblank) > 1 and nonblank[1][1].strip() == first.strip():
        second_i = nonblank[1][0]
        start = sum(len(line) for line in lines[:second_i])
        skip = (start, start + len(lines[second_i]))
    return Document(key, source, title, text, skip, headline=True)


def _html_document(source: str, html: str) -> Document | None:
    import trafilatura

    doc = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, favor_precision=True)
    if doc is None:
        return None
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    text = data.get("text") or ""
    title = (data.get("title") or "").strip() or _first_line(text)
    return Document(source, source, title, text, date=data.get("date"), url=data.get("url"))


def _json_documents(source: str, text: str, jsonl: bool, warn: Warn) -> list[Document]:
    """Records of a .json file (one object or a list) or a .jsonl file (one object per line).

    A bad line of a JSON Lines file is skipped with a warning; the file's other records stay.
    It keeps its number, so the records after it keep their keys once it is fixed.
    """
    records: list = []
    if jsonl:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    warn(f"skipped line {lineno} of {source}: invalid JSON ({e.msg})")
                    records.append(None)
        if not any(r is not None for r in records):
            return []
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            warn(f"skipped {source}: invalid JSON ({e.msg}, line {e.lineno})")
            return []
        records = data if isinstance(data, list) else [data]
    docs = []
    for i, rec in enumerate(records):
        if rec is None:  # an invalid line, already reported
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            warn(f"skipped record {i} of {source}: needs a \"text\" string")
            continue
        title = str(rec.get("title") or "").strip() or _first_line(rec["text"])
        date = str(rec["date"]) if rec.get("date") is not None else None
        url = str(rec["url"]) if rec.get("url") is not None else None
        key = source if len(records) == 1 else f"{source}#{i}"
        docs.append(Document(key, source, title, rec["text"], date=date, url=url))
    return docs


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""
