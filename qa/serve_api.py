"""The routes of `qa serve` (see qa/serve.py for the parts that do not need Starlette)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .answer import DEFAULT_TOP
from .errors import IndexUnusable, QAError, UsageError
if TYPE_CHECKING:
    from .serve_chats import SharedConversations
from .serve import (
    MAX_BODY_BYTES, MAX_HISTORY, MAX_TOP, SECURITY_HEADERS, STATIC, THREADS, TOKEN_COOKIE, UNKNOWN_CONVERSATION, WEB, ApiError, Conversations, LiveBot,
    _int, _optional_str, _question, _sentence, answer_json, ask, check_token, dumps, error_body,
)

MAX_SOURCES_PAGE = 10_000
MAX_RETRIES = 5  # a conversation written by another request meanwhile is loaded again, this many times at most


def _json(obj: dict, status: int = 200) -> Response:
    return Response(dumps(obj), status, headers=SECURITY_HEADERS, media_type="application/json")


async def _body(request: Request) -> dict:
    """The JSON object in the body, read no further than MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the request body must be a JSON object")
    return data


def build(live: LiveBot, token: str | None, chats: Conversations | SharedConversations, threads: int = THREADS) -> Starlette:
    """The app; `threads` questions are answered at once (the rest wait for one to finish)."""
    import anyio.to_thread

    limiter = []  # one CapacityLimiter, made inside the event loop on first use

    async def blocking(fn, *args):
        if not limiter:
            limiter.append(anyio.CapacityLimiter(threads))
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter[0])

    def endpoint(work, page: bool = False):
        async def handle(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                check_token(request.headers, request.cookies, request.query_params if page else {}, token)
                result = await work(request)
                response = result if isinstance(result, Response) else _json(result)
            except ApiError as e:
                response = _json(error_body(e), e.status)
            except UsageError as e:
                response = _json(error_body(e), 400)
            except IndexUnusable as e:
                response = _json(error_body(e), 503)
            except QAError as e:
                response = _json(error_body(e), 500)
            # Time inside the server, waiting for a worker included (the load script reads it).
            response.headers["server-timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
            # Which process answered (`qa serve --workers N`): for logs, tests and the load script.
            response.headers["x-qa-worker"] = str(os.getpid())
            return response

        return handle

    async def api_ask(request: Request):
        data = await _body(request)
        question = _question(data)
        top = _int(data.get("top", DEFAULT_TOP), "top", 1, MAX_TOP)
        since, until = _optional_str(data, "since"), _optional_str(data, "until")
        return answer_json(await blocking(lambda: ask(live.current(), question, top, since, until)))

    def in_turn(cid: object, change, bot_needed: bool = True):
        """Run `change(cid, chat)` on a conversation (a new one when `cid` is None) and store it.
        In the shared store another worker may have changed it meanwhile: then load it again and
        redo the change, so that a conversation's requests take effect one after the other."""
        for _ in range(MAX_RETRIES):
            bot = live.current() if bot_needed or cid is None else None
            cid_, chat = chats.new(bot) if cid is None else (cid, chats.get(cid, bot))
            with chat.lock:
                if bot is not None:
                    chat.conversation.bot = bot
                result = change(cid_, chat)
                if chats.save(cid_, chat):
                    return result
        raise ApiError(409, "the conversation kept changing in other requests; ask again")

    async def api_chat(request: Request):
        data = await _body(request)
        question = _question(data)
        top = _int(data["top"], "top", 1, MAX_TOP) if "top" in data else None

        def change(cid, chat):
            if top is not None:
                chat.conversation.top = top
            answer = chat.conversation.ask(question)
            del chat.conversation.history[:-MAX_HISTORY]
            chat.shown = len(answer.sentences)
            return {**answer_json(answer), "conversation": cid}

        return await blocking(in_turn, data.get("conversation"), change)

    async def api_more(request: Request):
        data = await _body(request)

        def change(cid, chat):
            first = chat.shown + 1
            shown = chat.conversation.more()
            chat.shown += len(shown)
            last = chat.conversation.history[-1] if chat.conversation.history else None
            return {"question": last.question if last else None, "first_marker": first,
                    "sentences": [_sentence(s) for s in shown]}

        return await blocking(in_turn, _conversation_id(data), change, False)

    async def api_reset(request: Request):
        data = await _body(request)

        def change(cid, chat):
            chat.conversation.reset()
            chat.shown = 0
            return {"conversation": cid, "reset": True}

        return await blocking(in_turn, _conversation_id(data), change, False)

    async def api_health(request: Request):
        bot = await blocking(live.current)
        counts = bot.index.manifest.get("counts", {})
        return {"status": "ok", "generation": bot.index.folder.name, "articles": counts.get("documents"),
                "sentences": counts.get("sentences"), "model": bot.index.model_id, "conversations": len(chats)}

    async def api_sources(request: Request):
        offset = _int(request.query_params.get("offset", 0), "offset", 0, 2**62)
        limit = _int(request.query_params.get("limit", 1000), "limit", 1, MAX_SOURCES_PAGE)

        def work():  # `qa sources --json`'s objects, newest first, plus the document id
            index = live.current().index
            return {"total": index.manifest["counts"]["documents"], "offset": offset,
                    "sources": [{**a.to_dict(), "doc": a.doc} for a in index.articles(offset, limit)]}

        return await blocking(_readable(work))

    async def api_paragraph(request: Request):
        doc = _int(request.query_params.get("doc"), "doc", 0, 2**62)
        paragraph = _int(request.query_params.get("paragraph"), "paragraph", 0, 2**31)

        def work():
            db = live.current().index.db
            d = db.execute("SELECT source, title, date, url, text FROM documents WHERE id = ?", (doc,)).fetchone()
            span = db.execute('SELECT min(start), max("end") FROM sentences WHERE doc = ? AND paragraph = ?', (doc, paragraph)).fetchone()
            if d is None or span[0] is None:
                raise ApiError(404, f"the index holds no paragraph {paragraph} in document {doc}")
            start, end = span
            return {"doc": doc, "paragraph": paragraph, "source": d[0], "title": d[1], "date": d[2], "url": d[3],
                    "start": start, "end": end, "text": d[4][start:end]}

        return await blocking(_readable(work))

    async def page(request: Request):
        if token is not None and "token" in request.query_params:  # now checked: keep it in a cookie, off the URL
            response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        return Response((WEB / "index.html").read_bytes(), headers=SECURITY_HEADERS, media_type="text/html; charset=utf-8")

    async def static(request: Request):
        name = request.path_params["name"]
        if name not in STATIC:  # a fixed list: never a path taken from the request
            raise ApiError(404, f"no such file: {name}")
        return Response((WEB / name).read_bytes(), headers=SECURITY_HEADERS, media_type=STATIC[name])

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _json({"error": f"{exc.detail}: {request.method} {request.url.path}"}, exc.status_code)

    routes = [
        Route("/", endpoint(page, page=True)),
        Route("/static/{name}", endpoint(static)),
        Route("/api/ask", endpoint(api_ask), methods=["POST"]),
        Route("/api/chat", endpoint(api_chat), methods=["POST"]),
        Route("/api/more", endpoint(api_more), methods=["POST"]),
        Route("/api/reset", endpoint(api_reset), methods=["POST"]),
        Route("/api/health", endpoint(api_health)),
        Route("/api/sources", endpoint(api_sources)),
        Route("/api/paragraph", endpoint(api_paragraph)),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _conversation_id(data: dict) -> object:
    """`more` and `reset` continue a conversation: without an id there is none to find."""
    cid = data.get("conversation")
    if cid is None:
        raise ApiError(404, UNKNOWN_CONVERSATION)
    return cid


def _readable(work):
    """A damaged meta.sqlite is an unusable index (503), like in Index._guard."""
    def run():
        try:
            return work()
        except sqlite3.Error as e:
            raise IndexUnusable(f"index is unreadable (meta.sqlite: {e}); rebuild it with `qa index --rebuild`") from None

    return run
