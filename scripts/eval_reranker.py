"""Issue 14: does the cross-encoder reranker re-rank the ranker's best candidates better? (dev tune)

Offline, on scripts/size_abstention.py's saved candidates (features with focus: refit_focus
--out-work, default /tmp/q14f; sentence texts: /tmp/q14): per question, the shipped ranker's
--top best candidates get a reranker logit (the exported int8 model, run by qa/rerank.py;
cached per stage in --cache). Then, for each K <= --top and mixing weight w, the K best are
re-ordered by ranker logit + w * reranker logit and R@1 / R@3 / MRR are counted over the
questions (ranking only: no abstention). The weight is chosen by 2-fold cross-validation over
tune articles (each half scored with the weight best on the other) and reported both ways.

The dev held-out split is never read: the stages hold tune questions (own) and questions of
reserved *train* articles (foreign).

    python scripts/eval_reranker.py --reranker /tmp/ce/l3-export --sizes 24,48
    python scripts/eval_reranker.py --reranker /tmp/ce/l3-export --fit-mix K   # the mix weight and its calibration, fitted on tune
    python scripts/eval_reranker.py --reranker qa/weights/reranker --top 10 --sizes 24 --fit-mix 10 --margin 1 --within 3 --out qa/ranker.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from qa.rerank import CrossEncoder  # noqa: E402
from qa.retrieve import Ranker, reorder_count  # noqa: E402
from size_table import stage_files  # noqa: E402

WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 1e6)


def reranked(args, ranker: Ranker, size: str, label: str):
    """Per question: ranker logits of its top candidates (best first), their labels, docs, rows,
    the question, and their reranker logits (cached)."""
    out = []
    for cands, texts_file in stage_files(args.work, args.texts, size, label):
        data = np.load(cands, allow_pickle=False)
        texts = np.load(texts_file, allow_pickle=False)["texts"]
        for i, q in enumerate(data["questions"]):
            X, y, d, r = data[f"x{i}"], data[f"y{i}"], data[f"d{i}"], data[f"r{i}"]
            z = X @ np.asarray(ranker.weights) + ranker.bias if len(X) else np.zeros(0)
            order = np.argsort(-z, kind="stable")[: args.top]
            out.append((z[order], y[order], d[order], r[order], str(q), [str(texts[k]) for k in r[order]]))
    out = out[: args.limit or None]
    cache = args.cache / f"{args.reranker.name}-{size}-{label}-{args.top}-{args.limit}.npz"
    if cache.exists():
        ce = np.load(cache, allow_pickle=False)
        return [(*o[:5], ce[f"c{i}"]) for i, o in enumerate(out)]
    model = CrossEncoder(args.reranker, threads=args.threads)
    t0 = time.perf_counter()
    logits = {f"c{i}": model.logits(o[4], o[5]) for i, o in enumerate(out)}
    print(f"  reranker logits for {len(out)} questions at {size} ({label}): {time.perf_counter() - t0:.0f} s", flush=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **logits)
    return [(*o[:5], logits[f"c{i}"]) for i, o in enumerate(out)]


def ranks(data, k: int, w: float, gate: float = np.inf, within: float = np.inf) -> np.ndarray:
    """Rank (1-based) of the first gold sentence after re-ordering the best k; 99 if none. With a
    `gate`, questions whose ranker logit margin (first minus second) exceeds it are not re-ordered;
    with `within`, only candidates within that of the first's logit are."""
    out = np.full(len(data), 99)
    for i, (z, y, _, _, _, c) in enumerate(data):
        if not len(y) or not y.any():
            continue
        s = z.copy()
        kk = reorder_count(z, k, gate, within)
        s[:kk] = z[:kk] + w * c[:kk] if w < 1e5 else 1e6 + c[:kk]
        s[kk:] = np.minimum(s[kk:], s[:kk].min() - 1e-6) if kk else s[kk:]
        order = np.argsort(-s, kind="stable")
        out[i] = int(np.argmax(y[order])) + 1
    return out


def summary(rk: np.ndarray) -> str:
    return f"R@1 {np.mean(rk == 1):.4f}  R@3 {np.mean(rk <= 3):.4f}  R@5 {np.mean(rk <= 5):.4f}"


def folds(data) -> np.ndarray:
    """0/1 per question: alternate articles (documents of the gold sentence) in order of appearance."""
    art = []
    for z, y, d, *_ in data:
        art.append(int(d[int(np.argmax(y))]) if len(y) and y.any() else -1)
    seen = {a: i % 2 for i, a in enumerate(dict.fromkeys(art))}
    return np.array([seen[a] for a in art])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reranker", type=Path, required=True, help="an exported reranker folder")
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14f"))
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ce/cache"))
    ap.add_argument("--sizes", default="24,48")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--label", default="own", help="own (tune questions) or, at 490, train_fresh (train questions no fit used)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions of each stage (smoke runs)")
    ap.add_argument("--gates", type=int, default=0, metavar="K", help="R@1 when confident questions skip the reranker (24 articles)")
    ap.add_argument("--depths", type=int, default=0, metavar="K", help="R@1/R@5 and pairs judged when up to K candidates within a logit window of the first are re-ordered (w 0.75)")
    ap.add_argument("--fit-mix", type=int, default=0, metavar="K", help="fit the mix for K candidates on all tune questions at 24 articles")
    ap.add_argument("--margin", type=float, default=None, help="with --out: the ranker's logit margin above which it does not re-order")
    ap.add_argument("--within", type=float, default=None, help="with --fit-mix: re-order only candidates within this of the first's ranker logit")
    ap.add_argument("--out", type=Path, default=None, help="with --fit-mix: write the re-ordering into this ranker.json")
    args = ap.parse_args()
    ranker = Ranker.default()
    for size in args.sizes.split(","):
        data = reranked(args, ranker, size, args.label)
        fold = folds(data)
        print(f"\n{size} articles, {len(data)} {args.label} questions; ranker alone: {summary(ranks(data, 0, 0))}")
        for k in (2, 3, 4, 5, 7, 10):
            if k > args.top:
                continue
            per_w = {w: ranks(data, k, w) for w in WEIGHTS}
            best = max(WEIGHTS, key=lambda w: np.mean(per_w[w] == 1))
            cv = np.zeros(len(data), int)
            chosen = []
            for f in (0, 1):
                wf = max(WEIGHTS, key=lambda w: np.mean(per_w[w][fold != f] == 1))
                chosen.append(wf)
                cv[fold == f] = per_w[wf][fold == f]
            line = "  ".join(f"w={w:g}:{np.mean(per_w[w] == 1):.4f}" for w in WEIGHTS if w < 1e5)
            print(f" K={k:<2} CV (w {chosen}): {summary(cv)} | best w={best:g} | alone {np.mean(per_w[1e6] == 1):.4f} | {line}")
    if args.gates:
        data = reranked(args, ranker, "24", "own")
        k = args.gates
        for gate in (0.5, 1.0, 2.0, 3.0, 4.0, np.inf):
            skipped = np.mean([len(z) > 1 and z[0] - z[1] > gate for z, *_ in data])
            best = max(WEIGHTS[:-1], key=lambda w: np.mean(ranks(data, k, w, gate) == 1))
            print(f" K={k} gate {gate:g}: skipped {skipped:.1%}  R@1 {np.mean(ranks(data, k, best, gate) == 1):.4f} (w={best:g})")
    if args.depths:
        for size in args.sizes.split(","):
            data = reranked(args, ranker, size, args.label)
            for gate in (1.0, 1.5):
                for k in (5, args.depths):
                    for within in (2.0, 3.0, 4.0, np.inf):
                        pairs = [reorder_count(z, k, gate, within) for z, *_ in data]
                        rk = ranks(data, k, 0.75, gate, within)
                        print(f" {size} {args.label}: margin {gate:g} K {k} within {within:g}: {summary(rk)}  "
                              f"pairs re-ordered: mean {np.mean(pairs):.2f}, p95 {np.percentile(pairs, 95):.0f}")
    if args.fit_mix:
        from sklearn.linear_model import LogisticRegression

        data = reranked(args, ranker, "24", "own")
        k = args.fit_mix
        within = np.inf if args.within is None else args.within
        per_w = {w: np.mean(ranks(data, k, w, within=within) == 1) for w in WEIGHTS if w < 1e5}
        w = max(per_w, key=per_w.get)
        few = [reorder_count(z, k, None, within) for z, *_ in data]
        xs = np.concatenate([z[:n] + w * c[:n] for n, (z, _, _, _, _, c) in zip(few, data)])
        ys = np.concatenate([y[:n] for n, (_, y, _, _, _, _) in zip(few, data)])
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(xs[:, None], ys)
        fit = {"top": k, "weight": w, "scale": round(float(lr.coef_[0, 0]), 6),
               "bias": round(float(lr.intercept_[0]), 6), "tune_r1": round(per_w[w], 4)}
        print(json.dumps(fit))
        if args.out:
            gated = ranks(data, k, w, np.inf if args.margin is None else args.margin, within)
            shipped = json.loads(args.out.read_text())
            shipped.update(rerank_top=k, rerank_weight=w, rerank_margin=args.margin, rerank_within=args.within,
                           rerank_calibration=[fit["scale"], fit["bias"]])
            shipped["fitted"]["rerank"] = {
                "script": f"scripts/eval_reranker.py --reranker {args.reranker} --top {args.top} --fit-mix {k} "
                          f"--margin {args.margin} --within {args.within}",
                "data": "dev tune split, 24 articles (own questions; ranking only)",
                "weight": f"best R@1 of {[x for x in WEIGHTS if x < 1e5]}",
                "calibration": "logistic fit of gold on the mixed logit of the re-ordered candidates",
                "tune_r1": {"ranker": round(float(np.mean(ranks(data, 0, 0) == 1)), 4), "reordered": fit["tune_r1"],
                            "reordered_with_margin": round(float(np.mean(gated == 1)), 4)},
                "tune_r5": {"ranker": round(float(np.mean(ranks(data, 0, 0) <= 5)), 4),
                            "reordered_with_margin": round(float(np.mean(gated <= 5)), 4)},
            }
            args.out.write_text(json.dumps(shipped, indent=2) + "\n")


if __name__ == "__main__":
    main()
