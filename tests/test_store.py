"""Readers and writers side by side, the canonical vectors above ann.FLAT_MAX, and what the
library leaves alone in its host process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import CLEAN_ARTICLES, CORPUS_FIXTURES, REPO, json_lines, qa_env, run_qa, squad_dev_articles
from qa import ann
from qa.answer import Bot
from qa.build import build
from qa.errors import IndexUnusable
from qa.index import Index

PORT_QUESTION = "How much did the strike cost the regional economy?"
SOLAR_QUESTION = "How many homes can the solar farm's battery plant power?"


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "news"
    folder.mkdir()
    for name in CLEAN_ARTICLES[:2]:  # fed_rates.txt, harbor_port.txt; solar_farm.md arrives later
        shutil.copy(CORPUS_FIXTURES / name, folder / name)
    return folder


def generations(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


# -- readers and writers --------------------------------------------------------------------------


def test_an_open_reader_keeps_its_generation_until_it_lets_go(corpus, new_index):
    root = new_index()
    build(root, [corpus])
    bot = Bot.open(root)  # opened before the update, asked nothing yet
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    assert build(root, [corpus]).generation == "gen-000002"
    assert generations(root) == ["gen-000001", "gen-000002"]  # held by the bot: not deleted
    old = bot.ask(PORT_QUESTION)  # no false "unreadable": every part was opened with the bot
    assert old.answered and old.sentences[0].citation.source.endswith("harbor_port.txt")
    pre = bot.ask(SOLAR_QUESTION)
    assert not pre.answered or "solar" not in pre.sentences[0].citation.source

    assert bot.refresh() is True  # between questions: switch to the new generation
    assert bot.refresh() is False
    new = bot.ask(SOLAR_QUESTION)
    assert new.answered and new.sentences[0].citation.source.endswith("solar_farm.md")
    assert "150,000 homes" in new.sentences[0].text
    assert bot.index.manifest["counts"]["documents"] == 3

    # The bot let go of gen-000001 when it switched: the next `qa index` deletes it.
    assert build(root, [corpus]).generation is None
    assert generations(root) == ["gen-000002"]


def test_a_generation_is_kept_while_held_then_deleted_at_the_next_commit(corpus, new_index):
    root = new_index()
    build(root, [corpus])
    held = Index.open(root)
    (corpus / "fed_rates.txt").unlink()
    build(root, [corpus])
    shutil.copy(CORPUS_FIXTURES / "fed_rates.txt", corpus / "fed_rates.txt")
    build(root, [corpus])
    assert generations(root) == ["gen-000001", "gen-000003"]  # gen-000002 had no reader
    assert len(held.sentences_at(range(held.sentence_count))) == held.sentence_count
    held.close()
    (corpus / "fed_rates.txt").unlink()
    build(root, [corpus])
    assert generations(root) == ["gen-000004"]
    assert not list(root.glob(".gen-del-*"))


def _chat(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qa", "chat", "--index", str(root), *extra], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8", env=qa_env())


def _ask_json(chat: subprocess.Popen, question: str) -> dict:
    chat.stdin.write(question + "\n")
    chat.stdin.flush()
    return json.loads(chat.stdout.readline())


def _ask_text(chat: subprocess.Popen, question: str) -> list[str]:
    """The lines the plain-text chat prints for one answered question (up to the blank line
    that ends its Sources block)."""
    chat.stdin.write(question + "\n")
    chat.stdin.flush()
    lines: list[str] = []
    while True:
        line = chat.stdout.readline()
        assert line, "\n".join(lines) + chat.stderr.read()
        line = line.rstrip("\n")
        if not line and "Sources" in lines:
            return lines
        if line:
            lines.append(line)


def test_qa_chat_answers_from_articles_indexed_while_it_is_open(corpus, new_index):
    """A real `qa chat` (JSON and plain) fed over a pipe while a real `qa index` adds an article."""
    root = new_index()
    assert run_qa("index", str(corpus), "--index", str(root)).returncode == 0
    json_chat, text_chat = _chat(root, "--json"), _chat(root)
    try:
        first = _ask_json(json_chat, PORT_QUESTION)
        assert first["answered"] and first["sentences"][0]["source"].endswith("harbor_port.txt")
        assert any("harbor_port.txt" in line for line in _ask_text(text_chat, PORT_QUESTION))

        for round_ in range(2):  # two updates in a row, the chats open throughout
            shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / f"solar_farm_{round_}.md")
            update = run_qa("index", "--index", str(root), "--json")
            assert update.returncode == 0, update.stderr
            assert json_lines(update.stdout)[0]["added"] == 1

            answer = _ask_json(json_chat, SOLAR_QUESTION)
            assert answer["answered"], answer
            assert re.search(r"/solar_farm_[01]\.md$", answer["sentences"][0]["source"]), answer
            assert "150,000 homes" in answer["sentences"][0]["text"]
            lines = _ask_text(text_chat, SOLAR_QUESTION)
            assert lines[0] == f"(index updated: {3 + round_} articles)", lines
            assert "150,000 homes" in lines[1] and any("solar_farm_" in line for line in lines), lines
            assert sum(line.startswith("(index updated") for line in lines) == 1
        # The JSON chat prints exactly one object per question: no notice lines among them.
        again = _ask_json(json_chat, PORT_QUESTION)
        assert again["question"] == PORT_QUESTION and again["answered"]
    finally:
        out_json, err_json = json_chat.communicate("", timeout=60)
        out_text, err_text = text_chat.communicate("", timeout=60)
    assert json_chat.returncode == 0 and text_chat.returncode == 0
    assert err_json == "" and err_text == "", (err_json, err_text)  # no false "unreadable"
    assert out_json == ""
    # Both chats have let go: the next `qa index` leaves only the live generation.
    assert run_qa("index", "--index", str(root)).returncode == 0
    assert generations(root) == ["gen-000003"]


def test_questions_in_a_loop_while_generations_are_committed(corpus, new_index):
    """A reader thread asks and refreshes without pause while the writer commits four times."""
    import threading

    root = new_index()
    build(root, [corpus])
    bot = Bot.open(root)
    errors: list[BaseException] = []
    answered = []
    stop = threading.Event()

    def ask_forever():
        try:
            while not stop.is_set():
                bot.refresh()
                answered.append(bot.ask(PORT_QUESTION).answered)
        except BaseException as e:  # noqa: BLE001 - any failure of the reader fails the test
            errors.append(e)

    reader = threading.Thread(target=ask_forever)
    reader.start()
    try:
        for i in range(4):
            shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / f"solar_{i}.md")
            build(root, [corpus])
    finally:
        time.sleep(0.2)
        stop.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert answered and all(answered)
    assert bot.index.folder.name == "gen-000005" or bot.refresh()
    assert bot.index.manifest["counts"]["documents"] == 6


# -- above ann.FLAT_MAX ---------------------------------------------------------------------------


@pytest.fixture
def squad_corpus(tmp_path) -> Path:
    """~150 real sentences: paragraphs of the first SQuAD dev article (tune split, even articles)."""
    from qa.eval import write_articles

    data = squad_dev_articles()
    article = data[0]
    folder = tmp_path / "squad"
    write_articles([{"title": article["title"], "paragraphs": article["paragraphs"][:40]}], folder)
    return folder


def test_update_above_flat_max_copies_exact_vectors(squad_corpus, new_index, encoder, monkeypatch):
    monkeypatch.setattr(ann, "FLAT_MAX", 100)
    root = new_index()
    build(root, [squad_corpus])
    first = Index.open(root)
    assert first.sentence_count > ann.FLAT_MAX and first.manifest["index_type"].startswith("ivf")
    big = first.folder / first.manifest["segments"][0]["name"]
    ivf_inode = (big / "sentences.faiss").stat().st_ino
    before = {int(i): v.copy() for i, v in zip(first.sentence_ids, first.sentence_vectors_at(np.arange(first.sentence_count)))}
    first.close()

    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", squad_corpus / "solar_farm.md")
    report = build(root, [squad_corpus])  # crashed in reconstruct_batch on IVF-SQ8
    assert report.added == 1 and report.unchanged == 1
    after = Index.open(root)
    assert after.manifest["index_type"].startswith("ivf")
    # The IVF segment is reused as it was (the same file), the new article is a segment of its own.
    assert (after.folder / big.name / "sentences.faiss").stat().st_ino == ivf_inode
    assert [g["index_type"] for g in after.manifest["segments"]] == [first.manifest["index_type"], "flat"]
    ids = [int(i) for i in after.sentence_ids]
    vecs = after.sentence_vectors_at(np.arange(after.sentence_count))
    kept = [k for k, i in enumerate(ids) if i in before]
    assert len(kept) == len(before)
    # Bit for bit the vectors the model gave: never decoded from SQ8 and quantised again.
    assert all(np.array_equal(vecs[k], before[ids[k]]) for k in kept)
    # Row r of every part is the same sentence, and its vector is that sentence's embedding.
    rows = after.db.execute("SELECT row, id, text FROM sentences ORDER BY row").fetchall()
    assert [r for r, _, _ in rows] == list(range(len(ids))) and [i for _, i, _ in rows] == ids
    assert (vecs * encoder.encode([t for _, _, t in rows])).sum(axis=1).min() > 0.9999
    assert after.bm25.num_docs == len(rows) == len(after.rows) == after.row_space
    answer = Bot(after).ask(SOLAR_QUESTION)
    assert answer.answered and answer.sentences[0].citation.source.endswith("solar_farm.md")


# -- the host process -----------------------------------------------------------------------------


def test_asking_leaves_the_host_process_thread_settings_alone(seed_index):
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return sorted((i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")

    with threadpool_limits(limits=2, user_api="blas"):  # the host's own choice
        before = blas_threads()
        assert before and all(n == 2 for _, n in before)
        bot = Bot.open(seed_index)
        bot.ask("Who led the talks?")
        bot.ask_many(["Who led the talks?", PORT_QUESTION])
        assert blas_threads() == before
        bot.index.close()


def test_faiss_threads_are_put_back_after_an_approximate_search(squad_corpus, new_index, monkeypatch):
    import faiss

    monkeypatch.setattr(ann, "FLAT_MAX", 100)
    root = new_index()
    build(root, [squad_corpus])
    faiss.omp_set_num_threads(2)
    bot = Bot.open(root)
    bot.ask("What did the Broncos win?")
    assert faiss.omp_get_max_threads() == 2


def test_sentences_at_fails_loudly_on_missing_rows(seed_index):
    index = Index.open(seed_index)
    n = index.sentence_count
    assert [s.row for s in index.sentences_at([2, 0])] == [2, 0]
    with pytest.raises(IndexUnusable, match="no sentence at rows"):
        index.sentences_at([0, n + 5])


def test_a_bug_is_not_reported_as_a_damaged_index(seed_index, monkeypatch):
    """Only what damaged files raise becomes IndexUnusable; a programming error raises as itself."""
    import qa.lexical

    def broken(*args):
        raise TypeError("a bug in qa")

    monkeypatch.setattr(qa.lexical.SegmentedBm25, "__init__", broken)
    with pytest.raises(TypeError, match="a bug in qa"):
        Index.open(seed_index)


def test_an_inflated_index_is_a_consistent_index_of_its_copied_files(seed_index, tmp_path):
    """`qa bench --sizes` measures indexes made by bench_sizes.inflate: each must be what `qa index`
    would keep - its files unchanged on a re-index, rows/ids/BM25 in line with its texts."""
    from qa.bench_sizes import inflate
    from qa.lexical import Bm25

    n0 = Index.open(seed_index).sentence_count
    out, corpus = tmp_path / "inflated", tmp_path / "copies"
    assert inflate(seed_index, out, 3, corpus) == 3 * n0
    index = Index.open(out)
    rows = index.db.execute("SELECT row, id, text FROM sentences ORDER BY row").fetchall()
    assert [r for r, _, _ in rows] == list(range(3 * n0))
    assert [i for _, i, _ in rows] == [int(i) for i in index.sentence_ids]
    Bm25.build([t for _, _, t in rows], tmp_path / "bm25")
    fresh = Bm25.load(tmp_path / "bm25")
    assert np.array_equal(fresh.scores("Who led the talks in London?"), index.bm25.scores("Who led the talks in London?"))
    assert index.sentences_at([n0 + 1])[0].text == index.sentences_at([1])[0].text
    assert index.sentences_at([n0 + 1])[0].source.startswith(f"{corpus}/copy-001/")
    index.close()
    report = build(out)  # from the remembered root: every copied file is known and unchanged
    assert (report.generation, report.unchanged, report.added, report.removed) == (None, 3, 0, 0)


def test_the_library_opens_an_index_named_by_a_string(seed_index):
    """A library caller writes `qa.Index.open("embeddings")`, as `qa.build_index` takes strings."""
    import qa

    index = qa.Index.open(str(seed_index))
    try:
        assert qa.Bot(index).ask("What did London agree?").answered
    finally:
        index.close()
