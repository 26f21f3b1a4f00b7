"""Sentences that cannot answer a question, though they look like its answer on every feature.

Key slots: the year, quarter or numbered name a question pins its answer to.

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

A sentence also *lacks the answer* when the question asks for a kind of value the sentence holds
none of (`answer_kind`, `lacks_answer`): an amount of money ("How much did the stadium cost?",
"What was the starting price?") without a currency, a count ("How many troops took part?",
"What percentage ...?") without a number other than the question's own, a year or date ("In what
year ...?") without one. On news, on-topic questions that no article answers are otherwise cited
with the sentence that restates their topic ("the weekslong joint exercise" for how many troops).
Only these narrow question forms count: "when" is often answered by an event ("during the war"),
"who" by a description, and "how much" by a degree ("how much support").

A *label* (`is_label`) is a web page's sub-heading, credit or teaser line: it restates a topic
and is never cited first; nor is a fragment that only echoes the question's words (`echoes`).
"""

from __future__ import annotations

import re
from functools import lru_cache

_YEAR = re.compile(r"(?<![\d$£€.,])\b(1[0-9]{3}|20[0-9]{2})\b(?![.,]?\d)")
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_QUARTER = re.compile(r"\b(first|second|third|fourth|1st|2nd|3rd|4th)[- ]quarter\b|\bQ([1-4])\b", re.I)
# A capitalised name followed by a number: "Skylark-3", "Super Bowl 50", "Apollo 11", "Boeing 737".
_NUMBERED = re.compile(r"\b([A-Z][A-Za-z]+)[- ](\d{1,4})\b(?![.,]\d)")

_COUNT_WORDS = (r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
                r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|"
                r"thousands?|millions?|billions?|trillions?|dozens?|half|once|twice|single|double|triple|several|few|both|couple")
_COUNT = re.compile(r"\d(?:[\d,.]*\d)?|\b(?:" + _COUNT_WORDS + r")\b", re.I)
# Not "won" or "marks": "the team won" holds no sum; nor "million": "6 million vehicles" is none.
_CURRENCY = re.compile(r"[$€£¥₹₩]|\b(?:dollars?|euros?|pounds?|yen|yuan|pesos?|rupees?|francs?|cents?|lira|"
                       r"rubles?|roubles?|dinars?|shillings?|USD|EUR|GBP)\b", re.I)
_PERCENT = re.compile(r"%|\bper ?cent\b", re.I)
_DATE = re.compile(r"\d|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?(?!\w)|\bcentur(?:y|ies)\b|"
                   r"\bdecades?\b|\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b|"
                   r"\b(?:spring|summer|autumn|fall|winter|today|yesterday|tomorrow|tonight|era|period|age|BC|AD|BCE|CE)\b", re.I)
_MONEY_WORDS = (r"cost|costs|pay|paid|pays|price|fine|fined|worth|earn|earned|earns|spend|spent|raise|raised|money|"
                r"cash|budget|revenue|salary|fund|funding|charge|charged|sold for|sell for|bid|loan|debt|damages|invest|invested")
_MONEY_NOUNS = r"price|cost|fine|salary|fee|budget|revenue|profit|wage|valuation"
_NOT_ADJECTIVE = r"of|in|for|on|to|between|with|by|from|at|and|or"  # "what is the comparison in price": no sum asked
_ASKS = (
    ("money", re.compile(r"\bhow much\b.*\b(?:" + _MONEY_WORDS + r")\b|^(?:what|which)\s+(?:(?:is|was|were|are|will be|would be)\s+"
                         r"(?:the\s+|a\s+|an\s+)?(?:(?!" + _NOT_ADJECTIVE + r"\b)[\w'-]+\s+){0,2}|(?:[\w'-]+\s+)?)(?:" + _MONEY_NOUNS + r")s?\b", re.I)),
    ("count", re.compile(r"\bhow many\b|\bwhat (?:percentage|percent|number|proportion|share|fraction)\b", re.I)),
    ("date", re.compile(r"\b(?:what|which) (?:year|date|month|century|decade)\b|\bin what (?:year|century|decade|month)\b|"
                        r"\bon what (?:date|day)\b", re.I)),
)


def answer_kind(question: str) -> str | None:
    """"money", "count" or "date" when the question asks for that kind of value, else None."""
    q = question.strip()
    return next((kind for kind, pattern in _ASKS if pattern.search(q)), None)


@lru_cache(maxsize=64)
def _numbers(question: str) -> frozenset[str]:
    """The numbers a question names: read once, though every candidate is checked against them."""
    return frozenset(m.group(0).lower() for m in _COUNT.finditer(question))


def lacks_answer(kind: str | None, question: str, sentence: str) -> bool:
    """Does the sentence hold no value of the kind the question asks for?"""
    if kind == "money":  # or a share: "how much did revenue increase?" - "by almost 500%"
        return not (_CURRENCY.search(sentence) or _PERCENT.search(sentence))
    if kind == "count":
        asked = _numbers(question)  # "Worlds 2023" is no answer
        return not any(m.group(0).lower() not in asked for m in _COUNT.finditer(sentence))
    if kind == "date":
        return not _DATE.search(sentence)
    return False


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


LABEL_WORDS = 15
# Ended as a sentence: its punctuation, then maybe closing quotes and a note ("[citation needed]").
_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’)\]]*(?:\s*[\[(][^\[\]()]*[\])])?$")


def is_label(text: str) -> bool:
    """A heading, credit or teaser line of a web page ("How T1 swept Weibo Gaming to become the
    Worlds 2023 champions", "Read more: ...", "AP Photo/Uncredited"): short, and not ended as a
    sentence is. It names the topic, not a fact about it. The splitter ends every sentence but a
    paragraph's last at its punctuation, so only such lines lack it."""
    t = text.strip()
    return len(t.split()) <= LABEL_WORDS and not _SENTENCE_END.search(t)


_FUNCTION_WORDS = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being it its this that these those "
    "he she they them his her their we you i as so do does did has have had not no yes".split())
ECHO_WORDS = 3


def echoes(question: str, text: str) -> bool:
    """A fragment that only repeats the question's words ("The judge." for "Who is the judge?",
    from "He went after the attorney general. The judge."): up to 3 content words, all asked."""
    return _echoes(_words(question), text)


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


def _echoes(asked: set[str], text: str) -> bool:
    content = [w.lower() for w in re.findall(r"\w+", text) if w.lower() not in _FUNCTION_WORDS]
    return len(content) <= ECHO_WORDS and all(w in asked for w in content)


def demote_non_answers(question: str, scores, texts: list[str], factor: float):
    """(scores with each sentence that cannot answer the question demoted; which sentences were).

    One that conflicts with the question's key slots or lacks the kind of value it asks for has its
    score multiplied by `factor`; a label's, or a fragment's that only echoes the question, becomes
    0, so that not even the cross-encoder's re-ordering, which reads the topic, puts it first."""
    import numpy as np

    slots = question_slots(question)
    kind = answer_kind(question)
    asked = _words(question)
    # Only short lines can be labels or echoes (a line of over 15 words has more than 3 content
    # words): the word count spares the regexes for most of the ~70 candidates.
    label = np.array([len(t.split()) <= LABEL_WORDS and (is_label(t) or _echoes(asked, t)) for t in texts], dtype=bool)
    hit = label.copy()
    if any(slots) or kind is not None:
        hit |= np.array([conflicts(slots, t) or lacks_answer(kind, question, t) for t in texts], dtype=bool)
    if not hit.any():
        return scores, hit
    return np.where(label, 0.0, np.where(hit, scores * factor, scores)).astype(scores.dtype), hit


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
