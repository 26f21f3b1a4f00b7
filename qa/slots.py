"""Key slots: the year, quarter or numbered name a question pins its answer to.

"What was Northwind's revenue in the third quarter?" pins the answer to a quarter; a sentence
about the second quarter looks like an answer on every other feature (issue 14). A sentence
*conflicts* with the question when, for some slot kind, the question names a value the sentence
does not hold while the sentence holds another value of the same kind:
- year: "in 2019" against a sentence that says 2012 and not 2019;
- quarter: "third quarter" / "Q3" against "second-quarter";
- numbered name: "Skylark-3" or "Super Bowl 51" against "Skylark-2" / "Super Bowl 50" (the same
  name with another number).
A sentence that names no value of that kind does not conflict: the year is often in the sentence
before.
"""

from __future__ import annotations

import re

_YEAR = re.compile(r"(?<![\d$£€.,])\b(1[0-9]{3}|20[0-9]{2})\b(?![.,]?\d)")
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_QUARTER = re.compile(r"\b(first|second|third|fourth|1st|2nd|3rd|4th)[- ]quarter\b|\bQ([1-4])\b", re.I)
# A capitalised name followed by a number: "Skylark-3", "Super Bowl 50", "Apollo 11", "Boeing 737".
_NUMBERED = re.compile(r"\b([A-Z][A-Za-z]+)[- ](\d{1,4})\b(?![.,]\d)")


def _quarters(text: str) -> set[int]:
    return {_ORDINAL[m.group(1).lower()] if m.group(1) else int(m.group(2)) for m in _QUARTER.finditer(text)}


def _numbered(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in _NUMBERED.finditer(text):
        out.setdefault(m.group(1).lower(), set()).add(m.group(2))
    return out


def question_slots(question: str) -> tuple[set[str], set[int], dict[str, set[str]]]:
    """(years, quarters, numbered names) the question names."""
    return set(_YEAR.findall(question)), _quarters(question), _numbered(question)


def conflicts(slots: tuple[set[str], set[int], dict[str, set[str]]], sentence: str) -> bool:
    """Does the sentence name another value of a slot the question pins, and not the question's?"""
    years, quarters, numbered = slots
    if years:
        have = set(_YEAR.findall(sentence))
        if have and not (years & have):
            return True
    if quarters:
        have_q = _quarters(sentence)
        if have_q and not (quarters & have_q):
            return True
    if numbered:
        have_n = _numbered(sentence)
        for name, values in numbered.items():
            if name in have_n and not (values & have_n[name]):
                return True
    return False


def demote_conflicts(question: str, scores, texts: list[str], factor: float):
    """(scores with each sentence that conflicts with the question's key slots multiplied by
    `factor`, which sentences conflict)."""
    import numpy as np

    slots = question_slots(question)
    if not any(slots):
        return scores, np.zeros(len(scores), bool)
    hit = np.array([conflicts(slots, t) for t in texts], dtype=bool)
    return (np.where(hit, scores * factor, scores) if hit.any() else scores), hit


def demote_other_subjects(scores, docs, named, factor: float, top: int = 10):
    """(scores with each sentence of a document that names less of the question's names than
    another of the `top` best sentences' documents multiplied by `factor`, which were).

    `named(doc)`: the share of the question's names a document holds anywhere ("document_names",
    1 when the question names nothing). "What was Northwind's revenue in the third quarter?"
    against "Northgate Foods reported revenue of $2.3 billion for the third quarter": Northwind
    is named in another article, so this one is about another subject. When no document of the
    best holds more than any other (the name is nowhere, or everywhere), nothing changes: whether
    to answer at all is the answerability model's.
    """
    import numpy as np

    best = np.argsort(-scores, kind="stable")[:top]
    share = {int(d): named(int(d)) for d in np.unique(docs[best])}
    most = max(share.values())
    if most <= min(share.values()):  # the best's documents all name as much: nothing tells them apart
        return scores, np.zeros(len(scores), bool)
    # a document outside the best was not asked: it counts as naming less (its sentences are far below)
    hit = np.array([share.get(int(d), -1.0) < most for d in docs], dtype=bool)
    return np.where(hit, scores * factor, scores), hit
