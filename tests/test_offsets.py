"""Every indexed sentence and passage points exactly into its source text."""

from __future__ import annotations

import pytest

from conftest import REPO, SEED
from qa.chunk import MAX_TOKENS, paragraphs
from qa.index import Index
from qa.ingest import SourceFile, parse


@pytest.fixture(scope="module")
def seed_db(seed_index):
    return Index.open(seed_index).db


@pytest.fixture(scope="module")
def seed_text() -> str:
    return (REPO / SEED).read_bytes().decode("utf-8-sig")


def test_every_seed_sentence_is_an_exact_slice_of_the_file(seed_db, seed_text):
    rows = seed_db.execute(
        'SELECT s.id, s.start, s."end", s.text, d.source FROM sentences s JOIN documents d ON d.id = s.doc'
    ).fetchall()
    assert len(rows) >= 15  # the seed article really was indexed
    for sid, start, end, text, source in rows:
        assert source == SEED  # relative, as named on the command line
        assert seed_text[start:end] == text, sid
        assert text == text.strip() and any(ch.isalnum() for ch in text), (sid, text)


def test_document_text_is_the_decoded_file(seed_db, seed_text):
    ((text,),) = seed_db.execute("SELECT text FROM documents").fetchall()
    assert text == seed_text


def test_no_seed_text_is_lost(seed_db, seed_text):
    """Every non-blank character of every paragraph lies inside some sentence."""
    (doc,) = parse(SourceFile(REPO / SEED, SEED), (REPO / SEED).read_bytes(), warn=pytest.fail)
    covered = set()
    for start, end in seed_db.execute('SELECT start, "end" FROM sentences'):
        covered.update(range(start, end))
    paras = paragraphs(doc)
    assert len(paras) >= 7
    for number, start, end in paras:
        missing = [i for i in range(start, end) if not seed_text[i].isspace() and i not in covered]
        assert not missing, (number, seed_text[start:end])


def test_sentences_keep_their_paragraph_numbers(seed_db, seed_text):
    (doc,) = parse(SourceFile(REPO / SEED, SEED), (REPO / SEED).read_bytes(), warn=pytest.fail)
    spans = {n: (s, e) for n, s, e in paragraphs(doc)}
    for start, end, number in seed_db.execute('SELECT start, "end", paragraph FROM sentences'):
        ps, pe = spans[number]
        assert ps <= start and end <= pe


def test_repeated_title_line_is_indexed_once(seed_db, seed_text):
    title = seed_text.splitlines()[0]
    assert seed_text.splitlines()[1] == title  # the seed does repeat its headline
    rows = seed_db.execute("SELECT start, paragraph FROM sentences WHERE text = ?", (title,)).fetchall()
    assert rows == [(0, 0)]
    second_line = (len(title) + 1, 2 * len(title) + 1)
    for start, end in seed_db.execute('SELECT start, "end" FROM sentences'):
        assert end <= second_line[0] or start >= second_line[1]
    (stored_title,) = seed_db.execute("SELECT title FROM documents").fetchone()
    assert stored_title == title


def test_passages_fit_the_model_window_and_are_exact(seed_db, seed_text, encoder):
    rows = seed_db.execute(
        'SELECT p.start, p."end", p.paragraph, a.start, b."end", a.paragraph, b.paragraph, a.id, b.id '
        "FROM passages p JOIN sentences a ON a.id = p.first JOIN sentences b ON b.id = p.last"
    ).fetchall()
    n_sentences = seed_db.execute("SELECT count(*) FROM sentences").fetchone()[0]
    assert len(rows) >= 8
    texts = [seed_text[start:end] for start, end, *_ in rows]
    for (start, end, para, a_start, b_end, a_para, b_para, first, last), n in zip(rows, encoder.count_tokens(texts)):
        assert n + 2 <= 256 and n <= MAX_TOKENS  # + [CLS] and [SEP]
        assert (start, end) == (a_start, b_end)
        assert a_para == b_para == para and first <= last
    # every sentence is in some passage
    in_passage = set()
    for first, last in seed_db.execute("SELECT first, last FROM passages"):
        in_passage.update(range(first, last + 1))
    ids = {i for (i,) in seed_db.execute("SELECT id FROM sentences")}
    assert ids <= in_passage and len(ids) == n_sentences


def test_vectors_and_bm25_rows_line_up_with_sentences(seed_index, encoder):
    """Row r of sentences.faiss and of BM25 is the sentence whose `row` is r."""
    index = Index.open(seed_index)
    rows = index.db.execute("SELECT row, text FROM sentences ORDER BY row").fetchall()
    assert [r for r, _ in rows] == list(range(len(rows)))
    stored = index.sentence_vectors_at([r for r, _ in rows])
    fresh = encoder.encode([t for _, t in rows])
    assert (stored * fresh).sum(axis=1).min() > 0.9999
    scores = index.bm25.scores("Montufar-Helu emphasized")
    best_row = int(scores.argmax())
    assert "Montufar-Helu emphasized" in rows[best_row][1]


def test_fixture_corpus_offsets_in_every_format(fixture_corpus):
    """.txt, .md, .html and .json(l) documents: offsets index the stored document text, and for
    plain text files that text is the file itself."""
    index = Index.open(fixture_corpus.index)
    docs = {key: (source, text) for key, source, text in index.db.execute("SELECT key, source, text FROM documents")}
    assert {"corpus/museum_theft.html", "corpus/solar_farm.md", "corpus/wire.jsonl#0", "corpus/chess_prodigy.json"} <= set(docs)
    rows = index.db.execute('SELECT d.key, s.start, s."end", s.text FROM sentences s JOIN documents d ON d.id = s.doc').fetchall()
    for key, start, end, text in rows:
        assert docs[key][1][start:end] == text, (key, text)
    for key, (source, text) in docs.items():
        if source.endswith((".txt", ".md")):
            assert text == (fixture_corpus.root / source).read_text(encoding="utf-8")
