"""Issue 14: the key-slot rule on SQuAD v2.0 dev articles that are NOT in the v1.1 held-out split.

v2.0's adversarial unanswerable questions often change a year or number of an answerable one.
Only articles whose title is not among v1.1 dev's odd (held-out) articles are used, so the
held-out split stays unseen. Same index and candidates; the shipped ranker with the slot rule on
and off. Reported: accuracy (answered when answerable, declined when not), AUROC, R@1.

    python scripts/v2_slots.py [--work /tmp/q14v2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import Bot  # noqa: E402
from qa.build import build  # noqa: E402
from qa.eval import auroc, load_json, rank_of_first_hit, write_articles  # noqa: E402
from qa.index import Index  # noqa: E402

SQUAD = ROOT.parent / "shared/data/squad"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14v2"))
    args = ap.parse_args()
    heldout_titles = {a["title"] for a in load_json(SQUAD / "dev-v1.1.json.gz")["data"][1::2]}
    articles = [a for a in load_json(SQUAD / "dev-v2.0.json.gz")["data"] if a["title"] not in heldout_titles]
    questions = write_articles(articles, args.work / "articles")
    build(args.work / "index", [args.work / "articles"])
    on = Bot(Index.open(args.work / "index"))
    off = Bot(on.index, dataclasses.replace(on.ranker, slot_demotion=1.0))
    pos = [q for q in questions if q.answerable and q.spans]
    neg = [q for q in questions if not q.answerable]
    out = {"articles": len(articles), "answerable": len(pos), "unanswerable": len(neg)}
    for name, bot in (("slot rule on", on), ("slot rule off", off)):
        ap_ = bot.ask_many([q.text for q in pos], top=10)
        an = bot.ask_many([q.text for q in neg], top=10)
        r1 = sum(rank_of_first_hit([(s.citation.source, s.citation.start, s.citation.end) for s in a.sentences], q) == 1
                 for a, q in zip(ap_, pos)) / len(pos)
        out[name] = {"R@1": round(r1, 4), "answered": round(sum(a.answered for a in ap_) / len(pos), 4),
                     "unanswerable_declined": round(sum(not a.answered for a in an) / len(neg), 4),
                     "accuracy": round((sum(a.answered for a in ap_) + sum(not a.answered for a in an)) / (len(pos) + len(neg)), 4),
                     "auroc": round(auroc([a.score for a in ap_], [a.score for a in an]), 4)}
        print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
