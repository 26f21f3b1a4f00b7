"""Split a `Document` into paragraphs, sentences and passages, keeping exact character offsets.

Invariant: `doc.text[s.start:s.end] == s.text` for every sentence and passage, except in `.md`
files, where `text` is the sentence as rendered without inline markup (`markup.plain`) and
start/end span it in the file, markup touching it included (usually
`markup.plain(doc.text, s.start, s.end)[0] == s.text`; not when a bold run spans two sentences).
Paragraph 0 is the headline line of a text file (or of an HTML page whose text opens with its
headline); body paragraphs count from 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .ingest import MAX_SENTENCES, Document

# Both the sentence and the passage budget are in model word pieces, special tokens excluded.
# The default model's; `chunk` takes the model's own (OnnxEncoder.token_budget) from build.
MAX_TOKENS = 254  # the model reads 256 word pieces including [CLS] and [SEP]
PASSAGE_SENTENCES = 3  # sentences per passage window
PASSAGE_STRIDE = 2  # so consecutive windows share one sentence

TokenCounter = Callable[[Sequence[str]], list[int]]

_TERMINAL = tuple('.!?:;"\'”’)]')
_JOINING_END = tuple(",;-–—(")
_MD_MARKER = re.compile(r"^\s{0,3}(#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)")


@dataclass
class Sentence:
    doc: str  # Document.key
    paragraph: int
    start: int
    end: int
    text: str  # what is cited and embedded (stored in sentences.text)


@dataclass
class Passage:
    doc: str
    paragraph: int
    first: int  # index of its first sentence in the document's sentence list
    last: int  # inclusive
    start: int
    end: int
    text: str


def paragraphs(doc: Document) -> list[tuple[int, int, int]]:
    """(number, start, end) of each paragraph, whitespace-trimmed, in document order.

    A paragraph is one line, except that hard-wrapped lines (a line that does not end a sentence,
    followed by one that continues it) are joined. Markdown markers are left out of the span.
    """
    text = doc.text
    lines: list[tuple[int, int]] = []  # non-blank line spans, None marks a blank line
    pos = 0
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        if any(s <= start < e for s, e in doc.skip):
            continue
        body = text[start:end]
        if not body.strip():
            lines.append((-1, -1))
            continue
        m = _MD_MARKER.match(body) if doc.source.lower().endswith(".md") else None
        if m:
            start += m.end()
        start += len(text[start:end]) - len(text[start:end].lstrip())
        end -= len(text[start:end]) - len(text[start:end].rstrip())
        if start < end:
            lines.append((start, end))

    spans: list[list[int]] = []
    prev_blank = True
    for start, end in lines:
        if start < 0:
            prev_blank = True
            continue
        title_line = doc.headline and len(spans) == 1  # a headline never runs on into the body
        if spans and not prev_blank and not title_line and _continues(text[spans[-1][0] : spans[-1][1]], text[start:end]):
            spans[-1][1] = end
        else:
            spans.append([start, end])
        prev_blank = False

    first_number = 0 if doc.headline else 1
    return [(first_number + i, s, e) for i, (s, e) in enumerate(spans)]


def _continues(prev: str, line: str) -> bool:
    if prev.endswith(_TERMINAL):
        return False
    return line[:1].islower() or line[:1].isdigit() or prev.endswith(_JOINING_END)


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end] (qa.sentences; imported here only when used, as
    `qa ask` imports this module for its passage constants)."""
    from .sentences import split_sentences as split

    return split(text, start, end)


def _split_long(text: str, start: int, end: int, count: TokenCounter, max_tokens: int = MAX_TOKENS) -> list[tuple[int, int]]:
    """Cut a span longer than the model's window at word boundaries, so nothing is truncated."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    pieces: list[tuple[int, int]] = []
    lo = 0
    while lo < len(words):
        hi = len(words)
        # shrink by halves, then grow: O(log n) tokenizer calls per piece
        while hi - lo > 1 and count([text[words[lo][0] : words[hi - 1][1]]])[0] > max_tokens:
            hi = lo + max(1, (hi - lo) // 2)
        step = max(1, (hi - lo) // 8)
        while hi + step <= len(words) and count([text[words[lo][0] : words[hi + step - 1][1]]])[0] <= max_tokens:
            hi += step
        pieces.append((words[lo][0], words[hi - 1][1]))
        lo = hi
    return pieces


def chunk(doc: Document, count: TokenCounter, max_tokens: int = MAX_TOKENS) -> tuple[list[Sentence], list[Passage]]:
    """Sentences and passages of a document, at most MAX_SENTENCES sentences (ingest has already
    cut longer documents, with a warning; this keeps the bound whatever the splitter does).
    `max_tokens` is the model's budget in word pieces (OnnxEncoder.token_budget)."""
    from .markup import plain

    text = doc.text
    markdown = doc.source.lower().endswith(".md")
    sentences: list[Sentence] = []
    shown: list[tuple[str, int, int]] = []  # per sentence: its paragraph's rendering and its span there
    para_ranges: list[tuple[int, int, int]] = []  # paragraph number, first, last sentence index
    for number, pstart, pend in paragraphs(doc):
        if markdown:  # find sentences in the rendering without markup, locate them in the file
            para, pos = plain(text, pstart, pend)
            visible = set(pos)
        else:
            para, pos, visible = text[pstart:pend], None, set()
        spans = split_sentences(para, 0, len(para))
        lengths = count([para[s:e] for s, e in spans]) if spans else []
        first = len(sentences)
        for (s, e), n in zip(spans, lengths):
            for ps, pe in _split_long(para, s, e, count, max_tokens) if n > max_tokens else [(s, e)]:
                if len(sentences) < MAX_SENTENCES:
                    fs, fe = (pstart + ps, pstart + pe) if pos is None else _file_span(text, pos, visible, ps, pe, pstart, pend)
                    sentences.append(Sentence(doc.key, number, fs, fe, para[ps:pe]))
                    shown.append((para, ps, pe))
        if len(sentences) > first:
            para_ranges.append((number, first, len(sentences) - 1))

    passages: list[Passage] = []
    lengths = count([s.text for s in sentences]) if sentences else []
    for number, first, last in para_ranges:
        i = first
        while i <= last:
            j, budget = i, lengths[i]
            while j + 1 <= last and j + 1 - i < PASSAGE_SENTENCES and budget + lengths[j + 1] <= max_tokens:
                j += 1
                budget += lengths[j]
            para, ps, _ = shown[i]
            s, e = sentences[i].start, sentences[j].end
            passages.append(Passage(doc.key, number, i, j, s, e, para[ps : shown[j][2]]))
            if j == last:
                break
            i = max(i + 1, min(i + PASSAGE_STRIDE, j))
    return sentences, passages


def _file_span(text: str, pos: list[int], visible: set[int], ps: int, pe: int, lo: int, hi: int) -> tuple[int, int]:
    """The file span of rendered characters [ps, pe): from the first to the last shown character,
    widened over markup touching them ("**", "](url)") up to the neighbouring text."""
    start, end = pos[ps], pos[pe - 1] + 1
    floor = pos[ps - 1] + 1 if ps > 0 else lo
    ceiling = pos[pe] if pe < len(pos) else hi
    while start > floor and not text[start - 1].isspace() and start - 1 not in visible:
        start -= 1
    while end < ceiling and not text[end].isspace() and end not in visible:
        end += 1
    return start, end
