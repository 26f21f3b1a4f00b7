"""A conversation: a follow-up question is read in the light of the last answered turn.

`qa.followup` decides whether a question needs the conversation (a pronoun, "there", "that year",
an ellipsis) and rewrites it into a standalone query; a question that does not is asked exactly
as `qa ask` would ask it. The query used is reported on the answer (`Answer.interpreted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import followup
from .answer import DEFAULT_TOP, Answer, AnswerSentence, Bot, clean_question
from .recency import DateRange


@dataclass
class Conversation:
    bot: Bot
    history: list[Answer] = field(default_factory=list)
    top: int = DEFAULT_TOP
    floor: float = 0.0  # secondary sentences below this wait for `more` (see Bot.ask)
    dates: DateRange = field(default_factory=DateRange)  # only articles published in this range

    def ask(self, question: str) -> Answer:
        q = clean_question(question)
        reading = followup.read(q, self.focus())
        if reading.how == "alone":
            answer = self.bot.ask(q, self.top, floor=self.floor, dates=self.dates)
        else:
            answer = self.bot.ask(q, self.top, query=reading.query, floor=self.floor, dates=self.dates)
            answer.interpreted = reading.query
            if reading.how == "expanded":  # no name to show in the question: say which story it follows
                answer.following = self._last_answered().sentences[0].citation.title or None
        self.history.append(answer)
        return answer

    def focus(self) -> followup.Focus | None:
        """What the conversation is about: the last answered turn (None before the first)."""
        last = self._last_answered()
        if last is None:
            return None
        best = last.sentences[0]
        return followup.Focus(last.interpreted or last.question, best.text, best.citation.doc, best.citation.paragraph,
                              [s.row for s in last.sentences])

    def _last_answered(self) -> Answer | None:
        return next((a for a in reversed(self.history) if a.answered and a.sentences), None)

    def more(self, n: int | None = None) -> list[AnswerSentence]:
        """The next best sentences for the last question (each call moves further down)."""
        if not self.history:
            return []
        last = self.history[-1]
        n = n or self.top
        shown, last.more = last.more[:n], last.more[n:]
        last.sentences.extend(shown)
        return shown

    def reset(self) -> None:
        self.history.clear()
