"""qa.features: the question-type cues and the within-article focus of a question's terms."""

from __future__ import annotations

import numpy as np

from qa.features import focus
from qa.lexical import query_terms, tokenize


def _focus(question: str, texts: list[str], docs: list[int], titles: list[str]) -> np.ndarray:
    sentences = [set(t) for t in tokenize(texts)]
    title_sets = [set(t) for t in tokenize(titles)]
    return focus(set(query_terms(question)), sentences, np.array(docs), title_sets)


LEAD = "GRANT COUNTY, Ore., July 21 - Firefighters had the Pine Ridge fire 65% contained on Tuesday."
CAUSE = "Officials said the fire was started by a lightning strike on Saturday."
ACRES = "The fire has burned 18,400 acres, officials said."
TITLE = "Pine Ridge fire nearly contained"


def test_the_sentence_with_the_asked_word_outranks_the_lead_that_restates_the_topic():
    f = _focus("What started the Pine Ridge fire?", [LEAD, CAUSE, ACRES], [1, 1, 1], [TITLE] * 3)
    # "pine", "ridg" and "fire" are the article's title: they weigh nothing; "start" is what is asked
    assert f[1] == 1.0
    assert f[0] == 0.0 and f[2] == 0.0


def test_without_the_title_rule_the_lead_would_win():
    # the same article under a title that does not name the fire: the topic words count again,
    # and "pine ridge" (only in the lead) is rarer in the article than "fire"
    f = _focus("What started the Pine Ridge fire?", [LEAD, CAUSE, ACRES], [1, 1, 1], ["Oregon news"] * 3)
    assert f[0] > f[1] > f[2] > 0


def test_terms_are_weighed_within_each_article_separately():
    texts = [LEAD, CAUSE, ACRES, "The Pine Ridge fire started near a campground, a ranger said."]
    f = _focus("What started the Pine Ridge fire?", texts, [1, 1, 1, 2], [TITLE] * 3 + ["Campground notes"])
    # article 2 has one candidate: every question term it holds is as rare as it can be there
    assert f[3] == 1.0
    assert f[1] == 1.0 and f[0] == 0.0


def test_a_question_made_only_of_title_words_keeps_them():
    f = _focus("Pine Ridge fire?", [LEAD, ACRES], [1, 1], [TITLE] * 2)
    assert f[0] == 1.0
    assert 0 < f[1] < 1


def test_no_question_terms_gives_zeros():
    assert focus(set(), [{"fire"}], np.array([1]), [set()]).tolist() == [0.0]


def test_term_sets_are_the_tokenizers_terms():
    from qa.lexical import term_sets

    texts = [LEAD, CAUSE, ACRES, "The agreement was signed; agreements were signed.", ""]
    assert term_sets(texts) == [set(t) for t in tokenize(texts)]


def test_names_are_the_capitalised_words_after_a_sentences_first():
    from qa.features import question_names

    assert question_names("How many members does the UGLE have in London?") == ["UGLE", "London"]
    assert question_names("What colour was the U2 iPod?") == ["U2"]  # digits in a name; "iPod" is not capitalised
    assert question_names("London agreed to what?") == []  # a first word is capitalised whatever it is
    assert question_names("Storm Helena hit Bergen. Who died?") == ["Helena", "Bergen"]  # so is a second sentence's
    assert question_names("  When did Northwind report?") == ["Northwind"]


def test_name_terms_are_stemmed_search_terms_and_their_coverage_is_one_without_any():
    from qa.features import name_coverage, name_terms

    assert name_terms("How many members does the UGLE have in London?") == {"ugl", "london"}
    assert name_terms("What did the talks reach?") == set()
    assert name_coverage({"ugl", "london"}, {"member", "london"}) == 0.5
    assert name_coverage(set(), set()) == 1.0


def test_two_letter_names_are_not_names_an_article_must_hold():
    """"US" is "U.S." in many articles: not a term the article's tokens could hold."""
    from qa.features import name_terms

    assert name_terms("What did the US and China agree?") == {"china"}
