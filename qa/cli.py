"""The `qa` command line. Heavy libraries are imported inside commands, never at module level."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .config import CORPUS_ENV, INDEX_ENV, MODEL_ENV
from .errors import QAError, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Answer questions from a local collection of news articles with cited, verbatim sentences.",
)

IndexOpt = typer.Option(None, "--index", "-i", envvar=INDEX_ENV, help="Index folder [default: ./embeddings]")
CorpusOpt = typer.Option(None, "--corpus", "-c", envvar=CORPUS_ENV, help="Articles to index when the index is missing [default: ./seeds]")
ModelOpt = typer.Option(None, "--model", envvar=MODEL_ENV, help="sentence-transformers model folder [default: bundled all-MiniLM-L6-v2]")


def _index_path(index: Optional[Path]) -> Path:
    from .config import default_index

    return index or default_index()


def _warn(msg: str) -> None:
    print(f"qa: warning: {msg}", file=sys.stderr)


class _RichProgress:
    """Progress bars on stderr (only drawn when stderr is a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(file=sys.stderr), transient=True,
            # Off a terminal rich would still print a blank line on stop; scripts read stderr.
            disable=not sys.stderr.isatty(),
        )

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def task(self, description: str, total: int):
        task = self.progress.add_task(description, total=total)
        return lambda n: self.progress.advance(task, n)


def _build(index: Path, paths, model, rebuild: bool, quiet: bool = False):
    from .build import build

    if not quiet:
        print(f"qa: indexing into {index} ...", file=sys.stderr)
    with _RichProgress() as progress:
        return build(index, paths, model, rebuild=rebuild, progress=progress, warn=_warn)


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


def _open_bot(index: Optional[Path], corpus: Optional[Path], model: Optional[Path]):
    """Open the index, building it from the corpus first when there is none."""
    from . import store
    from .answer import Bot

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


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, or - to read one question per line from stdin"),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (JSON Lines when reading stdin)"),
    top: int = typer.Option(3, "--top", "-n", min=1, max=50, help="Up to N ranked sentences, best first (the terminal hides weak secondary ones)"),
    index: Optional[Path] = IndexOpt,
    corpus: Optional[Path] = CorpusOpt,
    model: Optional[Path] = ModelOpt,
) -> None:
    """Answer one question (or many, with -) from the indexed articles."""
    from .answer import clean_question

    if question != "-":
        clean_question(question)  # reject an empty question before loading anything
    bot = _open_bot(index, corpus, model)
    from .render import console, json_line, print_answer, write_answer

    floor = 0.0 if json_out else bot.display_floor  # scripts get every sentence asked for, with scores
    if question == "-":
        con = console()
        questions = [line.rstrip("\n") for line in sys.stdin]
        questions = [q for q in questions if q.strip()]
        for start in range(0, len(questions), 64):
            for a in bot.ask_many(questions[start : start + 64], top=top, floor=floor):
                if json_out:
                    print(json_line(a.to_dict()), flush=False)
                else:
                    con.print(f"Q: {a.question}", style="bold")
                    print_answer(con, a)
                    con.print()
        _exit_now()
    a = bot.ask(question, top=top, floor=floor)
    if json_out:
        print(json_line(a.to_dict()))
    elif sys.stdout.isatty():
        print_answer(console(), a)
    else:
        write_answer(sys.stdout, a)
    _exit_now()


@app.command()
def chat(
    json_out: bool = typer.Option(False, "--json", help="One JSON object per question (for scripts)"),
    top: int = typer.Option(3, "--top", "-n", min=1, max=50, help="Sentences per answer"),
    index: Optional[Path] = IndexOpt,
    corpus: Optional[Path] = CorpusOpt,
    model: Optional[Path] = ModelOpt,
) -> None:
    """Talk to the articles: follow-up questions use the conversation. :help lists commands."""
    from .repl import run

    bot = _open_bot(index, corpus, model)
    run(bot, top=top, json_out=json_out)


@app.command("index")
def index_cmd(
    paths: Optional[List[Path]] = typer.Argument(None, help="Files or folders to (re)index [default: the folders indexed before, or ./seeds]"),
    index: Optional[Path] = IndexOpt,
    model: Optional[Path] = ModelOpt,
    rebuild: bool = typer.Option(False, "--rebuild", help="Start from scratch (the old index stays live until the new one is complete)"),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Build or update the index. Only new and changed articles are embedded."""
    from dataclasses import asdict

    from .render import counted, json_line

    root = _index_path(index)
    report = _build(root, paths or None, model, rebuild=rebuild, quiet=True)
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


@app.command("eval")
def eval_cmd(
    file: Path = typer.Argument(..., help="SQuAD-format .json/.json.gz (v1.1 or v2.0), or a SelQA file with --format selqa"),
    split: str = typer.Option("heldout", "--split", help="tune (even articles), heldout (odd articles) or all"),
    fmt: str = typer.Option("squad", "--format", help="squad or selqa"),
    baselines: bool = typer.Option(False, "--baselines", help="Also plain BM25 and plain dense retrieval over the same sentences"),
    foreign: bool = typer.Option(False, "--foreign", help="Also ask the other split's questions; they should be declined"),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the written articles and the scratch index in this folder"),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Measure answer quality: R@1/3/5, MRR@10, abstention (SQuAD); MAP, MRR, P@1 (SelQA)."""
    from . import eval as ev
    from .render import json_line

    if fmt not in ("squad", "selqa"):
        raise UsageError(f"unknown --format {fmt!r}; use squad or selqa")
    if split not in ("tune", "heldout", "all"):
        raise UsageError(f"unknown --split {split!r}; use tune, heldout or all")
    if not file.is_file():
        raise QAError(f"evaluation file '{file}' not found")
    with _RichProgress() as progress:
        if fmt == "selqa":
            report = ev.run_selqa(file, keep, baselines=True, progress=progress)
        else:
            report = ev.run_squad(file, split, keep, baselines=baselines, foreign=foreign, progress=progress)
    if json_out:
        print(json_line(report))
    else:
        ev.print_report(report)


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
