"""Candidate retrieval: which sentences may be cited at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import json_lines, run_qa
from qa.stores.folder import _headlines

ROW = np.dtype([("doc", "<i4"), ("paragraph", "<i4"), ("passage0", "<i4"), ("passage1", "<i4")])


def test_only_a_one_sentence_headline_above_a_body_is_excluded():
    # doc 0: headline + body; doc 1: a first line of two sentences + body; doc 2: one line only
    info = np.array([(0, 0, 0, -1), (0, 1, 1, -1), (0, 1, 1, -1),
                     (1, 0, 2, -1), (1, 0, 2, -1), (1, 1, 3, -1),
                     (2, 0, 4, -1)], dtype=ROW)
    rows = np.arange(len(info))
    assert _headlines(info, rows).tolist() == [True, False, False, False, False, False, False]
    assert _headlines(info, np.array([2, 0])).tolist() == [False, True]  # any order, any subset


def test_headline_is_not_cited_but_a_one_line_file_is(tmp_path, new_index):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbor.txt").write_text(
        "Harbor Authority Approves Dredging Plan\n\n"
        "The harbor authority approved a plan on Tuesday to dredge the shipping channel to 15 meters.\n"
        "Work starts in March and is expected to take two years.\n", encoding="utf-8")
    (corpus / "lighthouse.txt").write_text(
        "The lighthouse keeper retired in 1987 after forty years on the island.\n", encoding="utf-8")
    index = new_index()
    proc = run_qa("index", str(corpus), "--index", str(index))
    assert proc.returncode == 0, proc.stderr

    questions = "What did the harbor authority approve?\nWhen did the lighthouse keeper retire?\n"
    proc = run_qa("ask", "--json", "--top", "5", "--index", str(index), "-", stdin=questions)
    assert proc.returncode == 0, proc.stderr
    harbor, lighthouse = json_lines(proc.stdout)
    assert harbor["answered"]
    assert harbor["sentences"][0]["text"].startswith("The harbor authority approved a plan")
    assert all(s["paragraph"] >= 1 for s in harbor["sentences"] if s["source"].endswith("harbor.txt"))
    assert lighthouse["answered"]
    assert lighthouse["sentences"][0]["text"].startswith("The lighthouse keeper retired in 1987")
    assert lighthouse["sentences"][0]["paragraph"] == 0



def test_question_terms_leave_out_question_words_unless_nothing_else_is_left():
    from qa.lexical import query_terms

    assert query_terms("What did London agree?") == ["london", "agre"]
    assert query_terms("Who did it?") == ["who", "did"]  # "it" is a stopword; keep what is left


def test_ment_nouns_share_a_term_with_their_verb():
    from qa.lexical import tokenize

    assert tokenize(["agree agreed agreement agreements"]) == [["agre"] * 4]
    assert tokenize(["settle settlement"])[0][0] == tokenize(["settle settlement"])[0][1]
    # Too short a stem before "-ment": left whole, not conflated with "mo" or "com".
    assert tokenize(["moment comment element"]) == [["moment", "comment", "element"]]


def test_sparse_bm25_equals_the_dense_scores_row_for_row(seed_index):
    """The per-question BM25 works on the union of posting rows; every value it gives is the one
    the dense (collection-sized) computation gives, and its top rows are the dense top rows."""
    from qa.index import Index
    from qa.lexical import query_terms

    index = Index.open(seed_index)
    everything = np.arange(index.sentence_count)
    for question in ["Who led the trade delegations in London?", "London London talks agreement", "zzz qqq", "What did they agree?"]:
        terms = query_terms(question)
        dense, dense_matches, n = index.bm25.scores_and_matches(terms)
        sparse, sparse_matches, m = index.bm25.sparse_scores_and_matches(terms)
        assert n == m and sparse.size == dense.size
        assert np.array_equal(sparse[everything], dense) and np.array_equal(sparse_matches[everything], dense_matches)
        assert sparse.max() == (float(dense.max()) if dense.size else 0.0)
        top = sparse.top(5)  # the 5 best scores (rows may differ only between equal scores)
        assert len(set(top.tolist())) == len(top) == min(5, int((dense > 0).sum()))
        assert sorted(dense[top].tolist()) == sorted(np.sort(dense[dense > 0])[::-1][:5].tolist())
        assert len(sparse.rows) == len(set(np.flatnonzero(dense > 0))) <= index.sentence_count


def test_bm25_written_with_numpy_equals_bm25s_and_an_update_equals_bm25s_over_the_live_rows(tmp_path, new_index):
    """qa computes bm25s's Lucene scores itself: the precomputed matrix (`Bm25`) bit for bit
    bm25s's, and the per-question scores of a segmented index after an update (tombstones, a new
    segment, vocabulary grown) bit for bit bm25s's fitted on the live sentences alone."""
    import shutil

    from conftest import CORPUS_FIXTURES
    from qa.build import build
    from qa.index import Index
    from qa.lexical import B, K1, Bm25

    seed = Path(__file__).resolve().parents[1] / "seeds" / "000_a965798dc9f0230f.txt"
    texts = [line for line in seed.read_text().splitlines() if line.strip()]
    texts += ["The the the talks.", "", "Agreement agreed agreeing in London again, London."]
    Bm25._fit(texts, K1, B).save(str(tmp_path / "bm25s"))
    Bm25.build(texts, tmp_path / "ours")
    ref, ours = Bm25.load(tmp_path / "bm25s"), Bm25.load(tmp_path / "ours")
    for q in ["Who led the talks in London?", "agreement", "the", "nothing matches zzzz"]:
        assert np.array_equal(ref.scores(q), ours.scores(q)), q
    assert np.any(ours.scores("London") > 0)

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(seed, corpus / "seed.txt")
    shutil.copy(CORPUS_FIXTURES / "fed_rates.txt", corpus / "fed_rates.txt")
    (corpus / "short.txt").write_text("Short Note\n\nLondon hosted new talks on Friday about rates.\n")
    root = new_index()
    build(root, [corpus])
    (corpus / "short.txt").unlink()
    (corpus / "new.txt").write_text("Fresh Pact\n\nA fresh agreement on zinc tariffs was signed in London.\n")
    build(root, [corpus])
    index = Index.open(root)
    assert index.manifest["segments"][0]["dead"] > 0 and len(index.segments) == 2
    live = index.live_rows()
    live_texts = [s.text for s in index.sentences_at(live)]
    Bm25._fit(live_texts, K1, B).save(str(tmp_path / "live"))
    ref = Bm25.load(tmp_path / "live")
    for q in ["London talks", "agreement signed", "Friday", "zinc tariffs", "Federal Reserve rates", "the"]:
        got = index.bm25.scores(q)
        assert np.array_equal(got[live], ref.scores(q)), q
        assert not np.any(np.delete(got, live)), q  # tombstoned rows score nothing
    index.close()


QUARRY = """Millbrook Quarry Fire Contained After Three Days

MILLBROOK, Vt., Aug. 9 - Crews contained the Millbrook quarry fire on Friday after three days of work, the fire department said.

The blaze was started by sparks from a welding torch, investigators said.

About 40 firefighters from four towns worked on the fire, and no one was hurt.

The quarry will stay closed until next week while inspectors check the equipment.
"""


def test_the_answer_outranks_a_news_lead_that_only_restates_the_topic(tmp_path, new_index):
    # The dateline lead names "the Millbrook quarry fire" in full; the answers call it "the blaze"
    # and "the fire". Without the focus feature the lead was cited first for both questions.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "quarry.txt").write_text(QUARRY, encoding="utf-8")
    index = new_index()
    assert run_qa("index", str(corpus), "--index", str(index)).returncode == 0
    proc = run_qa("ask", "--json", "--index", str(index), "-",
                  stdin="What started the Millbrook quarry fire?\nHow many firefighters worked on the Millbrook quarry fire?\n")
    assert proc.returncode == 0, proc.stderr
    cause, count = json_lines(proc.stdout)
    assert cause["sentences"][0]["text"] == "The blaze was started by sparks from a welding torch, investigators said."
    assert count["sentences"][0]["text"].startswith("About 40 firefighters from four towns")


def test_the_terms_a_candidate_holds_come_from_the_postings_as_from_its_text(seed_index):
    from qa.index import Index
    from qa.lexical import query_terms, term_sets

    index = Index.open(seed_index)
    ids = np.arange(index.sentence_count)
    texts = [m.text for m in index.sentences_at(ids)]
    for question in ("What did London agree?", "Which rare earth restrictions were eased?", "Who led the delegations?"):
        terms = query_terms(question)
        held = index.lexical(terms, 10).terms_in(ids, texts)
        assert held == [set(terms) & t for t in term_sets(texts)]
        assert any(held)


def test_document_evidence_reads_the_whole_article_not_just_the_candidates(seed_index):
    """"document_names": which of the names the question mentions the answer's article holds
    anywhere, from the postings the question's BM25 already read."""
    from qa.index import Index
    from qa.lexical import query_terms, term_sets
    from qa.retrieve import candidates

    index = Index.open(seed_index)
    question = "How many members does the UGLE have in London?"
    cands = candidates(index, index.embed([question])[0], question)
    doc = int(cands.docs[0])
    rows = index.live_rows()
    rows = rows[index.docs_of(rows) == doc]
    held = set().union(*term_sets([s.text for s in index.sentences_at(rows)]))
    assert cands.names == {"ugl", "london"} and "london" in held and "ugl" not in held  # stemmed
    assert cands.lexical.terms_in_document(doc) == held & set(query_terms(question))  # every term, not only names
    assert cands.document_evidence(doc) == 0.5
    other = candidates(index, index.embed(["Who led the talks in London?"])[0], "Who led the talks in London?")
    assert other.document_evidence(doc) == 1.0


def test_an_article_that_never_names_what_the_question_names_lowers_answerability(seed_index):
    import dataclasses

    from qa.index import Index
    from qa.retrieve import Ranker, candidates

    ranker = dataclasses.replace(Ranker.default(), reranker_gate=None)
    index = Index.open(seed_index)
    question = "Who led the talks in London?"
    cands = candidates(index, index.embed([question])[0], question)
    scores = ranker.score(cands.features)
    logits = lambda: np.array([2.0, 0.0], np.float32)  # noqa: E731
    named = ranker.answerability(cands.features, scores, cands.docs, lambda _doc: 1.0, logits)
    half = ranker.answerability(cands.features, scores, cands.docs, lambda _doc: 0.5, logits)
    unnamed = ranker.answerability(cands.features, scores, cands.docs, lambda _doc: 0.0, logits)
    assert unnamed < half < named
    assert cands.document_evidence(int(cands.docs[0])) == 1.0  # the seed article names London
