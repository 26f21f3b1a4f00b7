"""Score `qa ask --json --top 10 -` (the user's path) on a SQuAD split, like `qa eval` does.

Issue 3 asks that an index built by `qa index` from the articles `qa eval --keep DIR` wrote, and
asked through `qa ask --json -`, give the same figures as `qa eval`. Sources are compared by file
name, since the two indexes may name the articles' folder differently.

    qa eval FILE --split heldout --keep DIR
    qa index DIR/articles --index INDEX
    python scripts/check_user_path.py FILE --split heldout --index INDEX
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.eval import MRR_K, Metrics, Question, load_json, rank_of_first_hit, split_articles, write_articles  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad", type=Path)
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--index", type=Path, required=True, help="an index built by `qa index` from the eval's articles")
    args = ap.parse_args()
    articles = split_articles(load_json(args.squad)["data"], args.split)
    with tempfile.TemporaryDirectory() as tmp:
        questions = [q for q in write_articles(articles, Path(tmp)) if q.answerable and q.spans]
    stdin = "".join(q.text.replace("\n", " ") + "\n" for q in questions)
    out = subprocess.run([sys.executable, "-m", "qa", "ask", "--json", "--top", str(MRR_K), "-", "--index", str(args.index)],
                         input=stdin, capture_output=True, text=True, check=True).stdout
    answers = [json.loads(line) for line in out.splitlines()]
    if len(answers) != len(questions):
        sys.exit(f"{len(answers)} answers for {len(questions)} questions")
    ranks = []
    for q, a in zip(questions, answers):
        by_name = Question(q.qid, q.text, Path(q.source).name, q.spans)
        ranks.append(rank_of_first_hit([(Path(s["source"]).name, s["start"], s["end"]) for s in a["sentences"]], by_name))
    declined = sum(not a["answered"] for a in answers)
    print(json.dumps(Metrics.from_ranks("qa ask --json --top 10 -", ranks, declined).row()))


if __name__ == "__main__":
    main()
