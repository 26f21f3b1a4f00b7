"""Publication dates and front matter: read from article metadata, normalised to ISO 8601.

Stored forms: `YYYY-MM-DD` when the source gives a day, `YYYY-MM-DDTHH:MM:SS` when it gives a time
without a zone, `YYYY-MM-DDTHH:MM:SS+HH:MM` when it gives a zone (`Z` becomes `+00:00`).
Accepted inputs: ISO 8601 (`2024-03-05`, `2024-03-05T14:30:00Z`, `2024-03-05 14:30`), `2024/03/05`,
`March 5, 2024`, `Mar. 5, 2024`, `5 March 2024`, and RFC 2822 (`Tue, 05 Mar 2024 14:30:00 GMT`).
A value without a year, month and day is not a date (`March 2024`, `5`, `yesterday`).
"""

from __future__ import annotations

import re

_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"], 1)}
_MONTH_RE = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
             r"Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
# A date inside a line of text (a dateline, a `Date:` line, a file name).
DATE_IN_TEXT = re.compile(
    rf"\b(?:(?P<mdy>{_MONTH_RE}\s+\d{{1,2}},?\s+\d{{4}})|(?P<dmy>\d{{1,2}}\s+{_MONTH_RE}\s+\d{{4}})|"
    r"(?P<iso>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?))(?![\d-])",
    re.IGNORECASE,
)
_DATE_LINE = re.compile(r"^\s*(?:date|published|publication date|posted|dateline)\s*:\s*(?P<value>\S.*?)\s*$", re.IGNORECASE)


def _month(name: str) -> int:
    name = name.rstrip(".").lower()
    return next(v for k, v in _MONTHS.items() if k.startswith(name[:3]))


def normalise_date(value: object) -> str | None:
    """ISO 8601 form of a date value (see the module docstring), or None when it is not a date."""
    from datetime import date, datetime
    from email.utils import parsedate_to_datetime

    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text).isoformat()
        if re.fullmatch(r"\d{4}/\d{2}/\d{2}", text):
            return date.fromisoformat(text.replace("/", "-")).isoformat()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", text):
            return datetime.fromisoformat(text.replace(" ", "T", 1)).isoformat(timespec="seconds")
        m = re.fullmatch(rf"({_MONTH_RE})\s+(\d{{1,2}}),?\s+(\d{{4}})", text, re.IGNORECASE)
        if m:
            return date(int(m[3]), _month(m[1]), int(m[2])).isoformat()
        m = re.fullmatch(rf"(\d{{1,2}})\s+({_MONTH_RE}),?\s+(\d{{4}})", text, re.IGNORECASE)
        if m:
            return date(int(m[3]), _month(m[2]), int(m[1])).isoformat()
        if re.fullmatch(r"[A-Za-z]{3},\s+\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}(:\d{2})?\s+\S+", text):
            return parsedate_to_datetime(text).isoformat(timespec="seconds")
    except (ValueError, TypeError, StopIteration):
        return None
    return None


def date_in(text: str) -> tuple[str | None, str | None]:
    """(normalised date, the raw text found) for the first date written in `text`."""
    m = DATE_IN_TEXT.search(text)
    if not m:
        return None, None
    raw = m.group(0)
    return normalise_date(re.sub(r"\s+", " ", raw).replace(" ,", ",")), raw


def date_line(line: str) -> str | None:
    """The value of a `Date:` / `Published:` metadata line, or None when the line is not one."""
    m = _DATE_LINE.match(line)
    return m["value"] if m else None


def front_matter(text: str) -> tuple[dict[str, str], int]:
    """A Markdown front-matter block (`---` lines around `key: value` lines) at the very top.

    Returns its fields (lower-case keys, quotes stripped; nested YAML is ignored) and its length
    in characters, line ending included; ({}, 0) when the text has none.
    """
    m = re.match(r"---[ \t]*(\r\n|\r|\n)(.*?)(\r\n|\r|\n)(---|\.\.\.)[ \t]*(\r\n|\r|\n|$)", text, re.DOTALL)
    if not m:
        return {}, 0
    fields: dict[str, str] = {}
    for line in re.split(r"\r\n|\r|\n", m[2]):
        kv = re.match(r"([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$", line)
        if kv and kv[2]:
            value = kv[2]
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            fields.setdefault(kv[1].lower(), value)
    return fields, m.end()
