"""Publication dates, URLs, JSON record keys, bad records and per-document limits (qa.ingest)."""

from __future__ import annotations

import json
import random

import pytest

from qa import ingest
from qa.chunk import chunk
from qa.dates import normalise_date
from qa.ingest import SourceFile, parse


def parse_file(path, name=None) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return parse(SourceFile(path, name or path.name), path.read_bytes(), warnings.append), warnings


def words(texts):
    return [len(t.split()) for t in texts]


@pytest.mark.parametrize(
    "value, iso",
    [
        ("2024-03-05", "2024-03-05"),
        ("2024/03/05", "2024-03-05"),
        ("2024-03-05T14:30:00Z", "2024-03-05T14:30:00+00:00"),
        ("2024-03-05 14:30", "2024-03-05T14:30:00"),
        ("2024-03-05T14:30:00+02:00", "2024-03-05T14:30:00+02:00"),
        ("March 5, 2024", "2024-03-05"),
        ("Sept. 5, 2024", "2024-09-05"),
        ("5 March 2024", "2024-03-05"),
        ("Tue, 05 Mar 2024 14:30:00 GMT", "2024-03-05T14:30:00+00:00"),
        ("2024-13-45", None),
        ("February 30, 2024", None),
        ("March 2024", None),
        ("5", None),
        ("yesterday", None),
    ],
)
def test_dates_normalise_to_iso_8601(value, iso):
    assert normalise_date(value) == iso


def test_jsonl_date_url_and_record_keys(tmp_path):
    path = tmp_path / "wire.jsonl"
    rows = [
        {"id": "AP-1", "title": "A", "text": "Alpha happened.", "date": "March 5, 2024", "url": "https://x.test/a"},
        {"title": "B", "text": "Beta happened.", "date": "2024-13-45"},
        {"title": "C", "text": "Gamma happened.", "date": "2024-03-07T09:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows[:1]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[1:]) + "\n")
    docs, warnings = parse_file(path)
    # keys stay "#n" (incremental indexing); the record says which record a citation points into
    assert [(d.key, d.record, d.date, d.url) for d in docs] == [
        ("wire.jsonl#0", "AP-1", "2024-03-05", "https://x.test/a"),
        ("wire.jsonl#1", "line 3", None, None),
        ("wire.jsonl#2", "line 4", "2024-03-07T09:00:00+00:00", None),
    ]
    assert warnings == ["wire.jsonl line 3: ignored date '2024-13-45': not a valid date"]


def test_json_list_records_are_named_by_index_and_single_records_by_nothing(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"text": "One."}, {"text": "Two.", "id": 17}]))
    docs, _ = parse_file(path)
    assert [(d.key, d.record) for d in docs] == [("list.json#0", "index 0"), ("list.json#1", "17")]
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"text": "One."}))
    (doc,), _ = parse_file(path)
    assert (doc.key, doc.record) == ("one.json", None)


def test_record_with_a_lone_surrogate_is_skipped_and_the_rest_kept(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "ok", "text": "Fine text."}\n{"title": "bad", "text": "Broken \\ud800 text."}\n{"title": "later", "text": "Also fine."}\n')
    docs, warnings = parse_file(path)
    assert [d.title for d in docs] == ["ok", "later"]
    assert warnings == ['skipped line 2 of bad.jsonl: "text" is not valid Unicode (a lone surrogate)']
    for d in docs:  # what remains can be stored and tokenized
        d.text.encode("utf-8")
    path = tmp_path / "bad.json"
    path.write_text('[{"title": "x\\udfff", "text": "Fine."}, {"text": "Kept."}]')
    docs, warnings = parse_file(path)
    assert [d.text for d in docs] == ["Kept."]
    assert warnings == ['skipped record 0 of bad.json: "title" is not valid Unicode (a lone surrogate)']


def test_txt_date_line_is_read_and_not_indexed(tmp_path):
    path = tmp_path / "fed.txt"
    path.write_text("Fed Holds Rates\nPublished: Tue, 05 Mar 2024 14:30:00 GMT\n\nThe Fed held rates.\n")
    (doc,), warnings = parse_file(path)
    assert warnings == [] and doc.date == "2024-03-05T14:30:00+00:00"
    sents, _ = chunk(doc, words)
    assert [s.text for s in sents] == ["Fed Holds Rates", "The Fed held rates."]


def test_txt_dateline_and_file_name_dates(tmp_path):
    path = tmp_path / "talks.txt"
    path.write_text("Talks Resume\n\nGENEVA, March 3, 2024 (Reuters) - Talks resumed on Sunday. A vote is set for April 9, 2024.\n")
    (doc,), _ = parse_file(path)
    assert doc.date == "2024-03-03"
    # a date inside a body sentence is an event, not the publication date
    path = tmp_path / "vote.txt"
    path.write_text("Vote Set\n\nThe council said on Monday that a vote is set for April 9, 2024, after the recess.\n")
    (doc,), _ = parse_file(path)
    assert doc.date is None
    path.write_text("Vote Set\n\nA vote is set for April 9, 2024.\n")  # short, but a sentence
    (doc,), _ = parse_file(path)
    assert doc.date is None
    path.write_text("Vote Set\nBy Ann Lee | April 2, 2024\n\nA vote is set for April 9, 2024.\n")
    (doc,), _ = parse_file(path)
    assert doc.date == "2024-04-02"
    path = tmp_path / "2024-05-18-vote.txt"
    path.write_text("Vote Set\n\nThe vote is on.\n")
    (doc,), _ = parse_file(path)
    assert doc.date == "2024-05-18"
    path = tmp_path / "2024-02-31-vote.txt"
    path.write_text("Vote Set\n\nThe vote is on.\n")
    (doc,), warnings = parse_file(path)
    assert doc.date is None and warnings == ["2024-02-31-vote.txt: file name: ignored date '2024-02-31': not a valid date"]


def test_markdown_front_matter_gives_title_date_url_and_is_not_cited(tmp_path):
    path = tmp_path / "story.md"
    text = '---\ntitle: "Harbour Reopens"\ndate: 2024-06-01\nurl: https://x.test/harbour\ntags: [port]\n---\n# Harbour Reopens\n\nShips returned on **Monday**.\n'
    path.write_text(text)
    (doc,), warnings = parse_file(path)
    assert warnings == []
    assert (doc.title, doc.date, doc.url) == ("Harbour Reopens", "2024-06-01", "https://x.test/harbour")
    sents, _ = chunk(doc, words)
    assert [s.text for s in sents] == ["Harbour Reopens", "Ships returned on Monday."]
    assert [s.paragraph for s in sents] == [0, 1]
    assert not any("title:" in text[s.start : s.end] or "---" in text[s.start : s.end] for s in sents)


def test_html_date_and_url_from_metadata(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        '<html><head><title>Bridge Reopens</title><meta property="article:published_time" content="2024-04-02T08:00:00Z">'
        '<link rel="canonical" href="https://news.test/bridge"></head><body><article><h1>Bridge Reopens</h1>'
        "<p>The old bridge over the river reopened to traffic on Tuesday after two years of repairs, officials said.</p>"
        "<p>Engineers replaced the deck and strengthened the piers, and the work came in under budget.</p></article></body></html>"
    )
    (doc,), warnings = parse_file(path)
    assert warnings == []
    assert doc.date == "2024-04-02" and doc.url == "https://news.test/bridge"
    assert doc.headline and doc.title == "Bridge Reopens"
    sents, _ = chunk(doc, words)
    assert (sents[0].text, sents[0].paragraph) == ("Bridge Reopens", 0)  # the <h1>: paragraph 0, not body
    assert all(s.paragraph >= 1 for s in sents[1:])


def junk_page(size: int, seed: int = 7) -> str:
    """An HTML page of `size` bytes: thousands of short, punctuated fragments of random words."""
    rng = random.Random(seed)
    vocab = ["lorem", "ipsum", "click", "here", "deal", "buy", "now", "free", "offer", "page", "item", "top"]
    parts = ["<html><head><title>Deals</title></head><body><article>"]
    n = len(parts[0])
    while n < size:
        p = "<p>" + ". ".join(" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 6))).capitalize() for _ in range(8)) + ".</p>\n"
        parts.append(p)
        n += len(p)
    parts.append("</article></body></html>")
    return "".join(parts)


def test_junk_html_page_is_bounded_with_a_warning(tmp_path):
    path = tmp_path / "junk.html"
    path.write_text(junk_page(600_000))
    (doc,), warnings = parse_file(path)
    assert len(doc.text) <= ingest.MAX_CHARS
    assert len(warnings) == 1 and warnings[0].startswith("junk.html: indexed only the first"), warnings
    sents, passages = chunk(doc, words)
    assert 0 < len(sents) <= ingest.MAX_SENTENCES
    for s in sents:
        assert doc.text[s.start : s.end] == s.text


def test_many_tiny_sentences_are_bounded_by_the_sentence_limit(tmp_path):
    path = tmp_path / "dots.txt"
    body = " ".join(f"Item {i} sold." for i in range(3 * ingest.MAX_SENTENCES))
    path.write_text("Sale Results\n\n" + body + "\n")
    assert len(body) < ingest.MAX_CHARS  # the character limit alone would keep all of it
    (doc,), warnings = parse_file(path)
    assert len(warnings) == 1 and "dots.txt: indexed only the first" in warnings[0]
    sents, _ = chunk(doc, words)
    assert ingest.MAX_SENTENCES - 5 <= len(sents) <= ingest.MAX_SENTENCES
    assert path.read_text().startswith(doc.text)  # cut, not changed: offsets still index the file
