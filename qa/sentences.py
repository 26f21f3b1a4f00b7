"""Sentence boundaries in one paragraph: BlingFire's splitter plus narrow rules for news text.

BlingFire scored the best boundary F1 of the splitters measured on the hand-written news set
(tests/data, scripts/segmentation_f1.py; BENCHMARKS.md) and is ~100x faster than pysbd. Each rule
below fixes one kind of error it makes on news text and has a test in tests/test_chunk.py.
Spans are exact: text[start:end] is the sentence, trimmed.
"""

from __future__ import annotations

import re

# Titles written before a name: a period after them never ends a sentence when a capital follows.
# ("St." is left out: "on Elm St." can end a sentence.)
TITLES = ("Gov", "Sen", "Rep", "Gen", "Lt", "Col", "Capt", "Sgt", "Adm", "Cmdr", "Dr", "Mr", "Mrs", "Ms",
          "Prof", "Rev", "Fr", "No", "Supt", "Insp", "Det", "Pres")
_TITLE_END = re.compile(r"(?:^|[\s(\"'])(?:%s)\.$" % "|".join(TITLES))
_TITLE_START = re.compile(r"(?:%s)\.\s+[A-Z0-9]" % "|".join(TITLES))
# "the U.S." / "Washington, D.C." end a sentence when the next word can only start one.
_STARTERS = frozenset(
    "The A An It Its He She His Her They Their We Our I This That These Those There Then But And Yet So "
    "In On At For After Before When While As If Other Others Some Many Most Officials Critics Analysts".split()
)
_CLOCK_END = re.compile(r"\b\d{1,2}(?::\d{2})?\s*[ap]\.m\.$")
_CLOCK_SAME_SENTENCE = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|today|tomorrow|yesterday|local|[A-Z]{2,4}T|GMT|UTC|ET|PT)\b"
)
_MONTH_END = re.compile(r"\b(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.$|\b(?:January|February|March|April|May|June|July|August|September|October|November|December)$")
_DAY_START = re.compile(r"\d{1,2}[.,]?(?=\s|$)")
_CAPS_ABBREVIATION = re.compile(r"[A-Z]{2,3}\.")
# Inside a paragraph no sentence opens with a dash; a piece that does continues a dateline.
_DASH_START = re.compile(r"[-–—]{1,2}\s")
_LOWER_WORD_END = re.compile(r"(?:^|\s)[a-z][a-z'’]+[.!?][\"'”’)]*\s+$")


def _blingfire_spans(para: str) -> list[tuple[int, int]]:
    import blingfire

    _, offsets = blingfire.text_to_sentences_and_offsets(para)
    return [(s, e) for s, e in offsets if para[s:e].strip()]


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end], located exactly."""
    para = text[start:end]
    if not para.strip():
        return []
    spans = _blingfire_spans(para)
    if not spans or _is_headline(para):
        spans = [(0, len(para))] if not spans else [(spans[0][0], spans[-1][1])]
    spans = _split_before_titles(para, spans)
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and _joins(para, merged[-1], (s, e)):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    out: list[tuple[int, int]] = []
    for s, e in _split_after_initialisms(para, merged):
        piece = para[s:e]
        s += len(piece) - len(piece.lstrip())
        e -= len(piece) - len(piece.rstrip())
        if s < e:
            _add_span(out, start + s, start + e, para[s:e])
    return out


def _is_headline(para: str) -> bool:
    """A title-case line without a sentence end ("Acme Inc. Agrees to Buy Rival") is one sentence."""
    words = re.findall(r"[A-Za-z][\w'’-]*", para)
    long_words = [w for w in words if len(w) >= 4]
    return (
        len(words) <= 20 and len(long_words) >= 2 and all(w[0].isupper() for w in long_words)
        and not re.search(r"[a-z]{2,}[.!?][\"'”’]?\s+\S", para)
    )


def _joins(para: str, prev: tuple[int, int], nxt: tuple[int, int]) -> bool:
    """Whether a boundary between two pieces is a false one."""
    before = para[prev[0] : prev[1]].rstrip()
    after = para[nxt[0] : nxt[1]].lstrip()
    if _TITLE_END.search(before) and after[:1].isupper():  # "Gov." | "Mike Carter called it ..."
        return True
    if _CLOCK_END.search(before) and (_CLOCK_SAME_SENTENCE.match(after) or after[:1].islower()):
        return True  # "by 6 a.m." | "Saturday most homes had power"
    if _MONTH_END.search(before) and _DAY_START.match(after):  # "on January" | "2. A second hearing"
        return True
    if _DASH_START.match(after):  # a dateline: "RALEIGH, N.C." | "- The death toll ..."
        return True
    if _CAPS_ABBREVIATION.fullmatch(before):  # a dateline's "ST." | "PAUL, Minn. - ..." is no sentence
        return True
    return False


def _split_before_titles(para: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A sentence ending in a lower-case word, then a title ("...every rule. Rep. Dana Wills"),
    ends there: a title opens the next sentence."""
    out = []
    for s, e in spans:
        cuts = [s]
        for m in _TITLE_START.finditer(para, s, e):
            if m.start() > s and _LOWER_WORD_END.search(para[s : m.start()]):
                cuts.append(m.start())
        out.extend(zip(cuts, cuts[1:] + [e]))
    return out


def _split_after_initialisms(para: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split "... in the U.S. The company ..." where only a sentence start can follow."""
    out = []
    for s, e in spans:
        cut = s
        for m in re.finditer(r"\b(?:[A-Z]\.){2,3}(?=\s+([A-Z][a-z]*)\b)", para[s:e]):
            if m.group(1) in _STARTERS and s + m.end() > cut:
                out.append((cut, s + m.end()))
                cut = s + m.end()
        out.append((cut, e))
    return out


def _add_span(spans: list[tuple[int, int]], s: int, e: int, text: str) -> None:
    """Append a sentence span; a piece with no letter or digit belongs to the sentence before
    (a closing quote cut off a sentence would be cited as a sentence of its own)."""
    if spans and not any(ch.isalnum() for ch in text):
        spans[-1] = (spans[-1][0], e)
    else:
        spans.append((s, e))
