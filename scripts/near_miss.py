"""Issue 14: near-miss questions, whose best-looking sentence has the wrong key slot.

Built from SQuAD v1.1 dev *tune* questions (data[0::2]) whose gold sentence holds a key slot the
question names, by changing that slot in the question to a value that occurs nowhere in the
collection, so that no sentence answers it any more and the old gold sentence is a near miss:
- year: "... in 1998?" -> "... in 2001?" (a year that no tune article contains);
- number: another number for the same quantity ("Super Bowl 50" -> "Super Bowl 53");
- name: a capitalised name of two or more words -> the same-shaped name from another tune
  article (SQuAD has no role labels, so "another person of the same role" is approximated by
  "another name the collection never pairs with this fact").
Each altered question is asked of the 24-article tune index (the normal `candidates` and the
shipped ranker). Reported: how often the near-miss sentence is the ranker's first (after the
key-slot demotion, before any re-ordering), its probability, and how often the bot answers
(`Bot.ask`, the whole shipped decision; it should decline), beside the original questions.

    python scripts/near_miss.py --index /tmp/q14/idx24 --articles /tmp/q14/tune [--out scripts/data/near_miss_tune.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.eval import load_json, write_articles  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.retrieve import Ranker, candidates  # noqa: E402
from qa.slots import demote_non_answers  # noqa: E402

DEV = ROOT.parent / "shared/data/squad/dev-v1.1.json.gz"
YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?![\d.,]?\d)")
NAME = re.compile(r"(?<!^)(?<![.?!] )\b([A-Z][a-z]+(?: [A-Z][a-z]+)+)\b")


def near_misses(questions, texts_by_source: dict[str, str], gold_sentence) -> list[dict]:
    """Altered questions (one per original at most), deterministic."""
    rng = random.Random(14)
    collection = "\n".join(texts_by_source.values())
    names_by_source = {s: sorted(set(NAME.findall(t))) for s, t in texts_by_source.items()}
    out = []
    for q in questions:
        sent = gold_sentence(q)
        if sent is None:
            continue
        article = texts_by_source[q.source]
        item = None
        years = [y for y in YEAR.findall(q.text) if y in sent]
        numbers = [n for n in NUMBER.findall(YEAR.sub(" ", q.text)) if re.search(rf"(?<!\d){n}(?!\d)", sent)]
        names = [n for n in NAME.findall(q.text) if n in sent]
        if years:
            y = years[0]
            for d in (3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 11, -11):
                new = str(int(y) + d)
                if new not in collection:
                    item = ("year", y, new)
                    break
        elif numbers:
            n = numbers[0]
            for new in (int(n) + 3, int(n) + 7, int(n) * 3 + 1, int(n) + 13):
                if not re.search(rf"(?<!\d){new}(?!\d)", collection):
                    item = ("number", n, str(new))
                    break
        elif names:
            name = names[0]
            words = len(name.split())
            pool = [m for s, ms in names_by_source.items() if s != q.source for m in ms
                    if len(m.split()) == words and m not in article]
            if pool:
                item = ("name", name, rng.choice(pool))
        if item:
            kind, old, new = item
            out.append({"kind": kind, "id": q.qid, "question": q.text, "altered": q.text.replace(old, new, 1),
                        "slot": old, "new": new, "near_miss_sentence": sent, "source": Path(q.source).name})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, default=Path("/tmp/q14/idx24"))
    ap.add_argument("--articles", type=Path, default=Path("/tmp/q14/tune"))
    ap.add_argument("--out", type=Path, default=ROOT / "scripts/data/near_miss_tune.jsonl")
    ap.add_argument("--ranker", type=Path, default=None)
    args = ap.parse_args()
    tune = load_json(DEV)["data"][0::2]  # tune split only
    questions = [q for q in write_articles(tune, args.articles) if q.spans]
    index = Index.open(args.index)
    ranker = Ranker.load(args.ranker) if args.ranker else Ranker.default()
    metas = index.sentences_at(range(index.sentence_count))
    by_source: dict[str, list] = {}
    for m in metas:
        by_source.setdefault(m.source, []).append(m)
    texts = {s: Path(s).read_text() for s in by_source}

    def gold_sentence(q):
        hit = [m for m in by_source.get(q.source, []) if q.overlaps(m.source, m.start, m.end)]
        return hit[0].text if len(hit) == 1 else None

    items = near_misses(questions, texts, gold_sentence)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")

    bot = Bot(index, ranker)

    def ask(text: str):
        """(the ranker's first after the key-slot demotion, its probability, the Bot's answer)."""
        vec = index.embed([text])[0]
        c = candidates(index, vec, text)
        s = ranker.score(c.features)
        if ranker.slot_demotion != 1.0:
            s, _ = demote_non_answers(text, s, [m.text for m in c.meta], ranker.slot_demotion)
        top = int(np.argmax(s))
        return c.meta[top].text, float(s[top]), bot.ask(text)

    results: dict[str, dict[str, list]] = {}
    for it in items:
        r = results.setdefault(it["kind"], {k: [] for k in ("orig_first", "orig_p", "orig_ans", "alt_first", "alt_p", "alt_ans", "alt_answered")})
        for prefix, text in (("orig", it["question"]), ("alt", it["altered"])):
            top_text, p, answer = ask(text)
            r[f"{prefix}_first"].append(top_text == it["near_miss_sentence"])
            r[f"{prefix}_p"].append(p)
            r[f"{prefix}_ans"].append(answer.answered)
        r["alt_answered"].append(r["alt_ans"][-1])
    print("| slot | questions | original: gold first | original answered | original median top p | altered: near miss first | altered: near miss first with p >= 0.5 | altered answered (should decline) | altered median top p |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for kind, r in sorted(results.items()):
        a = {k: np.array(v, dtype=float) for k, v in r.items()}
        n = len(a["alt_p"])
        row = {"n": n, "orig_first": a["orig_first"].mean(), "orig_answered": a["orig_ans"].mean(),
               "orig_p": np.median(a["orig_p"]), "alt_first": a["alt_first"].mean(),
               "alt_first_high": ((a["alt_first"] > 0) & (a["alt_p"] >= 0.5)).mean(),
               "alt_answered": a["alt_answered"].mean(), "alt_p": np.median(a["alt_p"])}
        summary[kind] = row
        print(f"| {kind} | {n} | {row['orig_first']:.1%} | {row['orig_answered']:.1%} | {row['orig_p']:.3f} | "
              f"{row['alt_first']:.1%} | {row['alt_first_high']:.1%} | {row['alt_answered']:.1%} | {row['alt_p']:.3f} |")
    print(json.dumps({k: {kk: round(float(vv), 4) for kk, vv in v.items()} for k, v in summary.items()}))


if __name__ == "__main__":
    main()
