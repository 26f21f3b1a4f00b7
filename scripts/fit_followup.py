"""Measure a learned second stage for follow-ups: re-order a follow-up's candidates by the focus.

Measured, not shipped (BENCHMARKS.md, "Conversations"): under cross-validation by article it did
not beat the shipped order of the rewritten follow-up. Tune data only: the conversations of
scripts/data/conversations_tune.json (SQuAD v1.1 dev tune articles). Each conversation is replayed
through `Conversation` (reset between conversations), so each follow-up sees the focus that chat
gives it. For every turn read as a follow-up, its candidates (retrieved for the standalone reading)
get `FOCUS_FEATURES`: the shipped ranker's log-odds, whether the candidate is in the article or the
paragraph of the previous answer, is that answer, is near it, and its cosine with it. A candidate is
positive when it overlaps the turn's answer. The weights are fitted like the ranker's (listwise,
then calibrated; scripts/fit_ranker.fit), and R@1 is reported under K-fold cross-validation by
article, against the shipped ranker's order. `--out` writes the weights fitted on all turns.

    python scripts/fit_followup.py [--conversations FILE] [--work DIR] [--out FILE.json] [--folds 4]
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

from qa import followup  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.build import build  # noqa: E402
from qa.chat import Conversation  # noqa: E402
from qa.conversation_eval import load_conversations  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.rerank import best_logits  # noqa: E402
from qa.retrieve import candidates  # noqa: E402


FOCUS_FEATURES = ("logit", "same_doc", "same_paragraph", "previous_best", "near_previous", "previous_cosine")


def focus_features(index, cands, scores: np.ndarray, focus: followup.Focus) -> np.ndarray:
    """(n, len(FOCUS_FEATURES)) for n candidates of a follow-up."""
    info = index.rows
    rows = cands.rows
    best_row = focus.rows[0] if focus.rows else -1
    X = np.zeros((len(rows), len(FOCUS_FEATURES)), dtype=np.float64)
    p = np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6)
    X[:, 0] = np.log(p / (1 - p))
    X[:, 1] = cands.docs == focus.doc
    X[:, 2] = (cands.docs == focus.doc) & (info["paragraph"][rows] == focus.paragraph)
    X[:, 3] = rows == best_row
    X[:, 4] = (cands.docs == focus.doc) & (np.abs(rows - best_row) <= 2) & (rows != best_row)
    if best_row >= 0:
        X[:, 5] = index.sentence_vectors_at(rows) @ index.sentence_vectors_at([best_row])[0]
    return X


def collect(bot: Bot, conversations) -> list[dict]:
    """One group per turn read as a follow-up: features, labels, its article, answerable or not."""
    conv = Conversation(bot, top=10)
    groups = []
    for turns in conversations:
        conv.reset()
        for t in turns:
            focus = conv.focus()
            reading = followup.read(t.question, focus)
            if reading.how != "alone":
                vec = bot.index.embed([reading.query])[0]
                c = candidates(bot.index, vec, reading.query)
                scores = bot.ranker.score(c.features)
                texts = [m.text for m in c.meta]
                judge = lambda: best_logits(reading.query, texts, scores, bot.ranker.reranker_top)  # noqa: E731
                answered = bot.ranker.answerability(c.features, scores, c.docs, c.document_evidence, judge) >= bot.ranker.threshold
                y = np.array([t.gold.overlaps(m.source, m.start, m.end) for m in c.meta], dtype=bool)
                groups.append({"X": focus_features(bot.index, c, scores, focus), "y": y, "article": t.gold.source,
                               "answered": answered, "kind": t.kind})
            conv.ask(t.question)
    return groups


def right_at_1(groups, w: np.ndarray | None) -> int:
    """Turns whose best candidate is right (declined turns are wrong); w None: the ranker's order."""
    hits = 0
    for g in groups:
        if not g["answered"] or not len(g["y"]):
            continue
        s = g["X"][:, 0] if w is None else g["X"] @ w
        hits += bool(g["y"][int(np.argmax(s))])
    return hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=Path, default=ROOT / "scripts/data/conversations_tune.json")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-followup"))
    ap.add_argument("--out", type=Path, help="write the weights fitted on all turns here (JSON)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--l2", type=float, default=1.0)
    args = ap.parse_args()

    conversations, _ = load_conversations(args.conversations, args.work / "articles")
    build(args.work / "index", [args.work / "articles"])
    bot = Bot(Index.open(args.work / "index"))
    groups = collect(bot, conversations)
    articles = sorted({g["article"] for g in groups})
    fold_of = {a: i % args.folds for i, a in enumerate(articles)}
    as_fit = lambda gs: [(g["X"], g["y"], None) for g in gs]  # noqa: E731
    cv_hits = 0
    for k in range(args.folds):
        train = [g for g in groups if fold_of[g["article"]] != k]
        test = [g for g in groups if fold_of[g["article"]] == k]
        w, b = fit(as_fit(train), args.l2)
        cv_hits += right_at_1(test, w)
    base = right_at_1(groups, None)
    w, b = fit(as_fit(groups), args.l2)
    n = len(groups)
    print(f"{n} follow-up turns: R@1 ranker order {base / n:.4f}, with focus ({args.folds}-fold CV by article) {cv_hits / n:.4f}, "
          f"fitted on all {right_at_1(groups, w) / n:.4f}", file=sys.stderr)
    print("weights: " + ", ".join(f"{f} {x:+.3f}" for f, x in zip(FOCUS_FEATURES, w)), file=sys.stderr)
    if not args.out:
        return
    out = {
        "features": list(FOCUS_FEATURES),
        "weights": [round(float(x), 6) for x in w],
        "bias": round(float(b), 6),
        "fitted": {
            "data": f"{args.conversations.name}: follow-up turns of three-turn conversations over the SQuAD v1.1 dev tune articles",
            "turns": n, "r1_ranker_order": round(base / n, 4), f"r1_cv_{args.folds}fold_by_article": round(cv_hits / n, 4),
            "l2": args.l2, "script": "scripts/fit_followup.py",
        },
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
