"""The `qa chat` loop: prompt_toolkit on a terminal, plain lines from a pipe."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .answer import Bot
from .chat import Conversation
from .errors import UsageError
from .questions import check_line, read_lines
from .recency import DateRange
from .render import console, counted, json_line, print_answer, where

HELP = """Ask a question in plain words; follow-ups ("Who led them?", "And in 2024?") are read in the
light of the last answer, and a dim line "(reading it as: ...)" shows the question searched for.
  :sources   full cited paragraphs of the last answer
  :more      the next best sentences for the last question
  :reset     forget the conversation
  :since D   only articles published on or after D (YYYY, YYYY-MM or YYYY-MM-DD); :since off
  :until D   only articles published on or before D; :until off
  :help      this help
  :quit      leave (or Ctrl-D)"""


def _history_file() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "qa" / "chat_history"


def _lines_from_terminal():
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    try:
        path = _history_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    session = PromptSession(history=history)
    number = 0
    while True:
        try:
            text = session.prompt("? ")
        except KeyboardInterrupt:  # Ctrl-C clears the line, the session goes on
            continue
        except EOFError:
            return
        number += 1
        if text.strip():
            yield check_line(number, text, "question")


def run(bot: Bot, top: int = 3, json_out: bool = False, dates: DateRange | None = None) -> None:
    conv = Conversation(bot, top=top, floor=0.0 if json_out else bot.display_floor, dates=dates or DateRange())
    con = console()
    interactive = sys.stdin.isatty() and not json_out
    if interactive:
        m = bot.index.manifest["counts"]
        con.print(f"qa chat — {counted(m['documents'], 'article')}, {counted(m['sentences'], 'sentence')}. "
                  "Ask a question; :help for commands.", style="dim")
    for line in _lines_from_terminal() if interactive else read_lines(sys.stdin.buffer):
        if line.warning:
            print(f"qa: warning: {line.warning}", file=sys.stderr)
        if line.question is None:
            continue
        text = line.question
        if text.startswith(":"):
            if not _command(text, conv, con, json_out):
                return
            continue
        if bot.refresh() and not json_out:  # `qa index` committed a new generation meanwhile
            con.print(f"(index updated: {counted(bot.index.manifest['counts']['documents'], 'article')})", style="dim")
        answer = conv.ask(text)
        if json_out:
            print(json_line(answer.to_dict()), flush=True)
        else:
            if answer.following:  # only the earlier turn's words were added: name the story instead
                con.print(f"(following: {answer.following})", style="dim", markup=False)
            elif answer.interpreted is not None:  # the follow-up was read in the light of the conversation
                con.print(f"(reading it as: {answer.interpreted})", style="dim", markup=False)
            print_answer(con, answer)
            con.print()


def _command(text: str, conv: Conversation, con, json_out: bool) -> bool:
    """Run a :command; False means quit."""
    cmd = text.split()[0].lower()
    last = conv.history[-1] if conv.history else None
    if cmd in (":quit", ":q", ":exit"):
        return False
    if cmd in (":help", ":h", ":?"):
        con.print(HELP) if not json_out else print(json_line({"command": "help", "text": HELP}))
    elif cmd == ":reset":
        conv.reset()
        con.print("Conversation cleared.", style="dim") if not json_out else print(json_line({"command": "reset"}))
    elif cmd == ":more":
        shown_before = len(last.sentences) if last else 0
        more = conv.more()
        if json_out:
            print(json_line({"command": "more", "question": last.question if last else None, "sentences": [s.to_dict() for s in more]}))
        elif not more:
            con.print("Nothing more for the last question.", style="dim")
        else:
            print_answer(con, last, more, first_marker=shown_before + 1)
            con.print()
    elif cmd in (":since", ":until"):
        _date_bound(cmd, text, conv, con, json_out)
    elif cmd == ":sources":
        _sources(conv, con, json_out)
    else:
        msg = f"unknown command {cmd}; :help lists the commands"
        print(json_line({"command": cmd, "error": msg})) if json_out else con.print(msg, style="yellow")
    return True


def _date_bound(cmd: str, text: str, conv: Conversation, con, json_out: bool) -> None:
    """`:since D` / `:until D` set a bound of the date range, `off` (or nothing) clears it."""
    arg = text.split(maxsplit=1)[1].strip() if len(text.split(maxsplit=1)) > 1 else ""
    value = None if arg.lower() in ("", "off", "none", "-") else arg
    since, until = (value, conv.dates.until) if cmd == ":since" else (conv.dates.since, value)
    try:
        conv.dates = DateRange.parse(since, until)
    except UsageError as e:
        print(json_line({"command": cmd[1:], "error": str(e)})) if json_out else con.print(str(e), style="yellow")
        return
    d = conv.dates
    if json_out:
        print(json_line({"command": cmd[1:], "since": d.since, "until": d.until}))
    else:
        con.print(f"Articles {d}." if d else "All articles, whatever their date.", style="dim")


def _sources(conv: Conversation, con, json_out: bool) -> None:
    from rich.text import Text

    last = conv.history[-1] if conv.history else None
    if not last or not last.answered:
        msg = "No cited sources yet: ask a question first." if not last else "The last question had no answer, so nothing was cited."
        print(json_line({"command": "sources", "paragraphs": []})) if json_out else con.print(msg, style="dim")
        return
    index = conv.bot.index
    paragraphs: dict[tuple[int, int], dict] = {}  # one entry per cited paragraph, however many citations
    for i, s in enumerate(last.sentences, 1):
        c = s.citation
        p = paragraphs.get((c.doc, c.paragraph))
        if p is None:
            start, end, text = index.paragraph_text(c.doc, c.paragraph)
            p = paragraphs[(c.doc, c.paragraph)] = {"markers": [], "source": c.source, "title": c.title, "paragraph": c.paragraph,
                                                    "record": c.record, "date": c.date, "url": c.url,
                                                    "start": start, "end": end, "text": text, "cited": []}
        p["markers"].append(i)
        p["cited"].append([c.start - p["start"], c.end - p["start"]])
    paragraphs = list(paragraphs.values())
    if json_out:
        print(json_line({"command": "sources", "paragraphs": paragraphs}))
        return
    for p in paragraphs:
        markers = "".join(f"[{m}]" for m in p["markers"])
        con.print(Text(f"{markers} {p['title']} — {where(p['source'], p['date'], p['paragraph'], p['record'])}", style="bold"))
        text, cited = _shown(p["source"], p["text"], p["cited"])
        body = Text(text)
        for start, end in cited:
            body.stylize("underline", start, end)
        con.print(body)
        con.print()


def _shown(source: str, text: str, cited: list[list[int]]) -> tuple[str, list[tuple[int, int]]]:
    """A paragraph as the terminal shows it, with its cited spans: a Markdown paragraph without
    its inline markup (as its cited sentences are shown), the spans moved to match."""
    if not source.lower().endswith(".md"):
        return text, [(s, e) for s, e in cited]
    from bisect import bisect_left

    from .markup import plain

    shown, pos = plain(text, 0, len(text))  # pos: each shown character's offset in `text`
    return shown, [(bisect_left(pos, s), bisect_left(pos, e)) for s, e in cited]
