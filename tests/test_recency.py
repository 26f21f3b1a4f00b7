"""Dates that count: --since/--until, `qa sources`, and newer articles first where time matters.

Runs on tests/data/news_recency (invented wire stories, each with an earlier report and an update).
"""

from __future__ import annotations

import shutil

import pytest

from conftest import json_lines, run_qa, seed_models
from qa.errors import UsageError
from qa.recency import DateRange, Period, named_period, search_text, wants_latest

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data" / "news_recency"


@pytest.fixture(scope="module")
def news_index(tmp_path_factory, seed_index):
    root = tmp_path_factory.mktemp("news")
    shutil.copy(DATA / "articles.jsonl", root / "wire.jsonl")
    seed_models(seed_index, root / "index")
    proc = run_qa("index", "wire.jsonl", "--index", "index", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "index"


def ask(index, *args):
    proc = run_qa("ask", "--json", "--index", str(index), *args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (obj,) = json_lines(proc.stdout)
    return obj


def test_date_range_bounds():
    r = DateRange.parse("2026-05", "2026-06-16")
    assert r.holds("2026-05-01") and r.holds("2026-06-16T09:30:00+00:00") and not r.holds("2026-06-17")
    assert not r.holds("2026-04-30") and not r.holds(None)  # undated articles are outside any range
    assert DateRange.parse("2026", None).holds("2026-12-31") and not DateRange.parse(None, "2025").holds("2026-01-01")
    assert DateRange.parse(None, None).holds(None)  # no range: everything
    for bad in ("2026-13", "yesterday", "26-05-01", "2026-02-30"):
        with pytest.raises(UsageError):
            DateRange.parse(bad, None)
    with pytest.raises(UsageError):
        DateRange.parse("2026-06", "2026-05")


def test_question_cues():
    assert wants_latest("How many people have died so far?") and wants_latest("Who is the mayor now?")
    assert not wants_latest("How many people died in the storm?")
    assert named_period("What revenue did Northwind report in July?") == Period(None, 7)
    assert named_period("What happened in Sept. 2025?") == Period(2025, 9)
    assert named_period("What was the forecast for 2027?") is None  # what is forecast, not when it was said
    assert Period(None, 7).holds("2026-07-28") and not Period(2025, 7).holds("2026-07-28")


def test_words_asking_for_the_latest_are_not_searched_for():
    assert search_text("What is the latest on Northwind's results?") == "What is Northwind's results?"
    assert search_text("How many people have died so far?") == "How many people have died?"
    assert search_text("What did Northwind report?") == "What did Northwind report?"  # nothing to strip
    assert search_text("What is the latest?") == "What is the latest?"  # nothing else left: as asked


def test_a_latest_question_is_answered_not_declined(news_index):
    # "latest" is no word of any article: searched for, it diluted the evidence, and on a small
    # collection such questions were declined (issue 12's "What is the latest on Northwind's results?").
    for q in ("What is the latest on Northwind's results?", "What are Northwind's latest results?"):
        obj = ask(news_index, q)
        assert obj["answered"] and "Northwind" in obj["sentences"][0]["title"], q
        assert obj["question"] == q  # the answer still names the question as asked


def test_latest_puts_the_update_first_and_keeps_the_older_report(news_index):
    obj = ask(news_index, "What is the latest on Northwind's second-quarter revenue?", "--top", "5")
    first = obj["sentences"][0]
    assert "restated its second-quarter revenue to $398 million" in first["text"]
    assert first["date"] == "2026-08-19" and first["url"] == "https://news.example/northwind-restates"
    # The July report is still there, further down, with its own date.
    older = [s for s in obj["sentences"] if "$412 million on Tuesday" in s["text"]]
    assert older and older[0]["date"] == "2026-07-28"


def test_the_update_outranks_a_better_scored_older_sentence(news_index):
    # The ranker alone prefers the May forecast; the June revision of the same figure comes first.
    obj = ask(news_index, "What growth does the Bank of Eldoria forecast for 2027?", "--top", "3")
    texts = [s["text"] for s in obj["sentences"]]
    assert "to 1.6%" in texts[0] and any("growth of 2.1%" in t for t in texts[1:])
    assert obj["sentences"][0]["score"] < obj["sentences"][1]["score"]  # moved by date, not by score


def test_a_named_month_picks_that_months_article(news_index):
    obj = ask(news_index, "What revenue did Northwind report in July?")
    assert "$412 million on Tuesday" in obj["sentences"][0]["text"] and obj["sentences"][0]["date"] == "2026-07-28"


def test_terminal_sources_show_dates(news_index):
    proc = run_qa("ask", "When is the second hearing in the Harbor Authority case now?", "--index", str(news_index))
    assert proc.returncode == 0, proc.stderr
    # The record of the multi-record file, the date, the paragraph.
    assert "[1] Second Hearing in Harbor Authority Case Postponed — wire.jsonl (story-08), 2026-08-27, paragraph 1" in proc.stdout


def test_since_and_until_filter_by_publication_date(news_index):
    q = "What growth does the Bank of Eldoria forecast for 2027?"
    until = ask(news_index, q, "--until", "2026-05", "--top", "5")
    assert until["answered"] and {s["date"] for s in until["sentences"]} <= {"2026-05-12", "2026-03-02"}
    assert "growth of 2.1%" in until["sentences"][0]["text"]
    since = ask(news_index, q, "--since", "2026-06-01", "--top", "5")
    assert all(s["date"] >= "2026-06-01" for s in since["sentences"])
    proc = run_qa("ask", q, "--since", "2027", "--index", str(news_index))
    assert proc.returncode == 0 and proc.stdout.strip() == "No answer in the indexed articles."
    assert "qa: warning: no indexed article is dated since 2027" in proc.stderr
    proc = run_qa("ask", q, "--since", "2026-06-31", "--index", str(news_index))
    assert proc.returncode == 2 and "qa: error: --since '2026-06-31' is not a date" in proc.stderr


def test_chat_since_command(news_index):
    q = "What growth does the Bank of Eldoria forecast for 2027?"
    proc = run_qa("chat", "--json", "--index", str(news_index), stdin=f":until 2026-05\n{q}\n:until off\n{q}\n")
    assert proc.returncode == 0, proc.stderr
    out = json_lines(proc.stdout)
    assert out[0] == {"command": "until", "since": None, "until": "2026-05"}
    assert "growth of 2.1%" in out[1]["sentences"][0]["text"]
    assert "to 1.6%" in out[3]["sentences"][0]["text"]


def test_sources_lists_articles_newest_first(news_index):
    proc = run_qa("sources", "--json", "--index", str(news_index))
    assert proc.returncode == 0, proc.stderr
    rows = json_lines(proc.stdout)
    assert len(rows) == 14
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
    assert (rows[0]["date"], rows[0]["title"]) == ("2026-11-05", "Greta Sol Wins Second Term as Lakeside Mayor")
    assert all(set(r) == {"source", "record", "title", "date", "url", "sentences"} and r["sentences"] > 0 for r in rows)
    assert {r["record"] for r in rows} == {f"story-{i:02d}" for i in range(1, 15)}
    text = run_qa("sources", "--index", str(news_index)).stdout
    assert text.splitlines()[0] == ("2026-11-05  Greta Sol Wins Second Term as Lakeside Mayor — wire.jsonl (story-14) "
                                    "<https://news.example/lakeside-result>, 3 sentences")
    assert text.splitlines()[-1] == "14 articles."
