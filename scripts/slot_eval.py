"""Issue 14: the key-slot demotion (qa/slots.py) on saved candidates of scripts/size_abstention.py.

For each demotion factor: R@1 (declined = wrong), own answered, foreign declined, at each size,
with the shipped ranker and answerability model.

    python scripts/slot_eval.py [--work /tmp/q14] [--sizes 24,48] [--factors 1,0.3,0.1,0.03]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.retrieve import Ranker, answerability_features  # noqa: E402
from qa.slots import demote_non_answers  # noqa: E402


def run(work: Path, size: str, label: str, factor: float, ranker: Ranker, decline: bool = False) -> dict:
    folder = work / f"size{size}"
    texts = np.load(folder / "texts.npz")["texts"]
    data = np.load(folder / f"{label}.npz")
    qs = data["questions"]
    right = answered = changed = 0
    n = int(data["n"])
    for i in range(n):
        X, y, d, r = data[f"x{i}"], data[f"y{i}"], data[f"d{i}"], data[f"r{i}"]
        if not len(X):
            continue
        s = ranker.score(X)
        s2 = demote_non_answers(str(qs[i]), s, [str(texts[j]) for j in r], factor)[0] if factor != 1 else s
        changed += int(np.argmax(s2) != np.argmax(s))
        p = float(1 / (1 + np.exp(-(answerability_features(X, s2, d) @ np.asarray(ranker.answerability_weights)
                                   + ranker.answerability_bias))))
        ok = p >= ranker.threshold
        if decline and factor != 1 and ok:
            from qa.slots import conflicts, question_slots
            ok = not conflicts(question_slots(str(qs[i])), str(texts[r[int(np.argmax(s2))]]))
        answered += ok
        right += ok and bool(y[int(np.argmax(s2))])
    return {"size": size, "label": label, "factor": factor, "n": n, "answered": answered / n, "R@1": right / n,
            "top_changed": changed, "decline_conflicting_top": decline}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--sizes", default="24")
    ap.add_argument("--labels", default="own,foreign")
    ap.add_argument("--factors", default="1,0.3,0.1,0.03")
    args = ap.parse_args()
    ranker = Ranker.default()
    for size in args.sizes.split(","):
        for label in args.labels.split(","):
            for f in map(float, args.factors.split(",")):
                for decline in (False, True) if f != 1 else (False,):
                    print(json.dumps(run(args.work, size, label, f, ranker, decline)), flush=True)


if __name__ == "__main__":
    main()
