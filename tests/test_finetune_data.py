"""scripts/finetune.py's training data from SQuAD train (scripts/finetune_train.py) and its
checkpoints: ambiguous answer offsets, stopword-only questions, and a resumed run equal to an
uninterrupted one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_finetune():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("finetune", ROOT / "scripts/finetune.py")
    ft = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ft)
    return ft


CONTEXT = (
    "The bridge opened in 1932 after six years of work. "
    "Engineers from Sydney designed the arch and its granite pylons, of granite from Moruya. "
    "Tolls paid for the bridge until 1988, when Sydney took over its upkeep. "
    "Trains, trams and cars cross the arch every day."
)


def article() -> dict:
    at = CONTEXT.index
    qas = [
        # unambiguous: one occurrence
        {"question": "When did the bridge open?", "answers": [{"text": "1932", "answer_start": at("1932")}]},
        # "Sydney" occurs in sentences 2 and 3: which one is meant is unknown, so no triple
        {"question": "Which city's engineers designed the arch?", "answers": [{"text": "Sydney", "answer_start": at("Sydney")}],
         "answer_start_candidates": [at("Sydney"), CONTEXT.rindex("Sydney")]},
        # "granite" occurs twice, both in sentence 2: that sentence is the positive
        {"question": "What stone are the pylons made of?", "answers": [{"text": "granite", "answer_start": at("granite")}],
         "answer_start_candidates": [at("granite"), CONTEXT.rindex("granite")]},
        # no BM25 term at all (train has questions like "n" and "d"): no hard negative, no triple
        # (this raised IndexError inside bm25s)
        {"question": "n", "answers": [{"text": "1988", "answer_start": at("1988")}]},
    ]
    return {"title": "Bridge", "paragraphs": [{"context": CONTEXT, "qas": qas}]}


def test_ambiguous_offsets_are_dropped_and_stopword_questions_give_no_triple():
    pytest.importorskip("bm25s")
    ft = load_finetune()
    [art] = ft.prepare([article()])
    kept = [q["question"] for q in art["questions"]]
    assert "Which city's engineers designed the arch?" not in kept
    assert "When did the bridge open?" in kept and "n" in kept
    rows = ft.triples([art])
    assert [r[0] for r in rows] == ["When did the bridge open?", "What stone are the pylons made of?"]
    (q1, pos1, neg1), (q2, pos2, neg2) = rows
    assert "1932" in pos1 and "1932" not in neg1
    assert pos2.startswith("Engineers from Sydney") and "granite" not in neg2


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    pytest.importorskip("sentence_transformers")
    import numpy as np

    ft = load_finetune()
    ft.BATCH, ft.LAYERS = 4, (5,)  # two small steps of the top layer keep this test fast
    rows = [(f"Question {i} about topic {i}?", f"Sentence {i} answers topic {i}.", f"Sentence {i} is about something else {i}.")
            for i in range(8)]
    whole, _ = ft.train(rows, log=lambda m: None)
    ckpt = tmp_path / "run.pt"
    ft.train(rows, log=lambda m: None, ckpt=ckpt, every=1, max_steps=1)  # "killed" after step 1
    resumed, _ = ft.train(rows, log=lambda m: None, ckpt=ckpt, every=1)
    a = whole[0].auto_model.encoder.layer[5].state_dict()
    b = resumed[0].auto_model.encoder.layer[5].state_dict()
    base = ft.load_model()[0].auto_model.encoder.layer[5].state_dict()
    assert any(not np.array_equal(a[k].numpy(), base[k].numpy()) for k in a)  # it trained
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
