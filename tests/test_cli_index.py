"""`qa index`: first build, no-op update, summaries, --rebuild, explicit files."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import CORPUS_FIXTURES, REPO, SEED, assert_clean_error, json_lines, own_export, run_qa, tree_bytes
from qa.index import Index


def test_first_build_report(seed_build):
    r = seed_build.report
    n = Index.open(seed_build.path).sentence_count
    assert (r["documents"], r["added"], r["changed"], r["removed"], r["unchanged"]) == (1, 1, 0, 0, 0)
    assert r["sentences"] == n >= 15
    # Every distinct text embedded exactly once: the sentences, plus passages that are not one sentence.
    db = Index.open(seed_build.path).db
    texts = {t for (t,) in db.execute("SELECT text FROM sentences")}
    texts |= {d[s:e] for d, s, e in db.execute('SELECT d.text, p.start, p."end" FROM passages p JOIN documents d ON d.id = p.doc')}
    assert r["embedded"] == len(texts)
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


def test_progress_lines_when_stderr_is_not_a_terminal(new_index, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"story{i}.txt").write_text(f"Story {i}\n\nThe council met on day {i}. It voted on the budget.\n")
    proc = run_qa("index", str(corpus), "--index", str(new_index()), QA_PROGRESS_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("qa: Embedding ")]
    assert lines and all(re.fullmatch(r"qa: Embedding \d+/\d+", line) for line in lines), proc.stderr
    proc = run_qa("index", str(corpus), "--index", str(new_index("quiet")))  # default interval (5 s): no line
    assert "qa: Embedding" not in proc.stderr


def test_version():
    proc = run_qa("--version")
    assert proc.returncode == 0 and re.fullmatch(r"qa \d+\.\d+\.\d+\S*\n", proc.stdout), proc.stdout

# -- never lose a collection ----------------------------------------------------------------------


def _news(folder, *names):
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(CORPUS_FIXTURES / name, folder / name)
    return folder


def test_rebuild_rereads_the_remembered_folders_not_seeds(new_index, tmp_path):
    news = _news(tmp_path / "news", "fed_rates.txt", "harbor_port.txt")
    idx = new_index()
    assert run_qa("index", str(news), "--index", str(idx)).returncode == 0
    proc = run_qa("index", "--rebuild", "--index", str(idx), "--json")  # from the repository root, beside ./seeds
    assert proc.returncode == 0, proc.stderr
    report = json_lines(proc.stdout)[0]
    assert (report["documents"], report["added"]) == (2, 2)
    sources = sorted(s for (s,) in Index.open(idx).db.execute("SELECT source FROM documents"))
    assert sources == [f"{news}/fed_rates.txt", f"{news}/harbor_port.txt"]


def test_remembered_folders_do_not_depend_on_the_current_folder(new_index, tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    _news(here / "news", "fed_rates.txt", "harbor_port.txt")
    _news(elsewhere / "news", "solar_farm.md")  # another folder that happens to have the same name
    idx = new_index()
    assert run_qa("index", "news", "--index", str(idx), cwd=here).returncode == 0
    proc = run_qa("index", "--index", str(idx), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "is up to date: 2 articles" in proc.stdout  # not "1 added, 2 removed"
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", here / "news" / "solar_farm.md")
    report = json_lines(run_qa("index", "--index", str(idx), "--json", cwd=elsewhere).stdout)[0]
    assert (report["added"], report["removed"], report["documents"]) == (1, 0, 3)
    sources = sorted(s for (s,) in Index.open(idx).db.execute("SELECT source FROM documents"))
    assert sources == ["news/fed_rates.txt", "news/harbor_port.txt", "news/solar_farm.md"]  # as the user named them


def test_an_older_index_with_relative_roots_is_migrated_once(new_index, tmp_path):
    """A format-2 manifest (what an older qa wrote: roots relative to its cwd) is rebuilt from the
    folder resolved against the cwd, with a warning, only when the folder exists there."""
    here = tmp_path / "here"
    _news(here / "news", "fed_rates.txt")
    idx = new_index()
    assert run_qa("index", "news", "--index", str(idx), cwd=here).returncode == 0
    manifest_file = Index.open(idx).folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest.update(format=2, roots=["news"])
    manifest_file.write_text(json.dumps(manifest))

    ask = run_qa("ask", "Who leads the Fed?", "--index", str(idx))
    assert "has format 2, this qa reads 4" in assert_clean_error(ask) and "`qa index --rebuild`" in ask.stderr
    lost = run_qa("index", "--index", str(idx), cwd=tmp_path)  # no news/ here: refuse, do not guess
    line = assert_clean_error(lost)
    assert "relative" in line and "`qa index --rebuild FOLDERS`" in line
    proc = run_qa("index", "--index", str(idx), "--json", cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert f"read as {here / 'news'}" in proc.stderr and "older qa" in proc.stderr
    assert Index.open(idx).manifest["roots"] == [{"path": str(here / "news"), "name": "news"}]
    assert json_lines(proc.stdout)[0]["documents"] == 1


def test_every_option_an_index_error_suggests_exists(tmp_path):
    proc = run_qa("index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "idx"))
    line = assert_clean_error(proc)
    accepted = run_qa("index", "--help").stdout
    for option in re.findall(r"--[a-z][a-z-]*", line):
        assert option in accepted, (option, line)


@pytest.mark.parametrize("damage", ["emptied model", "truncated ids"])
def test_qa_index_checks_the_live_generation_as_qa_ask_does(damage, seed_copy):
    gen = Index.open(seed_copy).folder
    if damage == "emptied model":
        export = own_export(seed_copy)  # a private copy of the export, in the test cache
        model = export / json.loads((export / "encoder.json").read_text())["onnx_file"]
        model.unlink()  # hard-linked to the package's file: never write through it
        model.write_bytes(b"")
    else:
        ids = next(gen.glob("seg-*")) / "sentences.ids.npy"
        ids.write_bytes(ids.read_bytes()[:-16])
    before = tree_bytes(seed_copy)
    line = assert_clean_error(run_qa("index", "--index", str(seed_copy)))  # not "up to date"
    assert "`qa index --rebuild`" in line
    if damage == "truncated ids":
        assert "sentences.ids.npy" in line and "sentences.faiss" not in line
    assert tree_bytes(seed_copy) == before
    ask = assert_clean_error(run_qa("ask", "Who led the talks?", "--index", str(seed_copy)))
    assert "`qa index --rebuild`" in ask


@pytest.mark.parametrize("command", [["ask", "Who led the talks?"], ["chat"], ["index"]])
def test_a_folder_of_other_files_is_not_taken_for_an_index(command, tmp_path):
    articles = _news(tmp_path / "articles", "fed_rates.txt", "harbor_port.txt")
    before = tree_bytes(articles)
    proc = run_qa(*command, "--index", str(articles), stdin="Who led the talks?\n")
    line = assert_clean_error(proc)
    assert f"'{articles}' holds other files (fed_rates.txt, harbor_port.txt)" in line and "--index DIR" in line
    assert tree_bytes(articles) == before and sorted(p.name for p in articles.iterdir()) == ["fed_rates.txt", "harbor_port.txt"]


def test_a_failed_first_index_leaves_nothing_behind(tmp_path, new_index):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(CORPUS_FIXTURES / "archive_blob.txt", bad / "blob.txt")
    fresh = tmp_path / "fresh-index"
    assert_clean_error(run_qa("index", str(bad), "--index", str(fresh)))
    assert not fresh.exists()
    existing = new_index()  # an empty folder the user made for it stays, and stays empty
    assert existing.is_dir() and not any(existing.iterdir())
    assert_clean_error(run_qa("index", str(bad), "--index", str(existing)))
    assert existing.is_dir() and not any(existing.iterdir())
