"""Score the recency rules (qa.recency) on tests/data/news_recency: first sentence right, rules on
and off, per question kind; and the cosines between sentences of the same and of different facts.

    .venv/bin/python scripts/recency_eval.py [--index DIR]

The articles are indexed with the same code as `qa index` (into a scratch folder unless --index
is given); the questions go through `Bot.ask`, the code behind `qa ask`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "news_recency"


def load_questions() -> list[dict]:
    return [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line.strip()]


def first_is_right(answer, wanted: list[str]) -> bool:
    return bool(answer.sentences) and any(w in answer.sentences[0].text for w in wanted)


def main() -> None:
    from qa import answer as answer_module
    from qa.answer import Bot
    from qa.build import build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, help="index folder to (re)use [default: a scratch folder]")
    ap.add_argument("--verbose", action="store_true", help="list each question's first five sentences (rules off), with their cosine to the first")
    args = ap.parse_args()
    index = args.index or Path(tempfile.mkdtemp(prefix="qa-recency-")) / "index"
    build(index, [DATA / "articles.jsonl"])
    bot = Bot.open(index)
    questions = load_questions()

    rules_on = answer_module.newer_first
    results: dict[str, dict[str, list[bool]]] = {"on": defaultdict(list), "off": defaultdict(list)}
    for setting in ("on", "off"):
        answer_module.newer_first = rules_on if setting == "on" else (lambda q, scores, dates, sim, floor=0.0: list(range(len(scores))))
        for q in questions:
            ok = first_is_right(bot.ask(q["question"], top=5), q["answers"])
            results[setting][q["kind"]].append(ok)
            results[setting]["all"].append(ok)
    answer_module.newer_first = rules_on

    print("| kind | questions | first right, rules on | rules off |")
    print("|---|---|---|---|")
    for kind in ("latest", "update", "named", "single", "all"):
        on, off = results["on"][kind], results["off"][kind]
        print(f"| {kind} | {len(on)} | {sum(on)} | {sum(off)} |")

    if args.verbose:  # the listing behind the cosine thresholds in qa.recency (rules off)
        answer_module.newer_first = lambda q, scores, dates, sim, floor=0.0: list(range(len(scores)))
        for q in questions:
            a = bot.ask(q["question"], top=5)
            ranked = (a.sentences + a.more)[:5]
            print(f"\n{q['kind']}: {q['question']}")
            if ranked:
                v = bot.index.sentence_vectors_at([s.row for s in ranked])
                for s, cos in zip(ranked, v @ v[0]):
                    print(f"  {s.score:.3f}  cos {cos:.2f}  {s.citation.date}  {s.text[:90]}")
        answer_module.newer_first = rules_on


if __name__ == "__main__":
    main()
