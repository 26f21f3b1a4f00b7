"""Fit qa/ranker.json on the SQuAD v1.1 *tune* split (even articles, data[0::2]) only.

Deterministic: same data, same code, same weights. The held-out split (odd articles) is never
read here. Steps:
1. index the 24 tune articles with the normal `build`, retrieve candidates for every question
   with the normal `candidates`, label a candidate positive when it overlaps a gold answer span;
2. 2-fold cross-validation by article inside the tune split (even/odd tune articles) to report an
   honest tune estimate of R@1;
3. fit the sentence weights on all tune questions: a listwise (per-question softmax) fit, then a
   one-dimensional logistic calibration so that scores are probabilities (see `fit`);
4. answerability: index only tune-half A, ask A's questions (own, answerable) and tune-half B's
   (foreign: about articles not indexed), fit a logistic regression own-vs-foreign on
   question-level evidence (also reported under 2-fold cross-validation);
5. threshold: the highest that still answers 97.5 % of own questions asked of all 24 tune articles
   (a bigger collection than step 4's: own questions look less answerable as articles are added).

With --cross-fit DIR (the shipped, fine-tuned encoder): step 1 instead indexes tune-half A with the
model fine-tuned on half B and half B with the model fine-tuned on half A (fold models from
`scripts/finetune.py --folds --save-folds DIR`), so that every similarity the ranker learns from is
out-of-fold, as it will be on unseen articles; step 4 reuses half A's index; step 5 indexes all tune
articles once with each fold model and asks each only the questions of the half it was not tuned on.

    python scripts/fit_ranker.py [--squad FILE] [--work DIR] [--out qa/ranker.json] [--cross-fit DIR]
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

from qa.build import build  # noqa: E402
from qa.eval import load_json, write_articles  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.eval import auroc  # noqa: E402
from qa.lexical import TERMS_VERSION  # noqa: E402
from qa.retrieve import FEATURES, RANKER_ANSWERABILITY_FEATURES, answerability_features, candidates  # noqa: E402

L2 = 1.0  # penalty of the listwise fit (tune CV R@1 within 0.2 points for 0.1 .. 1)
OWN_ANSWERED = 0.975  # share of own questions the threshold must still answer
FLOOR = 0.01  # secondary sentences below this probability are not shown (the first always is)
SLOT_DEMOTION = 0.1  # qa/slots.py's rule (issue 14): set, not fitted; kept by every refit


def collect(index: Index, questions, cache: Path | None = None):
    """Per question: (features, labels, document ids, "document_names" of each candidate's document)
    of its candidates (cached beside the index)."""
    if cache and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if tuple(data["features"]) == FEATURES and "e0" in data and int(data.get("terms", 0)) == TERMS_VERSION:
            return [(data[f"x{i}"], data[f"y{i}"], data[f"d{i}"], data[f"e{i}"]) for i in range(int(data["n"]))]
    out = []
    for lo in range(0, len(questions), 256):
        batch = questions[lo : lo + 256]
        vecs = index.encoder.encode([q.text for q in batch])
        for q, v in zip(batch, vecs):
            c = candidates(index, v, q.text)
            y = np.array([q.overlaps(m.source, m.start, m.end) for m in c.meta])
            named = {int(d): c.document_evidence(int(d)) for d in np.unique(c.docs)}
            out.append((c.features, y, c.docs, np.array([named[int(d)] for d in c.docs], np.float32)))
        print(f"  {min(lo + 256, len(questions))}/{len(questions)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    if cache:
        arrays = {f"{k}{i}": a for i, g in enumerate(out) for k, a in zip("xyde", g)}
        np.savez(cache, n=len(out), features=np.array(FEATURES), terms=TERMS_VERSION, **arrays)
    return out


def fit(groups, l2: float = L2):
    """Sentence weights: a listwise fit, then a calibration that turns scores into probabilities.

    1. Conditional logit: per question, a softmax over its candidates, maximising the probability
       of the gold sentences (L2 penalty `l2`). It learns what ranks a sentence above the other
       candidates of the same question, which is what R@k measures (tune CV R@1 +0.7 to +1.5 points
       over a pointwise logistic regression on the same features, depending on the encoder).
    2. A one-dimensional logistic regression of the label on that score (pointwise, all
       candidates) gives a scale and a bias, so that sigmoid(X @ w + b) is a probability: the
       answer shows it, the floor compares against it, the answerability model reads it.
       Scaling by a positive factor keeps the order of step 1.
    """
    from scipy.optimize import minimize
    from sklearn.linear_model import LogisticRegression

    G = [(X.astype(np.float64), y.astype(bool)) for X, y, *_ in groups if len(y) and y.any()]
    X = np.vstack([g[0] for g in G])
    y = np.concatenate([g[1] for g in G])
    sizes = np.array([len(g[1]) for g in G])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    qid = np.repeat(np.arange(len(G)), sizes)

    def loss(w):
        s = X @ w
        e = np.exp(s - np.maximum.reduceat(s, starts)[qid])
        z, pos = np.add.reduceat(e, starts), np.add.reduceat(e * y, starts)
        grad = X.T @ (e / z[qid] - np.where(y, e / pos[qid], 0.0)) + l2 * w
        return -(np.log(pos) - np.log(z)).sum() + 0.5 * l2 * w @ w, grad

    w = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 5000}).x
    Xa = np.vstack([g[0] for g in groups if len(g[1])])
    ya = np.concatenate([g[1] for g in groups if len(g[1])])
    cal = LogisticRegression(C=1.0, max_iter=5000).fit((Xa @ w)[:, None], ya)
    return w * float(cal.coef_[0, 0]), float(cal.intercept_[0])


def recall_at_1(groups, w, b) -> float:
    hits = 0
    for X, y, *_ in groups:
        if len(y):
            hits += bool(y[int(np.argmax(X @ w + b))])
    return hits / len(groups)


def answerability_matrix(groups, w, b) -> np.ndarray:
    rows = []
    for X, _, docs, named in groups:
        document = lambda doc, docs=docs, named=named: float(named[np.flatnonzero(docs == doc)[0]])  # noqa: E731
        rows.append(answerability_features(X, 1 / (1 + np.exp(-(X @ w + b))), docs, document) if len(X)
                    else np.zeros(len(RANKER_ANSWERABILITY_FEATURES)))
    return np.array(rows)


def fit_answerability(own: np.ndarray, foreign: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(np.vstack([own, foreign]), np.r_[np.ones(len(own)), np.zeros(len(foreign))])
    return model.coef_[0].astype(float), float(model.intercept_[0])


def article_folds(questions) -> np.ndarray:
    """Fold 0 or 1 of each question: alternate articles, in order of appearance, so that every
    question of an article lands in the same fold."""
    fold = {source: i % 2 for i, source in enumerate(dict.fromkeys(q.source for q in questions))}
    return np.array([fold[q.source] for q in questions])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def indexed(work: Path, name: str, articles, model: Path | None = None) -> tuple[Index, list]:
    questions = [q for q in write_articles(articles, work / name / "articles") if q.spans]
    t = time.time()  # incremental: nothing is re-embedded when the index exists (only BM25 may be rebuilt)
    build(work / name / "index", [work / name / "articles"], model)
    print(f"indexed {name} in {time.time() - t:.0f} s", file=sys.stderr)
    return Index.open(work / name / "index"), questions


def _default_encoder() -> str:
    """What the default (shipped) encoder was trained on, from its weights' metadata."""
    from safetensors import safe_open

    from qa.weights import WEIGHTS

    with safe_open(str(WEIGHTS), "np") as f:
        meta = f.metadata() or {}
    if "trained_on" in meta:
        unseen = ": tune is out-of-sample for it" if meta["trained_on"].startswith("squad-train") else ""
        return f"default encoder, fine-tuned on {meta['trained_on']} ({meta.get('triples', '?')} triples){unseen}"
    return "default encoder"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/data/squad/dev-v1.1.json.gz")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-fit"))
    ap.add_argument("--out", type=Path, default=ROOT / "qa/ranker.json")
    ap.add_argument("--cross-fit", type=Path, metavar="DIR",
                    help="fine-tuned model: DIR holds the fold models of `scripts/finetune.py --folds --save-folds DIR`")
    args = ap.parse_args()

    tune = load_json(args.squad)["data"][0::2]  # the tune split; never the odd (held-out) articles
    if args.cross_fit:
        # The shipped encoder was fine-tuned on these very questions, so its similarities are
        # optimistic here. Fit on out-of-fold similarities instead: each tune half is indexed and
        # asked with the model fine-tuned on the *other* half.
        from qa.weights import materialise

        model = {h: materialise(args.work / f"model-tune-{h}", args.cross_fit / f"tune-{h}.safetensors") for h in "AB"}
        index_a, own = indexed(args.work, "xfit_a", tune[0::2], model["B"])
        index_b, questions_b = indexed(args.work, "xfit_b", tune[1::2], model["A"])
        ga = collect(index_a, own, args.work / "xfit_a" / "features.npz")
        gb = collect(index_b, questions_b, args.work / "xfit_b" / "features.npz")
        groups = ga + gb
    else:
        index, questions = indexed(args.work, "tune", tune)
        groups = collect(index, questions, args.work / "tune" / "features.npz")
        half_a = {q.source for q in questions if int(Path(q.source).name[:3]) % 2 == 0}
        in_a = np.array([q.source in half_a for q in questions])
        ga = [g for g, a in zip(groups, in_a) if a]
        gb = [g for g, a in zip(groups, in_a) if not a]

    wa, ba = fit(ga)
    wb, bb = fit(gb)
    cv = (recall_at_1(gb, wa, ba) * len(gb) + recall_at_1(ga, wb, bb) * len(ga)) / len(groups)
    w, b = fit(groups)
    print(f"tune R@1: fitted on all {recall_at_1(groups, w, b):.4f}, 2-fold CV by article {cv:.4f}", file=sys.stderr)

    # Abstention: own vs foreign questions on an index of tune-half A only.
    if args.cross_fit:
        own_groups = ga  # A's questions on the index of A's articles: collected above
    else:
        index_a, own = indexed(args.work, "tune_a", tune[0::2])
        own_groups = collect(index_a, own, args.work / "tune_a" / "own.npz")
    foreign = [q for q in write_articles(tune[1::2], args.work / "tune_b" / "articles") if q.spans]
    own_x = answerability_matrix(own_groups, w, b)
    foreign_x = answerability_matrix(collect(index_a, foreign, index_a.root.parent / "foreign.npz"), w, b)
    # 2-fold cross-validation by article (no article's questions on both sides), then fit on all.
    own_fold, foreign_fold = article_folds(own), article_folds(foreign)
    assert len(own_fold) == len(own_x) and len(foreign_fold) == len(foreign_x)
    cv_own, cv_foreign = np.zeros(len(own_x)), np.zeros(len(foreign_x))
    for k in (0, 1):
        to, tf = own_fold != k, foreign_fold != k
        aw, ab = fit_answerability(own_x[to], foreign_x[tf])
        cv_own[~to], cv_foreign[~tf] = sigmoid(own_x[~to] @ aw + ab), sigmoid(foreign_x[~tf] @ aw + ab)
    cv_t = np.quantile(cv_own, 1 - OWN_ANSWERED)
    cv_declined = float((cv_foreign < cv_t).mean())
    aw, ab = fit_answerability(own_x, foreign_x)
    own_p, foreign_p = sigmoid(own_x @ aw + ab), sigmoid(foreign_x @ aw + ab)
    print(f"answerability AUROC own vs foreign (CV) {auroc(list(cv_own), list(cv_foreign)):.4f}; "
          f"CV foreign declined at 97.5% own answered {cv_declined:.4f}", file=sys.stderr)
    t12 = float(np.quantile(own_p, 1 - OWN_ANSWERED))
    print(f"threshold for 12 articles {t12:.4f}: own answered {(own_p >= t12).mean():.4f}, "
          f"foreign declined {(foreign_p < t12).mean():.4f}", file=sys.stderr)

    # The threshold: the same share of own questions, answered from all 24 tune articles. An answerable
    # question's evidence weakens as the collection grows (more articles compete for its best
    # candidates), so a threshold set on 12 articles answered fewer own questions on 24.
    if args.cross_fit:
        # Every tune article, indexed once with each fold model, asked only its out-of-fold half.
        in_a = lambda q: int(Path(q.source).name[:3]) % 2 == 0  # noqa: E731 (article i of `tune`; A = even i)
        groups_24 = []
        for half, fold_model in (("A", "B"), ("B", "A")):
            index_all, questions_all = indexed(args.work, f"xfit_all_{fold_model.lower()}", tune, model[fold_model])
            asked = [q for q in questions_all if in_a(q) == (half == "A")]
            groups_24 += collect(index_all, asked, args.work / f"xfit_all_{fold_model.lower()}" / "features.npz")
    else:
        groups_24 = groups
    own_24 = sigmoid(answerability_matrix(groups_24, w, b) @ aw + ab)
    threshold = float(np.quantile(own_24, 1 - OWN_ANSWERED))
    declined = float((foreign_p < threshold).mean())
    print(f"threshold {threshold:.4f} (24 articles): own answered {(own_24 >= threshold).mean():.4f} there, "
          f"{(own_p >= threshold).mean():.4f} on 12 articles, foreign declined on 12 articles {declined:.4f}", file=sys.stderr)

    ranker = {
        "features": list(FEATURES),
        "weights": [round(x, 6) for x in w],
        "bias": round(b, 6),
        "answerability_weights": [round(x, 6) for x in aw],
        "answerability_bias": round(ab, 6),
        "threshold": round(threshold, 6),
        "floor": FLOOR,
        "slot_demotion": SLOT_DEMOTION,
        "fitted": {
            "data": "SQuAD v1.1 dev, tune split (data[0::2]), answerable questions",
            "questions": len(groups),
            "tune_r1_cv": round(cv, 4),
            "threshold_rule": f"answers {OWN_ANSWERED:.1%} of own questions (index of all 24 tune articles)",
            "foreign_declined_at_threshold": round(declined, 4),  # index of tune half A
            "foreign_declined_cv": round(cv_declined, 4),
            "script": "scripts/fit_ranker.py" + (" --cross-fit" if args.cross_fit else ""),
            "similarities": "out-of-fold, fine-tuned encoder (each tune half scored by the model tuned on the other)"
            if args.cross_fit else _default_encoder(),
        },
    }
    args.out.write_text(json.dumps(ranker, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
