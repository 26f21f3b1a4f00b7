"""Read a follow-up question in the light of the conversation.

A question that needs the conversation (a pronoun: "When did he die?", "there", "that year"; an
ellipsis: "And in 2005?", "What about ABC?") is rewritten into a standalone query from the last
answered turn, its `Focus`: the query that turn used, the sentence that answered it, and where that
sentence stands (article, paragraph). The rewrite replaces the pronoun by what it points at:

- he/she/him/his/her/it/its/they/them/their -> a name from the previous query (a person's
  name for he/she), or, after a who-question, the name in the previous answer that the question
  did not hold ("Who was Kublai Khan's grandfather?" ... "Which tribes did he unite?");
- there / then / that year -> the place or date in the previous answer, after a where- or
  when-question;
- an ellipsis -> the previous query with its matching slot replaced ("Who won Super Bowl XLIX?"
  + "And 50?" -> "Who won Super Bowl 50?").

A question without such cues is asked exactly as `qa ask` would ask it. Chosen by measurement on
the tune conversations (BENCHMARKS.md, "Conversations").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CAP_WORD = r"(?:[A-Z][\w'’\-\.]*|\d[\w\-]*)"
_ENTITY = re.compile(rf"{_CAP_WORD}(?:\s+(?:of|de|von|the|and|upon|on)\s+{_CAP_WORD}|\s+{_CAP_WORD})*")
_LEADING = frozenset(
    "under with following over among into despite within without near what who whom whose when where which why how in on at the a an during after before to for from by of according "
    "since along besides other as is was did does do are were with about until this that these those it its he she they "
    "his her their there then however also while although but and or if many some most".split()
)
_PERSON = {"he": "subject", "she": "subject", "him": "object", "his": "possessive", "her": "object"}
_THING = {"it": "subject", "its": "possessive", "they": "subject", "them": "object", "their": "possessive"}
_PRONOUN = re.compile(r"\b(he|she|him|his|her|it|its|they|them|their)\b", re.I)
_THERE = re.compile(r"(?<!\bare )(?<!\bis )(?<!\bwas )(?<!\bwere )\bthere\b(?! (?:is|are|was|were|been)\b)", re.I)
_THEN = re.compile(r"\b(?:then|that year|that time|at that point)\b", re.I)
_ELLIPSIS = re.compile(r"^(?:and|what about|how about|and what about|and how about)\s+(.+?)\??$", re.I)
_YEAR_OR_DATE = re.compile(r"\b(?:\d{1,2} )?(?:January|February|March|April|May|June|July|August|September|October|November|"
                           r"December)?(?: \d{1,2},)? ?\b1[0-9]{3}s?\b|\b20[0-9]{2}s?\b")
_WH = ("what", "who", "whom", "whose", "when", "where", "which", "why", "how")


@dataclass
class Focus:
    """What the last answered turn was about: its query, its best sentence and where that stands."""

    query: str
    answer_text: str
    doc: int
    paragraph: int
    rows: list[int] = field(default_factory=list)  # the cited sentences' rows, best first


@dataclass
class Reading:
    query: str  # what is searched for
    how: str  # "alone" (asked as is), "pronoun", "place", "date", "ellipsis"


def entities(text: str) -> list[str]:
    """Capitalised names and numbers in a text ("Super Bowl 50", "Kublai Khan's" -> "Kublai Khan").

    A single capitalised word opening the text or a sentence is not taken for a name ("Other
    ..."); a longer run is, less any common opening word ("During the Protestant Reformation").
    """
    out = []
    for m in _ENTITY.finditer(text):
        words = m.group(0).split()
        at_start = not text[: m.start()].strip() or re.search(r"[.!?:;]\s*$", text[: m.start()])
        if at_start and len(words) == 1 and not words[0][0].isdigit():
            continue
        while words and words[0].lower().strip("'’") in _LEADING:
            words = words[1:]
        name = re.sub(r"['’]s?$", "", " ".join(words)).strip(" .,")
        if name and name.lower() not in _LEADING and (len(name) > 1 or name.isdigit()):
            out.append(name)
    return list(dict.fromkeys(out))


def _wh(query: str) -> str:
    first = query.split()[0].lower() if query.split() else ""
    for w in query.lower().split()[:4]:
        if w in _WH:
            return w
    return first


def _looks_like_person(name: str) -> bool:
    words = name.split()
    return len(words) >= 2 and all(w[0].isupper() for w in words) and not any(w.isupper() and len(w) > 1 for w in words)


def _referent(person: bool, focus: Focus) -> str | None:
    """The name a pronoun points at: after a who-question the new name in the answer, else the
    previous query's name (a person-like one for he/she)."""
    asked = entities(focus.query)
    if _wh(focus.query) in ("who", "whom"):
        new = [e for e in entities(focus.answer_text) if not any(e in a or a in e for a in asked)]
        names = [e for e in new if _looks_like_person(e)] or [e for e in new if not e[0].isdigit()]
        if names:
            return names[0]
    if not asked:
        return None
    preferred = [e for e in asked if _looks_like_person(e) == person and not e[0].isdigit()]
    return (preferred or [e for e in asked if not e[0].isdigit()] or asked)[0]


def _replace_pronoun(question: str, m: re.Match, name: str) -> str:
    word = m.group(1).lower()
    role = _PERSON.get(word) or _THING.get(word)
    if word == "her":  # "her book" (possessive) or "met her" (object): a noun after it means possessive
        nxt = question[m.end():].split()
        role = "possessive" if nxt and nxt[0][0].islower() and nxt[0].lower() not in ("in", "on", "at", "to", "as", "for", "by") else "object"
    return question[: m.start()] + (f"{name}'s" if role == "possessive" else name) + question[m.end():]


def _first_after(found: list[str], avoid: str) -> str | None:
    """The first of `found` that the previous query did not already hold."""
    return next((f for f in found if f and f not in avoid), None)


def _ellipsis(slot: str, focus: Focus) -> str | None:
    """The previous query with the name (or number) most like `slot` replaced by it."""
    prev = focus.query.rstrip("?").strip()
    if slot.lower() in _WH:  # "And where?": the same question with another question word
        first = prev.split()[0]
        return f"{slot.capitalize()} {prev[len(first):].strip()}?"
    core = re.sub(r"^(?:in|on|at|during|for|of|by|from)\s+", "", slot, flags=re.I)
    shape = lambda s: ("number" if s[:1].isdigit() or re.fullmatch(r"[IVXLCDM]+", s.split()[-1])  # noqa: E731
                       else "acronym" if s.split()[-1].isupper() else "name")
    names = [e for e in entities(prev) if e in prev]
    same = [e for e in names if shape(e) == shape(core)] or names
    if not same:
        return None
    target = same[-1]
    if shape(core) == "number" and len(core.split()) == 1 and len(target.split()) > 1 and not target.split()[-1][0].isdigit():
        return None
    last_word = target.split()[-1]
    if len(core.split()) == 1 and len(target.split()) > 1 and shape(last_word) == shape(core):
        target = last_word  # "Super Bowl XLIX" + "50": replace the number, keep "Super Bowl"
    i = prev.rfind(target)
    return prev[:i] + core + prev[i + len(target):] + "?"


def read(question: str, focus: Focus | None) -> Reading:
    """How to search for `question` given the conversation's focus (None: asked on its own)."""
    if focus is None:
        return Reading(question, "alone")
    m = _ELLIPSIS.match(question.strip())
    if m and not _PRONOUN.search(m.group(1)) and len(m.group(1).split()) <= 5:
        rewritten = _ellipsis(m.group(1).strip(), focus)
        if rewritten:
            return Reading(rewritten, "ellipsis")
    wh = _wh(focus.query)
    q = question
    how = "alone"
    there = _THERE.search(q)
    if there and wh == "where":
        place = _first_after([e for e in entities(focus.answer_text) if not e[0].isdigit()], focus.query)
        if place:
            q, how = q[: there.start()] + f"in {place}" + q[there.end():], "place"
    then = _THEN.search(q)
    if then and wh == "when":
        date = _first_after([m.group(0).strip() for m in _YEAR_OR_DATE.finditer(focus.answer_text)], focus.query)
        if date:
            q, how = q[: then.start()] + f"in {date}" + q[then.end():], "date"
    p = _PRONOUN.search(q)
    if p:
        name = _referent(p.group(1).lower() in _PERSON, focus)
        if name and name.lower() not in q.lower():
            q, how = _replace_pronoun(q, p, name), "pronoun"
    return Reading(q, how)
