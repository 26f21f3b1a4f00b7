"""`qa serve`: the bot as a JSON API and a chat page, on Starlette served by uvicorn.

Starlette and uvicorn (the `serve` extra) are imported only here, never on the `qa ask` path.
Every answer body is the `qa ask --json` schema; each sentence also carries `doc`, the document
id that GET /api/paragraph takes. Errors are `{"error": message}`, the message being what the
CLI prints after `qa: error: `.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import store
from .answer import Answer, AnswerSentence, Bot
from .chat import Conversation
from .errors import IndexUnusable, QAError, UsageError
from .questions import MAX_QUESTION_CHARS
from .recency import DateRange

MAX_BODY_BYTES = 16 * 1024  # a question is at most 2,000 characters; a body has no use for more
MAX_TOP = 50
MAX_CONVERSATIONS = 1000  # least recently used ones go first beyond this
CONVERSATION_IDLE_S = 30 * 60
MAX_HISTORY = 20  # answers kept per conversation (follow-ups read the last ones), so memory stays bounded
# Questions one process answers at once. Answering is CPU work, much of it under the GIL: 16
# clients on 2 cores got 84 requests/s with 1 thread, 110/s with 2, 125/s with 3 in one process
# (scripts/load_serve.py, 15 s runs). More cores are used by more processes (`--workers`).
THREADS = min(4, max(2, os.cpu_count() or 2))
WEB = Path(__file__).resolve().parent / "web"
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}  # all that is served
TOKEN_COOKIE = "qa_token"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LiveBot:
    """The Bot of the index's live generation; follows `qa index` commits between requests."""

    def __init__(self, root: Path, bot: Bot) -> None:
        self.root = root
        self.bot = bot
        one_thread_encoder(bot.index)
        self._switching = threading.Lock()

    def current(self) -> Bot:
        """The bot to answer this request with. When CURRENT names a new generation, the first
        request to see it opens and warms a fresh Bot; requests already running (and any that
        arrive meanwhile) keep the old one, whose files stay readable once open."""
        folder = store.current_generation(self.root)  # IndexUnusable on a corrupt CURRENT: 503
        if folder is None:
            raise IndexUnusable(f"no index at {self.root}; build it with `qa index`")
        bot = self.bot
        if folder == bot.index.folder or not self._switching.acquire(blocking=False):
            return bot
        try:
            if self.bot.index.folder != folder:
                old, self.bot = self.bot, refreshed(self.root, self.bot)
                # Let the next `qa index` delete the old generation. Requests still running on the
                # old Bot finish on it: its files are open. (Not Bot.refresh(): that swaps the index
                # inside one Bot, under a request that may be halfway through reading it.)
                old.index.release()
        except IndexUnusable:
            if store.current_generation(self.root) == folder:
                raise  # the new generation itself is broken
            # it was replaced again while we opened it: keep the old bot, the next request retries
        finally:
            self._switching.release()
        return self.bot


def refreshed(root: Path, old: Bot) -> Bot:
    """A Bot on the live generation, every part loaded (so a later commit deleting its files
    cannot break it), sharing the old Bot's encoder when the model is the same."""
    from .index import Index

    index = Index.open(root)
    if index.model_id == old.index.model_id and "encoder" in old.index.__dict__:
        index.__dict__["encoder"] = old.index.encoder
    else:
        one_thread_encoder(index)
    bot = Bot(index, old.ranker)
    warm(bot)
    return bot


def one_thread_encoder(index) -> None:
    """Give the index a single-threaded encoder. A server answers several questions at once, so
    parallelism comes from requests; onnxruntime's own threads only spin against them (16
    clients on 2 cores: 110 requests/s with one thread per run, 54/s with two)."""
    from .embed import EncoderSpec, OnnxEncoder

    try:  # the file the export embeds with: model.int8.onnx for the shipped one, not model.onnx
        onnx_file = index.model_folder / EncoderSpec.load(index.model_folder).onnx_file
    except (OSError, ValueError, TypeError):
        return  # Index.encoder reports the missing or damaged export when it is first used
    if not onnx_file.is_file():
        return
    encoder = index.__dict__.get("encoder")
    if encoder is None or encoder.threads != 1:
        index.__dict__["encoder"] = index._guard("model export", lambda: OnnxEncoder(index.model_folder, threads=1))


def warm(bot: Bot) -> None:
    """Load every lazy part of the index now rather than inside someone's request."""
    bot.ask("warm up the index", top=1)
    if bot.ranker.reranker_top:  # loaded on the first question the gate does not settle otherwise
        from .rerank import shipped_cross_encoder

        shipped_cross_encoder(bot.reranker_threads())
    bot.index.db.execute("SELECT count(*) FROM documents").fetchone()


def ask(bot: Bot, question: str, top: int, since: str | None, until: str | None) -> Answer:
    """Bot.ask with the `qa ask --since/--until` date range (a bad date is the CLI's UsageError)."""
    return bot.ask(question, top=top, dates=DateRange.parse(since, until))


@dataclass
class _Chat:
    conversation: Conversation
    used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    shown: int = 0  # sentences of the last answer shown so far (markers continue from here)
    version: int = 0  # writes so far (qa.serve_chats: a write names the version it read)


UNKNOWN_CONVERSATION = "unknown or expired conversation; start a new one by leaving out `conversation`"


class Conversations:
    """Conversations by id: dropped after `idle` seconds unused, at most `limit` (LRU)."""

    def __init__(self, limit: int = MAX_CONVERSATIONS, idle: float = CONVERSATION_IDLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.idle, self.clock = limit, idle, clock
        self._chats: OrderedDict[str, _Chat] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._chats)

    def new(self, bot: Bot) -> tuple[str, _Chat]:
        cid = secrets.token_urlsafe(16)
        chat = _Chat(Conversation(bot, floor=bot.display_floor), self.clock())
        with self._lock:
            self._expire()
            self._chats[cid] = chat
            while len(self._chats) > self.limit:
                self._chats.popitem(last=False)
        return cid, chat

    def get(self, cid: object, bot: Bot | None = None) -> _Chat:
        """The conversation, marked used now (`bot` is for the shared store's interface: the
        conversation kept here has its own)."""
        with self._lock:
            self._expire()
            chat = self._chats.get(cid) if isinstance(cid, str) else None
            if chat is None:
                raise ApiError(404, UNKNOWN_CONVERSATION)
            chat.used = self.clock()
            self._chats.move_to_end(cid)
            return chat

    def save(self, cid: str, chat: _Chat) -> bool:
        """Nothing to write: the chat was changed in place, under its lock."""
        return True

    def _expire(self) -> None:
        cutoff = self.clock() - self.idle
        while self._chats and next(iter(self._chats.values())).used < cutoff:
            self._chats.popitem(last=False)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    if is_loopback(host) or token is not None:
        return None
    return f"serving on {host}: the API has no authentication; anyone who can reach this port can use it (set --token)"


def _sentence(s: AnswerSentence) -> dict:
    return {**s.to_dict(), "doc": s.citation.doc}


def answer_json(a: Answer) -> dict:
    return {**a.to_dict(), "sentences": [_sentence(s) for s in a.sentences]}


def _question(data: dict) -> str:
    q = data.get("question")
    if not isinstance(q, str):
        raise UsageError("`question` must be a string, e.g. {\"question\": \"What did London agree?\"}")
    if len(q) > MAX_QUESTION_CHARS:
        raise UsageError(f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}")
    return q


def _int(value: object, name: str, low: int, high: int) -> int:
    try:
        n = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"`{name}` must be a whole number") from None
    if isinstance(value, (bool, float)) or not low <= n <= high:
        raise UsageError(f"`{name}` must be a whole number from {low} to {high}")
    return n


def _optional_str(data: dict, name: str) -> str | None:
    v = data.get(name)
    if v is not None and not isinstance(v, str):
        raise UsageError(f"`{name}` must be a string")
    return v


def create_app(root: Path, bot: Bot, token: str | None = None, conversations=None, threads: int = THREADS):
    """The Starlette application over the index folder `root`, starting from an opened `bot`;
    `conversations`: a Conversations (the default) or a qa.serve_chats.SharedConversations."""
    from . import serve_api
    from .serve_ops import Answering

    answering = Answering(LiveBot(Path(root), bot), Conversations() if conversations is None else conversations)
    return serve_api.build(serve_api.ThreadBackend(answering, threads), token)


def check_token(headers, cookies, query, token: str | None) -> None:
    """With a token, each request carries it: `Authorization: Bearer T`, or the cookie that
    GET /?token=T sets for the page (a browser cannot add headers to its own requests)."""
    if token is None:
        return
    auth = headers.get("authorization", "")
    given = auth[7:] if auth[:7].lower() == "bearer " else cookies.get(TOKEN_COOKIE) or query.get("token")
    if not given:
        raise ApiError(401, "this server needs a token: send `Authorization: Bearer TOKEN`")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, "wrong token")


def error_body(e: Exception) -> dict:
    return {"error": str(e)}


def run(root: Path, bot: Bot, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
        warn: Callable[[str], None] = print, workers: int = 1) -> None:
    """`qa serve`: answer until interrupted, in `workers` processes (qa.serve_workers) or in this one."""
    try:
        import uvicorn
    except ImportError:
        raise QAError("qa serve needs starlette and uvicorn (the serve extra): pip install -e '.[serve]' in the qa project folder") from None
    message = exposure_warning(host, token)
    if message:
        warn(message)
    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    processes = f" with {workers} worker processes" if workers > 1 else ""

    def announce() -> None:
        print(f"qa: serving {root} at http://{shown}:{port}/{processes} (Ctrl-C to stop)", flush=True)

    config_kw = {"log_level": "warning", "limit_concurrency": 256, "timeout_graceful_shutdown": 5}
    if workers > 1:
        from .serve_workers import run_pool

        return run_pool(config_kw, root, bot, sock, token, workers, announce)
    warm(bot)
    config = uvicorn.Config(create_app(root, bot, token), **config_kw)
    announce()
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int):
    """A socket bound to host:port, or a one-line error (uvicorn would log and exit instead)."""
    import socket

    try:
        family, _, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
        # is IPPROTO_TCP, and accepted connections inherit it. With Nagle on, a response's body
        # waited for the client's delayed ACK of its headers: 48 ms per request on a kept-alive
        # connection instead of 7 ms (scripts/load_serve.py, one client).
        sock = socket.socket(family, socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise QAError(f"cannot listen on {host} port {port} ({e.strerror or e}); choose another --host or --port") from None
    return sock


class ServerThread:
    """uvicorn on a free loopback port in a background thread (tests, the load script)."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see listen()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=256))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def dumps(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()
