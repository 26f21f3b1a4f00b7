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
    from qa.markup import plain

    for key, start, end, text in rows:
        if key.endswith(".md"):  # Markdown: the file span, shown without its inline markup
            assert plain(docs[key][1], start, end)[0] == text, (key, text)
        else:
            assert docs[key][1][start:end] == text, (key, text)
    for key, (source, text) in docs.items():
        if source.endswith((".txt", ".md")):
            with open(fixture_corpus.root / source, encoding="utf-8-sig", newline="") as f:
                assert text == f.read()


# -- BOM, CRLF and CR files; Markdown; byte offsets and JSON records (issue 16 items 4-5) --------


def file_text(path) -> str:
    """The defined document text of a .txt/.md file: UTF-8, BOM removed, line endings kept."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return f.read()


def test_bom_crlf_and_cr_files_offsets_index_the_file_as_defined(fixture_corpus):
    index = Index.open(fixture_corpus.index)
    rows = index.db.execute(
        'SELECT d.source, d.bom, s.start, s."end", s.text FROM sentences s JOIN documents d ON d.id = s.doc '
        "WHERE d.source IN ('corpus/storm_bom_crlf.txt', 'corpus/tide_cr.txt')"
    ).fetchall()
    by_source = {}
    for source, bom, start, end, text in rows:
        by_source.setdefault(source, []).append(text)
        path = fixture_corpus.root / source
        defined = file_text(path)
        assert defined[start:end] == text, (source, text)
        # byte offsets: the BOM's length plus the UTF-8 length of the text before the offset
        raw = path.read_bytes()
        assert bom == (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        b0, b1 = bom + len(defined[:start].encode("utf-8")), bom + len(defined[:end].encode("utf-8"))
        assert raw[b0:b1] == text.encode("utf-8"), (source, text)
    assert (fixture_corpus.root / "corpus/storm_bom_crlf.txt").read_bytes().count(b"\r\n") >= 5
    assert b"\n" not in (fixture_corpus.root / "corpus/tide_cr.txt").read_bytes()
    # sentences after the third line of a BOM+CRLF file (the issue found them 3 characters off)
    assert "Buses will resume on Thursday at 6 a.m. if the roads are cleared in time." in by_source["corpus/storm_bom_crlf.txt"]
    assert "Water reached the steps of the old customs house." in by_source["corpus/tide_cr.txt"]
    assert not any(t.startswith("Date:") for t in by_source["corpus/storm_bom_crlf.txt"])  # metadata, not cited


def test_markdown_sentences_are_shown_without_markup_and_span_the_file(fixture_corpus):
    from qa.markup import plain

    index = Index.open(fixture_corpus.index)
    rows = index.db.execute(
        "SELECT s.start, s.\"end\", s.text, s.paragraph FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.source = 'corpus/markets.md'"
    ).fetchall()
    defined = file_text(fixture_corpus.root / "corpus/markets.md")
    texts = [t for _, _, t, _ in rows]
    assert texts == [
        "Copper Hits a Record High",
        "Copper rose to $11,000 a tonne on Monday, according to the London Metal Exchange.",
        "Traders blamed tight supply from mines in Chile and a rush of buying by hedge funds.",
        "Analysts at Bank of Example expect prices to stay high until the end of the year.",
    ]
    for start, end, text, _ in rows:
        assert plain(defined, start, end)[0] == text
        assert not any(mark in text for mark in ("**", "](", "`", "<b>", "_tight", "!["))
    # the file span holds the markup, whole
    assert defined[rows[1][0] : rows[1][1]].endswith("(https://www.lme.test/prices?metal=cu).")
    assert defined[rows[0][0] : rows[0][1]] == "Copper Hits a **Record** High"
    assert [p for *_, p in rows] == [0, 1, 2, 4]  # the image line is no sentence
    (title, date, url) = index.db.execute("SELECT title, date, url FROM documents WHERE source = 'corpus/markets.md'").fetchone()
    assert (title, date, url) == ("Copper Hits a Record High", "2024-05-20", "https://news.test/copper")


def test_json_records_are_named_and_a_bad_record_is_skipped(fixture_corpus):
    stderr = fixture_corpus.proc.stderr
    assert 'qa: warning: skipped line 2 of corpus/northwind.jsonl: "text" is not valid Unicode' in stderr
    assert "Traceback" not in stderr
    index = Index.open(fixture_corpus.index)
    got = index.db.execute("SELECT key, record, date, bom FROM documents WHERE source LIKE 'corpus/%.json%' ORDER BY key").fetchall()
    assert got == [
        ("corpus/chess_prodigy.json", None, "2024-03-03", 0),
        ("corpus/northwind.jsonl#0", "NW-1", "2024-07-30", 0),
        ("corpus/northwind.jsonl#2", "NW-2", "2024-08-27", 0),
        ("corpus/northwind.jsonl#3", "line 4", None, 0),
        ("corpus/wire.jsonl#0", "line 1", "2024-02-09", 0),
        ("corpus/wire.jsonl#1", "line 2", "2024-02-10", 0),
    ]


def test_digit_led_body_is_not_merged_into_the_title(fixture_corpus):
    index = Index.open(fixture_corpus.index)
    rows = index.db.execute(
        "SELECT s.paragraph, s.text FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.source = 'corpus/fed_digits.txt'"
    ).fetchall()
    assert rows[0] == (0, "Fed Holds Rates Into the New Year")
    assert rows[1] == (1, "2024 ended with the central bank holding its key rate at 5.25%, as expected.")
