"""`qa index`: first build, no-op update, summaries, --rebuild, explicit files."""

from __future__ import annotations

import re
import shutil

from conftest import CORPUS_FIXTURES, REPO, SEED, assert_clean_error, json_lines, run_qa, tree_bytes
from qa.index import Index


def test_first_build_report(seed_build):
    r = seed_build.report
    n = Index.open(seed_build.path).sentence_count
    assert (r["documents"], r["added"], r["changed"], r["removed"], r["unchanged"]) == (1, 1, 0, 0, 0)
    assert r["sentences"] == n >= 15
    assert r["embedded"] >= n  # every sentence, plus the passages that are not single sentences
    assert r["generation"] == "gen-000001" and r["warnings"] == []
    assert (seed_build.path / "CURRENT").read_text() == "gen-000001\n"
    assert seed_build.stderr == ""  # no progress noise when stderr is not a terminal
    # Remembered by absolute path (found from any folder), sources named as the user named it.
    assert Index.open(seed_build.path).manifest["roots"] == [{"path": str(REPO / "seeds"), "name": "seeds"}]


def test_update_without_changes_is_a_no_op(seed_copy):
    before = tree_bytes(seed_copy)
    proc = run_qa("index", "--index", str(seed_copy))  # no paths: the folders indexed before
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rf"Index at {re.escape(str(seed_copy))} is up to date: 1 article, \d+ sentences \(\d+\.\d\d s\)\.\n", proc.stdout)
    assert tree_bytes(seed_copy) == before


def test_summary_line_of_a_build(new_index, tmp_path):
    corpus = tmp_path / "news"
    corpus.mkdir()
    for name in ("fed_rates.txt", "harbor_port.txt"):
        shutil.copy(CORPUS_FIXTURES / name, corpus / name)
    idx = new_index()
    proc = run_qa("index", str(corpus), "--index", str(idx))
    assert proc.returncode == 0, proc.stderr
    m = re.fullmatch(
        rf"Indexed 2 articles, (\d+) sentences into {re.escape(str(idx))} "
        r"\(2 added, 0 changed, 0 removed, 0 unchanged; (\d+) texts embedded in \d+\.\d s\)\.\n",
        proc.stdout,
    )
    assert m, proc.stdout
    assert int(m.group(1)) == Index.open(idx).sentence_count

    (corpus / "harbor_port.txt").unlink()
    report = json_lines(run_qa("index", "--index", str(idx), "--json").stdout)[0]
    assert (report["removed"], report["unchanged"], report["embedded"]) == (1, 1, 0)


def test_rebuild_replaces_the_generation(seed_copy, seed_index):
    old_texts = sorted(t for (t,) in Index.open(seed_index).db.execute("SELECT text FROM sentences"))
    proc = run_qa("index", "--rebuild", "--index", str(seed_copy), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json_lines(proc.stdout)[0]
    assert report["generation"] == "gen-000002" and report["added"] == 1
    assert sorted(p.name for p in seed_copy.iterdir() if p.name.startswith("gen-")) == ["gen-000002"]
    index = Index.open(seed_copy)
    assert sorted(t for (t,) in index.db.execute("SELECT text FROM sentences")) == old_texts
    assert [s for (s,) in index.db.execute("SELECT DISTINCT source FROM documents")] == [SEED]


def test_explicit_files_and_unsupported_ones(new_index, tmp_path):
    article = tmp_path / "story.md"
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", article)
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.7 not an article")
    idx = new_index()
    proc = run_qa("index", str(article), str(pdf), "--index", str(idx), "--json")
    assert proc.returncode == 0, proc.stderr
    assert f"qa: warning: skipped {pdf}: unsupported file type .pdf" in proc.stderr.splitlines()
    report = json_lines(proc.stdout)[0]
    assert report["documents"] == 1
    assert [k for (k,) in Index.open(idx).db.execute("SELECT key FROM documents")] == [str(article)]


def test_only_unreadable_files_is_an_error(new_index, tmp_path):
    corpus = tmp_path / "bad"
    corpus.mkdir()
    shutil.copy(CORPUS_FIXTURES / "archive_blob.txt", corpus / "blob.txt")
    shutil.copy(CORPUS_FIXTURES / "latin1_cafe.txt", corpus / "cafe.txt")
    idx = new_index()
    proc = run_qa("index", str(corpus), "--index", str(idx))
    line = assert_clean_error(proc)
    assert "no readable articles" in line and "nothing was indexed" in line
    assert f"skipped {corpus}/blob.txt: binary file" in proc.stderr
    assert f"skipped {corpus}/cafe.txt: not UTF-8 text" in proc.stderr
    assert not (idx / "CURRENT").exists()


def test_index_with_older_word_matching_warns_on_ask_and_is_updated_by_qa_index(seed_copy):
    import json

    manifest_file = Index.open(seed_copy).folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["terms"]  # as written by a qa before the terms version existed
    manifest_file.write_text(json.dumps(manifest))
    ask = run_qa("ask", "Who led the talks?", "--index", str(seed_copy))
    assert ask.returncode == 0 and "run `qa index` to update it" in ask.stderr
    update = run_qa("index", "--index", str(seed_copy))
    assert update.returncode == 0, update.stderr
    assert " 0 texts embedded" in update.stdout, update.stdout
    again = run_qa("ask", "Who led the talks?", "--index", str(seed_copy))
    assert again.returncode == 0 and again.stderr == ""
