"""Terminal and JSON output of answers. Colour only where the terminal supports it (rich)."""

from __future__ import annotations

import json
import re
import sys
from typing import TextIO

from .answer import Answer, AnswerSentence

NO_ANSWER = "No answer in the indexed articles."


def console(file: TextIO | None = None):
    from rich.console import Console

    file = file or sys.stdout
    # Piped output: no colour, no hard wrapping, so each sentence stays on one line for scripts.
    return Console(file=file, highlight=False, soft_wrap=not file.isatty())


def json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _highlighted(text: str, question: str):
    from rich.text import Text

    from .lexical import tokenize

    out = Text(text)
    wanted = set(tokenize([question])[0])
    for m in re.finditer(r"\w+", text):
        if wanted and set(tokenize([m.group(0)])[0]) & wanted:
            out.stylize("bold", m.start(), m.end())
    return out


def print_answer(con, answer: Answer, sentences: list[AnswerSentence] | None = None, first_marker: int = 1) -> None:
    from rich.text import Text

    sentences = answer.sentences if sentences is None else sentences
    if not answer.answered:
        con.print(Text(NO_ANSWER, style="yellow"))
        return
    for i, s in enumerate(sentences, first_marker):
        line = _highlighted(s.text, answer.question)
        line.append(f" [{i}]", style="cyan")
        con.print(line)
    con.print()
    con.print(Text("Sources", style="bold"))
    for i, s in enumerate(sentences, first_marker):
        for c in [s.citation, *s.also]:
            src = Text(f"[{i}] ", style="cyan")
            src.append(c.title or "(untitled)", style="italic")
            src.append(f" — {c.source}, paragraph {c.paragraph}", style="dim")
            con.print(src)
