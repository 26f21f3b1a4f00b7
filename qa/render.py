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


def counted(n: int, noun: str) -> str:
    """"1 article", "2 articles"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


Segments = list[tuple[str, str]]  # one output line as (text, rich style) pieces


def where(source: str, date: str | None, paragraph: int) -> str:
    """"seeds/a.txt, 2026-05-18, paragraph 2": a citation's file, date (when known) and paragraph."""
    return ", ".join(p for p in (source, date[:10] if date else None, f"paragraph {paragraph}") if p)


def _highlighted(text: str, question: str) -> Segments:
    """The sentence split into plain and bold pieces: words sharing a stem with the question."""
    from .lexical import query_terms, tokenize

    wanted = set(query_terms(question))
    out: Segments = []
    done = 0
    for m in re.finditer(r"\w+", text):
        if wanted and set(tokenize([m.group(0)])[0]) & wanted:
            out += [(text[done : m.start()], ""), (m.group(0), "bold")]
            done = m.end()
    out.append((text[done:], ""))
    return out


def answer_lines(answer: Answer, sentences: list[AnswerSentence] | None = None, first_marker: int = 1) -> list[Segments]:
    """The terminal layout of an answer: sentences with markers, then the Sources block."""
    sentences = answer.sentences if sentences is None else sentences
    if not answer.answered:
        return [[(NO_ANSWER, "yellow")]]
    lines = [_highlighted(s.text, answer.question) + [(f" [{i}]", "cyan")] for i, s in enumerate(sentences, first_marker)]
    lines += [[], [("Sources", "bold")]]
    for i, s in enumerate(sentences, first_marker):
        for c in [s.citation, *s.also]:
            lines.append([(f"[{i}] ", "cyan"), (c.title or "(untitled)", "italic"), (f" — {where(c.source, c.date, c.paragraph)}", "dim")])
    return lines


def print_answer(con, answer: Answer, sentences: list[AnswerSentence] | None = None, first_marker: int = 1) -> None:
    """Print through a rich console (colour and bold where the terminal supports it)."""
    from rich.text import Text

    for line in answer_lines(answer, sentences, first_marker):
        con.print(Text.assemble(*line))


def write_answer(file: TextIO, answer: Answer) -> None:
    """The same layout as plain text, without importing rich (piped one-shot `qa ask`)."""
    file.write("".join("".join(text for text, _ in line) + "\n" for line in answer_lines(answer)))
