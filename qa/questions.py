"""Questions as users type, paste and pipe them: cleaned, and read one bad line at a time.

A question can arrive with bytes that are not UTF-8 (a Latin-1 terminal, a binary paste), with
ANSI escape sequences copied from a coloured terminal, or with control characters. Each is
repaired or dropped for that question alone: one bad line never loses the rest of a batch.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .errors import UsageError

MAX_QUESTION_CHARS = 2000  # the embedding reads 256 word pieces anyway; BM25 gets the same text

# ECMA-48 escape sequences, removed whole: CSI ("\x1b[1;31m", "\x1b[2K"), OSC terminated by BEL
# or ST ("\x1b]0;title\x07", hyperlinks), other string commands (DCS, SOS, PM, APC), and the
# two-character escapes ("\x1b7", "\x1bM"). The C1 form of CSI ("\x9b31m") too.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]",  # two-character escapes (with intermediates)
    re.DOTALL,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Python decodes undecodable bytes of argv and of our stdin lines as lone surrogates
# (surrogateescape); no real text holds them, and tokenizers and output encoders reject them.
_SURROGATE = re.compile(r"[\ud800-\udfff]")

EMPTY_HINT = "ask something, e.g. qa ask \"What did London agree?\""


def clean_question(question: str) -> str:
    """Normalise a user's question; one that is empty once cleaned is a usage error.

    Escape sequences and undecodable bytes are removed, control characters become spaces,
    whitespace is collapsed, and the question is cut at MAX_QUESTION_CHARS.
    """
    q = _SURROGATE.sub("", question or "")
    q = _ANSI.sub("", q)
    q = _CONTROL.sub(" ", unicodedata.normalize("NFC", q))
    q = " ".join(q.split())
    if not q:
        raise UsageError(f"the question is empty; {EMPTY_HINT}")
    return q[:MAX_QUESTION_CHARS]


def has_invalid_bytes(text: str) -> bool:
    """Did `text` come from bytes that were not UTF-8 (decoded with surrogateescape)?"""
    return bool(_SURROGATE.search(text or ""))


@dataclass
class QuestionLine:
    number: int  # 1-based line number in the input
    question: str | None  # cleaned; None when the line had to be skipped
    warning: str | None = None  # what was wrong with the line, for a one-line warning


def read_lines(stream: BinaryIO, what: str = "line") -> Iterator[QuestionLine]:
    """Questions from a byte stream, one per line. Blank lines are passed over silently.

    A line with invalid UTF-8 keeps its valid text (with a warning); a line that cleans to
    nothing (only control characters or escapes) is skipped with a warning. Nothing raises.
    """
    for number, raw in enumerate(stream, 1):
        text = raw.decode("utf-8", errors="surrogateescape").rstrip("\r\n")
        if not text.strip():
            continue
        yield check_line(number, text, what)


def check_line(number: int, text: str, what: str = "line") -> QuestionLine:
    """One typed or piped line as a QuestionLine (see read_lines)."""
    warning = f"{what} {number}: invalid UTF-8 bytes removed" if has_invalid_bytes(text) else None
    try:
        return QuestionLine(number, clean_question(text), warning)
    except UsageError:
        return QuestionLine(number, None, f"{what} {number}: skipped, nothing left to ask once invalid bytes and control characters were removed")
