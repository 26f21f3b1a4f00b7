"""Read articles from files into `Document`s: the text that sentence offsets point into.

Supported: `.txt`, `.md` (the file decoded as UTF-8, any BOM removed, line endings kept, is the
document text, so offsets index the file exactly), `.html`/`.htm` and a browser's single-file
`.mhtml`/`.mht` (decoded as a browser would, `qa.saved_page`; main text extracted by
trafilatura), `.json`/`.jsonl` (records with `title`, `text`, optional `date`, `url`, `id`; one
document per record). Publication dates are read as `qa.dates` describes; every document is cut
to `MAX_CHARS` characters and about `MAX_SENTENCES` sentences, with a warning naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .saved_page import decode_page, mhtml_page

log = logging.getLogger("qa")

TEXT_SUFFIXES = {".txt", ".md"}
HTML_SUFFIXES = {".html", ".htm"}
MHTML_SUFFIXES = {".mhtml", ".mht"}  # a browser's single-file save
JSON_SUFFIXES = {".json", ".jsonl"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | MHTML_SUFFIXES | JSON_SUFFIXES

# Per-document limits. A long news feature is ~60,000 characters and ~600 sentences; a junk page
# (5 MB of boilerplate) once gave 26,419 sentences and took ten minutes to embed.
MAX_CHARS = 100_000
MAX_SENTENCES = 1_000
HEAD_LINES = 6  # a dateline or `Date:` line is looked for in the first lines under the title

Span = tuple[int, int]


@dataclass
class Document:
    key: str  # unique id: the source path, plus "#n" for the n-th record of a JSON file
    source: str  # the file path as it was named when indexed
    title: str
    text: str  # sentence offsets index into this string
    skip: tuple[Span, ...] = ()  # spans not to index: front matter, a `Date:` line, the title's repeat
    headline: bool = False  # the text opens with the title line: paragraph 0
    date: str | None = None  # ISO 8601 (see qa.dates)
    url: str | None = None
    record: str | None = None  # which record of a JSON file: its "id", "line N" (JSONL), "index N" (list)
    bom: int = 0  # bytes of a UTF-8 BOM removed before the text (0 or 3): byte offset = bom + len(text[:i].encode())

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.title, self.text, self.date or "", self.url or "", self.record or "", str(self.bom)):
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

    Hidden files and folders are skipped, and so is the `<name>_files` folder a browser saves
    beside `<name>.html` (its frames are ads and widgets, not articles). A file named explicitly
    with an unsupported suffix is an error the caller reports; inside folders, other files are
    ignored silently.
    """
    found: dict[str, SourceFile] = {}
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root)
                if any(part.startswith(".") for part in rel.parts) or _in_saved_page_assets(root, rel):
                    continue
                # A broken link to an article is kept so that reading it warns, not dropped silently.
                wanted = p.is_file() or (p.is_symlink() and not p.exists())
                if wanted and p.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.setdefault(p.as_posix(), SourceFile(p, p.as_posix()))
        elif root.is_file() or root.is_symlink():
            found.setdefault(root.as_posix(), SourceFile(root, root.as_posix()))
    return list(found.values())


def _in_saved_page_assets(root: Path, rel: Path) -> bool:
    """Is this inside the `X_files` folder of a page saved as `X.html` or `X.htm` beside it?"""
    folder = root
    for part in rel.parts[:-1]:
        if part.endswith("_files") and any((folder / (part[: -len("_files")] + s)).is_file() for s in (".html", ".htm")):
            return True
        folder = folder / part
    return False


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_changed(files: Iterable[SourceFile], old_hash: Callable[[str], str | None], warn: Warn):
    """For each readable file: (file, its bytes' hash, its documents), the documents None when the
    hash equals `old_hash(file.source)` (the file is then not even parsed). An unreadable file is
    skipped with a warning. Both index builders (folder, Milvus) decide what changed from this."""
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as e:
            warn(f"skipped {f.source}: {e.strerror or e}")
            continue
        h = file_hash(data)
        yield f, h, None if old_hash(f.source) == h else parse(f, data, warn)


def parse(file: SourceFile, data: bytes, warn: Warn) -> list[Document]:
    """Turn one file's bytes into documents; a file that cannot be read is skipped with a warning."""
    suffix = file.path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        warn(f"skipped {file.source}: unsupported file type {suffix or '(none)'}")
        return []
    if b"\0" in data[:8192]:
        warn(f"skipped {file.source}: binary file")
        return []
    said: list[str] = []

    def _warn(msg: str) -> None:  # a file already reported (bad JSON) gets no second "no text"
        said.append(msg)
        warn(msg)

    if suffix in HTML_SUFFIXES | MHTML_SUFFIXES:  # a page in its site's encoding is read as a browser reads it
        found = decode_page(data) if suffix in HTML_SUFFIXES else mhtml_page(data)
        if found is None:
            warn(f"skipped {file.source}: no web page in this MHTML file")
            return []
        page, problem = found
        if problem:
            warn(f"{file.source}: {problem}")
        docs = [_html_document(file, page, warn)]
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            warn(f"skipped {file.source}: not UTF-8 text ({e.reason} at byte {e.start})")
            return []
        if suffix in TEXT_SUFFIXES:
            doc = _plain_document(file.source, file.source, text, markdown=suffix == ".md", warn=warn)
            doc.bom = len(data) - len(text.encode("utf-8"))
            doc.date = doc.date or _file_name_date(file, warn)
            docs = [doc]
        else:
            docs = _json_documents(file.source, text, jsonl=suffix == ".jsonl", warn=_warn)
    docs = [d for d in docs if d is not None and d.text.strip()]
    if not docs and not said:
        warn(f"skipped {file.source}: no text")
    return [_limit(d, warn) for d in docs]


def _plain_document(key: str, source: str, text: str, markdown: bool, warn: Warn | None = None) -> Document:
    """Title = first non-empty line (after Markdown front matter); a verbatim repeat of it right
    after is not indexed twice. A `Date:`/`Published:` line under it is read and not indexed.

    The title line itself stays in the indexed text: a headline is often the best summary.
    """
    from .dates import date_line, front_matter

    warn = warn or (lambda msg: None)
    fields, fm_end = front_matter(text) if markdown else ({}, 0)
    skip: list[Span] = [(0, fm_end)] if fm_end else []
    lines, pos = [], fm_end
    for line in text[fm_end:].splitlines(keepends=True):
        lines.append((pos, line))
        pos += len(line)
    nonblank = [(start, line) for start, line in lines if line.strip()]
    date = _checked_date(fields.get("date"), f"{source}: front matter", warn) if "date" in fields else None
    url = fields.get("url") or fields.get("link") or None
    if not nonblank:
        return Document(key, source, fields.get("title", ""), text, tuple(skip), date=date, url=url)
    first_start, first = nonblank[0]
    title = first.strip()
    if markdown:
        from .markup import plain_text

        title = plain_text(title.lstrip("#").strip()).strip()
    title = fields.get("title") or title
    if len(nonblank) > 1 and nonblank[1][1].strip() == first.strip():
        skip.append((nonblank[1][0], nonblank[1][0] + len(nonblank[1][1])))
    for start, line in nonblank[1:HEAD_LINES]:
        value = date_line(line)
        if value is not None:  # metadata, not a sentence: read it and leave it out of the index
            skip.append((start, start + len(line)))
            date = date or _checked_date(value, f"{source}: {line.strip()!r}", warn)
        elif date is None:
            date = _dateline(line, source, warn)
    return Document(key, source, title, text, tuple(sorted(skip)), headline=True, date=date, url=url)


def _dateline(line: str, source: str, warn: Warn) -> str | None:
    """A date that opens the body: "WASHINGTON, March 3, 2024 (Reuters) - ..." or a line that is
    only a date ("March 3, 2024", "Updated 2024-03-05 14:30"). Dates later in a sentence
    ("the hearing is set for September 3, 2025") are events, not the publication date."""
    from .dates import date_in

    iso, raw = date_in(line[:120])
    if raw is None:
        return None
    after = line[line.index(raw) + len(raw):].strip()
    short = len(line.strip()) <= 60 and not line.rstrip().endswith((".", "!", "?"))  # not a sentence
    if not (short or re.match(r"(\([A-Z][\w .&]*\)\s*)?[-–—]", after)):
        return None
    if iso is None:
        warn(f"{source}: ignored date {raw!r}: not a valid date")
    return iso


def _file_name_date(file: SourceFile, warn: Warn) -> str | None:
    m = re.search(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)", file.path.name)
    return _checked_date(m[1], f"{file.source}: file name", warn) if m else None


def _checked_date(value: object, where: str, warn: Warn) -> str | None:
    from .dates import normalise_date

    iso = normalise_date(value if isinstance(value, str) else str(value))
    if iso is None:
        warn(f"{where}: ignored date {value!r}: not a valid date")
    return iso


def _html_document(file: SourceFile, html: str, warn: Warn) -> Document | None:
    import trafilatura

    # Only dates the page states in its metadata (no guessing from copyright lines or the clock).
    doc = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, favor_precision=True,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if doc is None:
        return None
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    text = data.get("text") or ""
    title = (data.get("title") or "").strip() or _first_line(text)
    date = _checked_date(data["date"], f"{file.source}: metadata", warn) if data.get("date") else None
    # The extracted text opens with the <h1> headline: make it paragraph 0, as in a text file,
    # so that it helps find the article but is not cited above the body.
    headline = _same_words(_first_line(text), title)
    return Document(file.source, file.source, title, text, headline=headline,
                    date=date or _file_name_date(file, warn), url=data.get("url") or None)


def _same_words(a: str, b: str) -> bool:
    words = lambda s: re.findall(r"\w+", s.lower())  # noqa: E731
    return bool(a) and words(a) == words(b)


def _json_documents(source: str, text: str, jsonl: bool, warn: Warn) -> list[Document]:
    """Records of a .json file (one object or a list) or a .jsonl file (one object per line).

    A bad line of a JSON Lines file is skipped with a warning; the file's other records stay.
    It keeps its number, so the records after it keep their keys once it is fixed.
    """
    records: list = []
    linenos: list[int] = []
    if jsonl:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                linenos.append(lineno)
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
        where = f"line {linenos[i]}" if jsonl else f"record {i}"
        if rec is None:  # an invalid line, already reported
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            warn(f"skipped record {i} of {source}: needs a \"text\" string")
            continue
        bad = [k for k in ("text", "title", "date", "url", "id") if isinstance(rec.get(k), str) and not _encodes(rec[k])]
        if bad:  # e.g. a lone surrogate "\ud800": no tokenizer or database can take it
            warn(f"skipped {where} of {source}: \"{bad[0]}\" is not valid Unicode (a lone surrogate)")
            continue
        title = str(rec.get("title") or "").strip() or _first_line(rec["text"])
        date = _checked_date(rec["date"], f"{source} {where}", warn) if rec.get("date") is not None else None
        url = str(rec["url"]) if rec.get("url") is not None else None
        key = source if len(records) == 1 else f"{source}#{i}"
        if isinstance(rec.get("id"), (str, int)) and not isinstance(rec.get("id"), bool) and str(rec["id"]).strip():
            record = str(rec["id"]).strip()
        elif len(records) == 1:
            record = None
        else:
            record = f"line {linenos[i]}" if jsonl else f"index {i}"
        docs.append(Document(key, source, title, rec["text"], date=date, url=url, record=record))
    return docs


def _encodes(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")


def _limit(doc: Document, warn: Warn) -> Document:
    """Cut a document to MAX_CHARS characters and at most MAX_SENTENCES possible sentence ends
    (a line break or terminal punctuation before a space: more than the splitter can find).
    The text is cut, never changed, so offsets still index the file."""
    cut = len(doc.text)
    if cut > MAX_CHARS:
        line_end = doc.text.rfind("\n", 0, MAX_CHARS)
        cut = line_end if line_end > MAX_CHARS // 2 else MAX_CHARS
    for n, m in enumerate(_SENTENCE_END.finditer(doc.text, 0, cut), 1):
        if n == MAX_SENTENCES:
            cut = m.end()
            break
    if cut < len(doc.text):
        name = doc.source + (f" ({doc.record})" if doc.record else "")
        warn(f"{name}: indexed only the first {cut:,} of {len(doc.text):,} characters "
             f"(limits: {MAX_CHARS:,} characters, {MAX_SENTENCES:,} sentences per document)")
        doc.text = doc.text[:cut]
        doc.skip = tuple((s, min(e, cut)) for s, e in doc.skip if s < cut)
    return doc


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""
