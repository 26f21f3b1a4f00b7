"""What `qa serve` does for each API call once the request is read: the same code whether it runs
in a thread of the server process or in one of its worker processes (qa.serve_workers).

Each operation takes plain values (checked by qa.serve_api) and returns `(status, JSON body)`:
errors become their status and `{"error": message}` here, so they cross a process boundary as
bytes like any answer.
"""

from __future__ import annotations

import os
import sqlite3

from .errors import IndexUnusable, QAError, UsageError
from .serve import MAX_HISTORY, UNKNOWN_CONVERSATION, ApiError, LiveBot, _sentence, answer_json, ask, dumps, error_body

MAX_RETRIES = 5  # a conversation written by another request meanwhile is loaded again, this many times at most
PID = str(os.getpid())  # which process answered: the x-qa-worker header (tests, load script, logs)


class Answering:
    """The operations of the API over one LiveBot and a conversation store (qa.serve.Conversations
    in one process; qa.serve_chats.SharedConversations across worker processes)."""

    OPS = ("ask", "chat", "more", "reset", "health", "sources", "paragraph")

    def __init__(self, live: LiveBot, chats) -> None:
        self.live, self.chats = live, chats

    def outcome(self, op: str, args: list) -> tuple[int, bytes]:
        """Run `op` and say how it went: (HTTP status, JSON body)."""
        try:
            if op not in self.OPS:
                raise ApiError(500, f"no such operation: {op}")
            return 200, dumps(getattr(self, op)(*args))
        except ApiError as e:
            return e.status, dumps(error_body(e))
        except UsageError as e:
            return 400, dumps(error_body(e))
        except IndexUnusable as e:
            return 503, dumps(error_body(e))
        except QAError as e:
            return 500, dumps(error_body(e))

    # -- the operations ---------------------------------------------------------------------------
    def ask(self, question: str, top: int, since: str | None, until: str | None) -> dict:
        return answer_json(ask(self.live.current(), question, top, since, until))

    def chat(self, cid: str | None, question: str, top: int | None) -> dict:
        def change(cid, chat):
            if top is not None:
                chat.conversation.top = top
            answer = chat.conversation.ask(question)
            del chat.conversation.history[:-MAX_HISTORY]
            chat.shown = len(answer.sentences)
            return {**answer_json(answer), "conversation": cid}

        return self._in_turn(cid, change)

    def more(self, cid: object) -> dict:
        def change(cid, chat):
            first = chat.shown + 1
            shown = chat.conversation.more()
            chat.shown += len(shown)
            last = chat.conversation.history[-1] if chat.conversation.history else None
            return {"question": last.question if last else None, "first_marker": first,
                    "sentences": [_sentence(s) for s in shown]}

        return self._in_turn(_known(cid), change, bot_needed=False)

    def reset(self, cid: object) -> dict:
        def change(cid, chat):
            chat.conversation.reset()
            chat.shown = 0
            return {"conversation": cid, "reset": True}

        return self._in_turn(_known(cid), change, bot_needed=False)

    def health(self) -> dict:
        bot = self.live.current()
        counts = bot.index.manifest.get("counts", {})
        return {"status": "ok", "generation": bot.index.folder.name, "articles": counts.get("documents"),
                "sentences": counts.get("sentences"), "model": bot.index.model_id, "conversations": len(self.chats)}

    def sources(self, offset: int, limit: int) -> dict:
        """`qa sources --json`'s objects, newest first, plus the document id."""
        with _readable():
            index = self.live.current().index
            return {"total": index.manifest["counts"]["documents"], "offset": offset,
                    "sources": [{**a.to_dict(), "doc": a.doc} for a in index.articles(offset, limit)]}

    def paragraph(self, doc: int, paragraph: int) -> dict:
        with _readable():
            db = self.live.current().index.db
            d = db.execute("SELECT source, title, date, url, text FROM documents WHERE id = ?", (doc,)).fetchone()
            span = db.execute('SELECT min(start), max("end") FROM sentences WHERE doc = ? AND paragraph = ?', (doc, paragraph)).fetchone()
        if d is None or span[0] is None:
            raise ApiError(404, f"the index holds no paragraph {paragraph} in document {doc}")
        start, end = span
        return {"doc": doc, "paragraph": paragraph, "source": d[0], "title": d[1], "date": d[2], "url": d[3],
                "start": start, "end": end, "text": d[4][start:end]}

    def _in_turn(self, cid: object, change, bot_needed: bool = True) -> dict:
        """Run `change(cid, chat)` on a conversation (a new one when `cid` is None) and store it.
        In the shared store another worker may have changed it meanwhile: then load it again and
        redo the change, so that a conversation's requests take effect one after the other."""
        for _ in range(MAX_RETRIES):
            bot = self.live.current() if bot_needed or cid is None else None
            cid_, chat = self.chats.new(bot) if cid is None else (cid, self.chats.get(cid, bot))
            with chat.lock:
                if bot is not None:
                    chat.conversation.bot = bot
                result = change(cid_, chat)
                if self.chats.save(cid_, chat):
                    return result
        raise ApiError(409, "the conversation kept changing in other requests; ask again")


def _known(cid: object) -> object:
    """`more` and `reset` continue a conversation: without an id there is none to find."""
    if cid is None:
        raise ApiError(404, UNKNOWN_CONVERSATION)
    return cid


class _readable:
    """A damaged meta.sqlite is an unusable index (503), like in Index._guard."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, e, tb) -> None:
        if kind is not None and issubclass(kind, sqlite3.Error):
            raise IndexUnusable(f"index is unreadable (meta.sqlite: {e}); rebuild it with `qa index --rebuild`") from None
