"""Issue 14: every usable SQuAD *train* question as reranker training data, in one small file.

scripts/train_reranker.py trains on the 18,000 train questions whose shipped-pipeline candidates
were saved (2 CPU cores: 8,000 of them in 26 min). This file holds all of them, for
scripts/gpu_train_reranker.py, which trains on a GPU in minutes and mines the rest of each group
there with the base encoder:

- every train article's sentences (finetune.prepare: qa.chunk's splitter per paragraph) and, per
  question, its article, its gold sentence and its *forbidden* sentences (every gold sentence
  and every sentence containing an answer text: never a negative);
- up to 3 lexical negatives per question (best BM25 sentences of its article that are not
  forbidden), the topic-restating sentences that fool the ranker;
- for the questions that scripts/size_abstention.py / train_more.py asked of the ~490-article
  collection, up to 7 negatives that the shipped ranker placed highest (train_reranker.groups).

Left out, so that no measurement uses a question the reranker was trained on: the reserved train
articles (size_abstention.RESERVED: their questions are the *foreign* ones of every size stage)
and the questions of --exclude (train_fresh.npz: the 3,000 "fresh" train questions). No dev
question is read. Questions are shuffled once with seed 0.

    python scripts/prep_reranker_data.py --out .gpu/reranker_data.npz
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import finetune as ft  # noqa: E402
from size_abstention import RESERVED, TRAIN  # noqa: E402

LEXICAL = 3
RANKED = 7


def lexical_negatives(article: dict, forbidden: list[set[int]]) -> list[list[int]]:
    """Per question of the article: its best BM25 sentences that are not forbidden (article-local)."""
    import bm25s
    import Stemmer

    tok = dict(stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(article["sentences"], **tok), show_progress=False)
    out = []
    for q, bad in zip(article["questions"], forbidden):
        terms = bm25s.tokenize([q["question"]], **tok)[0]
        if not terms:
            out.append([])
            continue
        scores = retriever.get_scores(terms)
        out.append([int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in bad and scores[i] > 0][:LEXICAL])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ranked", type=Path, default=Path("/tmp/q14f"), help="size_abstention stages with focus (size490/train_*.npz)")
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"), help="size_abstention's --work (size490/texts.npz)")
    ap.add_argument("--exclude", type=Path, default=Path("/tmp/q14f/size490/train_fresh.npz"),
                    help="an npz whose 'questions' are never trained on")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with gzip.open(TRAIN, "rt", encoding="utf-8") as f:
        train = json.load(f)["data"]
    reserved = set(range(len(train))[RESERVED])
    articles = ft.prepare([a for i, a in enumerate(train) if i not in reserved])
    excluded = {str(q) for q in np.load(args.exclude, allow_pickle=False)["questions"]}

    texts: list[str] = []  # each article's sentences are one contiguous run of this table
    extra: dict[str, int] = {}  # ranked negatives' texts, after all articles

    art_lo, art_hi, rows = [], [], []
    for a, art in enumerate(articles):
        lo = len(texts)
        texts.extend(art["sentences"])
        art_lo.append(lo)
        art_hi.append(len(texts))
        lowered = [s.lower() for s in art["sentences"]]
        forbidden = []
        for q in art["questions"]:
            bad = set(q["gold"]) | {i for i, s in enumerate(lowered) if any(x in s for x in q["answers"])}
            # a sentence whose text repeats the positive's is not a negative either
            bad |= {i for i, s in enumerate(art["sentences"]) if s == art["sentences"][q["positive"]]}
            forbidden.append(bad)
        for q, bad, neg in zip(art["questions"], forbidden, lexical_negatives(art, forbidden)):
            if q["question"] in excluded:
                continue
            rows.append({"q": q["question"], "art": a, "pos": lo + q["positive"], "answers": q["answers"],
                         "forbid": sorted(lo + i for i in bad), "lex": [lo + i for i in neg], "ranked": []})

    # The shipped ranker's own confusions, where they were saved (train_reranker.groups' rule).
    from train_reranker import groups

    by_q = {r["q"]: r for r in rows}
    first = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    n_ranked = 0
    for q, _pos, negs in groups(args.ranked, args.texts, RANKED, complete=False):
        r = by_q.get(q)
        if r is not None:
            r["ranked"] = [first[s] if s in first else extra.setdefault(s, len(texts) + len(extra)) for s in negs]
            n_ranked += 1
    random.Random(0).shuffle(rows)

    def ragged(key: str) -> tuple[np.ndarray, np.ndarray]:
        flat = [v for r in rows for v in r[key]]
        offsets = np.cumsum([0] + [len(r[key]) for r in rows])
        return np.array(flat, dtype=np.int32), offsets.astype(np.int64)

    def packed(name: str, strings: list[str]) -> dict[str, np.ndarray]:
        """UTF-8 bytes and offsets: a fixed-width numpy string array would be mostly padding."""
        blob = [t.encode("utf-8") for t in strings]
        return {f"{name}_bytes": np.frombuffer(b"".join(blob), np.uint8), f"{name}_off": np.cumsum([0] + [len(b) for b in blob])}

    arrays = {**packed("text", texts + list(extra)), **packed("question", [r["q"] for r in rows]), "art_lo": np.array(art_lo, np.int32), "art_hi": np.array(art_hi, np.int32),
              "q_art": np.array([r["art"] for r in rows], np.int32),
              "q_pos": np.array([r["pos"] for r in rows], np.int32)}
    for key in ("forbid", "lex", "ranked"):
        arrays[key], arrays[f"{key}_off"] = ragged(key)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{len(articles)} articles, {len(texts)} sentences + {len(extra)} ranked texts, {len(rows)} questions ({n_ranked} with ranked negatives, "
          f"{len(excluded)} excluded by --exclude), {args.out.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
