"""The shipped conversational tune set, and `qa eval --format conversations` on a small slice of it."""

from __future__ import annotations

import collections
import gzip
import json

import pytest

from conftest import REPO, run_qa, seed_models

SQUAD1 = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"
CONVERSATIONS = REPO / "scripts" / "data" / "conversations_tune.json"

pytestmark = pytest.mark.skipif(not SQUAD1.exists(), reason="../shared/data is not beside the repo")


def article_text(art: dict) -> str:  # as qa.eval.write_articles writes it
    return "\n\n".join([art["title"].replace("_", " ")] + [p["context"] for p in art["paragraphs"]]) + "\n"


def test_shipped_set_is_tune_only_with_every_kind_and_unique_answers():
    data = json.load(gzip.open(SQUAD1))["data"]
    tune = {a["title"].replace("_", " "): article_text(a) for a in data[0::2]}
    held_out = {a["title"].replace("_", " ") for a in data[1::2]}
    convs = json.loads(CONVERSATIONS.read_text())["conversations"]
    assert len(convs) >= 150 and all(len(c["turns"]) == 3 for c in convs)
    kinds = collections.Counter(t["kind"] for c in convs for t in c["turns"])
    assert set(kinds) == {"first", "person", "thing", "ellipsis", "answer", "switch"} and min(kinds.values()) >= 30, kinds
    for c in convs:
        assert c["turns"][0]["kind"] == "first"
        for t in c["turns"]:
            assert t["article"] in tune and t["article"] not in held_out
            assert tune[t["article"]].count(t["answer"]) == 1, t
            if t["kind"] in ("first", "switch"):
                assert t["question"] == t["standalone"]
            else:
                assert t["question"] != t["standalone"]
        assert all(t["article"] != c["turns"][0]["article"] for t in c["turns"] if t["kind"] == "switch")


def test_eval_conversations_through_chat(tmp_path, seed_index):
    raw = json.loads(CONVERSATIONS.read_text())
    by_kind = {}
    for c in raw["conversations"]:  # one conversation per second-turn kind, small articles
        by_kind.setdefault(c["turns"][1]["kind"], c)
    convs = list(by_kind.values())
    titles = {t["article"] for c in convs for t in c["turns"]}
    answers = [t["answer"] for c in convs for t in c["turns"]]
    data = json.load(gzip.open(SQUAD1))["data"][0::2]
    # Only the paragraphs holding an answer: each answer still occurs exactly once in its article.
    small = {"data": [{"title": a["title"], "paragraphs": [p for p in a["paragraphs"] if any(x in p["context"] for x in answers)]}
                      for a in data if a["title"].replace("_", " ") in titles]}
    with gzip.open(tmp_path / "slice.json.gz", "wt", encoding="utf-8") as f:
        json.dump(small, f)
    (tmp_path / "convs.json").write_text(json.dumps({"squad": "slice.json.gz", "split": "all", "conversations": convs}))
    keep = tmp_path / "scratch"
    seed_models(seed_index, keep / "index")
    proc = run_qa("eval", "--format", "conversations", str(tmp_path / "convs.json"), "--keep", str(keep), "--json", timeout=600)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["conversations"] == len(convs) and report["turns"] == 3 * len(convs)
    rows = {r["kind"]: r for r in report["kinds"]}
    assert set(rows) == {"first", "person", "thing", "ellipsis", "answer", "switch", "all follow-ups"}
    assert rows["all follow-ups"]["turns"] == len(convs)
    for r in rows.values():
        for k in ("chat", "alone", "standalone"):
            assert 0 <= r[f"{k} R@1"] <= r[f"{k} R@3"] <= 1
    # first turns and topic switches go through chat exactly as `qa ask` would
    assert rows["first"]["same as qa ask"] == 1.0 and rows["first"]["context used"] == 0.0
    assert rows["switch"]["same as qa ask"] == 1.0 and rows["switch"]["context used"] == 0.0
    assert rows["all follow-ups"]["context used"] > 0.5
    # the standalone rewrites of this slice are answered (a sanity check of the spans)
    assert rows["all follow-ups"]["standalone R@3"] >= 0.5


def test_eval_conversations_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"conversations": []}))
    proc = run_qa("eval", "--format", "conversations", str(bad))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("qa: error: ") and "not a conversations file" in proc.stderr
