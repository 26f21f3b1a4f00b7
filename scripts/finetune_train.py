"""Fine-tune the bundled base all-MiniLM-L6-v2 on SQuAD v1.1 *train* questions (issue 14).

Same triples and recipe as scripts/finetune.py (imported from there, not copied): positive = the
sentence holding the answer span, hard negative = the best BM25 non-gold sentence of the same
article that does not contain the answer text. Training data: ../shared/data/squad-train (442
articles, 87,599 questions; disjoint from dev). Its answer_start is a guess for answers whose text
occurs several times in the context; finetune.prepare makes every listed occurrence gold and drops
the question when the occurrences fall in different sentences.

Triples are built for every train question, shuffled once with random.Random(0) (so any prefix is a
uniform sample across all 442 articles), and the first --triples of them are trained on; the
pilot's 3,000 are the first 3,000 of the main run's. Training starts from the bundled base model
(never from the shipped, tune-trained one), checkpoints every --every steps to --ckpt and resumes
from it when started again. Model selection only on the dev tune split (data[0::2]); the held-out
split is never read (finetune.load_tune drops it unread).

Measured 2026-11-29 (2 shared cores, nice 19; dense R@1 / R@5, each question against every sentence
of the set; BENCHMARKS.md "The encoder fine-tuned on train" has the times and the full pipeline):
    base                               tune-A 0.582/0.825  tune-B 0.553/0.772  all 24 0.563/0.795
    3,000 train triples (pilot)        tune-A 0.637/0.857  tune-B 0.632/0.834  all 24 0.627/0.836
    6,400 train triples                tune-A 0.652/0.871  tune-B 0.656/0.851  all 24 0.646/0.853
    6,400, --seed 1                    tune-A 0.639/0.869  tune-B 0.640/0.841  all 24 0.632/0.846
    9,600 train triples                tune-A 0.645/0.863  tune-B 0.643/0.846  all 24 0.637/0.846
    9,600, layers 3-5 (0-2 cached)     tune-A 0.632/0.850  tune-B 0.631/0.845  all 24 0.623/0.839
    finetune.py, other tune half       tune-A 0.654/0.873  tune-B 0.652/0.852  (out-of-fold, 2,476/2,921)
  No clear win over the shipped tune-trained layers (ranker CV R@1 0.7510/0.7541 vs 0.7502, foreign
  declined lower): not shipped.

    nice -n 19 python scripts/finetune_train.py --triples 3000 --eval tuneB     # the pilot
    nice -n 19 python scripts/finetune_train.py --triples N --ckpt /tmp/ft.pt --eval tune \\
        --out qa/weights/minilm-squad.safetensors                                     # main run
    python scripts/finetune_train.py --triples N --layers 4,5 --probe 20   # throughput only
    python scripts/finetune_train.py --weights FILE --eval tune    # dense R@k of saved layers
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import finetune as ft  # noqa: E402

SAMPLE_SEED = 0  # the order triples are taken in: fixed, whatever --seed says
TRAIN = Path(__file__).resolve().parent.parent.parent / "shared/data/squad-train/train-v1.1-explorer.json.gz"


def train_triples(path: Path = TRAIN, cache: Path | None = None) -> list[tuple[str, str, str]]:
    """Every usable train question as a triple, in the fixed shuffled order (cached as JSON)."""
    if cache and cache.exists():
        return [tuple(r) for r in json.loads(cache.read_text(encoding="utf-8"))]
    with gzip.open(path, "rt", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    prepared = ft.prepare(articles)
    rows = ft.triples(prepared)
    random.Random(SAMPLE_SEED).shuffle(rows)
    print(f"{len(articles)} train articles, {sum(len(a['questions']) for a in prepared)} questions kept, "
          f"{len(rows)} triples", flush=True)
    if cache:
        cache.write_text(json.dumps(rows), encoding="utf-8")
    return rows


def report(model, label: str, which: str) -> None:
    tune = ft.prepare(ft.load_tune())
    sets = {"tune-A": tune[0::2], "tune-B": tune[1::2], "tune (24)": tune}
    names = {"tuneB": ["tune-B"], "folds": ["tune-A", "tune-B"], "tune": ["tune-A", "tune-B", "tune (24)"]}[which]
    for name in names:
        t0 = time.perf_counter()
        r = ft.recall(model, sets[name])
        print(f"  {label:<12} {name:<10} R@1 {r['R@1']:.4f}  R@5 {r['R@5']:.4f}  "
              f"({r['questions']} questions, {r['sentences']} sentences, {time.perf_counter() - t0:.0f}s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triples", type=int, default=0, help="train on the first N of the shuffled triples")
    ap.add_argument("--layers", default="0,1,2,3,4,5")
    ap.add_argument("--ckpt", type=Path, help="checkpoint file (resumed from when it exists)")
    ap.add_argument("--every", type=int, default=100, help="checkpoint every this many steps")
    ap.add_argument("--probe", type=int, metavar="STEPS", help="only time this many steps, then stop")
    ap.add_argument("--eval", choices=["none", "tuneB", "folds", "tune"], default="tuneB",
                    help="dense R@1/R@5 on tune-B, on each tune half, or on each half and all 24")
    ap.add_argument("--base", action="store_true", help="also evaluate the base model")
    ap.add_argument("--out", type=Path, help="write the trained layers here (qa.weights.encode_tuned)")
    ap.add_argument("--weights", type=Path, help="evaluate these saved layers (as shipped: int8 differences) and stop")
    ap.add_argument("--seed", type=int, default=ft.SEED, help="training seed (batch order, dropout); the sample stays the same")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 when two runs share the 2 cores)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/qa-train-triples.json"))
    args = ap.parse_args()
    ft.LAYERS = tuple(int(x) for x in args.layers.split(","))
    ft.SEED = args.seed
    torch.set_num_threads(args.threads)
    if args.weights:
        import tempfile

        from sentence_transformers import SentenceTransformer

        from qa.weights import materialise

        with tempfile.TemporaryDirectory(prefix="qa-ft-eval-") as tmp:
            report(SentenceTransformer(str(materialise(Path(tmp) / "m", args.weights)), device="cpu"),
                   args.weights.stem, args.eval)
        return
    t0 = time.perf_counter()
    rows = train_triples(cache=args.cache)
    print(f"triples ready in {time.perf_counter() - t0:.0f}s", flush=True)
    rows = rows[: args.triples]
    arts = len({r[1] for r in rows})
    print(f"training layers {ft.LAYERS} on {len(rows)} train triples ({arts} distinct positives)", flush=True)
    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.base:
        report(ft.load_model(), "base", args.eval)
    if not rows:  # --base alone: nothing to train
        return
    model, secs = ft.train(rows, log=log, ckpt=args.ckpt, every=args.every, max_steps=args.probe)
    steps = len(ft.batches(rows, ft.BATCH))
    print(f"training {secs:.0f}s for {len(rows)} triples ({steps} steps in the plan)", flush=True)
    if args.probe:
        return
    if args.eval != "none":
        report(model, "train-tuned", args.eval)
    ft.print_seed(model, f"fine-tuned on {len(rows)} train triples")
    if args.out:
        ft.save(model, args.out, {"triples": str(len(rows)), "trained_on": "squad-train (v1.1, rebuilt)",
                                  "training_seconds": f"{secs:.0f}"})
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
