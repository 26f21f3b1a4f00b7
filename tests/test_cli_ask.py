"""`qa ask`: one question, JSON output, JSON Lines from stdin, --top, abstention."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, SEED, json_lines, run_qa

SENTENCE_KEYS = {"text": str, "source": str, "title": str, "start": int, "end": int, "paragraph": int, "score": float,
                 "byte_start": int, "byte_end": int}
OPTIONAL_KEYS = {"date", "url"}  # a string when known, null when not
SEED_BYTES = (REPO / SEED).read_bytes()
SEED_TEXT = SEED_BYTES.decode("utf-8-sig")
SEED_TITLE = SEED_TEXT.splitlines()[0]
BROAD = "Geneva agreement"  # many seed sentences are about it


def check_answer_schema(obj: dict, question: str) -> None:
    assert set(obj) >= {"question", "answered", "sentences"}
    assert obj["question"] == question
    assert isinstance(obj["answered"], bool)
    assert isinstance(obj["sentences"], list)
    assert obj["answered"] == bool(obj["sentences"])
    for s in obj["sentences"]:
        assert set(s) - {"also"} == set(SENTENCE_KEYS) | OPTIONAL_KEYS, s.keys()
        for key, typ in SENTENCE_KEYS.items():
            assert isinstance(s[key], typ) and not isinstance(s[key], bool), (key, s[key])
        assert s["date"] is None and s["url"] is None  # the seed has no dateline
        # the citation is verbatim: the file's text at [start, end), and its bytes at [byte_start, byte_end)
        assert s["source"] == SEED and s["title"] == SEED_TITLE
        assert SEED_TEXT[s["start"] : s["end"]] == s["text"]
        assert SEED_BYTES[s["byte_start"] : s["byte_end"]].decode("utf-8") == s["text"]
        assert 0 <= s["start"] < s["end"] <= len(SEED_TEXT) and s["paragraph"] >= 0
    scores = [s["score"] for s in obj["sentences"]]
    assert scores == sorted(scores, reverse=True)


def ask_json(seed_index, *args: str, stdin: str | None = None):
    proc = run_qa("ask", "--json", "--index", str(seed_index), *args, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_ask_json_schema(seed_index):
    q = "Who led the trade delegations in London?"
    proc = ask_json(seed_index, q)
    (obj,) = json_lines(proc.stdout)
    assert proc.stdout.count("\n") == 1  # exactly one line of JSON
    check_answer_schema(obj, q)
    assert obj["answered"] is True
    assert "Scott Bessent" in " ".join(s["text"] for s in obj["sentences"])


@pytest.mark.parametrize("top", [1, 2, 5])
def test_top_is_respected(seed_index, top):
    (obj,) = json_lines(ask_json(seed_index, BROAD, "--top", str(top)).stdout)
    check_answer_schema(obj, BROAD)
    assert obj["answered"]
    assert 1 <= len(obj["sentences"]) <= top
    if top == 1:
        assert len(obj["sentences"]) == 1


def test_json_gives_the_top_sentences_and_the_terminal_hides_weak_ones(seed_index):
    from qa.retrieve import Ranker

    floor = Ranker.default().floor
    (obj,) = json_lines(ask_json(seed_index, BROAD, "--top", "8").stdout)
    assert len(obj["sentences"]) == 8  # the seed has 17 sentences: a script gets all it asked for
    weak = [s["text"] for s in obj["sentences"][1:] if s["score"] < floor]
    assert weak, "no weak sentence in the top 8: this check would check nothing"
    proc = run_qa("ask", BROAD, "--top", "8", "--index", str(seed_index))
    assert proc.returncode == 0
    answer = proc.stdout.split("\nSources\n")[0]
    assert [line.rsplit(" [", 1)[0] for line in answer.splitlines()] == [s["text"] for s in obj["sentences"] if s["text"] not in weak]


def test_top_widens_the_answer(seed_index):
    one = json_lines(ask_json(seed_index, BROAD, "-n", "1").stdout)[0]["sentences"]
    five = json_lines(ask_json(seed_index, BROAD, "-n", "5").stdout)[0]["sentences"]
    assert len(five) > len(one) == 1
    assert five[0] == one[0]  # more sentences, same best one


def test_ask_json_lines_from_stdin(seed_index):
    questions = [
        "Who led the trade delegations in London?",
        "What is the capital of France?",
        "Why did the Geneva deal falter?",
    ]
    stdin = questions[0] + "\n\n   \n" + questions[1] + "\n" + questions[2]  # blank lines skipped, no final newline
    proc = ask_json(seed_index, "-", "--top", "2", stdin=stdin)
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    objs = [json.loads(line) for line in lines]
    assert [o.pop("line") for o in objs] == [1, 4, 5]  # input line numbers, blank lines counted
    for obj, q in zip(objs, questions):
        check_answer_schema(obj, q)
        assert len(obj["sentences"]) <= 2
    assert [o["answered"] for o in objs] == [True, False, True]
    # a batch answers each question the same as asking it alone
    (alone,) = json_lines(ask_json(seed_index, questions[2], "--top", "2").stdout)
    assert objs[2] == alone


def test_ask_plain_text_output(seed_index):
    proc = run_qa("ask", "Who led the trade delegations in London?", "--index", str(seed_index))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    out = proc.stdout
    assert "Scott Bessent" in out and "[1]" in out
    assert "\nSources\n" in out
    assert f"[1] {SEED_TITLE} — {SEED}, paragraph" in out
    assert "\x1b[" not in out  # piped output carries no colour codes


def test_ask_many_plain_text_from_stdin(seed_index):
    proc = run_qa("ask", "-", "--index", str(seed_index), stdin="Who led the trade delegations in London?\nWhat is the capital of France?\n")
    assert proc.returncode == 0
    assert "Q: Who led the trade delegations in London?" in proc.stdout
    assert "Q: What is the capital of France?\nNo answer in the indexed articles." in proc.stdout


def test_off_topic_question_is_declined(seed_index):
    (obj,) = json_lines(ask_json(seed_index, "What is the capital of France?").stdout)
    assert obj["answered"] is False and obj["sentences"] == []
    proc = run_qa("ask", "What is the capital of France?", "--index", str(seed_index))
    assert proc.returncode == 0
    assert proc.stdout.strip() == "No answer in the indexed articles."


GENEVA = "reaching an agreement on the implementation of the Geneva consensus"


def test_seed_question_is_answered_and_cites_the_geneva_consensus_sentence(seed_index):
    (obj,) = json_lines(ask_json(seed_index, "What did London agree?").stdout)
    assert obj["answered"] is True
    assert any(GENEVA in s["text"] for s in obj["sentences"]), [s["text"] for s in obj["sentences"]]
    # and a reader sees it: the terminal does not hide it as a weak secondary sentence
    proc = run_qa("ask", "What did London agree?", "--index", str(seed_index))
    assert GENEVA in proc.stdout.split("\nSources\n")[0]


@pytest.mark.xfail(strict=True, reason="known gap: 'This London agreement is seen as ...' ranks first (BENCHMARKS.md)")
def test_seed_question_answers_first_with_the_geneva_consensus_sentence(seed_index):
    (obj,) = json_lines(ask_json(seed_index, "What did London agree?").stdout)
    assert GENEVA in obj["sentences"][0]["text"]


def test_index_from_environment(seed_index):
    proc = run_qa("ask", "--json", "Who led the trade delegations in London?", QA_INDEX=str(seed_index))
    assert proc.returncode == 0, proc.stderr
    check_answer_schema(json_lines(proc.stdout)[0], "Who led the trade delegations in London?")


def test_first_ask_builds_the_index_from_the_corpus(new_index):
    """No index yet: `qa ask --corpus seeds` indexes first, then answers."""
    idx = new_index("auto")
    proc = run_qa("ask", "--json", "Who led the trade delegations in London?", "--index", str(idx), "--corpus", "seeds")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"qa: indexing into {idx} ...\n"  # one note; no progress bars off a terminal
    (obj,) = json_lines(proc.stdout)
    check_answer_schema(obj, "Who led the trade delegations in London?")
    assert obj["answered"]
    assert (idx / "CURRENT").read_text().strip() == "gen-000001"
