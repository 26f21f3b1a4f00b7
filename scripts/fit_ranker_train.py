"""Issue 14: the sentence ranker refitted on train-scale data, against the shipped one.

Data: scripts/size_abstention.py's saved candidates of 6,000 SQuAD v1.1 *train* questions asked of
the ~490-article collection (the shipped encoder never saw train questions, so their similarities
are out-of-sample, as on new articles). The listwise fit is scripts/fit_ranker.py's `fit`.
Compared on:
- train, 2-fold cross-validation by article (question halves by source article);
- the SQuAD dev tune questions at 24, 48 and 490 articles (the encoder was tuned on these, so
  their dense similarities are in-sample for the encoder; both rankers see the same features).
R@k counts the ranking alone (no abstention).

    python scripts/fit_ranker_train.py [--work /tmp/q14] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fit_ranker import fit  # noqa: E402
from size_table import stage_groups  # noqa: E402


def products(X: np.ndarray) -> np.ndarray:
    """The features and every pairwise product of two of them."""
    i, j = np.triu_indices(X.shape[1], 1)
    return np.hstack([X, X[:, i] * X[:, j]]).astype(np.float32)


def recall(groups, w, b) -> dict:
    r1 = r5 = mrr = 0.0
    for X, y, *_ in groups:
        if not len(y) or not y.any():
            continue
        order = np.argsort(-(X @ w + b), kind="stable")
        first = int(np.argmax(y[order])) + 1
        r1 += first == 1
        r5 += first <= 5
        mrr += 1 / first if first <= 10 else 0
    n = len(groups)
    return {"R@1": round(r1 / n, 4), "R@5": round(r5 / n, 4), "MRR@10": round(mrr / n, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--products", action="store_true", help="add the 190 pairwise products of the features (L2 0.3)")
    ap.add_argument("--curve", action="store_true",
                    help="data-size curve: fit on 1,500 / 3,000 / 6,000 / 6,000 + train_more.npz (scripts/train_more.py), score tune")
    args = ap.parse_args()
    shipped = json.loads((ROOT / "qa/ranker.json").read_text())
    ws, bs = np.asarray(shipped["weights"]), shipped["bias"]
    train = stage_groups(args.work, "490", "train_own")
    data = np.load(args.work / "size490" / "train_own.npz")
    # source article of each train question: its candidates' docs do not say; use the question order
    # (questions were sampled in article order), halves by position, which splits by article but one
    questions = [g[:3] for g in train]
    expand = products if args.products else (lambda X: X)
    l2 = 0.3 if args.products else 1.0
    questions = [(expand(X), y, d) for X, y, d in questions]
    half = np.arange(len(questions)) >= len(questions) // 2
    if args.curve:
        more = [(expand(X), y, d) for X, y, d, _ in stage_groups(args.work, "490", "train_more")]
        tunes = {size: [(expand(X), y, d) for X, y, d, _ in stage_groups(args.work, size, "own")] for size in ("24", "48", "490")}
        for name, data in (("1500", questions[::4]), ("3000", questions[::2]), ("6000", questions), (f"{6000 + len(more)}", questions + more)):
            w, b = fit(data, l2)
            print(name, {size: recall(g, w, b) for size, g in tunes.items()}, flush=True)
        return
    cv = {"shipped": recall([g[:3] for g in train], ws, bs)}
    parts = []
    for h in (False, True):
        w, b = fit([q for q, s in zip(questions, half) if s != h], l2)
        parts.append((recall([q for q, s in zip(questions, half) if s == h], w, b), int((half == h).sum())))
    cv["train-fitted"] = {k: round(sum(p[k] * n for p, n in parts) / len(questions), 4) for k in parts[0][0]}
    print("train 2-fold CV:", cv, flush=True)
    w, b = fit(questions, l2)
    out = {"train_cv": cv}
    for size in ("24", "48", "490"):
        own = stage_groups(args.work, size, "own")
        if own is None:
            continue
        g = [x[:3] for x in own]
        out[f"tune_{size}"] = {"shipped": recall(g, ws, bs), "train-fitted": recall([(expand(X), y, d) for X, y, d in g], w, b)}
        print(f"tune questions at {size} articles:", out[f"tune_{size}"], flush=True)
    if args.out:
        args.out.write_text(json.dumps({"weights": w.tolist(), "bias": b}))
    print(json.dumps(out))
    del data


if __name__ == "__main__":
    main()
