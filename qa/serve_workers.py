"""`qa serve --workers N`: N processes answer questions, fed from one queue by the server process.

Why processes: threads of one process share one GIL, and only the encoder run (~2.5 of a
question's ~6 ms of CPU) and SQLite release it, so one process cannot use a second core
(BENCHMARKS.md, serving under load: one process scaled 1.13x on 2 cores).

Why one queue: the server process keeps every HTTP connection (uvicorn, its event loop never
blocked by answering) and hands each API call to the first idle worker over a pipe; calls wait in
one first-in-first-out queue while all are busy. Workers that each accepted connections
themselves (uvicorn's own `--workers`) kept a kept-alive connection for good, and the kernel
spread 16 connections unevenly (423 vs 226 requests in one run): the busier worker's clients
waited longer, which is the 95th percentile.

Workers are *spawned*, so none inherits the server's SQLite connections, onnxruntime session or
index locks. Each opens the index itself and follows `qa index` commits between requests like a
one-process server (qa.serve.LiveBot; reader flocks in qa.store). Conversations live in
qa.serve_chats, in a runtime folder the server makes (0700, never inside the index folder) and
removes when it stops. A worker that dies is replaced; its request gets a 503.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import struct
import sys
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .answer import Bot
from .errors import QAError

MAX_WORKERS = 8  # each worker holds its own copy of the model and the index's open parts
START_TIMEOUT_S = 300
# BLAS/OpenMP pools would spin on the cores the other workers answer on; a question needs one.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_STATUS = struct.Struct("!H")


def default_workers() -> int:
    """One worker per core this process may run on (at most MAX_WORKERS): answering is CPU work,
    so more processes than cores only add memory, and fewer leave cores idle under load."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to open the index (sent to it pickled when it is spawned)."""

    root: str
    model: str | None
    conversations: str  # the SQLite file of qa.serve_chats


def worker_main(spec: WorkerSpec, conn) -> None:
    """A worker: open the index, say ready, then answer [op, args] messages until the pipe closes."""
    from .serve import LiveBot, dumps, warm
    from .serve_chats import SharedConversations
    from .serve_ops import Answering

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    try:
        bot = Bot.open(spec.root, spec.model)
        live = LiveBot(Path(spec.root), bot)  # gives it a one-thread encoder
        warm(bot)
        answering = Answering(live, SharedConversations(Path(spec.conversations)))
        conn.send_bytes(b"R")
    except QAError as e:
        conn.send_bytes(b"E" + str(e).encode())
        return
    except OSError:
        return  # the server stopped while this worker was starting
    while True:
        try:
            op, args = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the server stopped
        try:
            status, body = answering.outcome(op, args)
        except Exception as e:  # noqa: BLE001 - a bug must not take the worker (and its queue) down
            print(f"qa: worker {os.getpid()}: {op} failed: {e!r}", file=sys.stderr, flush=True)
            status, body = 500, dumps({"error": f"internal error ({type(e).__name__})"})
        conn.send_bytes(_STATUS.pack(status) + body)


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.Process
    conn: object  # multiprocessing.connection.Connection
    ready: bool = False
    job: asyncio.Future | None = field(default=None, repr=False)

    @property
    def pid(self) -> str:
        return str(self.process.pid)


class WorkerPool:
    """N worker processes and the queue of calls waiting for one (qa.serve_api's backend)."""

    def __init__(self, spec: WorkerSpec, n: int) -> None:
        self.spec, self.n = spec, n
        self._ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._waiting: deque[tuple[bytes, asyncio.Future]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the workers and wait until each has opened the index (before serving)."""
        self.workers = [self._spawn() for _ in range(self.n)]
        for w in self.workers:
            try:
                if not w.conn.poll(START_TIMEOUT_S):
                    raise QAError(f"a worker did not open the index within {START_TIMEOUT_S} s")
                self._started(w, w.conn.recv_bytes())
            except (EOFError, OSError):
                raise QAError(f"a worker stopped while opening the index (exit code {w.process.join(5) or w.process.exitcode})") from None
        self._idle.extend(self.workers)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_main, args=(self.spec, child), name="qa-serve-worker", daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    def _started(self, w: _Worker, msg: bytes) -> None:
        if msg[:1] != b"R":
            raise QAError(msg[1:].decode() or "a worker could not open the index")
        w.ready = True

    async def call(self, op: str, *args) -> tuple[int, bytes, str]:
        """Run qa.serve_ops.Answering.`op`(*args) in the first idle worker: (status, body, its pid)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for w in self.workers:
                self._loop.add_reader(w.conn.fileno(), self._on_message, w)
        if not self.workers:  # every replacement failed to open the index (its error was printed)
            from .serve import dumps

            return 503, dumps({"error": "no worker could open the index"}), "-"
        future = self._loop.create_future()
        payload = json.dumps([op, list(args)]).encode()
        if self._idle:
            self._send(self._idle.popleft(), payload, future)
        else:
            self._waiting.append((payload, future))
        return await future

    def _send(self, w: _Worker, payload: bytes, future: asyncio.Future) -> None:
        try:
            w.conn.send_bytes(payload)
        except OSError:  # it died before reading this: the call goes to another worker
            self._waiting.appendleft((payload, future))
            self._lost(w)
            if self._idle:
                self._next(self._idle.popleft())
            return
        w.job = future

    def _on_message(self, w: _Worker) -> None:
        try:
            msg = w.conn.recv_bytes()
        except (EOFError, OSError):
            return self._lost(w)
        if not w.ready:  # a replacement worker reporting in
            try:
                self._started(w, msg)
            except QAError as e:
                print(f"qa: error: {e}", file=sys.stderr, flush=True)
                return self._lost(w, replace=False)
        else:
            job, w.job = w.job, None
            if job is not None and not job.done():  # done: the client went away meanwhile
                job.set_result((_STATUS.unpack_from(msg)[0], msg[_STATUS.size:], w.pid))
        self._next(w)

    def _next(self, w: _Worker) -> None:
        while self._waiting:
            payload, future = self._waiting.popleft()
            if not future.done():
                return self._send(w, payload, future)
        self._idle.append(w)

    def _lost(self, w: _Worker, replace: bool = True) -> None:
        """A worker died (killed, out of memory): fail its call, start another in its place."""
        from .serve import dumps

        self._loop.remove_reader(w.conn.fileno())
        w.conn.close()
        self.workers.remove(w)
        if w in self._idle:
            self._idle.remove(w)
        if w.job is not None and not w.job.done():
            w.job.set_result((503, dumps({"error": "the worker answering this request stopped; ask again"}), w.pid))
        if replace:
            new = self._spawn()
            self.workers.append(new)
            self._loop.add_reader(new.conn.fileno(), self._on_message, new)
        if not self.workers:  # none could start again: nothing will answer what waits
            while self._waiting:
                _, future = self._waiting.popleft()
                if not future.done():
                    future.set_result((503, dumps({"error": "no worker could open the index"}), "-"))

    def stop(self) -> None:
        for w in self.workers:
            w.conn.close()  # a worker reads the end of its pipe and returns
        for w in self.workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=5)


def run_pool(uvicorn_config: dict, root: Path, bot: Bot, sock, token: str | None, workers: int, announce) -> None:
    """Serve with `workers` answering processes until interrupted. `bot` (opened by the CLI, which
    checked the index and built it when missing) is closed: this process only speaks HTTP."""
    import uvicorn

    from . import serve_api
    from .serve_chats import SharedConversations

    model = str(bot.model) if bot.model else None
    bot.index.close()  # let `qa index` delete this generation later: the workers open their own
    runtime = Path(tempfile.mkdtemp(prefix="qa-serve-"))
    pool = WorkerPool(WorkerSpec(str(root), model, str(runtime / "conversations.sqlite")), workers)
    try:
        SharedConversations.create(runtime / "conversations.sqlite")
        os.environ.update(ONE_THREAD_ENV)  # read by the spawned workers' BLAS when they load it
        pool.start()
        config = uvicorn.Config(serve_api.build(pool, token), **uvicorn_config)
        announce()
        # uvicorn stops on SIGTERM, then raises it again for its default action, which would end
        # the process before the `finally` below: exit through Python instead.
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        pool.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)
