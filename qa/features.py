"""Cheap, explainable features of a (question, sentence) pair, beyond the two retrieval scores.

Question-type cues: a "when" question wants a sentence holding a date, "how many" a number,
"who"/"where" a name the question does not already contain.
"""

from __future__ import annotations

import math
import re

import numpy as np

_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_MONTH = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?\b|\bcentur(y|ies)\b|\b(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen)\b", re.I)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")


def question_type(q: str) -> str:
    ql = q.lower()
    if re.search(r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat (percentage|number|amount)\b", ql):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month|century|decade|time)\b|\bwhich (year|century)\b", ql):
        return "date"
    if re.search(r"\bwho(m|se)?\b", ql):
        return "person"
    if re.search(r"\bwhere\b", ql):
        return "place"
    return "other"


QTYPE_FEATURES = ("wants_date_has_date", "wants_number_has_number", "wants_name_has_new_name")


def type_match(qtype: str, question: str, sentence: str) -> tuple[float, float, float]:
    """(wants a date and has one, wants a number and has one, wants a name and has a new one).

    Only the cue the question type asks for is looked for: most questions need no regex at all.
    """
    if qtype == "date":
        return float(bool(_YEAR.search(sentence) or _MONTH.search(sentence))), 0.0, 0.0
    if qtype == "number":
        return 0.0, float(bool(_NUMBER.search(sentence))), 0.0
    if qtype in ("person", "place"):
        q_words = set(re.findall(r"[A-Za-z]+", question.lower()))
        return 0.0, 0.0, float(any(m.group(0).lower() not in q_words for m in _CAPITALISED.finditer(sentence)))
    return 0.0, 0.0, 0.0


def coverage(question_tokens: set[str], sentence_tokens: list[str]) -> float:
    """Share of the question's content words (stemmed) that the sentence contains."""
    if not question_tokens:
        return 0.0
    return len(question_tokens & set(sentence_tokens)) / len(question_tokens)


def focus(question_tokens: set[str], sentence_tokens: list[set[str]], docs: np.ndarray,
          title_tokens: list[set[str]]) -> np.ndarray:
    """Share of the question's terms each sentence holds, each term weighted by how rare it is
    among the candidates of the sentence's own document, log((n + 1) / (df + 0.5)); terms of that
    document's title weigh nothing (unless the question has no other term).

    Why: a news lead ("GRANT COUNTY, Ore., July 21 - ... the Pine Ridge fire ...") restates the
    question's topic, while the answer holds what the question asks ("started") and calls the topic
    "the fire". Within one article the topic words say little about which sentence answers. Fitted
    on SQuAD train questions: tune R@1 +0.9 points (BENCHMARKS.md, "focus").
    """
    out = np.zeros(len(sentence_tokens), dtype=np.float32)
    if not question_tokens:
        return out
    for doc in np.unique(docs):
        members = np.flatnonzero(docs == doc)
        n = len(members)
        weight = {t: math.log((n + 1) / (sum(t in sentence_tokens[i] for i in members) + 0.5)) for t in question_tokens}
        topic = title_tokens[members[0]]
        if any(t not in topic for t in question_tokens):
            weight = {t: 0.0 if t in topic else w for t, w in weight.items()}
        total = sum(weight.values())
        if total > 0:
            for i in members:
                out[i] = sum(w for t, w in weight.items() if t in sentence_tokens[i]) / total
    return out


# A name: a capitalised word (acronyms too) that is not the first of a sentence, which is
# capitalised whatever it is.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][A-Za-z0-9]+")


def question_names(question: str) -> list[str]:
    """The words of the names a question mentions ("Northwind", "UGLE"), not yet tokenized."""
    return [m.group(0) for m in _NAME.finditer(question.strip())]


def name_terms(question: str) -> set[str]:
    """The search terms (qa.lexical.query_terms) of the names a question mentions, of three letters
    or more: "US" is often "U.S." in an article (no term: the tokenizer keeps words of two letters
    or more), and "us" is also a pronoun."""
    from .lexical import query_terms, tokenize

    return {t for t in set(query_terms(question)) & set(tokenize([" ".join(question_names(question))])[0]) if len(t) > 2}


def name_coverage(names: set[str], held: set[str]) -> float:
    """Share of the question's name terms that a document holds anywhere; 1 when it names nothing.

    Why: a question about something the collection never mentions ("How many members does the
    UGLE have?") still finds a sentence on a related topic, and the more articles, the likelier.
    Whether the answer's own article names what the question names does not grow with the
    collection the way similarities do. Names, not all the question's words: a reader's "How long
    did the talks last?" paraphrases, and the share of all its words declined it (BENCHMARKS.md,
    "Does the answer's article name what the question names?").
    """
    return len(names & held) / len(names) if names else 1.0


def ranks(values: np.ndarray) -> np.ndarray:
    """0-based rank of each value, highest first."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.float32)
    out[order] = np.arange(len(values), dtype=np.float32)
    return out
