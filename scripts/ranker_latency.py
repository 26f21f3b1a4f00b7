"""Warm `Bot.ask` latency of several rankers (qa/ranker.json variants) on one index, in the same
process, alternating question by question (the first to ask turns), so that a busy machine slows
them alike.

Each RANKER is a ranker.json path, `git:REV` (qa/ranker.json at that revision) or `shipped`,
optionally followed by field overrides: `shipped,rerank_margin=1.5,rerank_within=none`.

    python scripts/ranker_latency.py --index /tmp/ce/tune-g6/index git:174901a~1 shipped shipped,rerank_margin=1.5

Questions: every 18th question of the dev tune split (the first 300), the first 20 asked once by
every ranker before timing (the reranker's session loads on first use).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import Bot  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.retrieve import Ranker  # noqa: E402


def load_ranker(spec: str) -> Ranker:
    source, *overrides = spec.split(",")
    if source == "shipped":
        ranker = Ranker.default()
    elif source.startswith("git:"):
        text = subprocess.run(["git", "show", f"{source[4:]}:qa/ranker.json"], capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout
        ranker = Ranker(**json.loads(text))
    else:
        ranker = Ranker.load(Path(source))
    changes = {}
    for item in overrides:
        name, value = item.split("=")
        changes[name] = None if value.lower() == "none" else type(getattr(ranker, name) or 0.0)(value)
    return dataclasses.replace(ranker, **changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rankers", nargs="+", metavar="RANKER")
    ap.add_argument("--index", type=Path, required=True, help="an index of the 24 dev tune articles")
    ap.add_argument("--squad", type=Path, default=ROOT.parent / "shared/data/squad/dev-v1.1.json.gz")
    ap.add_argument("--questions", type=int, default=300)
    args = ap.parse_args()
    index = Index.open(args.index)
    bots = {spec: Bot(index, load_ranker(spec)) for spec in args.rankers}
    tune = json.load(gzip.open(args.squad, "rt"))["data"][0::2]
    questions = [q["question"] for a in tune for p in a["paragraphs"] for q in p["qas"]][::18][: args.questions]
    for bot in bots.values():
        for q in questions[:20]:
            bot.ask(q)
    times: dict[str, list[float]] = {spec: [] for spec in bots}
    specs = list(bots)
    for i, q in enumerate(questions):
        # Whoever asks a question first pays more (4-5 ms at the median here: the later asks of the
        # same question find warmer caches), so the first asker turns with each question.
        for spec in specs[i % len(specs):] + specs[: i % len(specs)]:
            bot = bots[spec]
            t0 = time.perf_counter()
            bot.ask(q)
            times[spec].append((time.perf_counter() - t0) * 1000)
    for spec, ms in times.items():
        print(f"{spec}: p50 {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms, mean {np.mean(ms):.1f} ms ({len(ms)} questions)")


if __name__ == "__main__":
    main()
