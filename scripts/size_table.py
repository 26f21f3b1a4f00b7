"""Issue 14: own answered / foreign declined at each collection size, from scripts/size_abstention.py's
saved candidates, scored with a ranker file whose answerability does not read the reranker (the
shipped one does: scripts/fit_rerank_answerability.py prints its table). Also the stages' loaders
that the other size scripts share.

    python scripts/size_table.py [--work /tmp/q14] [--texts /tmp/q14] --ranker FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.eval import auroc  # noqa: E402
from qa.features import name_coverage, name_terms  # noqa: E402
from qa.lexical import term_sets  # noqa: E402
from qa.retrieve import answerability_features  # noqa: E402

SIZES = ("1", "24", "48", "150", "490")


def load_groups(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    data = np.load(path, allow_pickle=False)
    return [(data[f"x{i}"], data[f"y{i}"], data[f"d{i}"], data[f"r{i}"]) for i in range(int(data["n"]))]


def stage_groups(work: Path, size: str, label: str) -> list | None:
    """Each question's (features, labels, docs, rows) at one size; None when not measured."""
    folder = work / f"size{size}"
    if size == "1":
        files = sorted(folder.glob(f"{label}[0-9][0-9].npz"))
        return [g for f in files for g in load_groups(f)] or None
    f = folder / f"{label}.npz"
    return load_groups(f) if f.exists() else None


def stage_files(work: Path, texts: Path, size: str, label: str) -> list[tuple[Path, Path]]:
    """(candidates file, texts file) pairs of one stage; size 1 has one pair per tune article."""
    if size == "1":
        files = sorted((work / "size1").glob(f"{label}[0-9][0-9].npz"))
        return [(f, texts / "size1" / f"texts{f.stem[-2:]}.npz") for f in files]
    return [(work / f"size{size}" / f"{label}.npz", texts / f"size{size}" / "texts.npz")]


@lru_cache(maxsize=2)
def document_terms(texts_file: Path) -> dict[int, set[str]]:
    """Every term of each document of a collection, from its sentences' texts (as BM25 tokenizes them)."""
    z = np.load(texts_file, allow_pickle=False)
    out: dict[int, set[str]] = {}
    for doc, terms in zip(z["docs"].tolist(), term_sets([str(t) for t in z["texts"]])):
        out.setdefault(doc, set()).update(terms)
    return out


def stage_documents(work: Path, texts: Path, size: str, label: str) -> list | None:
    """Each question's `document(doc)` for qa.retrieve.answerability_features ("document_names"
    of a document of the collection), aligned with stage_groups; None when not measured."""
    pairs = [(c, t) for c, t in stage_files(work, texts, size, label) if c.exists()]
    if not pairs:
        return None
    out = []
    for cands, texts_file in pairs:
        held = document_terms(texts_file)
        for q in np.load(cands, allow_pickle=False)["questions"]:
            out.append(lambda doc, n=name_terms(str(q)), h=held: name_coverage(n, h.get(doc, set())))
    return out


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def question_evidence(groups, documents, w, b):
    """Per question: the answerability features (without the reranker's) and whether the top
    sentence is right."""
    feats, right = [], []
    for (X, y, d, _), document in zip(groups, documents):
        if not len(X):
            feats.append(None)
            right.append(False)
            continue
        s = sigmoid(X @ w + b)
        feats.append(answerability_features(X, s, d, document))
        right.append(bool(y[int(np.argmax(s))]))
    return feats, np.array(right)


def probabilities(feats, aw, ab) -> np.ndarray:
    return np.array([0.0 if f is None else float(sigmoid(f @ aw + ab)) for f in feats])


def table(work: Path, texts: Path, ranker: dict) -> list[dict]:
    """For a ranker file whose answerability does not read the reranker (the shipped one does:
    scripts/fit_rerank_answerability.py's "shipped" row is its table)."""
    if ranker.get("reranker_top"):
        raise SystemExit("this ranker's answerability reads the reranker: run scripts/fit_rerank_answerability.py")
    w, b = np.asarray(ranker["weights"]), ranker["bias"]
    aw, ab, t = np.asarray(ranker["answerability_weights"]), ranker["answerability_bias"], ranker["threshold"]
    rows = []
    for size in SIZES:
        own, foreign = stage_groups(work, size, "own"), stage_groups(work, size, "foreign")
        if own is None or foreign is None:
            continue
        fo, right = question_evidence(own, stage_documents(work, texts, size, "own"), w, b)
        ff, _ = question_evidence(foreign, stage_documents(work, texts, size, "foreign"), w, b)
        po, pf = probabilities(fo, aw, ab), probabilities(ff, aw, ab)
        info = dict(line.split() for line in (work / f"size{size}" / "info.txt").read_text().splitlines()) \
            if (work / f"size{size}" / "info.txt").exists() else {}
        row = {"size": size, "sentences": info.get("sentences", "-"), "own": len(po), "foreign": len(pf),
               "own_answered": float((po >= t).mean()), "foreign_declined": float((pf < t).mean()),
               "auroc": auroc(list(po), list(pf)), "R@1": float((right & (po >= t)).mean()),
               "own_p_median": float(np.median(po)), "foreign_p_median": float(np.median(pf))}
        # a size-aware threshold: the one that answers 97.5 % of own questions at this size
        row["threshold_97.5"] = float(np.quantile(po, 0.025))
        row["foreign_declined_there"] = float((pf < row["threshold_97.5"]).mean())
        extra = stage_groups(work, size, "train_own")
        if extra is not None:
            fe, re_ = question_evidence(extra, stage_documents(work, texts, size, "train_own"), w, b)
            pe = probabilities(fe, aw, ab)
            row["train_own_answered"] = float((pe >= t).mean())
            row["train_R@1"] = float((re_ & (pe >= t)).mean())
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--texts", type=Path, default=Path("/tmp/q14"), help="the collections' sentence texts (size_abstention.py's work)")
    ap.add_argument("--ranker", type=Path, required=True, help="a ranker.json without the reranker, as scripts/fit_ranker.py writes")
    args = ap.parse_args()
    rows = table(args.work, args.texts, json.loads(args.ranker.read_text()))
    print("| articles | sentences | own questions | own answered | foreign declined | AUROC | R@1 (own, declined = wrong) | threshold for 97.5 % own | foreign declined there |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['sentences']} | {r['own']} | {r['own_answered']:.1%} | {r['foreign_declined']:.1%} | "
              f"{r['auroc']:.3f} | {r['R@1']:.3f} | {r['threshold_97.5']:.3f} | {r['foreign_declined_there']:.1%} |")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
