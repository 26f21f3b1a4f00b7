"""`qa eval` on small slices of the real SQuAD v1.1/v2.0 dev sets and SelQA test set."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import REPO, run_qa, seed_models

SHARED = REPO.parent / "shared" / "data"
SQUAD1 = SHARED / "squad" / "dev-v1.1.json.gz"
SQUAD2 = SHARED / "squad" / "dev-v2.0.json.gz"
SELQA = SHARED / "selqa" / "selqa-ass-test.json.gz"

pytestmark = pytest.mark.skipif(not SQUAD1.exists(), reason="../shared/data is not beside the repo")


def squad_slice(src: Path, dst: Path, articles: int = 4, paragraphs: int = 3) -> dict:
    data = json.load(gzip.open(src))
    small = {"version": data["version"], "data": [
        {"title": a["title"], "paragraphs": a["paragraphs"][:paragraphs]} for a in data["data"][:articles]
    ]}
    with gzip.open(dst, "wt", encoding="utf-8") as f:
        json.dump(small, f)
    return small


def run_eval(tmp_path: Path, seed_index: Path, *args: str) -> dict:
    keep = tmp_path / "scratch"
    seed_models(seed_index, keep / "index")  # skip the 15 s model export
    proc = run_qa("eval", *args, "--keep", str(keep), "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def questions_in(data: dict, answerable: bool = True) -> int:
    return sum(1 for a in data["data"] for p in a["paragraphs"] for q in p["qas"]
               if (not q.get("is_impossible", False)) == answerable)


def test_squad_v1_all_systems_and_sane_metrics(tmp_path, seed_index):
    small = squad_slice(SQUAD1, tmp_path / "v1.json.gz")
    report = run_eval(tmp_path, seed_index, str(tmp_path / "v1.json.gz"), "--split", "all", "--baselines")
    assert report["articles"] == 4
    assert report["questions"] == questions_in(small)
    names = [s["system"] for s in report["systems"]]
    assert names == ["qa (shipped)", "BM25 over sentences", "dense over sentences"]
    for s in report["systems"]:
        assert 0 <= s["R@1"] <= s["R@3"] <= s["R@5"] <= 1
        assert s["R@1"] <= s["MRR@10"] <= 1
    shipped = report["systems"][0]
    # 12 paragraphs of real text: the right sentence is found for most questions.
    assert shipped["R@5"] > 0.7, shipped
    assert shipped["abstained"] < 0.1, shipped


def test_splits_are_even_and_odd_articles(tmp_path, seed_index):
    small = squad_slice(SQUAD1, tmp_path / "v1.json.gz", articles=4, paragraphs=2)
    tune = run_eval(tmp_path / "t", seed_index, str(tmp_path / "v1.json.gz"), "--split", "tune", "--foreign")
    even = {"version": "1.1", "data": small["data"][0::2]}
    odd = {"version": "1.1", "data": small["data"][1::2]}
    assert tune["articles"] == 2 and tune["questions"] == questions_in(even)
    assert tune["foreign"]["questions"] == questions_in(odd)
    for key in ("own_answered", "foreign_declined", "auroc"):
        assert 0 <= tune["foreign"][key] <= 1


def test_squad_v2_reports_answerability(tmp_path, seed_index):
    small = squad_slice(SQUAD2, tmp_path / "v2.json.gz", articles=2, paragraphs=3)
    report = run_eval(tmp_path, seed_index, str(tmp_path / "v2.json.gz"), "--split", "all")
    assert report["questions"] == questions_in(small, answerable=True)
    ans = report["answerability"]
    assert ans["unanswerable"] == questions_in(small, answerable=False) > 0
    assert 0 <= ans["accuracy"] <= 1 and 0 <= ans["auroc"] <= 1


def test_eval_figures_equal_the_cli_path(tmp_path, seed_index):
    """`qa index` + `qa ask --json - --top 10` on the written articles gives eval's R@1 exactly."""
    squad_slice(SQUAD1, tmp_path / "v1.json.gz", articles=2, paragraphs=2)
    report = run_eval(tmp_path, seed_index, str(tmp_path / "v1.json.gz"), "--split", "all")
    from qa.eval import load_json, rank_of_first_hit, write_articles

    articles = tmp_path / "scratch" / "articles"
    questions = [q for q in write_articles(load_json(tmp_path / "v1.json.gz")["data"], tmp_path / "again")
                 if q.answerable and q.spans]
    index = tmp_path / "cli-index"
    seed_models(seed_index, index)
    assert run_qa("index", str(articles), "--index", str(index)).returncode == 0
    proc = run_qa("ask", "--json", "--top", "10", "--index", str(index), "-", stdin="\n".join(q.text for q in questions) + "\n")
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(answers) == len(questions)
    hits = 0
    for q, a in zip(questions, answers):
        source = (articles / Path(q.source).name).as_posix()
        ranked = [(s["source"], s["start"], s["end"]) for s in a["sentences"]]
        q.source = source
        hits += rank_of_first_hit(ranked, q) == 1
    assert hits / len(questions) == pytest.approx(report["systems"][0]["R@1"], abs=1e-4)


def test_selqa_ranks_given_candidates(tmp_path, seed_index):
    data = json.load(gzip.open(SELQA))[:15]
    path = tmp_path / "selqa.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(data, f)
    report = run_eval(tmp_path, seed_index, "--format", "selqa", str(path))
    assert report["questions"] == 15
    assert [s["system"] for s in report["systems"]] == ["qa (shipped)", "BM25 over sentences", "dense over sentences"]
    for s in report["systems"]:
        assert s["questions"] == 15
        assert 0 < s["P@1"] <= s["MRR"] <= 1 and 0 < s["MAP"] <= 1


def test_eval_bad_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_qa("eval", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("qa: error:") and "bad.json" in proc.stderr
