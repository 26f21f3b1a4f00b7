"""Issue 14: an answerability model whose decision means the same at every collection size.

Reads scripts/size_abstention.py's saved candidates (own = SQuAD tune questions, foreign = questions
of reserved *train* articles) at sizes 1, 24, 48, 150 (and 490 when measured), scores them with the
shipped ranker, and compares answerability feature sets:
- shipped: the 8 features of qa/retrieve.py's ANSWERABILITY_FEATURES, shipped weights/threshold;
- refit: the same 8 features, refitted on the pooled sizes;
- no_docs: without "top_documents" (distinct documents among the 10 best), which is 0 by
  construction in a one-article collection and grows with the collection;
- doc_share: "top_documents" replaced by the best document's share of the 10 best scores.
Cross-fitted: own questions split by tune article (even/odd), foreign by reserved article (first
and second half); each half is scored by the model fitted on the other half at the FIT sizes; the
threshold answers 97.5 % of the fitting half's own questions (pooled over the fit sizes).
Sizes not in FIT (490) are never fitted on.

    python scripts/fit_size_answerability.py [--work /tmp/q14] [--fit 1,24,48,150]
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

from size_table import SIZES, sigmoid, stage_groups  # noqa: E402
from qa.eval import load_json  # noqa: E402
from qa.retrieve import answerability_features  # noqa: E402

OWN_ANSWERED = 0.975
DEV = ROOT.parent / "shared/data/squad/dev-v1.1.json.gz"


def features(groups, w, b, kind: str) -> np.ndarray:
    rows = []
    for X, y, d, _ in groups:
        if not len(X):
            rows.append(np.full(8 if kind != "no_docs" else 7, np.nan))
            continue
        s = sigmoid(X @ w + b)
        f = answerability_features(X, s, d)
        if kind == "no_docs":
            f = f[:7]
        elif kind == "doc_share":
            best = np.argsort(-s, kind="stable")[:10]
            top_doc = d[best[0]]
            f = f.copy()
            f[7] = s[best][d[best] == top_doc].sum() / max(s[best].sum(), 1e-9)
        rows.append(f)
    return np.array(rows)


def fit_logistic(own: np.ndarray, foreign: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1.0, max_iter=5000).fit(np.vstack([own, foreign]), np.r_[np.ones(len(own)), np.zeros(len(foreign))])
    return m.coef_[0], float(m.intercept_[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--fit", default="1,24,48,150")
    ap.add_argument("--out", type=Path, default=None, help="write the no_docs/doc_share model fitted on all halves here")
    args = ap.parse_args()
    ranker = json.loads((ROOT / "qa/ranker.json").read_text())
    w, b = np.asarray(ranker["weights"]), ranker["bias"]
    tune = load_json(DEV)["data"][0::2]
    article_of = np.array([i for i, a in enumerate(tune) for p in a["paragraphs"] for q in p["qas"] if q.get("answers")])
    fit_sizes = args.fit.split(",")
    data = {}
    for size in SIZES:
        own, foreign = stage_groups(args.work, size, "own"), stage_groups(args.work, size, "foreign")
        if own is None or foreign is None:
            continue
        if size == "1":  # files own00..own23 are the tune articles in order
            pass
        half_own = article_of[: len(own)] % 2
        half_foreign = (np.arange(len(foreign)) >= len(foreign) // 2).astype(int)
        data[size] = {"own": own, "foreign": foreign, "half_own": half_own, "half_foreign": half_foreign}
    train_own = stage_groups(args.work, "490", "train_own")
    report = {}
    for kind in ("shipped", "refit", "no_docs", "doc_share"):
        feats = {s: {k: features(v[k], w, b, "shipped" if kind == "refit" else kind) for k in ("own", "foreign")} for s, v in data.items()}
        res = {}
        if kind == "shipped":
            aw, ab, t = np.asarray(ranker["answerability_weights"]), ranker["answerability_bias"], ranker["threshold"]
            if train_own is not None:
                ft = np.nan_to_num(features(train_own, w, b, kind), nan=-1e9)
                res["490 train own"] = (float((sigmoid(ft @ aw + ab) >= t).mean()), float("nan"))
            for s, f in feats.items():
                po, pf = sigmoid(np.nan_to_num(f["own"], nan=-1e9) @ aw + ab), sigmoid(np.nan_to_num(f["foreign"], nan=-1e9) @ aw + ab)
                res[s] = (float((po >= t).mean()), float((pf < t).mean()))
        else:
            models: list = []
            scored = {s: {"own": np.zeros(len(f["own"])), "foreign": np.zeros(len(f["foreign"]))} for s, f in feats.items()}
            for held in (0, 1):
                fit_on = [s for s in fit_sizes if s in feats]
                own_fit = np.vstack([feats[s]["own"][data[s]["half_own"] != held] for s in fit_on])
                for_fit = np.vstack([feats[s]["foreign"][data[s]["half_foreign"] != held] for s in fit_on])
                own_fit, for_fit = own_fit[~np.isnan(own_fit).any(1)], for_fit[~np.isnan(for_fit).any(1)]
                aw, ab = fit_logistic(own_fit, for_fit)
                models.append((aw, ab, None))
                # the threshold: 97.5 % of the fitting half's own questions, each fit size weighted alike
                t = float(np.median([np.quantile(sigmoid(np.nan_to_num(feats[s]["own"][data[s]["half_own"] != held], nan=-1e9) @ aw + ab),
                                                 1 - OWN_ANSWERED) for s in fit_on]))
                models[-1] = (aw, ab, t)
                for s, f in feats.items():
                    for k, half in (("own", data[s]["half_own"]), ("foreign", data[s]["half_foreign"])):
                        sel = half == held
                        scored[s][k][sel] = sigmoid(np.nan_to_num(f[k][sel], nan=-1e9) @ aw + ab) - t  # >= 0: answer
            for s in feats:
                res[s] = (float((scored[s]["own"] >= 0).mean()), float((scored[s]["foreign"] < 0).mean()))
            if train_own is not None:  # never fitted on: each fold's model, averaged
                ft = np.nan_to_num(features(train_own, w, b, "shipped" if kind == "refit" else kind), nan=-1e9)
                res["490 train own"] = (float(np.mean([(sigmoid(ft @ m[0] + m[1]) >= m[2]).mean() for m in models])), float("nan"))
        report[kind] = res
        print(kind, " ".join(f"{s}: own {a:.1%} foreign {f:.1%}" for s, (a, f) in res.items()), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
