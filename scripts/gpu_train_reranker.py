"""Issue 14: train the cross-encoder reranker on every usable SQuAD train question, on a GPU.

scripts/train_reranker.py is the CPU recipe (8,000 questions, 3 negatives, 26 min on 2 cores).
This is the same model (the bundled base MiniLM's first --layers layers, a linear head on the mean
token vector, "[CLS] question [SEP] sentence [SEP]" cut to 96 word pieces, longest first, as
qa/rerank.py reads it) trained on scripts/prep_reranker_data.py's file: ~73,500 questions, each
with 7 negatives:

- the 4 hardest of its pool every pass, and 3 drawn at random from the rest of the pool each pass;
- the pool, in this order: the shipped ranker's best wrong candidates (where they were saved), the
  best BM25 sentences of its article, then the base encoder's most similar sentences of its
  article (mined here, on the GPU). Forbidden sentences (gold, or containing an answer text) are
  never negatives; a pool short of 7 is filled with random sentences of other articles.

Listwise softmax loss over each group, AdamW, bf16 autocast. The learning rate warms up over the
first 6 % and decays linearly to zero at whichever comes first, the last step of --epochs or the
--minutes budget, so a run always ends on a finished schedule. The last --holdout questions are
never trained on: their group accuracy (gold first of 8) is printed for each model. With
--teacher, a smaller model also learns the first model's group distribution (distillation).

It runs with only torch, transformers, tokenizers, safetensors and numpy (the GPU machine's
image), from a folder holding the base model (config.json, tokenizer.json, model.safetensors,
fp16 is enough) and the data file. Output per model: ce<L>.partN.safetensors (fp16, every tensor
but the word embeddings, which are frozen and come from the base model; split in parts of at most
15 MB), which scripts/ship_reranker.py puts back together when given the first part.

    python scripts/gpu_train_reranker.py --base .gpu/base --data .gpu/reranker_data.npz \\
        --out $OUT --layers 6,3 --minutes 4.5,2 --teacher

Measured (2026-11-29, one H200, BENCHMARKS.md "The reranker trained on a GPU"): building the pools
and loading took about 3.5 minutes, the 6-layer model its 4.5 (gold first of 8 for 83.6 % of the
held-back questions; now qa/weights/reranker/); the 3-layer student did not finish inside the
560 s command. Pipe the output through `grep --line-buffered`, or not at all: a buffered grep
lost that run's log.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

MAX_TOKENS = 96
GROUP = 8  # gold + 7 negatives
HARD = 4  # negatives taken from the top of the pool every pass
PART_BYTES = 15_000_000


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def unpack(z, name: str) -> list[str]:
    blob, off = z[f"{name}_bytes"].tobytes(), z[f"{name}_off"]
    return [blob[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]


def ragged(z, name: str) -> list[list[int]]:
    flat, off = z[name], z[f"{name}_off"]
    return [flat[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)]


class CrossEncoder(torch.nn.Module):
    """train_reranker.CrossEncoder's layout (bert.*, head.*), built from a local base folder."""

    def __init__(self, base: Path, layers: int) -> None:
        super().__init__()
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(str(base), num_hidden_layers=layers, dtype=torch.float32)
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)
        self.bert.embeddings.word_embeddings.weight.requires_grad_(False)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1)).squeeze(-1)


def tokenizer(base: Path, max_tokens: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.enable_truncation(max_length=max_tokens, strategy="longest_first")
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0)
    return tok


def batch_tensors(tok, pairs, device):
    enc = tok.encode_batch(pairs)
    ids = torch.tensor([e.ids for e in enc], device=device)
    mask = torch.tensor([e.attention_mask for e in enc], device=device)
    types = torch.tensor([e.type_ids for e in enc], device=device)
    return ids, mask, types


@torch.no_grad()
def embed(base: Path, texts: list[str], device, batch: int = 1024) -> torch.Tensor:
    """The base encoder's normalised mean-pooled vectors (what all-MiniLM-L6-v2 computes)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(base), dtype=torch.float32).to(device).eval()
    tok = tokenizer(base, 128)
    out = []
    for lo in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[lo:lo + batch])
        ids = torch.tensor([e.ids for e in enc], device=device)
        mask = torch.tensor([e.attention_mask for e in enc], device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


def pools(z, keep: list[int], texts: list[str], questions: list[str], base: Path, device, dense: int = 10) -> list[list[int]]:
    """Per question (rows `keep` of the file), its negatives in order of preference (ranked,
    lexical, then dense)."""
    forbid, lex, ranked = ([r[i] for i in keep] for r in (ragged(z, "forbid"), ragged(z, "lex"), ragged(z, "ranked")))
    q_art, q_pos, lo, hi = z["q_art"][keep], z["q_pos"][keep], z["art_lo"], z["art_hi"]
    by_art: dict[int, list[int]] = {}
    for i, a in enumerate(q_art.tolist()):
        by_art.setdefault(a, []).append(i)
    t0 = time.perf_counter()
    arts = sorted(by_art)
    rows = [j for a in arts for j in range(lo[a], hi[a])]  # only the articles asked about
    where = {j: k for k, j in enumerate(rows)}
    s_vec = embed(base, [texts[j] for j in rows], device)
    q_vec = embed(base, questions, device)
    log(f"embedded {len(rows)} sentences and {len(questions)} questions ({time.perf_counter() - t0:.0f} s)")
    out: list[list[int]] = [[] for _ in questions]
    for a, qs in by_art.items():
        scores = (q_vec[qs] @ s_vec[where[lo[a]]:where[lo[a]] + hi[a] - lo[a]].T).float().cpu().numpy()
        for row, i in zip(scores, qs):
            bad = set(forbid[i]) | {int(q_pos[i])}
            pool: list[int] = []
            for j in ranked[i] + lex[i]:
                if j not in bad and j not in pool:
                    pool.append(j)
            for j in np.argsort(-row, kind="stable")[: dense + len(bad)]:
                j = int(lo[a] + j)
                if j not in bad and j not in pool:
                    pool.append(j)
            out[i] = pool
    return out


def group(i: int, pool: list[int], n_texts: int, rng: random.Random) -> list[int]:
    negs = pool[:HARD] + rng.sample(pool[HARD:], min(GROUP - 1 - HARD, max(0, len(pool) - HARD)))
    while len(negs) < GROUP - 1:  # a small article: easy negatives from anywhere
        j = rng.randrange(n_texts)
        if j not in negs and j not in pool:
            negs.append(j)
    return negs


def train(args, layers: int, minutes: float, data, teacher: CrossEncoder | None, device) -> CrossEncoder:
    texts, questions, pos, pool = data
    n_train = len(questions) - args.holdout
    torch.manual_seed(0)
    model = CrossEncoder(args.base, layers).to(device)
    tok = tokenizer(args.base, MAX_TOKENS)
    steps_per_epoch = n_train // args.batch
    total = steps_per_epoch * args.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    budget = minutes * 60
    rng = random.Random(layers)
    t0, step = time.perf_counter(), 0
    model.train()
    for epoch in range(args.epochs):
        order = list(range(n_train))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            frac = max(step / total, (time.perf_counter() - t0) / budget)
            if frac >= 1:
                break
            lr = args.lr * (frac / 0.06 if frac < 0.06 else (1 - frac) / 0.94)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[b * args.batch:(b + 1) * args.batch]
            pairs = [(questions[i], texts[j]) for i in idx for j in [pos[i], *group(i, pool[i], len(texts), rng)]]
            ids, mask, types = batch_tensors(tok, pairs, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(ids, mask, types).float().view(len(idx), GROUP)
                loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long, device=device))
                if teacher is not None:
                    with torch.no_grad():
                        target = torch.softmax(teacher(ids, mask, types).float().view(len(idx), GROUP), -1)
                    loss = 0.5 * loss + 0.5 * torch.nn.functional.kl_div(
                        torch.log_softmax(logits, -1), target, reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % 500 == 0:
                log(f"L{layers} epoch {epoch} step {step}/{total} loss {float(loss):.4f} lr {lr:.2e} "
                    f"{(time.perf_counter() - t0) / step * 1000:.0f} ms/step")
        else:
            continue
        break
    log(f"L{layers}: {step} steps ({step * args.batch / n_train:.2f} passes) in {time.perf_counter() - t0:.0f} s")
    model.eval()
    return model


@torch.no_grad()
def holdout_accuracy(model: CrossEncoder, args, data, device) -> float:
    texts, questions, pos, pool = data
    tok = tokenizer(args.base, MAX_TOKENS)
    rng = random.Random(12345)
    hits = 0
    idxs = list(range(len(questions) - args.holdout, len(questions)))
    for lo in range(0, len(idxs), 64):
        idx = idxs[lo:lo + 64]
        pairs = [(questions[i], texts[j]) for i in idx for j in [pos[i], *group(i, pool[i], len(texts), rng)]]
        ids, mask, types = batch_tensors(tok, pairs, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(ids, mask, types).float().view(len(idx), GROUP)
        hits += int((logits.argmax(-1) == 0).sum())
    return hits / len(idxs)


def save_parts(model: CrossEncoder, layers: int, out: Path, meta: dict) -> list[str]:
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()
             if k != "bert.embeddings.word_embeddings.weight" and v.is_floating_point()}
    parts: list[dict] = [{}]
    size = 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if parts[-1] and size + nbytes > PART_BYTES:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += nbytes
    names = []
    for n, part in enumerate(parts):
        name = f"ce{layers}.part{n}.safetensors"
        save_file(part, str(out / name), metadata={"layers": str(layers), "parts": str(len(parts)),
                                                   **{k: str(v) for k, v in meta.items()}})
        names.append(name)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--layers", default="6,3")
    ap.add_argument("--minutes", default="4,2", help="time budget per model, in the order of --layers")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="questions per step (each a group of 8 pairs)")
    ap.add_argument("--lr", type=float, default=7e-5)
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=0, help="only the questions of the first N articles (smoke runs)")
    ap.add_argument("--teacher", action="store_true", help="the first model teaches the later ones")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    log(f"device {device} {torch.cuda.get_device_name() if device.type == 'cuda' else ''} torch {torch.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    z = np.load(args.data, allow_pickle=False)
    texts, questions = unpack(z, "text"), unpack(z, "question")
    keep = [i for i, a in enumerate(z["q_art"].tolist()) if not args.articles or a < args.articles]
    questions, pos = [questions[i] for i in keep], [int(z["q_pos"][i]) for i in keep]
    pool = pools(z, keep, texts, questions, args.base, device)
    short = sum(len(p) < GROUP - 1 for p in pool)
    log(f"{len(questions)} questions, pools: median {int(np.median([len(p) for p in pool]))}, {short} short of 7")
    data = (texts, questions, pos, pool)
    report, teacher = {}, None
    for layers, minutes in zip(map(int, args.layers.split(",")), map(float, args.minutes.split(","))):
        model = train(args, layers, minutes, data, teacher if args.teacher else None, device)
        acc = holdout_accuracy(model, args, data, device)
        log(f"L{layers}: held-back train questions, gold first of {GROUP}: {acc:.4f}")
        meta = {"questions": len(questions) - args.holdout, "negatives": GROUP - 1, "minutes": minutes,
                "teacher": bool(teacher is not None and args.teacher), "holdout_acc": round(acc, 4),
                "script": "scripts/gpu_train_reranker.py"}
        report[f"ce{layers}"] = {**meta, "files": save_parts(model, layers, args.out, meta)}
        if teacher is None:
            teacher = model
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(json.dumps(report))


if __name__ == "__main__":
    main()
