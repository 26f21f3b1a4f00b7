"""Issue 14: an answerability model whose decision means the same at every collection size.

Reads scripts/size_abstention.py's saved candidates (own = SQuAD tune questions, foreign = questions
of reserved *train* articles) at sizes 1, 24, 48, 150 (and 490 when measured), scores them with the
shipped ranker, and compares answerability feature sets without the reranker (scripts/
fit_rerank_answerability.py compares those with it, and the shipped decision):
- refit: RANKER_ANSWERABILITY_FEATURES (qa/retrieve.py), refitted on the pooled sizes;
- no_docs: without "top_documents" (distinct documents among the 10 best), which is 0 by
  construction in a one-article collection and grows with the collection;
- doc_share: "top_documents" replaced by the best document's share of the 10 best scores.
Cross-fitted (`cross_fit`, which fit_rerank_answerability.py shares): own questions split by tune
article (even/odd), foreign by reserved article (first and second half); each half is scored by the
model fitted on the other half at the FIT sizes; the threshold answers 97.5 % of the fitting half's
own questions (median over the fit sizes). Sizes not in FIT (490) are never fitted on.

    python scripts/fit_size_answerability.py [--work /tmp/q14f] [--texts /tmp/q14] [--fit 1,24,48,150]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from size_table import SIZES, sigmoid, stage_documents, stage_groups  # noqa: E402
from qa.eval import load_json  # noqa: E402
from qa.retrieve import RANKER_ANSWERABILITY_FEATURES, Ranker, answerability_features  # noqa: E402

OWN_ANSWERED = 0.975
DEV = ROOT.parent / "shared/data/squad/dev-v1.1.json.gz"
TOP_DOCUMENTS = RANKER_ANSWERABILITY_FEATURES.index("top_documents")


def features(groups, documents, w, b, kind: str) -> np.ndarray:
    width = len(RANKER_ANSWERABILITY_FEATURES) - (kind == "no_docs")
    rows = []
    for (X, y, d, _), document in zip(groups, documents):
        if not len(X):
            rows.append(np.full(width, np.nan))
            continue
        s = sigmoid(X @ w + b)
        f = answerability_features(X, s, d, document)
        if kind == "no_docs":
            f = np.delete(f, TOP_DOCUMENTS)
        elif kind == "doc_share":
            f[TOP_DOCUMENTS] = best_document_share(s, d)
        rows.append(f)
    return np.array(rows)


def best_document_share(s: np.ndarray, d: np.ndarray) -> float:
    """The "doc_share" stand-in for "top_documents": the best document's share of the 10 best
    probabilities `s` (documents `d`)."""
    best = np.argsort(-s, kind="stable")[:10]
    return float(s[best][d[best] == d[best[0]]].sum() / max(s[best].sum(), 1e-9))


def fit_logistic(own: np.ndarray, foreign: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1.0, max_iter=5000).fit(np.vstack([own, foreign]), np.r_[np.ones(len(own)), np.zeros(len(foreign))])
    return m.coef_[0], float(m.intercept_[0])


def fit_with_threshold(feats: dict, fit_sizes: list[str], keep: dict | None = None) -> tuple[np.ndarray, float, float]:
    """(weights, bias, threshold) of a logistic model of own vs foreign questions fitted at the fit
    sizes (on the questions `keep[size][label]` selects; default all), its threshold answering
    OWN_ANSWERED of the fitted own questions (median over the sizes). NaN rows are left out of the
    fit and never answered."""
    def rows(s: str, k: str) -> np.ndarray:
        return feats[s][k] if keep is None else feats[s][k][keep[s][k]]

    own, foreign = np.vstack([rows(s, "own") for s in fit_sizes]), np.vstack([rows(s, "foreign") for s in fit_sizes])
    aw, ab = fit_logistic(own[~np.isnan(own).any(1)], foreign[~np.isnan(foreign).any(1)])
    t = float(np.median([np.quantile(sigmoid(np.nan_to_num(rows(s, "own"), nan=-1e9) @ aw + ab), 1 - OWN_ANSWERED)
                         for s in fit_sizes]))
    return aw, ab, t


def cross_fit(feats: dict, halves: dict, fit_sizes: list[str], unseen: np.ndarray | None = None) -> dict:
    """Own answered / foreign declined per size, each half scored by the model fitted on the other.

    `feats[size][label]`: features (NaN rows: no candidates, never answered); `halves[size][label]`:
    each question's half (0/1), label "own" or "foreign". With `unseen` (features of own questions
    no model is fitted on), also their answered share, averaged over the two halves' models
    (key "unseen")."""
    scored = {s: {k: np.zeros(len(f[k])) for k in ("own", "foreign")} for s, f in feats.items()}
    unseen_answered = []
    for held in (0, 1):
        aw, ab, t = fit_with_threshold(feats, fit_sizes, {s: {k: halves[s][k] != held for k in halves[s]} for s in fit_sizes})
        for s, f in feats.items():
            for k in ("own", "foreign"):
                sel = halves[s][k] == held
                scored[s][k][sel] = sigmoid(np.nan_to_num(f[k][sel], nan=-1e9) @ aw + ab) - t  # >= 0: answer
        if unseen is not None:
            unseen_answered.append(float((sigmoid(np.nan_to_num(unseen, nan=-1e9) @ aw + ab) >= t).mean()))
    res = {s: (float((scored[s]["own"] >= 0).mean()), float((scored[s]["foreign"] < 0).mean())) for s in feats}
    if unseen is not None:
        res["unseen"] = (float(np.mean(unseen_answered)), float("nan"))
    return res


def halves_of(own: list, foreign: list) -> dict:
    """Own questions by tune article (even/odd), foreign ones by reserved article (first/second half)."""
    tune = load_json(DEV)["data"][0::2]
    article_of = np.array([i for i, a in enumerate(tune) for p in a["paragraphs"] for q in p["qas"] if q.get("answers")])
    return {"own": article_of[: len(own)] % 2, "foreign": (np.arange(len(foreign)) >= len(foreign) // 2).astype(int)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14f"))
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--fit", default="1,24,48,150")
    args = ap.parse_args()
    ranker = Ranker.default()
    w, b = np.asarray(ranker.weights), ranker.bias
    groups, documents, halves = {}, {}, {}
    for size in SIZES:
        own, foreign = stage_groups(args.work, size, "own"), stage_groups(args.work, size, "foreign")
        if own is None or foreign is None:
            continue
        groups[size] = {"own": own, "foreign": foreign}
        documents[size] = {k: stage_documents(args.work, args.texts, size, k) for k in ("own", "foreign")}
        halves[size] = halves_of(own, foreign)
    fit_sizes = [s for s in args.fit.split(",") if s in groups]
    train_own = stage_groups(args.work, "490", "train_own")
    report = {}
    for kind in ("refit", "no_docs", "doc_share"):
        feats = {s: {k: features(g[k], documents[s][k], w, b, kind) for k in g} for s, g in groups.items()}
        unseen = features(train_own, stage_documents(args.work, args.texts, "490", "train_own"), w, b, kind) if train_own else None
        report[kind] = res = cross_fit(feats, halves, fit_sizes, unseen)
        print(kind, " ".join(f"{s}: own {a:.1%} foreign {f:.1%}" for s, (a, f) in res.items()), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
