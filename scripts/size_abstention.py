"""Issue 14: does the answer decision mean the same at 1, 24, 48, ~150 and ~490 articles?

Collections (each built with the normal `build`, candidates from the normal `candidates`):
- size 1: each SQuAD v1.1 dev *tune* article alone (24 one-article indexes);
- size 24: the 24 tune articles (data[0::2]);
- size 48: all 48 dev articles (the held-out articles' text is only a distractor here: none of
  their questions is asked);
- size ~150: the 48 dev articles plus the first 100 indexed train articles;
- size ~490: the 48 dev articles plus every train article except the reserved ones.
Own questions: the tune questions (at size 1, each article's own). Foreign questions: questions
of 20 *train* articles that are never indexed (train[7::22]), so the held-out split is never asked.
At the largest size a sample of train questions about indexed train articles is asked too, as
train-scale data for refitting (their candidates, labels and documents are saved).

Per question the candidates' features, gold labels and document ids are saved (npz, the layout
of scripts/fit_ranker.py's `collect`), so that any ranker / answerability model / threshold can be
re-scored offline. Stages are resumable: a stage whose npz exists is skipped.

    python scripts/size_abstention.py [--work /tmp/q14] [--stages 24,1,48,150,490]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from qa.lexical import TERMS_VERSION  # noqa: E402
from qa.retrieve import FEATURES, candidates  # noqa: E402
from qa.build import build  # noqa: E402
from qa.eval import load_json, write_articles  # noqa: E402
from qa.index import Index  # noqa: E402

DEV = ROOT.parent / "shared/data/squad/dev-v1.1.json.gz"
TRAIN = ROOT.parent / "shared/data/squad-train/train-v1.1-explorer.json.gz"
RESERVED = slice(7, None, 22)  # train articles whose questions are the foreign ones; never indexed
FOREIGN_N = 1500
FOREIGN_PER_ONE = 100  # foreign questions per one-article index
TRAIN_OWN_N = 6000


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def collect(index: Index, questions, cache: Path) -> None:
    """fit_ranker.collect's layout (x, y, d per question) plus each candidate's sentence row (r)."""
    if cache.exists():
        return
    arrays = {}
    for lo in range(0, len(questions), 256):
        batch = questions[lo : lo + 256]
        vecs = index.encoder.encode([q.text for q in batch])
        for i, (q, v) in enumerate(zip(batch, vecs), lo):
            c = candidates(index, v, q.text)
            arrays[f"x{i}"], arrays[f"d{i}"], arrays[f"r{i}"] = c.features, c.docs, c.rows
            arrays[f"y{i}"] = np.array([q.overlaps(m.source, m.start, m.end) for m in c.meta])
    np.savez(cache, n=len(questions), features=np.array(FEATURES), terms=TERMS_VERSION,
             questions=np.array([q.text for q in questions]), **arrays)


def save_texts(index: Index, path: Path) -> None:
    """Every sentence's text by row (rows are this generation's), for text features offline."""
    metas = index.sentences_at(range(index.sentence_count))
    np.savez_compressed(path, texts=np.array([m.text for m in metas]), docs=np.array([m.doc for m in metas]))


def every(items: list, n: int) -> list:
    step = max(1, len(items) // n)
    return items[::step][:n]


def question_sets(w: Path) -> tuple[list, list, list, list]:
    """Write the stages' article folders under `w` (the same names and offsets every time) and
    return (own, foreign, train_a, train_b): the dev tune questions; 1,500 questions of the
    reserved train articles; the questions of the first 100 indexed train articles and of the rest."""
    w.mkdir(parents=True, exist_ok=True)
    dev = load_json(DEV)["data"]
    train = load_json(TRAIN)["data"]
    reserved_idx = set(range(len(train))[RESERVED])
    reserved = [a for i, a in enumerate(train) if i in reserved_idx]
    indexed_train = [a for i, a in enumerate(train) if i not in reserved_idx]
    own = [q for q in write_articles(dev[0::2], w / "tune") if q.spans]
    write_articles(dev[1::2], w / "held")  # distractor text only; its questions are discarded
    foreign = every([q for q in write_articles(reserved, w / "foreign_articles") if q.spans], FOREIGN_N)
    train_a = write_articles(indexed_train[:100], w / "train_a")
    train_b = write_articles(indexed_train[100:], w / "train_b")
    log(f"own {len(own)}, foreign {len(foreign)} (from {len(reserved)} reserved train articles), "
        f"indexed train articles {len(indexed_train)}")
    return own, foreign, train_a, train_b


def stage_arguments() -> argparse.Namespace:
    """--work (where the stages' articles, indexes and results live) and --stages (the collection
    sizes, in the order they are built)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/q14"))
    ap.add_argument("--stages", default="24,1,48,150,490")
    return ap.parse_args()


def main() -> None:
    args = stage_arguments()
    w = args.work
    own, foreign, train_a, train_b = question_sets(w)
    big = w / "big"

    def stage(name: str, folders: list[Path], extra: dict | None = None) -> None:
        out = w / f"size{name}"
        if (out / "done").exists():
            log(f"size {name}: done before")
            return
        out.mkdir(exist_ok=True)
        t = time.time()
        rep = build(big, folders)
        idx = Index.open(big)
        log(f"size {name}: indexed in {time.time() - t:.0f} s, {idx.sentence_count} sentences, {len(idx.articles())} articles")
        save_texts(idx, out / "texts.npz")
        (out / "info.txt").write_text(f"sentences {idx.sentence_count}\narticles {len(idx.articles())}\nindex_seconds {time.time() - t:.0f}\nnew {rep.sentences}\n")
        for label, qs in {"own": own, "foreign": foreign, **(extra or {})}.items():
            t = time.time()
            collect(idx, qs, out / f"{label}.npz")
            log(f"size {name}: {label} {len(qs)} questions in {time.time() - t:.0f} s")
        (out / "done").write_text("")

    for s in args.stages.split(","):
        if s == "24":
            stage("24", [w / "tune"])
            if not (w / "idx24").exists():
                shutil.copytree(big, w / "idx24")
        elif s == "1":
            out = w / "size1"
            out.mkdir(exist_ok=True)
            by_source: dict[str, list] = {}
            for q in own:
                by_source.setdefault(q.source, []).append(q)
            for i, (source, qs) in enumerate(sorted(by_source.items())):
                if (out / f"own{i:02d}.npz").exists():
                    continue
                folder = w / "one" / f"{i:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                # the same file path as in the tune folder, so gold spans match: index a link's parent
                link = folder / Path(source).name
                if not link.exists():
                    link.write_text(Path(source).read_text())
                build(w / "one_idx" / f"{i:02d}", [folder])
                idx = Index.open(w / "one_idx" / f"{i:02d}")
                mine = [type(q)(q.qid, q.text, link.as_posix(), q.spans) for q in qs]
                fq = foreign[(i * FOREIGN_PER_ONE) % len(foreign):][:FOREIGN_PER_ONE]
                save_texts(idx, out / f"texts{i:02d}.npz")
                collect(idx, fq, out / f"foreign{i:02d}.npz")
                collect(idx, mine, out / f"own{i:02d}.npz")
                log(f"size 1: article {i} ({len(mine)} own) done")
        elif s == "48":
            stage("48", [w / "tune", w / "held"])
        elif s == "150":
            stage("150", [w / "tune", w / "held", w / "train_a"])
        elif s == "490":
            sample = every([q for q in train_a + train_b if q.spans], TRAIN_OWN_N)
            stage("490", [w / "tune", w / "held", w / "train_a", w / "train_b"], {"train_own": sample})


if __name__ == "__main__":
    main()
