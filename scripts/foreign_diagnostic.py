"""Diagnostic, report only (nothing is fitted or chosen from it): does training the encoder on the
foreign questions change how often they are declined?

Indexes the held-out articles with the encoder tuned on tune-half A only (a fold model from
`scripts/finetune.py --folds --save-folds DIR`), then asks the held-out questions (own) and the
questions of tune-half A (seen in that encoder's training) and tune-half B (never seen).

    python scripts/foreign_diagnostic.py --folds /tmp/qa-folds [--work /tmp/qa-diag]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import Bot  # noqa: E402
from qa.build import build  # noqa: E402
from qa.eval import load_json, write_articles  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.weights import materialise  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/data/squad/dev-v1.1.json.gz")
    ap.add_argument("--folds", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-diag"))
    args = ap.parse_args()

    data = load_json(args.squad)["data"]
    tune = data[0::2]
    own = [q for q in write_articles(data[1::2], args.work / "articles") if q.spans]
    seen = [q for q in write_articles(tune[0::2], args.work / "tune_a") if q.spans]
    unseen = [q for q in write_articles(tune[1::2], args.work / "tune_b") if q.spans]
    if not (args.work / "index" / "CURRENT").exists():
        model = materialise(args.work / "model-tune-A", args.folds / "tune-A.safetensors")
        build(args.work / "index", [args.work / "articles"], model)
    bot = Bot(Index.open(args.work / "index"))

    def answered(questions) -> float:
        n = 0
        for lo in range(0, len(questions), 256):
            n += sum(a.answered for a in bot.ask_many([q.text for q in questions[lo : lo + 256]]))
        return n / len(questions)

    print(f"encoder tuned on tune-A, held-out index: own answered {answered(own):.4f}; foreign declined: "
          f"tune-A questions (seen in training) {1 - answered(seen):.4f}, tune-B (never seen) {1 - answered(unseen):.4f}")


if __name__ == "__main__":
    main()
