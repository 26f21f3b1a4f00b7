"""Measure answer quality: SQuAD-format files (retrieval over whole articles) and SelQA
(ranking each question's given candidate sentences).

SQuAD protocol: each article is one document (title line, then its paragraphs separated by blank
lines), written as a text file and indexed by the same `build` users run; every question goes
through `Bot.ask_many`, the code behind `qa ask`. A question is right at k when one of the first
k returned sentences overlaps a gold answer span. Declined questions return no sentences, so they
count as wrong: the figures are what a user of `qa ask --top 10` gets.
Splits: tune = even articles (data[0::2]), heldout = odd articles (data[1::2]).
"""

from __future__ import annotations

import gzip
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import QAError

KS = (1, 3, 5)
MRR_K = 10


def load_json(path: Path):
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise QAError(f"evaluation file '{path}' not found")
    except (OSError, ValueError, EOFError) as e:
        raise QAError(f"cannot read evaluation file '{path}': {e}")


def split_articles(data: list, split: str) -> list:
    if split == "tune":
        return data[0::2]
    if split == "heldout":
        return data[1::2]
    if split == "all":
        return data
    raise QAError(f"unknown split {split!r}; use tune, heldout or all")


@dataclass
class Question:
    qid: str
    text: str
    source: str  # the article file it is about
    spans: list[tuple[int, int]]  # gold answer spans, offsets into that file's text
    answerable: bool = True

    def overlaps(self, source: str, start: int, end: int) -> bool:
        """Does the span [start, end) of `source` overlap a gold answer?"""
        return source == self.source and any(start < ge and gs < end for gs, ge in self.spans)


def _file_name(i: int, title: str) -> str:
    return f"{i:03d}_{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')[:60]}.txt"


def write_articles(articles: list, folder: Path) -> list[Question]:
    """Write each article as `title\\n\\npara\\n\\npara...`; map gold spans into file offsets."""
    folder.mkdir(parents=True, exist_ok=True)
    questions: list[Question] = []
    for i, art in enumerate(articles):
        title = art["title"].replace("_", " ")
        name = _file_name(i, art["title"])
        source = (folder / name).as_posix()
        parts = [title]
        offset = len(title) + 2
        for p in art["paragraphs"]:
            ctx = p["context"]
            for qa in p["qas"]:
                gold = qa.get("answers") or []
                answerable = not qa.get("is_impossible", False)
                spans = [(offset + a["answer_start"], offset + a["answer_start"] + len(a["text"])) for a in gold]
                questions.append(Question(qa["id"], qa["question"], source, spans, answerable))
            parts.append(ctx)
            offset += len(ctx) + 2
        (folder / name).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return questions


def rank_of_first_hit(ranked: list[tuple[str, int, int]], q: Question) -> int | None:
    """1-based rank of the first returned sentence overlapping a gold span, or None."""
    for rank, (source, start, end) in enumerate(ranked, 1):
        if q.overlaps(source, start, end):
            return rank
    return None


@dataclass
class Metrics:
    name: str
    questions: int = 0
    hits: dict = field(default_factory=dict)  # k -> recall@k
    mrr: float = 0.0
    abstained: float = 0.0  # share of answerable questions declined
    qps: float = 0.0

    @classmethod
    def from_ranks(cls, name: str, ranks: list[int | None], abstained: int = 0, seconds: float = 0.0) -> "Metrics":
        n = max(len(ranks), 1)
        hits = {k: sum(1 for r in ranks if r is not None and r <= k) / n for k in KS}
        mrr = sum(1.0 / r for r in ranks if r is not None and r <= MRR_K) / n
        return cls(name, len(ranks), hits, mrr, abstained / n, len(ranks) / seconds if seconds else 0.0)

    def row(self) -> dict:
        return {"system": self.name, "questions": self.questions, **{f"R@{k}": round(v, 4) for k, v in self.hits.items()},
                "MRR@10": round(self.mrr, 4), "abstained": round(self.abstained, 4), "qps": round(self.qps, 1)}


def auroc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


Tick = Callable[[int], None]


def run_squad(
    path: Path,
    split: str = "heldout",
    scratch: Path | None = None,
    baselines: bool = False,
    foreign: bool = False,
    progress=None,
    top: int = MRR_K,
) -> dict:
    """Index the split's articles and ask all its questions; returns a JSON-able report."""
    import tempfile

    from .answer import Bot
    from .build import build
    from .index import Index

    raw = load_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise QAError(f"'{path}' is not a SQuAD-format file (no \"data\" list)")
    articles = split_articles(raw["data"], split)
    if not articles:
        raise QAError(f"'{path}' has no articles in split {split!r}")
    tmp = None
    if scratch is None:
        tmp = tempfile.TemporaryDirectory(prefix="qa-eval-")
        scratch = Path(tmp.name)
    try:
        questions = write_articles(articles, scratch / "articles")
        t0 = time.perf_counter()
        report = build(scratch / "index", [scratch / "articles"], progress=progress)
        index_seconds = time.perf_counter() - t0
        bot = Bot(Index.open(scratch / "index"))
        answerable = [q for q in questions if q.answerable and q.spans]
        unanswerable = [q for q in questions if not q.answerable]

        t0 = time.perf_counter()
        answers = _ask_all(bot, [q.text for q in answerable], top, progress, "Asking")
        ask_seconds = time.perf_counter() - t0
        ranks = [rank_of_first_hit([(s.citation.source, s.citation.start, s.citation.end) for s in a.sentences], q)
                 for a, q in zip(answers, answerable)]
        declined = sum(1 for a in answers if not a.answered)
        result = {
            "file": str(path), "split": split, "articles": len(articles), "questions": len(answerable),
            "sentences": report.sentences, "index_seconds": round(index_seconds, 1),
            "threshold": bot.ranker.threshold,
            "systems": [Metrics.from_ranks("qa (shipped)", ranks, declined, ask_seconds).row()],
        }
        if baselines:
            result["systems"] += [m.row() for m in _baselines(bot.index, answerable, progress)]
        if unanswerable:
            neg = _ask_all(bot, [q.text for q in unanswerable], top, progress, "Asking unanswerable")
            pos_scores = [a.score for a in answers]
            neg_scores = [a.score for a in neg]
            correct = sum(a.answered for a in answers) + sum(not a.answered for a in neg)
            result["answerability"] = {
                "unanswerable": len(unanswerable),
                "accuracy": round(correct / (len(answers) + len(neg)), 4),
                "auroc": round(auroc(pos_scores, neg_scores), 4),
            }
        if foreign:
            other = {"tune": "heldout", "heldout": "tune"}.get(split)
            if other is None:
                raise QAError("--foreign needs --split tune or heldout")
            others = [q for q in write_articles(split_articles(raw["data"], other), scratch / "foreign")
                      if q.answerable and q.spans]
            neg = _ask_all(bot, [q.text for q in others], top, progress, "Asking foreign")
            result["foreign"] = {
                "questions": len(others),
                "own_answered": round(sum(a.answered for a in answers) / max(len(answers), 1), 4),
                "foreign_declined": round(sum(not a.answered for a in neg) / max(len(neg), 1), 4),
                "auroc": round(auroc([a.score for a in answers], [a.score for a in neg]), 4),
            }
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _ask_all(bot, texts: list[str], top: int, progress, label: str):
    tick = progress.task(label, len(texts)) if progress else (lambda n: None)
    out = []
    for lo in range(0, len(texts), 64):
        batch = texts[lo : lo + 64]
        out += bot.ask_many(batch, top=top)
        tick(len(batch))
    return out


def _baselines(index, questions: list[Question], progress) -> list[Metrics]:
    """Plain BM25 (bm25s's default parameters) and plain dense retrieval over the same sentence rows."""
    from .lexical import PLAIN_B, PLAIN_K1, Bm25

    rows_meta = {s.row: s for s in index.sentences_at(range(index.sentence_count))}
    plain = Bm25.in_memory([rows_meta[r].text for r in range(index.sentence_count)], PLAIN_K1, PLAIN_B)
    texts = [q.text for q in questions]
    tick = progress.task("Baselines", len(texts)) if progress else (lambda n: None)
    t0 = time.perf_counter()
    vecs = index.encoder.encode(texts)
    dense_rows, _ = index.search_sentences(vecs, MRR_K)
    dense_s = time.perf_counter() - t0
    bm_ranks, dense_ranks = [], []
    t0 = time.perf_counter()
    for q, drow in zip(questions, dense_rows):
        scores = plain.scores(q.text)
        top = np.argsort(-scores, kind="stable")[:MRR_K]
        top = [r for r in top if scores[r] > 0]
        bm_ranks.append(rank_of_first_hit([_span(rows_meta[int(r)]) for r in top], q))
        dense_ranks.append(rank_of_first_hit([_span(rows_meta[int(r)]) for r in drow if r >= 0], q))
        tick(1)
    bm_s = time.perf_counter() - t0
    return [Metrics.from_ranks("BM25 over sentences", bm_ranks, seconds=bm_s),
            Metrics.from_ranks("dense over sentences", dense_ranks, seconds=dense_s)]


def _span(s) -> tuple[str, int, int]:
    return (s.source, s.start, s.end)


# -- SelQA --------------------------------------------------------------------------------------
def run_selqa(path: Path, scratch: Path | None = None, baselines: bool = True, progress=None, model: Path | None = None) -> dict:
    """Rank each question's candidate sentences; MAP, MRR and P@1 over questions."""
    from .config import default_model
    from .embed import OnnxEncoder, encoder_folder
    from .retrieve import Ranker, rank_given

    raw = load_json(path)
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], dict) or "candidates" not in raw[0]:
        raise QAError(f"'{path}' is not a SelQA answer-selection file (a list of questions with candidates)")
    encoder = OnnxEncoder(encoder_folder(model or default_model()))  # exports live in the shared cache
    return _selqa(path, raw, encoder, Ranker.default(), rank_given, baselines, progress)


def _selqa(path, raw, encoder, ranker, rank_given, baselines, progress) -> dict:
    systems: dict[str, list[list[int]]] = {"qa (shipped)": []}
    if baselines:
        systems.update({"BM25 over sentences": [], "dense over sentences": []})
    tick = progress.task("Ranking", len(raw)) if progress else (lambda n: None)
    t0 = time.perf_counter()
    from .lexical import PLAIN_B, PLAIN_K1, Bm25

    all_cands = [c for item in raw for c in item["candidates"] if c.strip()]
    bm25 = Bm25.in_memory(all_cands)  # one collection: IDF from every candidate
    plain = Bm25.in_memory(all_cands, PLAIN_K1, PLAIN_B) if baselines else None
    offset = 0
    for item in raw:
        cands = [c for c in item["candidates"]]
        keep = [i for i, c in enumerate(cands) if c.strip()]
        gold = {keep.index(i) for i in item["answers"] if i in keep}
        texts = [cands[i] for i in keep]
        rows = np.arange(offset, offset + len(texts))
        offset += len(texts)
        scores = rank_given(item["question"], texts, item.get("article", ""), rows, encoder, bm25, ranker, plain)
        systems["qa (shipped)"].append(_gold_ranks(scores["shipped"], gold))
        if baselines:
            systems["BM25 over sentences"].append(_gold_ranks(scores["bm25"], gold))
            systems["dense over sentences"].append(_gold_ranks(scores["dense"], gold))
        tick(1)
    seconds = time.perf_counter() - t0
    return {"file": str(path), "questions": len(raw), "seconds": round(seconds, 1),
            "systems": [{"system": name, **_map_mrr_p1(ranks)} for name, ranks in systems.items()]}


def _gold_ranks(scores: np.ndarray, gold: set[int]) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    position = {int(i): r for r, i in enumerate(order, 1)}
    return sorted(position[g] for g in gold)


def _map_mrr_p1(all_ranks: list[list[int]]) -> dict:
    aps, rrs, p1 = [], [], []
    for ranks in all_ranks:
        if not ranks:
            continue
        aps.append(np.mean([(i + 1) / r for i, r in enumerate(ranks)]))
        rrs.append(1.0 / ranks[0])
        p1.append(1.0 if ranks[0] == 1 else 0.0)
    n = len(aps)
    return {"questions": n, "MAP": round(float(np.mean(aps)), 4), "MRR": round(float(np.mean(rrs)), 4), "P@1": round(float(np.mean(p1)), 4)}


def print_report(report: dict) -> None:
    """The report as tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    head = {k: v for k, v in report.items() if not isinstance(v, (list, dict))}
    con.print(", ".join(f"{k}: {v}" for k, v in head.items()))
    systems = report["systems"]
    table = Table()
    for col in systems[0]:
        table.add_column(col, justify="left" if col == "system" else "right")
    for row in systems:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) and v < 10 else str(v) for v in row.values()])
    con.print(table)
    for key in ("answerability", "foreign"):
        if key in report:
            con.print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in report[key].items()))
