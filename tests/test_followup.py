"""qa.followup.read: which questions need the conversation, and how they are rewritten."""

from __future__ import annotations

from qa.followup import Focus, entities, read


def focus(query: str, answer: str) -> Focus:
    return Focus(query, answer, doc=0, paragraph=1, rows=[5])


def test_no_focus_or_no_cue_means_asked_as_is():
    assert read("When did he die?", None).how == "alone"
    f = focus("When did Mongke Khan become Great Khan?", "Mongke Khan became Great Khan in 1251.")
    r = read("What is the capital of France?", f)
    assert (r.query, r.how) == ("What is the capital of France?", "alone")
    # existential "there" and a relative "that" point at nothing
    assert read("How many moons are there around Mars?", f).how == "alone"
    assert read("What is the river that flows through Paris?", f).how == "alone"


def test_person_and_thing_pronouns():
    f = focus("When did Mongke Khan become Great Khan?", "Mongke Khan became Great Khan in 1251.")
    assert read("When did he die?", f).query == "When did Mongke Khan die?"
    assert read("Who was his brother?", f).query == "Who was Mongke Khan's brother?"
    t = focus("When was Levi's Stadium opened?", "Levi's Stadium opened in 2014.")
    assert read("Who owns it?", t).query == "Who owns Levi's Stadium?"


def test_it_never_stands_for_two_names_joined_by_and():
    f = focus("What did the US and China agree on rare earths?", "The US and China agreed to ease export curbs.")
    assert read("What did they sign?", f).query == "What did US and China sign?"
    r = read("When was it announced?", f)  # "it" is the agreement, which no name says
    assert (r.query, r.how) == ("When was it announced? (US and China)", "expanded")
    # a single name beside the pair is still "it"
    g = focus("When did the US and China sign the Geneva Accord?", "They signed the Geneva Accord in May.")
    assert read("What did it change?", g).query == "What did Geneva Accord change?"


def test_after_a_who_question_he_is_the_answer():
    f = focus("Who was Kublai Khan's grandfather?", "Kublai Khan was a grandson of Genghis Khan, who founded the Mongol Empire.")
    assert read("Which tribes did he unite?", f).query == "Which tribes did Genghis Khan unite?"


def test_after_who_is_a_name_she_is_that_name():
    # the answer names someone else first ("the Biden administration"): the pronoun is still who was asked about
    f = focus("Who is Elizabeth Prelogar?", "Solicitor General Elizabeth Prelogar is the Biden administration's top lawyer at the court.")
    assert read("How old is she?", f).query == "How old is Elizabeth Prelogar?"
    assert read("What did Alito ask her?", f).query == "What did Alito ask Elizabeth Prelogar?"


def test_a_question_word_alone_asks_about_the_last_turn():
    f = focus("When was Tesla born?", "Tesla was born in 1856.")
    assert read("Where?", f).query == read("And where?", f).query == "Where was Tesla born?"
    assert read("When?", None).query == "When?"


def test_there_and_then_take_the_previous_answer():
    place = focus("Where did the Broncos practice?", "The Broncos practiced at Stanford University.")
    assert read("Who else practiced there?", place).query == "Who else practiced in Stanford University?"
    date = focus("When was the last Super Bowl in California?", "The last one was Super Bowl XXXVII in 2003.")
    assert read("Which team won that year?", date).query == "Which team won in 2003?"


def test_ellipsis_replaces_the_matching_slot():
    f = focus("Who won Super Bowl XLIX?", "The New England Patriots won Super Bowl XLIX.")
    assert read("And 50?", f).query == "Who won Super Bowl 50?"
    g = focus("How many primary affiliates did CBS have in 1954?", "CBS had 74 primary affiliates.")
    assert read("And ABC?", g).query == "How many primary affiliates did ABC have in 1954?"
    assert read("What about 1960?", g).query == "How many primary affiliates did CBS have in 1960?"
    assert read("And where?", focus("When was Tesla born?", "Tesla was born in 1856.")).query == "Where was Tesla born?"


def test_entities_skip_question_words_and_sentence_openers():
    assert entities("When did Martin Luther translate the Bible?") == ["Martin Luther", "Bible"]
    assert entities("Other ships came later. Kublai Khan's army won.") == ["Kublai Khan"]


def test_there_takes_a_place_named_after_a_preposition_and_then_a_century():
    place = focus("Where was Calvin educated?", "Farel, a student of Lefevre, became a leader of the Reformation in Geneva.")
    assert read("Who else was educated there?", place).query == "Who else was educated in Geneva?"
    century = focus("When did the population recover?", "It did not recover until the 17th century.")
    assert read("How many died in Italy then?", century).query == "How many died in Italy in the 17th century?"


def test_a_demonstrative_with_nothing_to_name_adds_the_previous_names():
    f = focus("When did the French and Indian War begin?", "The French and Indian War began in 1754.")
    r = read("Who won this war?", f)
    assert (r.query, r.how) == ("Who won this war? (French and Indian War)", "expanded")
    assert read("What caused that?", f).query == "What caused that? (French and Indian War)"


def test_a_bare_fragment_is_an_ellipsis_and_an_empty_it_points_at_nothing():
    f = focus("How much profit did Northwind make in 2023?", "In 2023 Northwind earned a profit of $21 million.")
    assert read("In 2024?", f).query == "How much profit did Northwind make in 2024?"
    assert read("Really?", f).how == "alone" and read("And then?", f).how != "ellipsis"
    assert read("What is it called when water freezes?", f).how == "alone"
    assert read("Is it true that Northwind is based in Tacoma?", f).how == "alone"
    assert read("Who founded it?", f).query == "Who founded Northwind?"
    assert read("What was it named after?", f).query == "What was Northwind named after?"


def test_he_prefers_the_person_of_the_previous_question():
    f = focus("When did Luther die?", "Martin Luther died in Eisleben, where Philipp Melanchthon later spoke.")
    assert read("Where was he buried?", f).query == "Where was Martin Luther buried?"
    g = focus("Why did Northwind restate its results?", "Northwind's chief executive, Dana Whitfield, explained it.")
    assert read("When did she join?", g).query == "When did Dana Whitfield join?"
    h = focus("What did Kublai do in 1271?", "In 1271 the dynasty was named.")
    assert read("When did he die?", h).query == "When did Kublai die?"


def test_this_or_that_as_a_subject_stands_for_the_last_event():
    f = focus("What did London agree?", "This London agreement is seen as a crucial step.")
    r = read("Why did that happen?", f)
    assert (r.query, r.how) == ("Why did that happen? (London agree)", "expanded")
    assert read("Was that legal?", f).query == "Was that legal? (London agree)"
    assert read("Was this legal?", f).query == "Was this legal? (London)"  # "this legal": names only
    # a relative or complement "that" is no subject of its own
    assert read("What is the river that flows through Paris?", f).how == "alone"
    assert read("Who said that the talks failed?", f).how == "alone"
