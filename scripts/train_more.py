"""Issue 14: more train questions asked of the 470-article collection of scripts/size_abstention.py
(for a data-size curve of the ranker fit): N questions of indexed train articles not in its
6,000-question sample, saved as size490/train_more.npz in the same layout.

    python scripts/train_more.py [--work /tmp/q14] [--n 15000]
    python scripts/train_more.py --n 3000 --fresh 12000    # train_fresh.npz: questions no fit has used

The index at --work/big must be in the format this qa reads (the reranker session asked
train_fresh with the code of 8645f55^, which reads /tmp/q14/big's format 3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from size_abstention import TRAIN_OWN_N, collect, every, question_sets  # noqa: E402
from qa.index import Index  # noqa: E402


def more_train_questions(qs: list, n: int, fresh_after: int = 0) -> tuple[list, str]:
    """`n` of these train questions that are not in size_abstention.py's 6,000-question sample
    ("train_more"); with `fresh_after`, `n` that are not among the first `fresh_after` of those
    either ("train_fresh": no fit, neither the ranker's nor the reranker's, has used them)."""
    used = {q.qid for q in every(qs, TRAIN_OWN_N)}
    rest = every([q for q in qs if q.qid not in used], fresh_after or n)
    if not fresh_after:
        return rest, "train_more"
    used |= {q.qid for q in rest}
    return every([q for q in qs if q.qid not in used], n), "train_fresh"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--n", type=int, default=15000)
    ap.add_argument("--fresh", type=int, default=0, metavar="MORE_N",
                    help="ask --n questions in neither the 6,000 sample nor train_more's first MORE_N (train_fresh.npz)")
    args = ap.parse_args()
    w = args.work
    # the same files (same names and offsets) as size_abstention.py wrote and indexed
    _, _, train_a, train_b = question_sets(w)
    rest, name = more_train_questions([q for q in train_a + train_b if q.spans], args.n, args.fresh)
    collect(Index.open(w / "big"), rest, w / "size490" / f"{name}.npz")
    print(f"asked {len(rest)}", file=sys.stderr)


if __name__ == "__main__":
    main()
