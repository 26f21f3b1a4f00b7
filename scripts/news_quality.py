"""Issue 14's small news tune set: 32 questions over 20 short news articles.

Collection: tests/data/news_recency/articles.jsonl (14 wire stories), tests/fixtures/news/*.txt
(3) and tests/data/news_quality/*.txt (3 written for this set), indexed with the normal `build`.
Questions: tests/data/news_quality/questions.jsonl; an answerable question is right when its first
sentence holds one of its answer strings; an unanswerable one (on-topic, no article says it) is
right when declined. Asked through `Bot.ask_many`, the code of `qa ask`.

    python scripts/news_quality.py [--work /tmp/q14news] [--ranker FILE] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import Bot  # noqa: E402
from qa.build import build  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.retrieve import Ranker  # noqa: E402

DATA = ROOT / "tests/data/news_quality"


def collection(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "tests/data/news_recency/articles.jsonl", folder / "recency.jsonl")
    for f in [*sorted((ROOT / "tests/fixtures/news").glob("*.txt")), *sorted(DATA.glob("*.txt"))]:
        shutil.copy(f, folder / f.name)


def evaluate(bot: Bot, questions: list[dict], verbose: bool = False) -> dict:
    answers = bot.ask_many([q["question"] for q in questions], top=3)
    first = top3 = declined_own = declined_unans = n_own = n_unans = 0
    for q, a in zip(questions, answers):
        texts = [s.text for s in a.sentences]
        if q["answers"]:
            n_own += 1
            ok1 = bool(texts) and any(x in texts[0] for x in q["answers"])
            ok3 = any(x in t for t in texts for x in q["answers"])
            first += ok1
            top3 += ok3
            declined_own += not a.answered
            mark = "ok " if ok1 else ("top3" if ok3 else "MISS")
        else:
            n_unans += 1
            declined_unans += not a.answered
            mark = "declined" if not a.answered else "ANSWERED"
        if verbose:
            print(f"{mark:8} {a.score:.3f} {q['question']}\n         -> {texts[0] if texts else '-'}")
    return {"answerable": n_own, "first_right": first, "top3_right": top3, "answerable_declined": declined_own,
            "unanswerable": n_unans, "unanswerable_declined": declined_unans}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14news"))
    ap.add_argument("--ranker", type=Path, default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    collection(args.work / "articles")
    build(args.work / "index", [args.work / "articles"])
    ranker = Ranker.load(args.ranker) if args.ranker else Ranker.default()
    bot = Bot(Index.open(args.work / "index"), ranker)
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]
    print(json.dumps(evaluate(bot, questions, args.verbose)))


if __name__ == "__main__":
    main()
