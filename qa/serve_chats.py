"""Conversations of `qa serve --workers N` in SQLite, shared by its worker processes.

A follow-up may reach any worker, so a conversation's state lives in a small database in the
server's private runtime folder (created 0700 by the parent, removed when it stops; never inside
the index folder). Each request loads the state, answers, and writes it back.

The state is plain JSON written field by field (never pickle: nothing in it can run code). It
keeps the turns a conversation reads: the last answer (`more` continues it) and the last answered
one (a follow-up is read in its light; `Conversation.focus`). Older turns are not needed.

Two requests of one conversation at once (in two workers) are made to happen one after the
other: each write names the version it read, and a request whose conversation changed meanwhile
answers again from the newer state (qa.serve_api), as the in-memory store's lock would have made it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable

from .answer import Answer, AnswerSentence, Bot, Citation
from .chat import Conversation
from .recency import DateRange
from .serve import CONVERSATION_IDLE_S, MAX_CONVERSATIONS, ApiError, UNKNOWN_CONVERSATION, _Chat

STATE_VERSION = 1
_CITATION_FIELDS = [f.name for f in fields(Citation)]
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, used REAL NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_used ON conversations(used);
"""


# -- the state as JSON ---------------------------------------------------------------------------
def _citation(c: Citation) -> dict:
    return {name: getattr(c, name) for name in _CITATION_FIELDS}


def _sentence(s: AnswerSentence) -> dict:
    return {"text": s.text, "score": s.score, "row": s.row, "citation": _citation(s.citation),
            "also": [_citation(c) for c in s.also]}


def _answer(a: Answer, more: bool) -> dict:
    return {"question": a.question, "answered": a.answered, "score": a.score, "interpreted": a.interpreted,
            "following": a.following, "sentences": [_sentence(s) for s in a.sentences],
            "more": [_sentence(s) for s in a.more] if more else []}


def _citation_from(d: dict) -> Citation:
    return Citation(**{name: d[name] for name in _CITATION_FIELDS})


def _sentence_from(d: dict) -> AnswerSentence:
    return AnswerSentence(str(d["text"]), float(d["score"]), _citation_from(d["citation"]),
                          [_citation_from(c) for c in d["also"]], row=int(d["row"]))


def _answer_from(d: dict) -> Answer:
    return Answer(str(d["question"]), bool(d["answered"]), [_sentence_from(s) for s in d["sentences"]],
                  more=[_sentence_from(s) for s in d["more"]], score=float(d["score"]),
                  interpreted=d["interpreted"], following=d["following"])


def turns_kept(history: list[Answer]) -> list[Answer]:
    """The turns a conversation reads later: the last answered one (a follow-up is read in its
    light) and the last one (`more` continues it; only its `more` sentences are kept)."""
    if not history:
        return []
    answered = next((a for a in reversed(history) if a.answered and a.sentences), None)
    return [answered, history[-1]] if answered is not None and answered is not history[-1] else [history[-1]]


def state_json(chat: _Chat) -> str:
    c = chat.conversation
    return json.dumps({"v": STATE_VERSION, "top": c.top, "floor": c.floor, "since": c.dates.since, "until": c.dates.until,
                       "shown": chat.shown, "turns": [_answer(a, a is c.history[-1]) for a in turns_kept(c.history)]},
                      ensure_ascii=False)


def chat_from_json(text: str, bot: Bot | None, used: float) -> _Chat:
    d = json.loads(text)
    if d.get("v") != STATE_VERSION:
        raise ValueError(f"conversation state version {d.get('v')!r}")
    conversation = Conversation(bot, [_answer_from(a) for a in d["turns"]], top=int(d["top"]), floor=float(d["floor"]),  # type: ignore[arg-type]
                                dates=DateRange(d["since"], d["until"]))
    return _Chat(conversation, used, shown=int(d["shown"]))


# -- the store -----------------------------------------------------------------------------------
class SharedConversations:
    """Conversations by id in one SQLite file (WAL), for every worker process of a server: dropped
    after `idle` seconds unused, at most `limit` (least recently used first). The same interface
    as qa.serve.Conversations, plus `save`, which the in-memory store does not need."""

    def __init__(self, path: Path, limit: int = MAX_CONVERSATIONS, idle: float = CONVERSATION_IDLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # time.monotonic is one clock for every process on the machine (CLOCK_MONOTONIC on Linux).
        self.path, self.limit, self.idle, self.clock = Path(path), limit, idle, clock
        self._local = threading.local()  # one connection per answering thread

    @classmethod
    def create(cls, path: Path, **kw) -> "SharedConversations":
        """Make the database (the parent does this once, before starting the workers)."""
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()
        return cls(path, **kw)

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            db.execute("PRAGMA synchronous=OFF")  # runtime state, deleted when the server stops: no fsync
            self._local.db = db
        return db

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM conversations WHERE used >= ?", (self._cutoff(),)).fetchone()[0]

    def _cutoff(self) -> float:
        return self.clock() - self.idle

    def new(self, bot: Bot) -> tuple[str, _Chat]:
        cid = secrets.token_urlsafe(16)
        chat = _Chat(Conversation(bot, floor=bot.display_floor), self.clock())
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM conversations WHERE used < ?", (self._cutoff(),))
            db.execute("INSERT INTO conversations (id, used, version, state) VALUES (?, ?, 0, ?)", (cid, chat.used, state_json(chat)))
            over = db.execute("SELECT count(*) FROM conversations").fetchone()[0] - self.limit
            if over > 0:
                db.execute("DELETE FROM conversations WHERE id IN (SELECT id FROM conversations ORDER BY used, rowid LIMIT ?)", (over,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cid, chat

    def get(self, cid: object, bot: Bot | None = None) -> _Chat:
        """The conversation, marked used now; its Conversation answers with `bot`."""
        now = self.clock()
        row = None
        if isinstance(cid, str):
            row = self.db.execute("UPDATE conversations SET used = ? WHERE id = ? AND used >= ? RETURNING state, version",
                                  (now, cid, now - self.idle)).fetchall()  # run to the end: the write is done
        if not row:
            raise ApiError(404, UNKNOWN_CONVERSATION)
        (state, version), = row
        try:
            chat = chat_from_json(state, bot, now)
        except (ValueError, KeyError, TypeError) as e:
            raise ApiError(500, f"conversation state is unreadable ({e})") from None
        chat.version = version
        return chat

    def save(self, cid: str, chat: _Chat) -> bool:
        """Write the state back; False when another request changed (or dropped) the
        conversation since `get`, and nothing was written."""
        version = chat.version
        done = self.db.execute("UPDATE conversations SET state = ?, used = ?, version = ? WHERE id = ? AND version = ?",
                               (state_json(chat), self.clock(), version + 1, cid, version)).rowcount
        if done:
            chat.version = version + 1
        return done == 1
