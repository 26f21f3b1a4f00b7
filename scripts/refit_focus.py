"""Issue 14: the ranker with the "focus" feature (qa/features.py), fitted on SQuAD *train* questions.

Works offline on scripts/size_abstention.py's saved candidates (--work, default /tmp/q14): each
question's candidate rows, features and labels at 1, 24, 48, 148 and ~490 articles, plus every
sentence's text by row. The focus column is computed from those texts and the documents' titles
with the code qa ships (`qa.retrieve.feature_matrix` computes it the same way online), and written
to a copy of the stages (--out-work) so that scripts/size_table.py reads them unchanged.

Ranker: scripts/fit_ranker.py's listwise fit on the 18,000 train questions asked of the ~490-article
collection (train_own + train_more; their similarities are out-of-sample for the shipped encoder,
which was tuned on dev tune). Answerability: the shipped model, its threshold re-set so that the new
ranker answers the same share of own questions at 24 articles as the shipped ranker does on the same
saved candidates (the tune questions' similarities are in-sample for the encoder, equally for both).

    python scripts/refit_focus.py [--work /tmp/q14] [--out-work /tmp/q14f] [--out qa/ranker.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fit_ranker import fit  # noqa: E402
from fit_ranker_train import recall  # noqa: E402
from size_table import probabilities, question_evidence, stage_documents, stage_groups, table  # noqa: E402
from qa.features import focus  # noqa: E402
from qa.lexical import query_terms, tokenize  # noqa: E402
from qa.retrieve import FEATURES  # noqa: E402

BASE = [f for f in FEATURES if f != "focus"]  # the shipped ranker's features, in order


def titles(work: Path) -> dict[int, set[str]]:
    """Document id -> its title's terms (ids are stable across the stages' generations)."""
    big = work / "big"
    gen = (big / "CURRENT").read_text().strip()
    rows = sqlite3.connect(big / gen / "meta.sqlite").execute("select id, title from documents").fetchall()
    return {int(i): set(t) for (i, _), t in zip(rows, tokenize([title or "" for _, title in rows]))}


def with_focus(npz: Path, texts_npz: Path, title_terms: dict[int, set[str]], out: Path) -> None:
    if out.exists():
        return
    data = np.load(npz, allow_pickle=False)
    texts = np.load(texts_npz, allow_pickle=False)["texts"]
    arrays = {k: data[k] for k in data.files if not k.startswith("x")}
    cache: dict[int, set[str]] = {}
    for i, q in enumerate(data["questions"]):
        X, d, r = data[f"x{i}"], data[f"d{i}"], data[f"r{i}"]
        f = np.zeros(len(r), np.float32)
        if len(r):
            for row in r:
                if int(row) not in cache:
                    cache[int(row)] = set(tokenize([str(texts[int(row)])])[0])
            f = focus(set(query_terms(str(q))), [cache[int(row)] for row in r], d, [title_terms.get(int(doc), set()) for doc in d])
        arrays[f"x{i}"] = np.hstack([X, f[:, None]]).astype(np.float32)
    arrays["features"] = np.array(FEATURES)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)


def augment(work: Path, out_work: Path) -> None:
    title_terms = titles(work)
    for stage in sorted(work.glob("size*")):
        for npz in sorted(stage.glob("*.npz")):
            if npz.name.startswith("texts"):
                continue
            suffix = npz.stem[-2:] if stage.name == "size1" else ""
            with_focus(npz, stage / f"texts{suffix}.npz", title_terms, out_work / stage.name / npz.name)
        for extra in ("info.txt", "done"):
            if (stage / extra).exists() and not (out_work / stage.name / extra).exists():
                (out_work / stage.name / extra).write_text((stage / extra).read_text())
        print(f"{stage.name} done", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--out-work", type=Path, default=Path("/tmp/q14f"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    augment(args.work, args.out_work)
    shipped = json.loads((ROOT / "qa/ranker.json").read_text())
    if "focus" in shipped["features"]:
        raise SystemExit("qa/ranker.json already has focus: compare against the ranker it replaced (git show)")
    base_cols = list(range(len(BASE)))
    train = [g[:3] for g in stage_groups(args.out_work, "490", "train_own") + stage_groups(args.out_work, "490", "train_more")]
    half = np.arange(len(train)) >= len(train) // 2  # questions are in article order: halves by article
    report: dict = {"fitted_on": len(train)}
    for name, cols in (("train-fitted, shipped features", base_cols), ("train-fitted + focus", list(range(len(FEATURES))))):
        sel = lambda g: [(X[:, cols], y, d) for X, y, d, *_ in g]  # noqa: E731
        data = sel(train)
        cv = []
        for h in (False, True):
            w, b = fit([q for q, s in zip(data, half) if s != h])
            cv.append(recall([q for q, s in zip(data, half) if s == h], w, b)["R@1"])
        w, b = fit(data)
        report[name] = {"train_cv_R@1": round(float(np.mean(cv)), 4),
                        **{f"tune_{s}": recall(sel(stage_groups(args.out_work, s, "own")), w, b) for s in ("24", "48", "490")}}
        print(name, report[name], flush=True)
    ws = np.asarray(shipped["weights"])
    report["shipped"] = {f"tune_{s}": recall([(X[:, base_cols], y, d) for X, y, d, *_ in stage_groups(args.out_work, s, "own")], ws, shipped["bias"])
                         for s in ("24", "48", "490")}
    print("shipped", report["shipped"], flush=True)
    # the new ranker: all features, answerability as shipped, threshold re-set (see the docstring)
    own24 = stage_groups(args.out_work, "24", "own")
    aw, ab = np.asarray(shipped["answerability_weights"]), shipped["answerability_bias"]
    named24 = stage_documents(args.out_work, args.work, "24", "own")
    old_p = probabilities(question_evidence([(X[:, base_cols], y, d, r) for X, y, d, r in own24], named24, ws, shipped["bias"])[0], aw, ab)
    share = float((old_p >= shipped["threshold"]).mean())
    new_p = probabilities(question_evidence(own24, named24, w, b)[0], aw, ab)
    threshold = float(np.quantile(new_p, 1 - share))
    ranker = dict(shipped, features=list(FEATURES), weights=[round(float(v), 6) for v in w], bias=round(float(b), 6),
                  threshold=round(threshold, 6))
    ranker["fitted"] = dict(shipped["fitted"], ranker_data=f"SQuAD v1.1 train: {len(train)} questions asked of ~490 articles "
                            "(scripts/size_abstention.py, scripts/train_more.py), similarities out-of-sample for the encoder",
                            ranker_script="scripts/refit_focus.py", threshold_rule=f"answers the share of own questions at 24 tune "
                            f"articles that the previous ranker answered ({share:.4f})", train_cv_r1=report["train-fitted + focus"]["train_cv_R@1"])
    old_rows = {r["size"]: r for r in table(args.out_work, args.work, dict(shipped, weights=list(ws) + [0.0]))}
    for r in table(args.out_work, args.work, ranker):
        o = old_rows[r["size"]]
        print(f"| {r['size']} | own answered {o['own_answered']:.1%} -> {r['own_answered']:.1%} | foreign declined "
              f"{o['foreign_declined']:.1%} -> {r['foreign_declined']:.1%} | R@1 (declined = wrong) {o['R@1']:.3f} -> {r['R@1']:.3f} |"
              + (f" train own answered {o['train_own_answered']:.1%} -> {r['train_own_answered']:.1%}" if "train_own_answered" in r else ""))
    if args.out:
        args.out.write_text(json.dumps(ranker, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
