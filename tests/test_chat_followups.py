"""Follow-ups in `qa chat` (and `Conversation.ask`) on a small hand-written news collection
(tests/fixtures/news): a person, a thing, an ellipsis, a reference to the previous answer, a topic
switch answered exactly as `qa ask` would, an unanswerable follow-up declined, :reset, the dim
"(reading it as: ...)" line and "interpreted" in --json."""

from __future__ import annotations

import shutil

import pytest

from conftest import FIXTURES, json_lines, run_qa, seed_models

NEWS = FIXTURES / "news"


@pytest.fixture(scope="module")
def news_index(tmp_path_factory, seed_index):
    root = tmp_path_factory.mktemp("news")
    shutil.copytree(NEWS, root / "news")
    seed_models(seed_index, root / "index")
    proc = run_qa("index", str(root / "news"), "--index", str(root / "index"))
    assert proc.returncode == 0, proc.stderr
    return root / "index"


def chat_json(index, lines: list[str]) -> list[dict]:
    proc = run_qa("chat", "--index", str(index), "--json", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json_lines(proc.stdout)


def ask_json(index, question: str) -> dict:
    (out,) = json_lines(run_qa("ask", "--json", question, "--index", str(index)).stdout)
    return out


def texts(answer: dict) -> list[str]:
    return [s["text"] for s in answer["sentences"]]


def test_pronoun_for_a_thing_and_for_a_person(news_index):
    first, ceo, joined = chat_json(news_index, [
        "What did Northwind report for the second quarter?",
        "Who is its chief executive?",  # before: the revenue sentences again
        "When did she join the company?",
    ])
    assert "interpreted" not in first  # a first question is asked as is
    assert ceo["interpreted"] == "Who is Northwind's chief executive?"
    assert "Dana Whitfield" in texts(ceo)[0]
    # "she" is the person named in the previous answer, not the company of the previous question
    assert joined["interpreted"] == "When did Dana Whitfield join the company?"
    assert texts(joined)[0] == "Whitfield joined Northwind from a rail operator in 2019."


def test_pronoun_for_the_person_a_who_question_was_answered_with(news_index):
    _, before = chat_json(news_index, ["Who is the harbor master of Port Ellis?", "What did she do before?"])
    assert before["interpreted"] == "What did Maria Okafor do before?"
    assert any(t.startswith("Okafor previously ran the pilot service") for t in texts(before))


def test_reference_to_the_previous_answer(news_index):
    opened, mayor, later, based, staff = chat_json(news_index, [
        "When did the Port Ellis terminal open?",
        "Who was mayor then?",  # then = the date in the previous answer
        "What did he do later?",  # he = the name the previous answer gave
        "Where is Northwind based?",  # a topic switch: asked as is
        "How many people does it employ there?",  # there = the place in the previous answer
    ])
    assert "2011" in texts(opened)[0]
    assert mayor["interpreted"] == "Who was mayor in 2011?" and "Henrik Dahl" in texts(mayor)[0]
    assert later["interpreted"] == "What did Henrik Dahl do later?"
    assert "Dahl later served two terms in the state senate." in texts(later)
    assert "interpreted" not in based
    assert staff["interpreted"] == "How many people does Northwind employ in Tacoma?"
    assert "2,300 people" in texts(staff)[0]


def test_ellipsis_takes_the_previous_question_with_the_new_slot(news_index):
    q2023, q2024 = chat_json(news_index, ["How much profit did Northwind make in 2023?", "And in 2024?"])
    assert texts(q2023)[0].startswith("In 2023 Northwind earned")
    assert q2024["interpreted"] == "How much profit did Northwind make in 2024?"
    assert any(t.startswith("For 2024 the company expects profit") for t in texts(q2024))
    # the follow-up gets exactly what the standalone question gets from `qa ask`
    standalone = ask_json(news_index, "How much profit did Northwind make in 2024?")
    assert q2024["sentences"] == standalone["sentences"] and q2024["score"] == standalone["score"]


def test_topic_switch_is_answered_as_qa_ask_would(news_index):
    out = chat_json(news_index, [
        "What did Northwind report for the second quarter?",
        "Who is its chief executive?",
        "Who won the women's race at the Valley Marathon?",
    ])
    switch = out[-1]
    assert switch == ask_json(news_index, "Who won the women's race at the Valley Marathon?")
    assert "Almaz Bekele" in texts(switch)[0]


def test_unanswerable_follow_up_is_declined_not_answered_with_the_previous_answer(news_index):
    race, cfo = chat_json(news_index, ["Who won the men's race at the Valley Marathon?", "Who is its chief financial officer?"])
    assert race["answered"] and "Joseph Kiprono" in texts(race)[0]
    # before: answered with the winner's sentence again, because the previous question was glued on
    assert cfo["interpreted"] == "Who is Valley Marathon's chief financial officer?"
    assert not cfo["answered"] and cfo["sentences"] == []


def test_reset_forgets_the_focus(news_index):
    _, reset, alone = chat_json(news_index, ["What did Northwind report for the second quarter?", ":reset",
                                             "Who is its chief executive?"])
    assert reset == {"command": "reset"}
    assert "interpreted" not in alone
    assert alone == ask_json(news_index, "Who is its chief executive?")


def test_terminal_shows_what_was_understood(news_index):
    proc = run_qa("chat", "--index", str(news_index), stdin="What did Northwind report for the second quarter?\n"
                  "Who is its chief executive?\n:reset\nWho is its chief executive?\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("(reading it as: ") == 1  # only the follow-up before :reset
    line = "(reading it as: Who is Northwind's chief executive?)\n"
    assert line in out
    # the line comes right before that answer's first sentence
    assert out.split(line, 1)[1].startswith("Northwind's chief executive, Dana Whitfield")
    assert out.index("Conversation cleared.") > out.index(line)


def test_library_conversation_reports_the_reading(news_index):
    from qa import Bot

    bot = Bot.open(news_index)
    conv = bot.chat()
    first = conv.ask("Where is Northwind based?")
    assert first.interpreted is None and "interpreted" not in first.to_dict()
    follow = conv.ask("How many people does it employ there?")
    assert follow.interpreted == "How many people does Northwind employ in Tacoma?"
    assert follow.to_dict()["interpreted"] == follow.interpreted
    assert [a.question for a in conv.history] == ["Where is Northwind based?", "How many people does it employ there?"]
    conv.reset()
    assert conv.history == [] and conv.ask("How many people does it employ there?").interpreted is None


def test_a_follow_up_that_names_nothing_says_which_story_it_follows(news_index):
    # "this" points back but names nothing: the earlier question's names are added to the search,
    # and the terminal names the story followed rather than printing that search.
    proc = run_qa("chat", "--index", str(news_index),
                  stdin="How deep is the Port Ellis channel?\nWhen will this be finished?\n")
    assert proc.returncode == 0, proc.stderr
    assert "(following: Port Ellis Marks a Decade of Its Deep-Water Terminal)\n" in proc.stdout
    assert "(reading it as:" not in proc.stdout
    (_, follow) = chat_json(news_index, ["How deep is the Port Ellis channel?", "When will this be finished?"])
    assert follow["interpreted"] == "When will this be finished? (Port Ellis)"  # JSON still gives the search
