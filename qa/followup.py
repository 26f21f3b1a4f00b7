"""Read a follow-up question in the light of the conversation.

A question that needs the conversation (a pronoun: "When did he die?", "there", "that year", "this
war"; an ellipsis: "And in 2005?", "What about ABC?") is rewritten into a standalone query from the last
answered turn, its `Focus`: the query that turn used and the sentence that answered it. The
rewrite replaces what points back by what it points at:

- he/she/him/his/her -> after "Who is <name>?", that name; after another who-question, the name in
  the previous answer nearest the question's own name ("Who was Kublai Khan's grandfather?" ...
  "Which tribes did he unite?"); else a person's name in the previous query, else in the previous
  answer;
- it/its/they/them/their -> a name from the previous query;
- there / then / that year -> the place or date in the previous answer;
- an ellipsis -> the previous query with its matching slot replaced ("Who won Super Bowl XLIX?"
  + "And 50?" -> "Who won Super Bowl 50?");
- a question word alone ("When?") is read as "And when?"; where that replaces nothing, it is
  asked with the previous query's names and words.

A cue with nothing to name adds the previous query's names (or words) in parentheses. A question
without such cues is asked exactly as `qa ask` would ask it. Rules rather than a learned
re-ranking of the candidates: chosen by measurement on the tune conversations (BENCHMARKS.md,
"Conversations"; scripts/fit_followup.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CAP_WORD = r"(?:[A-Z][\w'’\-\.]*|\d[\w\-]*)"
_ENTITY = re.compile(rf"{_CAP_WORD}(?:\s+(?:of|de|von|the|and|upon|on)\s+{_CAP_WORD}|\s+{_CAP_WORD})*")
_LEADING = frozenset(  # words that open a capitalised run without being part of a name
    "under with following over among into despite within without near what who whom whose when where which why how "
    "in on at the a an during after before to for from by of according since along besides other as is was did "
    "does do are were with about until this that these those it its he she they his her their there then however "
    "also while although but and or if many some most".split()
)
_STOP = frozenset("a an and are as be been being by for has have had in is it no not of on or such that the their then there "
                  "these they this to was were will with do does did can could would should may might".split())
_PERSON = {"he": "subject", "she": "subject", "him": "object", "his": "possessive", "her": "object"}
_THING = {"it": "subject", "its": "possessive", "they": "subject", "them": "object", "their": "possessive"}
_PRONOUN = re.compile(r"\b(he|she|him|his|her|it|its|they|them|their)\b", re.I)
_THERE = re.compile(r"(?<!\bare )(?<!\bis )(?<!\bwas )(?<!\bwere )\bthere\b(?! (?:is|are|was|were|been)\b)", re.I)
_THEN = re.compile(r"\b(?:then|that year|that time|at that point)\b", re.I)
# "this war", "these people", "What caused that?": points back, with nothing to put in its place
_DEMONSTRATIVE = re.compile(r"\b(?:this|these|those)\s+[a-z]+|\b(?:this|that|these|those)\s*\?$", re.I)
# "that" as the subject after an auxiliary stands for the whole last event, not a name: "Why did
# that happen?", "Was that legal?" ("this" more often names a thing: "When will this be finished?")
_EVENT = re.compile(r"\b(?:do|does|did|is|was|are|were|will|would|could|can|has|had|have)\s+that\b(?!\s*\?)", re.I)
# "it" that points at nothing: "What is it called when ...", "Is it true that ...", "Was it possible to ..."
# (but "What was it named after?" points back)
_EXPLETIVE = re.compile(r"\bit (?:is |was |has been )?(?:called|known|named|possible|likely|unlikely|believed|said|thought|"
                        r"estimated|true|important|necessary|difficult|easy|common|rare) (?:when|that|if|to|whether)\b", re.I)
# a bare fragment with no question word: "In 2005?", "The Panthers?" (at most four words)
_FRAGMENT = re.compile(r"^(?!(?:what|who|whom|whose|when|where|which|why|how|is|are|was|were|do|does|did|can|could)\b)"
                       r"((?:\S+\s+){0,3}\S+?)\?$", re.I)
# a question word alone ("When?", "And why?"): it asks about the last turn's event
_BARE_WH = re.compile(r"^(?:and |but |so )?(?:when|where|why|how|who)\s*\?*$", re.I)
_ELLIPSIS = re.compile(r"^(?:and|what about|how about|and what about|and how about)\s+(.+?)\??$", re.I)
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_YEAR_OR_DATE = re.compile(rf"\b(?:\d{{1,2}} )?{_MONTH}?(?: \d{{1,2}},)? ?\b1[0-9]{{3}}s?\b|\b20[0-9]{{2}}s?\b"
                           rf"|\b(?:the )?\d{{1,2}}(?:st|nd|rd|th)[ -]century\b|\b{_MONTH}\b")
_WH = ("what", "who", "whom", "whose", "when", "where", "which", "why", "how")
# A question that asks who someone is: the answer describes that name, and a pronoun after it is
# still that name (unlike "Who was Kublai Khan's grandfather?", whose answer is a new person).
_WHO_IS = re.compile(r"^\s*(?i:who (?:is|was|are|were)) ((?:[A-Z][\w'’\-\.]*\s*)+?)\s*\??\s*$")


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
    how: str  # "alone" (asked as is), "pronoun", "place", "date", "ellipsis", "expanded"


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


def _referent(person: bool, focus: Focus, question: str, singular: bool = False) -> str | None:
    """The name a pronoun points at, never one the follow-up already holds ("How did Luther
    respond to him?"). For he/she: after a who-question the new name in the answer (the one nearest
    the question's own name there), else a person's name in the previous query (or its full form
    in the answer: "Luther" -> "Martin Luther"), else a person named in the previous answer, else a
    one-word name of the previous query. For it/they: a name in the previous query; `singular`
    (it/its): never two joined by "and" ("the US and China" are "they", not "it")."""
    known = entities(focus.query)
    asked = [e for e in known if e not in question]
    if person:
        defined = _WHO_IS.match(focus.query)
        if defined and defined.group(1) in asked:  # "Who is Elizabeth Prelogar?" ... "How old is she?"
            return defined.group(1)
        in_answer = [e for e in entities(focus.answer_text) if e not in question and not e[0].isdigit()]
        anchors = [focus.answer_text.find(a) for a in known if a in focus.answer_text]
        if anchors:
            in_answer.sort(key=lambda e: min(abs(focus.answer_text.find(e) - p) for p in anchors))
        new = [e for e in in_answer if not any(e in a or a in e for a in known)]
        if _wh(focus.query) in ("who", "whom"):
            names = [e for e in new if _looks_like_person(e)] or new
            if names:
                return names[0]
        in_answer_people = [e for e in in_answer if _looks_like_person(e)]
        single = [e for e in asked if len(e.split()) == 1 and not e[0].isdigit() and not e.isupper()]
        people = ([e for e in asked if _looks_like_person(e)]  # "Nikola Tesla"
                  or [e for e in in_answer_people if any(n in e.split() for n in single)]  # "Luther" -> "Martin Luther"
                  or in_answer_people or single)
        if people:
            return people[0]
    if singular:
        asked = [e for e in asked if " and " not in e]
    if not asked:
        return None
    return ([e for e in asked if not e[0].isdigit() and not _looks_like_person(e)] or [e for e in asked if not e[0].isdigit()] or asked)[0]


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


def _shape(text: str) -> str:
    last = text.split()[-1]
    if last[:1].isdigit() or re.fullmatch(r"[IVXLCDM]+", last):
        return "number"  # years, counts, Roman numerals (Super Bowl XLIX)
    return "acronym" if last.isupper() and len(last) > 1 else "name"


def _ellipsis(slot: str, focus: Focus) -> str:
    """The previous query with the name (or number) most like `slot` replaced by it; when none is
    alike, the previous query with the slot added."""
    prev = focus.query.rstrip("?").strip()
    if slot.lower() in _WH:  # "And where?": the same question with another question word
        frame = re.match(r"(?:how (?:much|many|long|old|far|big|large|often)|what \w+|which \w+|\w+)\s+", prev, re.I)
        return f"{slot.capitalize()} {prev[frame.end():] if frame else prev}?"
    core = re.sub(r"^(?:in|on|at|during|for|of|by|from)\s+", "", slot, flags=re.I)
    names = [e for e in entities(prev) if e in prev]
    if len(core.split()) == 1:  # one word replaces one word of its shape: "Super Bowl XLIX" + "50"
        names = [w for e in names for w in e.split()]
    same = [e for e in names if _shape(e) == _shape(core)]
    if not same:
        return f"{prev} {core}?"
    target = same[-1]
    i = prev.rfind(target)
    return prev[:i] + core + prev[i + len(target):] + "?"


def _slot(text: str, bare: bool) -> bool:
    """Can `text` fill the previous question's slot? A question word ("And where?"), or a name or
    number of at most five words; a bare fragment needs a number, a preposition or article before
    a name ("In 2024?", "The Panthers?"), or a two-word name, so that "Really?" is no slot."""
    words = text.strip().split()
    if not words or len(words) > 5 or _PRONOUN.search(text):
        return False
    if not bare and len(words) == 1 and words[0].lower() in _WH:
        return True
    lead = words[0].lower() in ("in", "on", "at", "during", "for", "of", "by", "from", "the", "a", "an")
    names = [w for w in words[1:] if w[:1].isupper()] if lead else [w for w in words if w[:1].isupper()]
    has_number = any(w[:1].isdigit() for w in words)
    if not bare:
        return has_number or bool(names)
    return has_number or (lead and bool(names)) or len(names) >= 2


def read(question: str, focus: Focus | None) -> Reading:
    """How to search for `question` given the conversation's focus (None: asked on its own)."""
    if focus is None:
        return Reading(question, "alone")
    bare_wh = bool(_BARE_WH.match(question.strip()))
    # "When?" is "And when?": the previous query with its question word replaced
    m = _ELLIPSIS.match(question.strip()) or (_ELLIPSIS.match(f"and {question.strip()}") if bare_wh else None)
    fragment = _FRAGMENT.match(question.strip())
    if m and _slot(m.group(1), bare=False) or fragment and _slot(fragment.group(1), bare=True):
        return Reading(_ellipsis((m or fragment).group(1).strip(), focus), "ellipsis")
    q, how, cue = question, "alone", False
    there = _THERE.search(q)
    if there:
        cue = True
        names = [e for e in entities(focus.answer_text) if not e[0].isdigit()]
        # a place is most often named after in/at/from/to/near ("... in Geneva")
        names.sort(key=lambda e: not re.search(rf"\b(?:in|at|from|to|near) (?:the )?{re.escape(e)}", focus.answer_text))
        place = _first_after(names, focus.query + " " + q)
        if place:
            q, how = q[: there.start()] + f"in {place}" + q[there.end():], "place"
    then = _THEN.search(q)
    if then:
        cue = True
        date = _first_after([m.group(0).strip() for m in _YEAR_OR_DATE.finditer(focus.answer_text)], focus.query + " " + q)
        if date:
            q, how = q[: then.start()] + f"in {date}" + q[then.end():], "date"
    p = _PRONOUN.search(_EXPLETIVE.sub(" ", q))  # "What is it called when ...?" points at nothing
    p = _PRONOUN.search(q, p.start()) if p else None
    if p:
        cue = True
        word = p.group(1).lower()
        name = _referent(word in _PERSON, focus, q, singular=word in ("it", "its"))
        if name:
            q, how = _replace_pronoun(q, p, name), "pronoun"
    event = how == "alone" and (bare_wh or bool(_EVENT.search(q)))
    cue = cue or event or bool(_DEMONSTRATIVE.search(q))
    if cue and how == "alone":  # it points back, but at nothing we can name: add the previous query's words
        names = [e for e in entities(focus.query) if e not in q]
        words = [w for w in re.findall(r"[\w'’\-]+", focus.query) if w.lower() not in _LEADING | _STOP and w.lower() not in q.lower()]
        # an event ("that happened") is its names and what they did: "(London agree)"
        extra = names + [w for w in words if not any(w in n for n in names)] if event else names or words
        if extra:
            q, how = f"{q} ({' '.join(extra)})", "expanded"
    return Reading(q, how)

