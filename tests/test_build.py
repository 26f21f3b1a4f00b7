"""Incremental and atomic index updates (qa.build.build), on a small real corpus."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import CLEAN_ARTICLES, CORPUS_FIXTURES, REPO, qa_env, tree_bytes
from qa.answer import Bot
from qa.build import build
from qa.errors import QAError
from qa.index import Index

QUESTION = "How much did the strike cost the regional economy?"


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in CLEAN_ARTICLES[:2]:
        shutil.copy(CORPUS_FIXTURES / name, folder / name)
    return folder


def sentence_ids(root: Path, source: str | None = None) -> set[int]:
    db = Index.open(root).db
    if source is None:
        return {i for (i,) in db.execute("SELECT id FROM sentences")}
    q = "SELECT s.id FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.source = ?"
    return {i for (i,) in db.execute(q, (source,))}


def doc_texts(root: Path, source: str) -> set[str]:
    """The distinct texts (sentences and passages) of one document: what embedding it costs."""
    db = Index.open(root).db
    (doc_id, text) = db.execute("SELECT id, text FROM documents WHERE source = ?", (source,)).fetchone()
    sents = {t for (t,) in db.execute("SELECT text FROM sentences WHERE doc = ?", (doc_id,))}
    passages = {text[s:e] for s, e in db.execute('SELECT start, "end" FROM passages WHERE doc = ?', (doc_id,))}
    return sents | passages


def assert_vectors_match_texts(root: Path, encoder) -> None:
    """After any sequence of updates, the vector of row r (in whichever segment) is the embedding
    of row r's text, and BM25 row r is the same sentence; tombstoned rows are in no table."""
    index = Index.open(root)
    rows = index.db.execute("SELECT row, text FROM sentences ORDER BY row").fetchall()
    assert [r for r, _ in rows] == index.live_rows().tolist() and len(rows) == index.sentence_count
    stored = index.sentence_vectors_at([r for r, _ in rows])
    assert (stored * encoder.encode([t for _, t in rows])).sum(axis=1).min() > 0.9999
    ids = index.sentence_ids[[r for r, _ in rows]]
    assert list(ids) == [i for (i,) in index.db.execute("SELECT id FROM sentences ORDER BY row")]
    texts = [t for _, t in rows]
    for k in range(0, len(texts), max(1, len(texts) // 6)):  # a sentence is its own best BM25 match
        scores = index.bm25.scores(texts[k])
        assert scores[rows[k][0]] == scores.max() > 0, texts[k]
    ptexts = index.db.execute(
        'SELECT d.text, p.start, p."end", p.row FROM passages p JOIN documents d ON d.id = p.doc ORDER BY p.row'
    ).fetchall()
    pstored = index.passage_vectors_at([r for *_, r in ptexts])
    assert len(ptexts) == index.manifest["counts"]["passages"]
    assert (pstored * encoder.encode([t[s:e] for t, s, e, _ in ptexts])).sum(axis=1).min() > 0.9999


def test_incremental_add_change_delete(corpus, new_index, encoder):
    root = new_index()
    first = build(root, [corpus])
    assert (first.added, first.changed, first.removed, first.documents) == (2, 0, 0, 2)
    assert first.generation == "gen-000001" and first.embedded > 0
    ids_v1 = sentence_ids(root)

    # Unchanged corpus: nothing embedded, nothing written.
    current = (root / "CURRENT").read_bytes()
    again = build(root, [corpus])
    assert again.embedded == 0 and again.generation is None
    assert (again.unchanged, again.added, again.changed, again.removed) == (2, 0, 0, 0)
    assert (root / "CURRENT").read_bytes() == current

    # A new file: only it is embedded.
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    added = build(root, [corpus])
    assert (added.added, added.changed, added.removed, added.unchanged) == (1, 0, 0, 2)
    new_source = (corpus / "solar_farm.md").as_posix()
    assert added.embedded == len(doc_texts(root, new_source)) > 0
    assert sentence_ids(root) > ids_v1  # old ids kept as they were
    assert min(sentence_ids(root, new_source)) > max(ids_v1)
    ids_v2 = sentence_ids(root)

    # A changed file: re-chunked under new ids, the others untouched.
    port = corpus / "harbor_port.txt"
    port_source = port.as_posix()
    old_port_ids = sentence_ids(root, port_source)
    port.write_text(port.read_text() + "Shipping lines said schedules would return to normal by March.\n")
    changed = build(root, [corpus])
    assert (changed.added, changed.changed, changed.removed, changed.unchanged) == (0, 1, 0, 2)
    assert changed.embedded == len(doc_texts(root, port_source))
    new_port_ids = sentence_ids(root, port_source)
    assert not (new_port_ids & old_port_ids) and min(new_port_ids) > max(ids_v2)
    assert sentence_ids(root) == (ids_v2 - old_port_ids) | new_port_ids
    texts = {t for (t,) in Index.open(root).db.execute("SELECT text FROM sentences")}
    assert "Shipping lines said schedules would return to normal by March." in texts

    # A deleted file: its sentences are gone, and its ids are never handed out again.
    fed = corpus / "fed_rates.txt"
    fed_ids = sentence_ids(root, fed.as_posix())
    top_id = max(sentence_ids(root))
    fed.unlink()
    removed = build(root, [corpus])
    assert (removed.removed, removed.added, removed.changed) == (1, 0, 0)
    assert removed.embedded == 0 and removed.generation is not None
    assert sentence_ids(root, fed.as_posix()) == set()
    assert not (sentence_ids(root) & fed_ids)
    texts = {t for (t,) in Index.open(root).db.execute("SELECT text FROM sentences")}
    assert not any("Powell" in t for t in texts)

    shutil.copy(CORPUS_FIXTURES / "fed_rates.txt", fed)  # the same file back: new ids, not its old ones
    back = build(root, [corpus])
    assert back.added == 1
    assert min(sentence_ids(root, fed.as_posix())) > top_id
    assert Index.open(root).manifest["next_ids"]["sentence"] > max(sentence_ids(root))

    assert_vectors_match_texts(root, encoder)
    assert [p.name for p in root.iterdir() if p.name.startswith("gen-")] == [back.generation]


def test_touching_a_file_without_changing_it_embeds_nothing(corpus, new_index):
    root = new_index()
    build(root, [corpus])
    f = corpus / CLEAN_ARTICLES[0]
    os.utime(f, (1, 1))
    report = build(root, [corpus])
    assert report.embedded == 0 and report.generation is None


def test_index_from_an_older_tokenizer_gets_new_bm25_without_re_embedding(corpus, new_index, encoder):
    from qa.lexical import TERMS_VERSION

    root = new_index()
    build(root, [corpus])
    manifest_file = Index.open(root).folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["terms"]  # as written before the terms version existed
    manifest_file.write_text(json.dumps(manifest))
    report = build(root, [corpus])
    assert report.embedded == 0 and report.generation is not None
    assert Index.open(root).manifest["terms"] == TERMS_VERSION
    assert_vectors_match_texts(root, encoder)


def test_one_changed_record_of_a_jsonl_file(tmp_path, new_index):
    corpus = tmp_path / "feed"
    corpus.mkdir()
    lines = (CORPUS_FIXTURES / "wire.jsonl").read_text().splitlines()
    (corpus / "wire.jsonl").write_text("\n".join(lines[:2]) + "\n")
    root = new_index()
    build(root, [corpus])
    ids_0 = sentence_ids(root)
    # Edit only the second record: the first record's sentences keep their ids.
    (corpus / "wire.jsonl").write_text(lines[0] + "\n" + lines[1].replace("60 narrow-body", "65 narrow-body") + "\n")
    report = build(root, [corpus])
    assert (report.changed, report.unchanged, report.added, report.removed) == (1, 1, 0, 0)
    db = Index.open(root).db
    first = {i for (i,) in db.execute("SELECT s.id FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.key LIKE '%#0'")}
    assert first and first <= ids_0
    assert any("65 narrow-body" in t for (t,) in db.execute("SELECT text FROM sentences"))


def test_new_folder_is_added_to_the_indexed_roots(corpus, tmp_path, new_index):
    root = new_index()
    build(root, [corpus])
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", extra / "solar.md")
    report = build(root, [extra])
    assert report.added == 1 and report.unchanged == 2  # the first folder is still indexed
    assert Index.open(root).manifest["roots"] == [{"path": str(corpus), "name": str(corpus)}, {"path": str(extra), "name": str(extra)}]
    assert build(root).generation is None  # no paths: the remembered roots


def test_empty_corpus_fails_before_exporting_a_model(tmp_path):
    """No articles: a clear error at once, not after a 15 s export of the model."""
    from qa.config import bundled_model_path
    from qa.exports import exports_dir

    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "index"
    before = sorted(exports_dir().iterdir()) if exports_dir().is_dir() else []
    with pytest.raises(QAError, match="no articles found"):
        build(root, [empty], model=bundled_model_path())
    assert (sorted(exports_dir().iterdir()) if exports_dir().is_dir() else []) == before
    assert not (root / "CURRENT").exists()


def test_a_second_writer_is_refused(corpus, new_index):
    root = new_index()
    build(root, [corpus])
    fd = os.open(root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
        with pytest.raises(QAError, match="another `qa index` is writing"):
            build(root, [corpus])
    finally:
        os.close(fd)
    assert build(root, [corpus]).added == 1  # lock released: the update goes through


# -- atomic writes ------------------------------------------------------------------------------


def _fail(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("target", ["qa.segment_write.write_vocab", "numpy.save", "qa.store._fsync"])
def test_failed_update_leaves_the_old_index_live(target, corpus, new_index, monkeypatch):
    root = new_index()
    build(root, [corpus])
    before = Bot.open(root).ask(QUESTION).to_dict()
    assert before["answered"]
    files_before = tree_bytes(root)

    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    (corpus / "harbor_port.txt").unlink()
    with monkeypatch.context() as m:
        m.setattr(target, _fail)
        with pytest.raises(OSError, match="No space left"):
            build(root, [corpus])

    assert tree_bytes(root) == files_before  # CURRENT, the live generation, the export: all as they were
    assert not list(root.glob(".gen-tmp-*"))
    assert Bot.open(root).ask(QUESTION).to_dict() == before

    report = build(root, [corpus])  # and the next update works
    assert (report.added, report.removed) == (1, 1)
    assert sentence_ids(root, (corpus / "harbor_port.txt").as_posix()) == set()
    assert sentence_ids(root, (corpus / "solar_farm.md").as_posix())


def test_failure_after_rename_before_current_switch(corpus, new_index, monkeypatch):
    """The new generation is in place but CURRENT still names the old one: the old stays live,
    and the next writer removes the orphan."""
    root = new_index()
    build(root, [corpus])
    before = Bot.open(root).ask(QUESTION).to_dict()
    current = (root / "CURRENT").read_bytes()
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    import qa.store

    with monkeypatch.context() as m:
        m.setattr(qa.store.os, "replace", _fail)
        with pytest.raises(OSError):
            build(root, [corpus])
    assert (root / "CURRENT").read_bytes() == current
    assert Bot.open(root).ask(QUESTION).to_dict() == before
    assert not list(root.glob(".gen-tmp-*"))

    report = build(root, [corpus])
    assert report.added == 1
    gens = sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))
    assert gens == [report.generation] and (root / "CURRENT").read_text().strip() == report.generation


def test_killed_writer_leaves_the_old_index_and_its_litter_is_cleared(corpus, new_index):
    """A process that dies mid-write (no cleanup handlers run) cannot damage the live index."""
    root = new_index()
    build(root, [corpus])
    before = Bot.open(root).ask(QUESTION).to_dict()
    files_before = tree_bytes(root)
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        import qa.segment_write
        from qa.build import build
        qa.segment_write.write_vocab = lambda *args: os._exit(9)  # dies after the segments are written
        build(Path({str(root)!r}), [Path({str(corpus)!r})])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env=qa_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    litter = list(root.glob(".gen-tmp-*"))
    assert litter  # the dead writer's half-built generation is there ...
    assert Bot.open(root).ask(QUESTION).to_dict() == before  # ... and ignored
    assert {k: v for k, v in tree_bytes(root).items() if not k.startswith(".gen-tmp-")} == files_before

    report = build(root, [corpus])
    assert report.added == 1
    assert not list(root.glob(".gen-tmp-*"))


@pytest.mark.parametrize("new_generation", [True, False])
def test_indexing_drops_model_exports_the_index_does_not_use(seed_copy, corpus, new_generation):
    """An index folder of an earlier qa held exports in models/; they go (the live one is shipped)."""
    stale = seed_copy / "models" / "model-from-an-older-qa-0123456789abcdef"
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"not a model")
    live = Index.open(seed_copy).model_folder
    report = build(seed_copy, [corpus] if new_generation else None)  # another corpus, or the same
    assert (report.generation is not None) == new_generation
    assert not (seed_copy / "models").exists()
    assert Index.open(seed_copy).model_folder == live
