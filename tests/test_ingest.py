"""Reading articles: formats, titles, and files that must be skipped with a warning."""

from __future__ import annotations

import re

import pytest

from conftest import CHROMEDRIVER, CHROMIUM, CORPUS_FIXTURES, NO_BROWSER, json_lines, start_chromium
from qa.index import Index
from qa.ingest import SourceFile, find_files, parse


def parse_fixture(name: str) -> tuple[list, list[str]]:
    path = CORPUS_FIXTURES / name
    warnings: list[str] = []
    return parse(SourceFile(path, name), path.read_bytes(), warnings.append), warnings


def test_txt_title_is_first_line_and_text_is_the_file():
    (doc,), warnings = parse_fixture("harbor_port.txt")
    assert warnings == []
    assert doc.title == "Port of Halden Reopens After Three-Week Dockworkers' Strike"
    assert doc.text == (CORPUS_FIXTURES / "harbor_port.txt").read_text(encoding="utf-8")
    assert doc.skip == () and doc.headline


def test_txt_repeated_title_is_marked_to_skip():
    (doc,), _ = parse_fixture("fed_rates.txt")
    title = "Fed Holds Rates Steady as Inflation Cools to 3.5%"
    assert doc.title == title
    ((start, end),) = doc.skip
    assert doc.text[start:end] == title + "\n"
    assert start == len(title) + 1


def test_txt_with_bom_and_crlf(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffStorm Closes Schools\r\n\r\nSchools closed on Monday. Roads were icy.\r\n".encode("utf-8"))
    (doc,) = parse(SourceFile(path, "crlf.txt"), path.read_bytes(), pytest.fail)
    assert doc.title == "Storm Closes Schools"
    assert doc.text.startswith("Storm")  # the BOM is not part of the text


def test_markdown_title_drops_the_heading_marker():
    (doc,), _ = parse_fixture("solar_farm.md")
    assert doc.title == "Desert Solar Farm Wins Approval Despite Water Concerns"


def test_html_main_text_and_title_without_markup():
    (doc,), warnings = parse_fixture("museum_theft.html")
    assert warnings == []
    assert doc.title == "Stolen Gold Coins Recovered From Museum Heist"
    assert "Police in Vienna have recovered more than 200 gold coins" in doc.text
    assert "new security cameras and alarms" in doc.text
    assert not re.search(r"<\s*/?\s*[a-zA-Z]", doc.text)  # no tags
    for boilerplate in ("window.analytics", "font-family", "Subscribe now", "Privacy policy", "All rights reserved"):
        assert boilerplate not in doc.text
    # The page states no date; "Copyright 2024" in its footer is no publication date (htmldate's
    # extensive search used to turn it into 2024-01-01).
    assert doc.date is None
    # The <h1> opens the extracted text: it is paragraph 0, like a text file's title line.
    assert doc.text.startswith(doc.title + "\n") and doc.headline is True


def test_jsonl_one_document_per_record_with_metadata():
    docs, warnings = parse_fixture("wire.jsonl")
    assert [d.key for d in docs] == ["wire.jsonl#0", "wire.jsonl#1"]
    assert docs[0].title == "Drought Forces Rationing in Cape Town Suburbs"
    assert docs[0].date == "2024-02-09"
    assert docs[0].url == "https://example.com/cape-town-drought"
    assert docs[1].date == "2024-02-10" and docs[1].url is None
    assert docs[0].text.startswith("Water officials in Cape Town")
    assert all(d.source == "wire.jsonl" and d.headline is False for d in docs)
    assert warnings == ['skipped record 2 of wire.jsonl: needs a "text" string']


def test_json_single_record_keyed_by_file():
    (doc,), warnings = parse_fixture("chess_prodigy.json")
    assert warnings == []
    assert doc.key == "chess_prodigy.json"
    assert doc.title == "Eleven-Year-Old Becomes Youngest Chess Grandmaster"
    assert (doc.date, doc.url) == ("2024-03-03", "https://example.com/chess")


def test_json_without_title_uses_first_line(tmp_path):
    path = tmp_path / "untitled.json"
    path.write_text('[{"text": "Bridge Reopens\\nThe bridge reopened on Monday."}, {"text": "Second story."}]')
    docs = parse(SourceFile(path, "untitled.json"), path.read_bytes(), pytest.fail)
    assert [d.title for d in docs] == ["Bridge Reopens", "Second story."]


def test_invalid_jsonl_line_is_skipped_with_a_warning_and_the_rest_kept(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"title": "ok", "text": "fine"}\n\n{"title": "cut off", "te\n{"title": "later", "text": "also fine"}\n')
    warnings: list[str] = []
    docs = parse(SourceFile(path, "broken.jsonl"), path.read_bytes(), warnings.append)
    # the bad record keeps its number: fixing it later does not re-key the records after it
    assert [(d.key, d.title, d.text) for d in docs] == [("broken.jsonl#0", "ok", "fine"), ("broken.jsonl#2", "later", "also fine")]
    # one warning, pointing at the file's line 3 (not the line within the record)
    assert len(warnings) == 1 and warnings[0].startswith("skipped line 3 of broken.jsonl: invalid JSON"), warnings


def test_invalid_json_file_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"title": "ok", "text": "fine"},\n {"title": "cut off", "te\n')
    warnings: list[str] = []
    assert parse(SourceFile(path, "broken.json"), path.read_bytes(), warnings.append) == []
    assert len(warnings) == 1 and warnings[0].startswith("skipped broken.json: invalid JSON") and warnings[0].endswith("line 2)"), warnings


def test_json_with_no_usable_record_warns_per_record(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text('[{"title": "no body"}, 42]')
    warnings: list[str] = []
    assert parse(SourceFile(path, "empty.json"), path.read_bytes(), warnings.append) == []
    assert warnings == [
        'skipped record 0 of empty.json: needs a "text" string',
        'skipped record 1 of empty.json: needs a "text" string',
    ]


def test_blank_text_file_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n\t\n")
    warnings: list[str] = []
    assert parse(SourceFile(path, "blank.txt"), path.read_bytes(), warnings.append) == []
    assert warnings == ["skipped blank.txt: no text"]


def test_binary_and_latin1_files_are_skipped_with_a_warning():
    docs, warnings = parse_fixture("archive_blob.txt")
    assert docs == [] and warnings == ["skipped archive_blob.txt: binary file"]
    docs, warnings = parse_fixture("latin1_cafe.txt")
    assert docs == [] and len(warnings) == 1 and warnings[0].startswith("skipped latin1_cafe.txt: not UTF-8 text")


def _page(title: str, body: str, head: str = "") -> str:
    return f"<html><head>{head}<title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>"


def _parse_page(tmp_path, name: str, data: bytes) -> tuple[list, list[str]]:
    path = tmp_path / name
    path.write_bytes(data)
    warnings: list[str] = []
    return parse(SourceFile(path, name), data, warnings.append), warnings


CAFE_BODY = ("<p>The caf\u00e9 on Rue Sainte-Catherine in Montr\u00e9al reopened on Monday after a fire in March, "
             "its owner said.</p><p>\u201cWe didn\u2019t think we\u2019d be back this year,\u201d said Ren\u00e9e "
             "Tremblay, who has run the caf\u00e9 since 1998. About 40 regulars queued before it opened.</p>")


def test_html_in_a_declared_legacy_encoding_is_read_as_a_browser_reads_it(tmp_path):
    # Labelled latin-1 but holding windows-1252 curly quotes (0x92-0x94), as real pages do.
    html = _page("Caf\u00e9 Reopens After Fire", CAFE_BODY, '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">')
    (doc,), warnings = _parse_page(tmp_path, "cafe.html", html.encode("cp1252"))
    assert warnings == []
    assert doc.title == "Caf\u00e9 Reopens After Fire"
    assert "Montr\u00e9al" in doc.text and "didn\u2019t" in doc.text and "Ren\u00e9e Tremblay" in doc.text

    body = "<p>\u6771\u4eac\u90fd\u306f\u6708\u66dc\u65e5\u3001\u65b0\u3057\u3044\u6a4b\u306e\u5efa\u8a2d\u3092\u767a\u8868\u3057\u305f\u3002</p>" * 3
    (doc,), warnings = _parse_page(tmp_path, "tokyo.htm", _page("\u6771\u4eac\u306e\u6a4b", body, '<meta charset="Shift_JIS">').encode("shift_jis"))
    assert warnings == [] and "\u65b0\u3057\u3044\u6a4b" in doc.text


def test_html_in_an_undeclared_legacy_encoding_is_guessed_not_skipped(tmp_path):
    (doc,), warnings = _parse_page(tmp_path, "cafe.html", _page("Caf\u00e9 Reopens After Fire", CAFE_BODY * 3).encode("cp1252"))
    assert warnings == []
    assert "Montr\u00e9al" in doc.text and "Ren\u00e9e Tremblay" in doc.text
    # a page that claims UTF-16 in its <meta> was readable as ASCII: the claim is ignored, as browsers do
    wrong = _page("Caf\u00e9 Reopens After Fire", CAFE_BODY * 3, '<meta charset="utf-16">').encode("cp1252")
    wrong += b" " * (len(wrong) % 2)  # an even length, which UTF-16 would decode into nonsense
    (doc,), warnings = _parse_page(tmp_path, "wrong.html", wrong)
    assert warnings == [] and "Montr\u00e9al" in doc.text


def test_a_browsers_single_file_save_is_read_as_its_page(tmp_path):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "Caf\u00e9 Reopens After Fire"
    msg["MIME-Version"] = "1.0"
    msg.make_related()
    html = _page("Caf\u00e9 Reopens After Fire", CAFE_BODY).encode("cp1252")
    msg.add_related(html, maintype="text", subtype="html", cte="quoted-printable", params={"charset": "windows-1252"})
    msg.add_related(b"\x89PNG\r\n\x1a\n" + bytes(64), maintype="image", subtype="png", cte="base64")
    (doc,), warnings = _parse_page(tmp_path, "cafe.mhtml", msg.as_bytes())
    assert warnings == []
    assert doc.title == "Caf\u00e9 Reopens After Fire"
    assert "Montr\u00e9al" in doc.text and "didn\u2019t" in doc.text and "=E9" not in doc.text

    docs, warnings = _parse_page(tmp_path, "empty.mht", b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
    assert docs == [] and warnings == ["skipped empty.mht: no web page in this MHTML file"]


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=NO_BROWSER)
def test_a_page_chromium_saves_as_one_file_reads_as_the_page(tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    page = CORPUS_FIXTURES / "museum_theft.html"
    driver = start_chromium(tmp_path / "profile")
    try:
        driver.get(page.as_uri())
        snapshot = driver.execute_cdp_cmd("Page.captureSnapshot", {"format": "mhtml"})["data"]
    finally:
        driver.quit()
    assert snapshot.startswith("From: <Saved by Blink>")
    (saved,), warnings = _parse_page(tmp_path, "museum_theft.mhtml", snapshot.encode("utf-8"))
    (original,), _ = parse_fixture("museum_theft.html")
    assert warnings == []
    assert (saved.title, saved.text, saved.date) == (original.title, original.text, original.date)


def test_the_assets_folder_of_a_saved_page_is_not_indexed(tmp_path):
    (tmp_path / "Storm closes schools.html").write_text(_page("Storm", "<p>Schools closed.</p>"))
    (tmp_path / "Storm closes schools_files").mkdir()
    (tmp_path / "Storm closes schools_files" / "saved_resource.html").write_text(_page("Ad", "<p>Buy now.</p>"))
    (tmp_path / "notes_files").mkdir()  # no notes.html beside it: an ordinary folder
    (tmp_path / "notes_files" / "a.txt").write_text("A\n\nBody.")
    names = [f.path.relative_to(tmp_path).as_posix() for f in find_files([tmp_path])]
    assert names == ["Storm closes schools.html", "notes_files/a.txt"]


def test_find_files_skips_hidden_and_unsupported_and_keeps_broken_links(tmp_path):
    (tmp_path / "a.txt").write_text("A\n\nBody.")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("# C")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "folder.txt").mkdir()
    names = [f.path.relative_to(tmp_path).as_posix() for f in find_files([tmp_path])]
    assert names == ["a.txt", "gone.txt", "sub/c.md"]


# -- the fixture corpus, indexed through the CLI ------------------------------------------------


def test_index_warns_about_each_skipped_file_by_name(fixture_corpus):
    stderr = fixture_corpus.proc.stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("qa: warning:")]
    assert "Traceback" not in stderr
    expected = {
        "corpus/archive_blob.txt": "binary file",
        "corpus/latin1_cafe.txt": "not UTF-8 text",
        "corpus/deleted_story.txt": "No such file or directory",
    }
    for source, reason in expected.items():
        hits = [w for w in warnings if f"skipped {source}:" in w]
        assert len(hits) == 1 and reason in hits[0], (source, warnings)
    assert any('skipped record 2 of corpus/wire.jsonl' in w for w in warnings)
    report = json_lines(fixture_corpus.proc.stdout)[0]
    assert len(report["warnings"]) == len(warnings)


def test_index_holds_the_readable_rest(fixture_corpus):
    index = Index.open(fixture_corpus.index)
    got = dict(index.db.execute("SELECT key, title FROM documents"))
    assert got == {
        "corpus/chess_prodigy.json": "Eleven-Year-Old Becomes Youngest Chess Grandmaster",
        "corpus/fed_rates.txt": "Fed Holds Rates Steady as Inflation Cools to 3.5%",
        "corpus/harbor_port.txt": "Port of Halden Reopens After Three-Week Dockworkers' Strike",
        "corpus/museum_theft.html": "Stolen Gold Coins Recovered From Museum Heist",
        "corpus/solar_farm.md": "Desert Solar Farm Wins Approval Despite Water Concerns",
        "corpus/wire.jsonl#0": "Drought Forces Rationing in Cape Town Suburbs",
        "corpus/wire.jsonl#1": "Airline Orders 60 Jets in Record Deal",
        "corpus/fed_digits.txt": "Fed Holds Rates Into the New Year",
        "corpus/markets.md": "Copper Hits a Record High",
        "corpus/northwind.jsonl#0": "Northwind Posts Record Profit",
        "corpus/northwind.jsonl#2": "Northwind Restates Results",
        "corpus/northwind.jsonl#3": "Untitled",
        "corpus/storm_bom_crlf.txt": "Storm Closes Schools Across the Région",
        "corpus/tide_cr.txt": "Record Tide Floods Harbour Walk",
    }
    texts = [t for (t,) in index.db.execute("SELECT text FROM sentences")]
    assert "Deliveries are expected to begin in 2027." in texts
    assert not any("Montréal" in t or "Compressed newsletter" in t for t in texts)
    assert not any("<" in t and ">" in t for t in texts)
    assert index.manifest["counts"]["documents"] == 14


def test_answers_come_from_html_and_jsonl_articles(fixture_corpus):
    from qa.answer import Bot

    bot = Bot.open(fixture_corpus.index)
    # Which sentence ranks first is the ranker's business; here: the HTML body is found and cited.
    a = bot.ask("Where were the stolen gold coins found?", top=3)
    assert a.answered and a.sentences[0].citation.source == "corpus/museum_theft.html"
    assert any("storage unit" in s.text and s.citation.source == "corpus/museum_theft.html" for s in a.sentences)
    a = bot.ask("How many jets did Skyline Airways order?")
    assert a.answered and a.sentences[0].citation.source == "corpus/wire.jsonl"
    assert "60 narrow-body jets" in a.sentences[0].text


def test_html_headline_is_not_cited_above_the_body(fixture_corpus):
    from qa.answer import Bot

    bot = Bot.open(fixture_corpus.index)
    headline = "Stolen Gold Coins Recovered From Museum Heist"
    a = bot.ask(headline, top=10)
    assert a.answered and a.sentences[0].citation.source == "corpus/museum_theft.html"
    assert all(s.text != headline for s in a.sentences), [s.text for s in a.sentences]
