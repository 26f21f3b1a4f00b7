"""`qa chat` with piped stdin: follow-ups, :sources, :more, :reset, :help, :quit."""

from __future__ import annotations

import re

from conftest import REPO, SEED, json_lines, run_qa

SEED_TEXT = (REPO / SEED).read_bytes().decode("utf-8-sig")
SEED_TITLE = SEED_TEXT.splitlines()[0]
SESSION = [
    "Where were the talks held earlier this month?",
    "Who led them?",
    ":sources",
    ":more",
    ":reset",
    ":help",
    ":quit",
]


def chat(seed_index, lines: list[str], *args: str):
    proc = run_qa("chat", "--index", str(seed_index), *args, stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_chat_json_session(seed_index):
    lines = SESSION[:5] + [":sources", "Who led them?", ":bogus", ":help", ":quit", "What did London agree?"]
    out = json_lines(chat(seed_index, lines, "--json").stdout)
    assert len(out) == 9, out  # one object per question or command; nothing after :quit
    first, follow, sources, more, reset, sources_after_reset, cold, bogus, help_ = out

    assert first["question"] == SESSION[0] and first["answered"]
    assert "London" in " ".join(s["text"] for s in first["sentences"])

    # The follow-up is read in the light of the first question: it names the delegation leaders.
    assert follow["question"] == "Who led them?" and follow["answered"]
    assert "Scott Bessent" in " ".join(s["text"] for s in follow["sentences"])
    # "them" names nothing the first question names, so its words are added to the search
    assert follow["interpreted"] == "Who led them? (talks held earlier month)"
    assert "interpreted" not in first

    # :sources gives the whole paragraph of each cited sentence (once per paragraph), with every
    # cited sentence marked in it.
    assert sources["command"] == "sources"
    assert sorted(m for p in sources["paragraphs"] for m in p["markers"]) == list(range(1, len(follow["sentences"]) + 1))
    assert len({(p["source"], p["paragraph"]) for p in sources["paragraphs"]}) == len(sources["paragraphs"])
    for p in sources["paragraphs"]:
        assert p["source"] == SEED and SEED_TEXT[p["start"] : p["end"]] == p["text"]
        assert len(p["markers"]) == len(p["cited"])
        for marker, (a, b) in zip(p["markers"], p["cited"]):
            s = follow["sentences"][marker - 1]
            assert p["paragraph"] == s["paragraph"] and p["text"][a:b] == s["text"]

    # :more continues the same question with sentences not shown yet.
    assert more["command"] == "more" and more["question"] == "Who led them?"
    shown = {s["text"] for s in follow["sentences"]}
    assert more["sentences"] and not shown & {s["text"] for s in more["sentences"]}
    for s in more["sentences"]:
        assert SEED_TEXT[s["start"] : s["end"]] == s["text"]

    # :reset forgets: no sources, and the same follow-up is then asked on its own, exactly as a
    # one-shot `qa ask` would answer it (no earlier question in its query).
    assert reset == {"command": "reset"}
    assert sources_after_reset == {"command": "sources", "paragraphs": []}
    (one_shot,) = json_lines(run_qa("ask", "--json", "Who led them?", "--index", str(seed_index)).stdout)
    assert cold == one_shot
    assert cold["score"] != follow["score"]

    assert bogus["command"] == ":bogus" and "unknown command" in bogus["error"]
    assert help_["command"] == "help" and ":sources" in help_["text"] and ":quit" in help_["text"]


def markers(text: str) -> list[int]:
    """Markers of answer-sentence lines ("... sentence. [2]")."""
    return [int(m) for m in re.findall(r" \[(\d+)\]$", text, flags=re.M)]


def test_chat_plain_text_session(seed_index):
    proc = chat(seed_index, SESSION + ["What is the capital of France?"])
    out = proc.stdout
    assert "\x1b[" not in out  # piped: no colour codes
    # Each answer (two questions, then :more) ends with a Sources list.
    blocks = out.split("\nSources\n")
    assert len(blocks) == 4, out
    first_answer = blocks[0]
    _, follow_up = blocks[1].split("\n\n", 1)  # answer 1's source lines, then answer 2
    assert "London" in first_answer
    assert "Scott Bessent" in follow_up
    shown = markers(follow_up)
    assert shown == list(range(1, len(shown) + 1))

    # :sources: a header per cited paragraph (with the markers cited in it), then the paragraph
    sources_and_more = blocks[2]
    paragraph_4 = SEED_TEXT.splitlines()[6]
    assert paragraph_4.startswith("Earlier this month") and "Scott Bessent" in paragraph_4
    header = rf"^\[1\](\[\d+\])* {re.escape(SEED_TITLE)} — {re.escape(SEED)}, paragraph 4\n"
    assert len(re.findall(header + re.escape(paragraph_4) + r"\n", sources_and_more, flags=re.M)) == 1
    # :more numbers on from where the answer stopped
    more = markers(sources_and_more)
    assert more and more[0] == len(shown) + 1
    assert more == list(range(more[0], more[0] + len(more)))

    tail = blocks[3]
    assert tail.index("Conversation cleared.") < tail.index(":sources   full cited paragraphs")
    assert "No answer in the indexed articles." not in out  # nothing after :quit was asked


def test_chat_reports_empty_question_and_goes_on(seed_index):
    proc = chat(seed_index, ["\x00\x07", "Who led the trade delegations in London?"], "--json")
    out = json_lines(proc.stdout)
    assert len(out) == 1 and out[0]["answered"]
    assert "qa: warning: line 1: skipped, nothing left to ask" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.returncode == 0


def test_chat_ends_at_end_of_input(seed_index):
    proc = chat(seed_index, ["Who led the trade delegations in London?"], "--json")  # no :quit
    assert len(json_lines(proc.stdout)) == 1


def test_chat_sources_after_a_declined_question(seed_index):
    out = chat(seed_index, [":sources", "What is the capital of France?", ":sources"]).stdout
    assert out.index("No cited sources yet: ask a question first.") < out.index("No answer in the indexed articles.")
    assert out.index("No answer in the indexed articles.") < out.index("The last question had no answer, so nothing was cited.")


def test_sources_of_a_markdown_article_show_no_markup(new_index, tmp_path):
    corpus = tmp_path / "md"
    corpus.mkdir()
    (corpus / "restate.md").write_text(
        "# Northwind Restates Results\n\nNorthwind **restated** its revenue to $398 million after an "
        "[internal review](https://news.example/review) on Wednesday.\n", encoding="utf-8")
    idx = new_index()
    assert run_qa("index", str(corpus), "--index", str(idx)).returncode == 0
    proc = run_qa("chat", "--index", str(idx), stdin="What did Northwind restate its revenue to?\n:sources\n")
    assert proc.returncode == 0, proc.stderr
    assert "Northwind restated its revenue to $398 million after an internal review on Wednesday." in proc.stdout
    assert "**" not in proc.stdout and "](" not in proc.stdout
