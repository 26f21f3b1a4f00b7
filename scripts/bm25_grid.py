"""Choose BM25's k1 and b on the SQuAD tune split: 2-fold CV of the whole ranker per setting.

Reuses the out-of-fold indexes of `scripts/fit_ranker.py --cross-fit ... --work DIR` (run that
first): for each "k1,b" given, every tune half's BM25 is rebuilt with those parameters beside the
index (DIR/bm25-grid/), the ranker's features are recomputed, a ranker is fitted on one half and
scored on the other, and R@1, R@5 and MRR@10 are printed. The held-out split is never read. The
shipped values are `qa.lexical.K1, B`; the grid measured is in BENCHMARKS.md.

    python scripts/bm25_grid.py --work /tmp/qa-fit6 1.5,0.75 0.5,0.4 0.2,0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import fit_ranker as fr  # noqa: E402
from qa.eval import load_json  # noqa: E402
from qa.lexical import Bm25  # noqa: E402


def metrics(groups, w, b) -> np.ndarray:
    """(R@1, R@5, MRR@10) of a linear ranker over the questions' candidates."""
    r1 = r5 = mrr = 0.0
    for X, y, _ in groups:
        order = np.argsort(-(X @ w + b), kind="stable")[:10]
        hits = np.nonzero(y[order])[0]
        if len(hits):
            r = hits[0]
            r1, r5, mrr = r1 + (r == 0), r5 + (r < 5), mrr + 1 / (r + 1)
    return np.array([r1, r5, mrr]) / len(groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/data/squad/dev-v1.1.json.gz")
    ap.add_argument("--work", type=Path, required=True, help="the --work folder of fit_ranker.py --cross-fit")
    ap.add_argument("settings", nargs="+", metavar="K1,B")
    args = ap.parse_args()
    if not all((args.work / half / "index" / "CURRENT").exists() for half in ("xfit_a", "xfit_b")):
        sys.exit(f"no out-of-fold indexes in {args.work}: run scripts/fit_ranker.py --cross-fit DIR --work {args.work} first")
    tune = load_json(args.squad)["data"][0::2]  # the tune split only
    halves = [fr.indexed(args.work, "xfit_a", tune[0::2]), fr.indexed(args.work, "xfit_b", tune[1::2])]
    for setting in args.settings:
        k1, b = map(float, setting.split(","))
        groups = []
        for (index, questions), half in zip(halves, "ab"):
            texts = [t for (t,) in index.db.execute("SELECT text FROM sentences ORDER BY row")]
            index.__dict__["bm25"] = Bm25.in_memory(texts, k1, b)  # replaces the index's own, in memory only
            groups.append(fr.collect(index, questions))
        ga, gb = groups
        (wa, ba), (wb, bb) = fr.fit(ga), fr.fit(gb)
        cv = (metrics(gb, wa, ba) * len(gb) + metrics(ga, wb, bb) * len(ga)) / (len(ga) + len(gb))
        print(f"k1 {k1:g}, b {b:g}: CV R@1 {cv[0]:.4f}  R@5 {cv[1]:.4f}  MRR@10 {cv[2]:.4f}", flush=True)


if __name__ == "__main__":
    main()
