"""Issue 14's size table through the code of `qa ask`: own answered / foreign declined at 1, 24, 48,
~150 and ~490 articles, asked with `Bot.ask_many` (ranker, reranker, slot rules and the answer
decision exactly as shipped).

scripts/size_abstention.py saves candidate features so that answerability models can be refitted
offline; the rules of qa.slots read candidate texts as well, so the shipped decision is measured
here by asking. The same collections and questions as size_abstention.py (its article folders are
written the same way, under the same --work):
- own: the dev tune questions (at size 1, each tune article indexed alone and asked its own);
- foreign: 1,500 questions of 20 reserved train articles that are never indexed (100 per
  one-article index at size 1);
- at ~490 articles also 3,000 train questions that no fit used (train_more.py's train_fresh).

Stages are resumable (a stage with a result line is skipped); the index is built incrementally
in WORK/decisions-index.

    python scripts/size_decisions.py [--work /tmp/q14] [--stages 24,1,48,150,490]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from size_abstention import FOREIGN_PER_ONE, log, question_sets, stage_arguments  # noqa: E402
from train_more import more_train_questions  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.build import build  # noqa: E402
from qa.index import Index  # noqa: E402

FRESH_N, FRESH_AFTER = 3000, 12000  # train_more.py --n 3000 --fresh 12000


def ask(bot: Bot, questions) -> tuple[int, int]:
    """(answered, answered with a gold sentence first)."""
    answered = right = 0
    for lo in range(0, len(questions), 256):
        batch = questions[lo: lo + 256]
        for q, a in zip(batch, bot.ask_many([q.text for q in batch], top=1)):
            answered += a.answered
            right += bool(a.answered and q.overlaps(a.sentences[0].citation.source, a.sentences[0].citation.start,
                                                    a.sentences[0].citation.end))
    return answered, right


def main() -> None:
    args = stage_arguments()
    w = args.work
    own, foreign, train_a, train_b = question_sets(w)
    fresh, _ = more_train_questions([q for q in train_a + train_b if q.spans], FRESH_N, FRESH_AFTER)
    results = w / "decisions.jsonl"
    done = {json.loads(line)["size"] for line in results.read_text().splitlines()} if results.exists() else set()
    folders = {"24": ["tune"], "48": ["tune", "held"], "150": ["tune", "held", "train_a"],
               "490": ["tune", "held", "train_a", "train_b"]}
    for size in args.stages.split(","):
        if size in done:
            log(f"size {size}: done before")
            continue
        t = time.time()
        row: dict = {"size": size}
        if size == "1":
            by_source: dict[str, list] = {}
            for q in own:
                by_source.setdefault(q.source, []).append(q)
            n_own = n_foreign = answered = right = foreign_answered = 0
            for i, (source, qs) in enumerate(sorted(by_source.items())):
                folder = w / "decisions-one" / f"{i:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                alone = folder / Path(source).name  # the article's own copy, in a folder of its own
                alone.write_text(Path(source).read_text())
                build(folder.parent / f"index{i:02d}", [folder])
                bot = Bot(Index.open(folder.parent / f"index{i:02d}"))
                mine = [type(q)(q.qid, q.text, alone.as_posix(), q.spans) for q in qs]
                fq = foreign[(i * FOREIGN_PER_ONE) % len(foreign):][:FOREIGN_PER_ONE]
                a, r = ask(bot, mine)
                answered, right, n_own = answered + a, right + r, n_own + len(mine)
                foreign_answered += ask(bot, fq)[0]
                n_foreign += len(fq)
            row["sentences"] = None
        else:
            build(w / "decisions-index", [w / f for f in folders[size]])
            bot = Bot(Index.open(w / "decisions-index"))
            row["sentences"] = bot.index.sentence_count
            answered, right = ask(bot, own)
            foreign_answered = ask(bot, foreign)[0]
            n_own, n_foreign = len(own), len(foreign)
            if size == "490":
                row["fresh_train_answered"] = round(ask(bot, fresh)[0] / len(fresh), 4)
        row.update(own_answered=round(answered / n_own, 4), foreign_declined=round(1 - foreign_answered / n_foreign, 4),
                   r1=round(right / n_own, 4), seconds=round(time.time() - t))
        log(json.dumps(row))
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print("| articles | sentences | own answered | foreign declined | R@1 (declined = wrong) |")
    print("|---|---|---|---|---|")
    for r in sorted((json.loads(line) for line in results.read_text().splitlines()), key=lambda r: int(r["size"])):
        extra = f"; fresh train answered {100 * r['fresh_train_answered']:.1f} %" if "fresh_train_answered" in r else ""
        print(f"| {r['size']} | {r['sentences'] or ''} | {100 * r['own_answered']:.1f} % | {100 * r['foreign_declined']:.1f} % | "
              f"{r['r1']:.4f}{extra} |")


if __name__ == "__main__":
    main()
