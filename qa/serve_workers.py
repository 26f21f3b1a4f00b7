"""`qa serve --workers N`: N processes answer questions, all accepting on one listening socket.

Why processes: most of a question's ~7 ms is Python holding the GIL, so threads of one process
scaled 1.13x on 2 cores (BENCHMARKS.md, serving under load). uvicorn's own supervisor
(uvicorn.supervisors.Multiprocess, what `uvicorn --workers` runs) starts them as *spawned*
processes, so none inherits the parent's SQLite connections, onnxruntime session or index locks;
it restarts a worker that dies and stops them all on Ctrl-C or SIGTERM. Each worker opens the
index itself and follows `qa index` commits between requests like a one-process server
(qa.serve.LiveBot; reader flocks in qa.store). Conversations are kept in qa.serve_chats, in a
runtime folder the parent makes (0700, never inside the index folder) and removes when it stops.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .answer import Bot
from .errors import QAError

STARTUP_FAILURE = 3  # uvicorn.config.STARTUP_FAILURE: the supervisor stops instead of restarting
MAX_WORKERS = 8  # each worker holds its own copy of the model and the index's open parts
# Threads answering at once in each worker process. Two let one question's encoder run (ONNX
# releases the GIL) while another's Python ranking runs; measured against 1 in BENCHMARKS.md.
THREADS_PER_WORKER = 2
# BLAS/OpenMP pools would spin on the cores the other workers answer on; each question needs one.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def default_workers() -> int:
    """One worker per core this process may run on (at most MAX_WORKERS): answering is CPU work,
    so more processes than cores only add memory, and fewer leave cores idle under load."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


@dataclass(frozen=True)
class WorkerApp:
    """What a worker process needs to build its app: sent to it pickled, called there once
    (uvicorn's `factory`) before it accepts its first connection."""

    root: str
    model: str | None
    token: str | None
    conversations: str  # the SQLite file of qa.serve_chats
    threads: int = THREADS_PER_WORKER

    def __call__(self):
        from .serve import create_app, one_thread_encoder, warm
        from .serve_chats import SharedConversations

        try:
            bot = Bot.open(self.root, self.model)
            one_thread_encoder(bot.index)
            warm(bot)
        except QAError as e:  # e.g. the index went bad between the parent's check and now
            print(f"qa: error: {e}", file=sys.stderr, flush=True)
            sys.exit(STARTUP_FAILURE)
        return create_app(Path(self.root), bot, self.token, SharedConversations(Path(self.conversations)), self.threads)


def run_workers(config_kw: dict, root: Path, bot: Bot, sock, token: str | None, workers: int, announce) -> None:
    """Serve with `workers` processes until interrupted. `bot` (opened by the CLI, which checked
    the index and built it when missing) is closed: the parent only supervises."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .serve_chats import SharedConversations

    model = str(bot.model) if bot.model else None
    bot.index.close()  # let `qa index` delete this generation later: the workers open their own
    runtime = Path(tempfile.mkdtemp(prefix="qa-serve-"))
    try:
        SharedConversations.create(runtime / "conversations.sqlite")
        os.environ.update(ONE_THREAD_ENV)  # read by the spawned workers' BLAS when they load it
        app = WorkerApp(str(root), model, token, str(runtime / "conversations.sqlite"))
        config = uvicorn.Config(app, factory=True, workers=workers, **config_kw)
        announce()
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise QAError("a worker could not open the index (its error is above); the server stopped")
