"""The `qa` command line. Heavy libraries are imported inside commands, never at module level."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .config import CORPUS_ENV, INDEX_ENV, MODEL_ENV
from .errors import QAError, UsageError
from .questions import EMPTY_HINT

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Answer questions from a local collection of news articles with cited, verbatim sentences.",
)

IndexOpt = typer.Option(None, "--index", "-i", envvar=INDEX_ENV, help="Index folder [default: ./embeddings]")
CorpusOpt = typer.Option(None, "--corpus", "-c", envvar=CORPUS_ENV, help="Articles to index when the index is missing [default: ./seeds]")
SinceOpt = typer.Option(None, "--since", help="Only articles published on or after this date (YYYY, YYYY-MM or YYYY-MM-DD)")
UntilOpt = typer.Option(None, "--until", help="Only articles published on or before this date (YYYY, YYYY-MM or YYYY-MM-DD)")
ModelOpt = typer.Option(None, "--model", envvar=MODEL_ENV, help="sentence-transformers model folder [default: bundled all-MiniLM-L6-v2]")
# Beyond one machine (qa.stores.milvus): the token comes from $QA_MILVUS_TOKEN only, never an option.
MilvusOpt = typer.Option(None, "--milvus", envvar="QA_MILVUS", help="Use a Milvus collection instead of the index folder: "
                         "a *.db file (Milvus Lite) or http(s)://host:19530 [needs qa[scale]]")
CollectionOpt = typer.Option("qa", "--collection", help="Milvus collection name (with --milvus)")


def _index_path(index: Optional[Path]) -> Path:
    from .config import default_index

    return index or default_index()


def _warn(msg: str) -> None:
    print(f"qa: warning: {msg}", file=sys.stderr)


class _RichProgress:
    """Progress on stderr: bars on a terminal; elsewhere (a log, a pipe) a plain line every few
    seconds, so a long `qa index` under a script or a service manager is never silent."""

    def __init__(self) -> None:
        self.progress = None
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(file=sys.stderr), transient=True,
        )

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def task(self, description: str, total: int):
        if self.progress:
            task = self.progress.add_task(description, total=total)
            return lambda n: self.progress.advance(task, n)
        return _progress_lines(description, total)


PROGRESS_SECONDS_ENV = "QA_PROGRESS_SECONDS"  # seconds between plain progress lines (default 5)


def _progress_lines(description: str, total: int):
    """A tick function that prints `qa: Embedding 1200/5000` at most every few seconds.

    The encoder ticks from several threads at once: a lock keeps each line whole.
    """
    import threading
    import time

    every = float(os.environ.get(PROGRESS_SECONDS_ENV) or 5)
    state = {"done": 0, "last": time.monotonic()}
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            state["done"] += n
            now = time.monotonic()
            if now - state["last"] >= every and state["done"] < total:
                state["last"] = now
                print(f"qa: {description} {state['done']}/{total}", file=sys.stderr, flush=True)

    return tick


def _build(index: Path, paths, model, rebuild: bool, quiet: bool = False, milvus: str | None = None,
           collection: str = "qa", ray: str | None = None):
    from .build import build

    if not quiet:
        print(f"qa: indexing into {milvus or index} ...", file=sys.stderr)
    embed = None
    if ray is not None:
        from .distributed import ray_embedder

        embed = ray_embedder(ray)
    try:
        with _RichProgress() as progress:
            if milvus:
                from .stores.milvus_build import build_milvus

                return build_milvus(milvus, collection, paths, model, rebuild=rebuild, progress=progress, warn=_warn, embed=embed)
            return build(index, paths, model, rebuild=rebuild, progress=progress, warn=_warn, embed=embed)
    finally:
        if embed is not None:
            embed.close()  # a local Ray cluster started for this run stops with it


def _exit_now() -> None:
    """End a read-only command without interpreter teardown.

    Freeing numpy, faiss and the onnxruntime session at exit took 0.1-0.2 s of a 0.8 s one-shot
    `qa ask`; a query holds no temp files or open writes, so once output is flushed there is
    nothing left to clean up.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(0)


def _open_bot(index: Optional[Path], corpus: Optional[Path], model: Optional[Path], milvus: str | None = None,
              collection: str = "qa"):
    """Open the index, building it from the corpus first when there is none (a Milvus collection
    is opened as it is: `qa index --milvus` builds it)."""
    from . import store
    from .answer import Bot

    if milvus:
        return Bot.open(model=model, milvus=milvus, collection=collection)

    root = _index_path(index)
    store.check_index_folder(root)  # never build an index among a user's articles
    if store.current_generation(root) is None:
        from .config import default_corpus

        corpus = corpus or default_corpus()
        if not corpus.exists():
            raise QAError(f"no index at {root} and corpus folder '{corpus}' not found; pass --corpus DIR or run `qa index PATHS`")
        _build(root, [corpus], model, rebuild=False)
    bot = Bot.open(root, model)
    from .lexical import TERMS_VERSION

    if bot.index.manifest.get("terms", 1) != TERMS_VERSION:
        _warn(f"the index at {root} matches words the way an older qa did; run `qa index` to update it (nothing is re-embedded)")
    return bot


def _check_dates(bot, dates) -> None:
    """Warn when a date range leaves no article at all (undated ones never count)."""
    if dates and not bot.index.any_dated(dates):
        _warn(f"no indexed article is dated {dates} (`qa sources` lists the dates; undated articles are left out by --since/--until)")


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, or - to read one question per line from stdin"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (JSON Lines when reading stdin)"),
    top: int = typer.Option(3, "--top", "-n", min=1, max=50, help="Up to N ranked sentences, best first (the terminal hides weak secondary ones)"),
    since: Optional[str] = SinceOpt,
    until: Optional[str] = UntilOpt,
    index: Optional[Path] = IndexOpt,
    corpus: Optional[Path] = CorpusOpt,
    model: Optional[Path] = ModelOpt,
    milvus: Optional[str] = MilvusOpt,
    collection: str = CollectionOpt,
) -> None:
    """Answer one question (or many, with -) from the indexed articles."""
    from .questions import check_line
    from .recency import DateRange

    dates = DateRange.parse(since, until)  # a bad date is refused before anything is loaded
    single = None
    if question != "-":
        # Argument bytes that are not UTF-8 arrive as lone surrogates: drop them, say so.
        single = check_line(1, question, "question")
        if single.question is None:
            raise UsageError(f"the question is empty; {EMPTY_HINT}")
        if single.warning:
            _warn(single.warning.removeprefix("question 1: "))
    bot = _open_bot(index, corpus, model, milvus, collection)
    _check_dates(bot, dates)
    from .render import console, json_line, print_answer, write_answer

    floor = 0.0 if json_out else bot.display_floor  # scripts get every sentence asked for, with scores
    if single is None:
        _ask_batch(bot, top, floor, json_out, dates)
        _exit_now()
    a = bot.ask(single.question, top=top, floor=floor, dates=dates)
    if json_out:
        print(json_line(a.to_dict()))
    elif sys.stdout.isatty():
        print_answer(console(), a)
    else:
        write_answer(sys.stdout, a)
    _exit_now()


def _ask_batch(bot, top: int, floor: float, json_out: bool, dates) -> None:
    """Questions from stdin, one per line, answered in order in batches of 64.

    A line that is not UTF-8 is repaired and one that cleans to nothing is skipped, each with a
    warning naming its line; the rest of the batch is always answered. JSON objects carry the
    input line number, so a script can match answers to questions across skipped lines.
    """
    from itertools import islice

    from .questions import read_lines
    from .render import console, json_line, print_answer

    con = console()
    lines = read_lines(sys.stdin.buffer)
    while batch := list(islice(lines, 64)):
        for line in batch:
            if line.warning:
                _warn(line.warning)
        asked = [line for line in batch if line.question is not None]
        for line, a in zip(asked, bot.ask_many([line.question for line in asked], top=top, floor=floor, dates=dates)):
            if json_out:
                print(json_line({**a.to_dict(), "line": line.number}), flush=False)
            else:
                con.print(f"Q: {a.question}", style="bold")
                print_answer(con, a)
                con.print()
        sys.stdout.flush()


@app.command()
def chat(
    json_out: bool = typer.Option(False, "--json", help="One JSON object per question (for scripts)"),
    top: int = typer.Option(3, "--top", "-n", min=1, max=50, help="Sentences per answer"),
    since: Optional[str] = SinceOpt,
    until: Optional[str] = UntilOpt,
    index: Optional[Path] = IndexOpt,
    corpus: Optional[Path] = CorpusOpt,
    model: Optional[Path] = ModelOpt,
    milvus: Optional[str] = MilvusOpt,
    collection: str = CollectionOpt,
) -> None:
    """Talk to the articles: follow-up questions use the conversation. :help lists commands."""
    from .recency import DateRange
    from .repl import run

    dates = DateRange.parse(since, until)
    bot = _open_bot(index, corpus, model, milvus, collection)
    _check_dates(bot, dates)
    run(bot, top=top, json_out=json_out, dates=dates)


@app.command("index")
def index_cmd(
    paths: Optional[List[Path]] = typer.Argument(None, help="Files or folders to (re)index [default: the folders indexed before, or ./seeds]"),
    index: Optional[Path] = IndexOpt,
    model: Optional[Path] = ModelOpt,
    rebuild: bool = typer.Option(False, "--rebuild", help="Start from scratch (the old index stays live until the new one is complete)"),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    milvus: Optional[str] = MilvusOpt,
    collection: str = CollectionOpt,
    ray: bool = typer.Option(False, "--ray", help="Embed with Ray Data, one encoder per actor (a local cluster "
                             "unless --ray-address) [needs qa[scale]]"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                              help="Ray cluster to join: host:port, or 'auto' (the running one)"),
) -> None:
    """Build or update the index. Only new and changed articles are embedded."""
    from dataclasses import asdict

    from .render import counted, json_line

    root = _index_path(index)
    report = _build(root, paths or None, model, rebuild=rebuild, quiet=True, milvus=milvus, collection=collection,
                    ray=(ray_address or "") if ray else None)
    if milvus:
        root = f"collection '{collection}' at {milvus}"
    if json_out:
        print(json_line(asdict(report)))
        return
    if report.generation is None:
        print(f"Index at {root} is up to date: {counted(report.documents, 'article')}, "
              f"{counted(report.sentences, 'sentence')} ({report.seconds:.2f} s).")
    else:
        print(
            f"Indexed {counted(report.documents, 'article')}, {counted(report.sentences, 'sentence')} into {root} "
            f"({report.added} added, {report.changed} changed, {report.removed} removed, {report.unchanged} unchanged; "
            f"{report.embedded} texts embedded in {report.seconds:.1f} s)."
        )


@app.command()
def sources(
    json_out: bool = typer.Option(False, "--json", help="One JSON object per article (JSON Lines)"),
    index: Optional[Path] = IndexOpt,
    milvus: Optional[str] = MilvusOpt,
    collection: str = CollectionOpt,
) -> None:
    """List the indexed articles: date, title, source, url and sentence count, newest first."""
    from .render import counted, json_line, place
    from .stores import open_store

    articles = open_store(_index_path(index), milvus, collection).articles()
    for a in articles:
        if json_out:
            print(json_line(a.to_dict()))
        else:
            url = f" <{a.url}>" if a.url else ""
            print(f"{(a.date or 'undated')[:10]:<10}  {a.title or '(untitled)'} — {place(a.source, a.record)}{url}, "
                  f"{counted(a.sentences, 'sentence')}")
    if not json_out:
        print(f"{counted(len(articles), 'article')}.")
    _exit_now()


@app.command("eval")
def eval_cmd(
    file: Path = typer.Argument(..., help="SQuAD-format .json/.json.gz (v1.1 or v2.0), a SelQA file with --format selqa, "
                                "or a conversations file with --format conversations"),
    split: str = typer.Option("heldout", "--split", help="tune (even articles), heldout (odd articles) or all"),
    fmt: str = typer.Option("squad", "--format", help="squad, selqa or conversations"),
    baselines: bool = typer.Option(False, "--baselines", help="Also plain BM25 and plain dense retrieval over the same sentences"),
    foreign: bool = typer.Option(False, "--foreign", help="Also ask the other split's questions; they should be declined"),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the written articles and the scratch index in this folder"),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Measure answer quality: R@1/3/5, MRR@10, abstention (SQuAD); MAP, MRR, P@1 (SelQA)."""
    from . import eval as ev
    from .render import json_line

    if fmt not in ("squad", "selqa", "conversations"):
        raise UsageError(f"unknown --format {fmt!r}; use squad, selqa or conversations")
    if split not in ("tune", "heldout", "all"):
        raise UsageError(f"unknown --split {split!r}; use tune, heldout or all")
    if not file.is_file():
        raise QAError(f"evaluation file '{file}' not found")
    with _RichProgress() as progress:
        if fmt == "conversations":
            from . import conversation_eval as cev

            report = cev.run_conversations(file, keep, progress=progress)
        elif fmt == "selqa":
            report = ev.run_selqa(file, keep, baselines=True, progress=progress)
        else:
            report = ev.run_squad(file, split, keep, baselines=baselines, foreign=foreign, progress=progress)
    if json_out:
        print(json_line(report))
    elif fmt == "conversations":
        cev.print_report(report)
    else:
        ev.print_report(report)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)"),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="Port to listen on"),
    token: Optional[str] = typer.Option(None, "--token", envvar="QA_TOKEN", help="Require `Authorization: Bearer TOKEN` on every request"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, max=64, help="Processes answering at once [default: one per CPU core, at most 8]"),
    index: Optional[Path] = IndexOpt,
    corpus: Optional[Path] = CorpusOpt,
    model: Optional[Path] = ModelOpt,
) -> None:
    """Serve the chat page at / and the JSON API (/api/ask, /api/chat, ...) over HTTP."""
    from . import serve as srv

    if token is not None and not token.strip():
        raise UsageError("--token is empty")
    if workers is None:
        from .serve_workers import default_workers

        workers = default_workers()
    bot = _open_bot(index, corpus, model)
    srv.run(_index_path(index), bot, host, port, token, warn=_warn, workers=workers)


def _click_exceptions() -> tuple[type[Exception], type[Exception]]:
    """The (ClickException, Abort) classes typer raises: since 0.2x it runs its own copy of click."""
    try:
        from typer._click.exceptions import ClickException
        from typer.exceptions import Abort
    except ImportError:  # older typer, built on click itself
        from click.exceptions import Abort, ClickException
    return ClickException, Abort


@app.command()
def bench(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Folder of articles [default: the SQuAD v1.1 dev articles from ../shared]"),
    squad: Optional[Path] = typer.Option(None, "--squad", help="SQuAD file for the default corpus and questions"),
    work: Path = typer.Option(Path("/tmp/qa-bench"), "--work", help="Scratch folder (index, articles)"),
    scale: int = typer.Option(0, "--scale", help="Also build and measure an approximate index of this many vectors (e.g. 1000000)"),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Also measure cold ask and a 10-article update at these sentence counts (e.g. 10000,100000,1000000)"),
    sizes_only: bool = typer.Option(False, "--sizes-only", help="With --sizes: measure only the size table"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the figures into this markdown file (e.g. BENCHMARKS.md)"),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON"),
) -> None:
    """Measure speed and memory on a real corpus (cold and warm questions, indexing, scale)."""
    from . import bench as b
    from .render import json_line

    if sizes_only and out:
        raise UsageError("--out rewrites the whole bench section; use --sizes without --sizes-only to write it")
    try:
        size_list = [int(x.replace("_", "")) for x in sizes.split(",")] if sizes else None
    except ValueError:
        raise UsageError(f"--sizes takes sentence counts separated by commas, e.g. 10000,100000; not {sizes!r}")
    result = b.run(work, corpus, squad or b.DEFAULT_SQUAD, scale=scale, log=lambda m: print(f"qa: {m}", file=sys.stderr),
                   sizes=size_list, sizes_only=sizes_only)
    section = b.markdown(result, "qa " + " ".join(sys.argv[1:]))
    if out:
        b.write_markdown(out, section)
    print(json_line(result) if json_out else section)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"qa {version('qa')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("qa (not installed)")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print qa's version and exit"),
) -> None:
    """Answer questions from a local collection of news articles with cited, verbatim sentences."""


def main() -> None:
    click_exception, abort = _click_exceptions()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        rv = app(standalone_mode=False)
    except abort:
        print("qa: interrupted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        sys.exit(130)
    except click_exception as e:
        e.show()
        sys.exit(e.exit_code)
    except QAError as e:
        print(f"qa: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(rv if isinstance(rv, int) else 0)
