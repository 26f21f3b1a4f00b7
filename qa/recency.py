"""Dates in answers: `--since/--until` filters, and newer articles first where time matters.

News changes: a forecast is revised, a death toll rises, a result is restated. Two rules, both
on the publication dates that ingest reads (ISO 8601 strings, compared as text):

* A question that asks for the latest or current state ("What is the latest on ...", "How many
  have died so far?") puts the newest article's sentence first among those that say the same
  kind of thing as the best one.
* Whatever the question, when the best sentences come from different dated articles and say
  nearly the same thing (they disagree about the same fact, or one updates the other), the
  newer one comes first.

A question that names when ("reported in July", "in 2024") gets the sentence from an article
dated then first: the user chose the date. Undated articles never move. Nothing is dropped: older sentences stay in the answer and
in `:more`, and every citation shows its date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np

from .errors import UsageError

# When a newer sentence counts as being on the same thing as the best one, and how far down the
# ranked answer it may come from. Without a word asking for the latest, it must nearly restate the
# best sentence (cosine SAME_THING_COSINE) and score at least TIE_RATIO of it, among the sentences
# an answer shows (SHOWN_WINDOW, above the display floor). When the question asks for the latest,
# the same story suffices (LATEST_COSINE), from the first LATEST_WINDOW sentences above the floor.
# Chosen on tests/data/news_recency (scripts/recency_eval.py; figures in BENCHMARKS.md): leads of two
# reports of one story score 0.5-0.8 against each other, unrelated facts of a story 0.15-0.4.
SAME_THING_COSINE = 0.6
TIE_RATIO = 0.25
SHOWN_WINDOW = 3
LATEST_COSINE = 0.5
LATEST_WINDOW = 5

_LATEST = re.compile(
    r"\b(latest|newest|most recent|recent(ly)?|current(ly)?|now|today|tonight|so far|to date|as of|"
    r"still|anymore|any more|updated?|last (week|month|night|year)|this (week|month|year)|"
    r"new(est)? (figure|number|count|toll|estimate|forecast)s?)\b",
    re.IGNORECASE,
)
# The words that ask for the latest, without the thing asked about: left out of the search so
# that they neither dilute a sentence's similarity nor count against answering ("What is the
# latest on Northwind's results?" was declined; "What is on Northwind's results?" answered).
_TIME_WORDS = re.compile(
    r"\b(?:the\s+)?(?:very\s+)?(?:latest|newest|most\s+recent)(?:\s+(?:news|update|updates|developments?|word|figures?|numbers?))?"
    r"(?:\s+(?:on|about|in|for|from|with|regarding))?\b"
    r"|\b(?:right\s+now|at\s+the\s+moment|these\s+days|so\s+far|to\s+date|as\s+of\s+(?:now|today)|currently|now|still)\b",
    re.IGNORECASE,
)
_FUNCTION_WORDS = re.compile(
    r"\b(?:what|who|whom|whose|when|where|which|why|how|is|are|was|were|be|been|do|does|did|has|have|had|"
    r"the|a|an|on|of|in|about|for|to|with|there|it|its|any|s)\b", re.IGNORECASE)
_CONTENT = re.compile(r"\w\w")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DATE_ARG = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def search_text(question: str) -> str:
    """The question to search with: without the words that only ask for the latest (see
    _TIME_WORDS); the question itself when nothing else would be left."""
    if not wants_latest(question):
        return question
    rest = re.sub(r"\s+([?.!,;:])", r"\1", " ".join(_TIME_WORDS.sub(" ", question).split()))
    return rest if _CONTENT.search(_FUNCTION_WORDS.sub(" ", rest)) else question


def wants_latest(question: str) -> bool:
    """Does the question ask for the latest or current state of something?"""
    return bool(_LATEST.search(question))


_MONTH_NUMBER = {m: i for i, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
     ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
     ("december", "dec")], 1) for m in names}
_PERIOD = re.compile(rf"\bin\s+(?:(?P<month>{_MONTHS})\.?(?:\s+(?P<myear>(?:19|20)\d\d))?|(?P<year>(?:19|20)\d\d))\b", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """A time a question names for when something happened: "in July" (month 7, any year),
    "in July 2026", "in 2024"."""

    year: int | None
    month: int | None

    def holds(self, when: str | None) -> bool:
        """Is an ISO date (YYYY-MM-DD...) in this period?"""
        if not when or len(when) < 7 or not when[:4].isdigit() or not when[5:7].isdigit():
            return False
        return (self.year is None or int(when[:4]) == self.year) and (self.month is None or int(when[5:7]) == self.month)


def named_period(question: str) -> Period | None:
    """The month or year a question names with "in" ("reported in July", "in 2024"), else None."""
    m = _PERIOD.search(question)
    if not m:
        return None
    if m.group("year"):
        return Period(int(m.group("year")), None)
    return Period(int(m.group("myear")) if m.group("myear") else None, _MONTH_NUMBER[m.group("month").lower().rstrip(".")])


@dataclass(frozen=True)
class DateRange:
    """`--since` / `--until` bounds as ISO prefixes ("2026", "2026-05", "2026-05-18"), inclusive.

    An article is in range when its date, cut to each bound's length, lies within the bounds;
    undated articles are out of every range (a filter asks for articles known to be in it).
    """

    since: str | None = None
    until: str | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> "DateRange":
        s, u = _check_bound("--since", since), _check_bound("--until", until)
        if s and u and s[: len(u)] > u:
            raise UsageError(f"--since {s} is after --until {u}")
        return cls(s, u)

    def __bool__(self) -> bool:
        return bool(self.since or self.until)

    def __str__(self) -> str:
        """"since 2026-05 until 2026-06-16", "" for no range."""
        return " ".join(f"{word} {bound}" for word, bound in (("since", self.since), ("until", self.until)) if bound)

    def holds(self, when: str | None) -> bool:
        if not self:
            return True
        if not when:
            return False
        return (not self.since or when[: len(self.since)] >= self.since) and (not self.until or when[: len(self.until)] <= self.until)


def _check_bound(flag: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    m = _DATE_ARG.match(value.strip())
    try:
        if not m:
            raise ValueError
        date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date; use YYYY, YYYY-MM or YYYY-MM-DD") from None
    return value.strip()


def newer_first(question: str, scores: np.ndarray, dates: list[str | None], similarity: np.ndarray,
                floor: float = 0.0) -> list[int]:
    """An order of ranked sentences (positions 0..n-1, best first, `scores` descending) with the
    article that time points at first; see the module docstring. `similarity` is their (n, n)
    cosine matrix; `floor` the score below which an answer would not show a sentence.

    * The question names a time (a month, a year): the best sentence from an article dated then
      goes first, if the best one is not from then.
    * Otherwise, among the first sentences (more of them when the question asks for the latest),
      the newest article's sentence on the same thing as the best one goes first.
    The rest follow in score order.
    """
    n = len(scores)
    order = list(range(n))
    if n < 2:
        return order
    named = named_period(question)
    if named:
        in_period = [i for i in range(min(n, LATEST_WINDOW)) if named.holds(dates[i]) and scores[i] >= floor]
        first = in_period[0] if in_period else 0
    elif not dates[0]:
        return order
    else:
        latest = wants_latest(question)
        window, cosine, least = (LATEST_WINDOW, LATEST_COSINE, floor) if latest else (SHOWN_WINDOW, SAME_THING_COSINE, max(floor, TIE_RATIO * scores[0]))
        newer = [i for i in range(1, min(n, window)) if dates[i] and dates[i][:10] > dates[0][:10]
                 and similarity[0, i] >= cosine and scores[i] >= least]
        first = max(newer, key=lambda i: (dates[i][:10], scores[i])) if newer else 0
    return order if first == 0 else [first] + [i for i in order if i != first]
