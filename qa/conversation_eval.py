"""`qa eval --format conversations FILE`: multi-turn conversations through the code of `qa chat`.

FILE (JSON, made by scripts/build_conversations.py) names a SQuAD file and split (`"squad"`,
`"split"`) and holds conversations, each a list of turns with `kind`, `question` (as asked in
chat), `standalone` (the same question rewritten to stand alone), `answer` (a substring occurring
exactly once in its article) and `article` (its title). The split's articles are written and
indexed exactly as `qa eval` does; each conversation then goes through `Conversation.ask` (the code
behind `qa chat`, reset between conversations), and every turn is also asked alone and in its
standalone rewrite through `Bot.ask_many` (the code behind `qa ask`). A turn is right at k when one
of the first k returned sentences overlaps its answer's span, as in `qa eval`; a declined turn
returns no sentences and counts as wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .errors import QAError
from .eval import Question, _file_name, load_json, rank_of_first_hit, split_articles, write_articles

TOP = 10
FOLLOW_UP_KINDS = ("person", "thing", "ellipsis", "answer")
DEFAULT_SQUAD_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad"


@dataclass
class Turn:
    conversation: str
    kind: str
    question: str
    standalone: str
    gold: Question  # the answer substring's span in its article file


def _squad_path(file: Path, name: str) -> Path:
    for candidate in (Path(name), file.parent / name, DEFAULT_SQUAD_DIR / Path(name).name):
        if candidate.is_file():
            return candidate
    raise QAError(f"the SQuAD file '{name}' named by '{file}' was not found (looked beside it and in {DEFAULT_SQUAD_DIR})")


def load_conversations(file: Path, articles_dir: Path) -> tuple[list[list[Turn]], int]:
    """Write the file's articles into `articles_dir`; return its conversations (with gold spans)."""
    raw = load_json(file)
    if not isinstance(raw, dict) or not isinstance(raw.get("conversations"), list) or "squad" not in raw:
        raise QAError(f"'{file}' is not a conversations file (needs \"squad\" and a \"conversations\" list)")
    articles = split_articles(load_json(_squad_path(file, raw["squad"]))["data"], raw.get("split", "tune"))
    write_articles(articles, articles_dir)
    texts = {}
    for i, art in enumerate(articles):
        path = (articles_dir / _file_name(i, art["title"])).as_posix()
        texts[art["title"].replace("_", " ")] = (path, Path(path).read_text(encoding="utf-8"))
    out = []
    for c in raw["conversations"]:
        turns = []
        for t in c["turns"]:
            if t["article"] not in texts:
                raise QAError(f"conversation {c.get('id')}: article {t['article']!r} is not in the file's split")
            source, text = texts[t["article"]]
            if text.count(t["answer"]) != 1:
                raise QAError(f"conversation {c.get('id')}: answer {t['answer']!r} does not occur exactly once in {t['article']!r}")
            start = text.index(t["answer"])
            gold = Question(c.get("id", ""), t["standalone"], source, [(start, start + len(t["answer"]))])
            turns.append(Turn(c.get("id", ""), t["kind"], t["question"], t["standalone"], gold))
        out.append(turns)
    return out, len(articles)


def _rank(answer, gold: Question) -> int | None:
    return rank_of_first_hit([(s.citation.source, s.citation.start, s.citation.end) for s in answer.sentences], gold)


def _same_answer(a, b) -> bool:
    return a.answered == b.answered and [(s.citation.source, s.citation.start) for s in a.sentences] == \
        [(s.citation.source, s.citation.start) for s in b.sentences]


def score_conversations(bot, conversations: list[list[Turn]], progress=None) -> dict:
    """Ask every conversation in chat, and every turn alone and rewritten; per-kind figures."""
    from .chat import Conversation

    turns = [t for conv in conversations for t in conv]
    tick = progress.task("Conversations", len(conversations)) if progress else (lambda n: None)
    chat_answers = []
    t0 = time.perf_counter()
    conversation = Conversation(bot, top=TOP)
    for conv in conversations:
        conversation.reset()
        chat_answers += [conversation.ask(t.question) for t in conv]
        tick(1)
    chat_seconds = time.perf_counter() - t0
    alone = bot.ask_many([t.question for t in turns], top=TOP)
    standalone = bot.ask_many([t.standalone for t in turns], top=TOP)
    rows = {}
    for t, c, a, s in zip(turns, chat_answers, alone, standalone):
        r = rows.setdefault(t.kind, {"kind": t.kind, "turns": 0, "chat": [], "alone": [], "standalone": [], "declined": 0,
                                     "same_as_ask": 0, "context_used": 0})
        r["turns"] += 1
        r["chat"].append(_rank(c, t.gold))
        r["alone"].append(_rank(a, t.gold))
        r["standalone"].append(_rank(s, t.gold))
        r["declined"] += not c.answered
        r["same_as_ask"] += _same_answer(c, a)
        r["context_used"] += c.interpreted is not None
    order = [k for k in ("first", *FOLLOW_UP_KINDS, "switch") if k in rows] + sorted(set(rows) - {"first", "switch", *FOLLOW_UP_KINDS})
    follow = [rows[k] for k in FOLLOW_UP_KINDS if k in rows]
    table = [_row(rows[k]) for k in order]
    if follow:
        merged = {"kind": "all follow-ups", "turns": sum(r["turns"] for r in follow)}
        for key in ("chat", "alone", "standalone"):
            merged[key] = [x for r in follow for x in r[key]]
        for key in ("declined", "same_as_ask", "context_used"):
            merged[key] = sum(r[key] for r in follow)
        table.append(_row(merged))
    return {"conversations": len(conversations), "turns": len(turns), "chat_seconds": round(chat_seconds, 1), "kinds": table}


def _row(r: dict) -> dict:
    n = max(r["turns"], 1)
    at = lambda ranks, k: round(sum(1 for x in ranks if x is not None and x <= k) / n, 4)  # noqa: E731
    return {"kind": r["kind"], "turns": r["turns"],
            "chat R@1": at(r["chat"], 1), "chat R@3": at(r["chat"], 3),
            "alone R@1": at(r["alone"], 1), "alone R@3": at(r["alone"], 3),
            "standalone R@1": at(r["standalone"], 1), "standalone R@3": at(r["standalone"], 3),
            "chat declined": round(r["declined"] / n, 4), "context used": round(r["context_used"] / n, 4),
            "same as qa ask": round(r["same_as_ask"] / n, 4)}


def run_conversations(file: Path, scratch: Path | None = None, progress=None) -> dict:
    """Index the file's articles and score its conversations; returns a JSON-able report."""
    import tempfile

    from .answer import Bot
    from .build import build
    from .index import Index

    tmp = None
    if scratch is None:
        tmp = tempfile.TemporaryDirectory(prefix="qa-eval-")
        scratch = Path(tmp.name)
    try:
        conversations, n_articles = load_conversations(file, scratch / "articles")
        report = build(scratch / "index", [scratch / "articles"], progress=progress)
        bot = Bot(Index.open(scratch / "index"))
        result = {"file": str(file), "articles": n_articles, "sentences": report.sentences}
        result.update(score_conversations(bot, conversations, progress))
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    if not con.is_terminal:
        con.width = 200  # piped: one row per line, no truncated cells
    con.print(", ".join(f"{k}: {v}" for k, v in report.items() if not isinstance(v, (list, dict))))
    table = Table()
    for col in report["kinds"][0]:
        table.add_column(col, justify="left" if col == "kind" else "right")
    for row in report["kinds"]:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    con.print(table)
