"""Sentence-boundary precision/recall/F1 of qa's splitter and alternatives on the news test set.

    python scripts/segmentation_f1.py            # table of every splitter that is installed
    python scripts/segmentation_f1.py --build    # rewrite tests/data/segmentation.jsonl from the source
    python scripts/segmentation_f1.py --check    # the check set, written after qa's rules were fixed

The set (tests/data/segmentation_source.txt, hand-written, see tests/data/README.md) holds short
news documents; gold sentences are marked there. A boundary is the end offset of a sentence (its
last non-space character + 1), the end of the document excluded. Every splitter gets the same
paragraphs (qa.chunk.paragraphs: one per line, hard-wrapped lines joined) and splits each one;
only the sentence splitter differs. The alternatives (`pip install -e ".[segmentation]"`: pysbd,
syntok, sentencex) need no model download; a missing one is left out of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCE = ROOT / "tests/data/segmentation_source.txt"
DATA = ROOT / "tests/data/segmentation.jsonl"
CHECK_SOURCE = ROOT / "tests/data/segmentation_check_source.txt"
CHECK_DATA = ROOT / "tests/data/segmentation_check.jsonl"
MARK = "¦"


def build_items(source: Path = SOURCE) -> list[dict]:
    """Documents with exact gold spans from the marked source."""
    body = source.read_text(encoding="utf-8").split("\n===\n", 1)[1]
    items = []
    for n, block in enumerate(body.strip("\n").split("\n===\n")):
        text, spans = "", []
        for i, line in enumerate(block.strip("\n").split("\n")):
            if i:
                text += "\n"
            for j, sentence in enumerate(line.split(MARK)):
                if j:
                    text += " "
                spans.append([len(text), len(text) + len(sentence)])
                text += sentence
        items.append({"id": n, "text": text + "\n", "sentences": spans})
    return items


def load(path: Path = DATA) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


Splitter = Callable[[str], list[str]]  # paragraph text -> sentence strings, in order


def _locate(para: str, pieces: list[str]) -> list[tuple[int, int]]:
    out, cursor = [], 0
    for piece in pieces:
        core = piece.strip()
        at = para.find(core, cursor) if core else -1
        if at >= 0:
            out.append((at, at + len(core)))
            cursor = at + len(core)
    return out


def splitters() -> dict[str, Callable[[str, int, int], list[tuple[int, int]]]]:
    """name -> f(text, start, end) giving sentence spans in text[start:end]."""
    from qa.chunk import split_sentences

    found: dict[str, Callable[[str, int, int], list[tuple[int, int]]]] = {"qa now (BlingFire + qa rules)": split_sentences}

    def wrap(fn: Splitter):
        return lambda text, s, e: [(s + a, s + b) for a, b in _locate(text[s:e], fn(text[s:e]))]

    try:
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False)
        found["pysbd 0.3.4 alone"] = wrap(seg.segment)
        # qa up to 4911067: pysbd on a copy with straight quotes, a lone closing quote kept with its sentence
        straight = str.maketrans("‘’‚‛“”„‟", "\'\'\'\'\"\"\"\"")

        def before(para: str) -> list[str]:
            pieces = [p.strip() for p in seg.segment(para.translate(straight)) if p.strip()]
            out: list[str] = []
            for p in pieces:
                if out and not any(ch.isalnum() for ch in p):
                    out[-1] += p
                else:
                    out.append(p)
            return out

        found["qa before (pysbd + qa fixes, 4911067)"] = lambda text, s, e: [
            (s + a, s + b) for a, b in _locate(text[s:e].translate(straight), before(text[s:e]))]
    except ImportError:
        pass
    try:
        from syntok import segmenter as syntok_seg

        def syntok_split(para: str) -> list[str]:
            return ["".join(t.spacing + t.value for t in sent).strip() for p in syntok_seg.analyze(para) for sent in p]

        found["syntok"] = wrap(syntok_split)
    except ImportError:
        pass
    try:
        from sentencex import segment

        found["sentencex"] = wrap(lambda para: list(segment("en", para)))
    except ImportError:
        pass
    try:
        import blingfire

        found["blingfire 0.1.8 alone"] = lambda text, s, e: [(s + a, s + b) for a, b in blingfire.text_to_sentences_and_offsets(text[s:e])[1]]
    except ImportError:
        pass
    return found


def boundaries(item: dict, split) -> tuple[set[int], set[int]]:
    from qa.ingest import _plain_document
    from qa.chunk import paragraphs

    text = item["text"]
    end = len(text.rstrip())
    doc = _plain_document("x.txt", "x.txt", text, markdown=False)
    predicted = {e for _, ps, pe in paragraphs(doc) for _, e in split(text, ps, pe)}
    gold = {e for _, e in item["sentences"]}
    return predicted - {end}, gold - {end}


def score(items: list[dict], split) -> dict:
    tp = fp = fn = 0
    errors = []
    for item in items:
        pred, gold = boundaries(item, split)
        tp, fp, fn = tp + len(pred & gold), fp + len(pred - gold), fn + len(gold - pred)
        text = item["text"]
        errors += [("extra", text[max(0, b - 30) : b + 20]) for b in sorted(pred - gold)]
        errors += [("missed", text[max(0, b - 30) : b + 20]) for b in sorted(gold - pred)]
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "boundaries": tp + fn, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="store_true", help="rewrite the .jsonl from the marked source first")
    ap.add_argument("--errors", action="store_true", help="list each wrong boundary")
    ap.add_argument("--check", action="store_true", help="score the check set (written after the rules) instead")
    args = ap.parse_args()
    source, data = (CHECK_SOURCE, CHECK_DATA) if args.check else (SOURCE, DATA)
    if args.build:
        data.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in build_items(source)), encoding="utf-8")
    items = load(data)
    print(f"{len(items)} documents, {sum(len(i['sentences']) for i in items)} sentences")
    print("| splitter | precision | recall | F1 | boundaries |")
    print("|---|---:|---:|---:|---:|")
    for name, split in splitters().items():
        s = score(items, split)
        print(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['boundaries']} |")
        if args.errors:
            for kind, context in s["errors"]:
                print(f"    {kind}: {context!r}")


if __name__ == "__main__":
    main()
