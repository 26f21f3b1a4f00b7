"""Issue 14: how answerability models refitted on the size stages treat questions about the seed.

Fits each variant of scripts/fit_rerank_answerability.py on both halves of the stages at 1, 24 and
48 articles (threshold: 97.5 % of own questions, median over the sizes), then asks 9 questions
about the shipped seed article (the index in ./embeddings, as the README's first command builds
it) and prints how many each model answers ("shipped": qa's own answer, `Bot.ask`), and every question's answerability. Needs
eval_reranker.py's cached reranker logits and the exported reranker (--reranker).

    python scripts/seed_answerability.py [--reranker /tmp/ce/l3-export] [--top 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from qa.rerank import CrossEncoder  # noqa: E402
from eval_reranker import reranked  # noqa: E402
from fit_rerank_answerability import evidence, features  # noqa: E402
from fit_size_answerability import fit_with_threshold  # noqa: E402
from size_table import sigmoid, stage_documents, stage_groups  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.recency import search_text  # noqa: E402
from qa.retrieve import Ranker, candidates  # noqa: E402

QUESTIONS = [
    "In which city were the talks held?", "Where did the talks take place?", "Where were the talks held?",
    "What happened in London?", "When did the talks end?", "How long did the talks last?",
    "What did the delegations reach?", "What did London agree?", "Who led the delegations?",
]


def seed_features(bot: Bot, ranker: Ranker, ce: CrossEncoder, kind: str) -> np.ndarray:
    rows = []
    for q in QUESTIONS:
        c = candidates(bot.index, bot.index.embed([search_text(q)])[0], search_text(q))
        s = ranker.score(c.features)
        best = np.argsort(-s, kind="stable")[:2]
        rows.append(evidence(c.features, s, c.docs, ce.logits(q, [c.meta[i].text for i in best]), kind, c.document_evidence))
    return np.array(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reranker", type=Path, default=Path("/tmp/ce/l3-export"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14f"))
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ce/cache"))
    ap.add_argument("--top", type=int, default=5, help="the cached logits' --top (>= 2)")
    cli = ap.parse_args()
    args = SimpleNamespace(**vars(cli), limit=0, threads=2)
    ranker = Ranker.default()
    data = {s: {label: (stage_groups(args.work, s, label), stage_documents(args.work, args.texts, s, label),
                        reranked(args, ranker, s, label)) for label in ("own", "foreign")}
            for s in ("1", "24", "48")}
    ce = CrossEncoder(args.reranker, 2)
    bot = Bot.open(ROOT / "embeddings")
    for kind in ("shipped", "+reranker", "+reranker, no document features", "doc_share+reranker"):
        fit_kind = kind
        feats = {s: {label: np.nan_to_num(features(*data[s][label], ranker, "shipped" if kind == "shipped" else fit_kind, 2),
                                          nan=-1e9) for label in data[s]} for s in data}
        if kind == "shipped":  # qa's own answer, reranker and gate included
            t, p = ranker.threshold, np.array([bot.ask(q).score for q in QUESTIONS])
        else:
            aw, ab, t = fit_with_threshold(feats, list(feats))
            p = sigmoid(seed_features(bot, ranker, ce, fit_kind)[:, : len(aw)] @ aw + ab)
        print(f"{kind:<20} threshold {t:.3f}: answers {int((p >= t).sum())}/{len(QUESTIONS)}  ", " ".join(f"{x:.2f}" for x in p))


if __name__ == "__main__":
    main()
