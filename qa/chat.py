"""A conversation: follow-up questions are read in the light of the previous one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .answer import DEFAULT_TOP, Answer, AnswerSentence, Bot, clean_question
from .recency import DateRange

# Words that point back at something said before ("Who led them?", "When did he resign?").
_ANAPHORA = re.compile(
    r"\b(he|she|it|its|they|them|their|theirs|his|her|hers|him|this|that|these|those|there|then|"
    r"the same|such|former|latter|also|else|another|other)\b",
    re.IGNORECASE,
)
_CONTINUATION = re.compile(r"^(and|but|also|so|what about|how about|why|and what)\b", re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    words = re.findall(r"\w+", question)
    return bool(_ANAPHORA.search(question) or _CONTINUATION.search(question) or len(words) <= 3)


@dataclass
class Conversation:
    bot: Bot
    history: list[Answer] = field(default_factory=list)
    top: int = DEFAULT_TOP
    floor: float = 0.0  # secondary sentences below this wait for `more` (see Bot.ask)
    dates: DateRange = field(default_factory=DateRange)  # only articles published in this range

    def ask(self, question: str) -> Answer:
        q = clean_question(question)
        last = self._last_answered()
        context = last.question if last and is_follow_up(q) else None
        answer = self.bot.ask(q, self.top, context=context, floor=self.floor, dates=self.dates)
        self.history.append(answer)
        return answer

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

    def _last_answered(self) -> Answer | None:
        return next((a for a in reversed(self.history) if a.answered), None)
