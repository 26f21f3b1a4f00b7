"""Bad input: one-line errors, the right exit code, no traceback, and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, json_lines, link_or_copy, own_export, run_qa, tree_bytes
from qa.answer import Bot
from qa.config import bundled_model_path
from qa.errors import IndexUnusable
from qa.index import REBUILD_HINT, Index

QUESTION = "Who led the trade delegations in London?"
GARBAGE = b"this is not what was written here\n" * 3


# -- the question --------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\t \n", "\x07\x1b"])
def test_empty_question_is_a_usage_error(question, tmp_path):
    # The index does not exist: an empty question is refused before anything is loaded.
    proc = run_qa("ask", question, "--index", str(tmp_path / "nowhere"))
    line = assert_clean_error(proc, exit_code=2)
    assert "the question is empty" in line
    assert not (tmp_path / "nowhere").exists()


def test_empty_questions_on_stdin_are_skipped(seed_index):
    proc = run_qa("ask", "--json", "-", "--index", str(seed_index), stdin="\n   \n\t\n")
    assert proc.returncode == 0 and proc.stdout == "" and "Traceback" not in proc.stderr


def test_ten_thousand_character_question(seed_index):
    question = ("Who led the trade delegations that met in London earlier this month? " * 200)[:10_000]
    assert len(question) == 10_000
    proc = run_qa("ask", "--json", question, "--index", str(seed_index))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (obj,) = json_lines(proc.stdout)
    assert isinstance(obj["answered"], bool) and obj["answered"] == bool(obj["sentences"])
    assert question.startswith(obj["question"]) and len(obj["question"]) < len(question)


def test_one_ten_thousand_character_word(seed_index):
    proc = run_qa("ask", "x" * 10_000, "--index", str(seed_index))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip()


def test_control_characters_in_question(seed_index):
    question = "Who\x01 led\x07 the \x1b[31mdelegations\x7f?\x9b"
    proc = run_qa("ask", "--json", question, "--index", str(seed_index))
    assert proc.returncode == 0, proc.stderr
    (obj,) = json_lines(proc.stdout)
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in obj["question"]), obj["question"]
    assert "delegations" in obj["question"]
    assert isinstance(obj["answered"], bool) and obj["answered"] == bool(obj["sentences"])
    # NUL cannot travel in argv; on stdin it is just another control character
    proc = run_qa("ask", "--json", "-", "--index", str(seed_index), stdin="Who led\x00 the delegations?\x00\n")
    assert proc.returncode == 0, proc.stderr
    (obj,) = json_lines(proc.stdout)
    assert "\x00" not in obj["question"] and "delegations" in obj["question"]


def test_bad_option_values_are_usage_errors(seed_index):
    for args in (["ask", QUESTION, "--top", "0"], ["ask", QUESTION, "--top", "many"], ["frobnicate"]):
        proc = run_qa(*args, "--index", str(seed_index)) if args[0] == "ask" else run_qa(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""


# -- the corpus ----------------------------------------------------------------------------------


def test_missing_corpus_folder_for_a_first_ask(tmp_path):
    proc = run_qa("ask", QUESTION, "--index", str(tmp_path / "idx"), "--corpus", str(tmp_path / "no-such-folder"))
    line = assert_clean_error(proc)
    assert "no-such-folder" in line and "not found" in line
    assert not (tmp_path / "idx").exists()


def test_missing_corpus_path_for_index(tmp_path):
    proc = run_qa("index", str(tmp_path / "no-such-folder"), "--index", str(tmp_path / "idx"))
    line = assert_clean_error(proc)
    assert f"corpus path '{tmp_path / 'no-such-folder'}' not found" in line
    assert not (tmp_path / "idx" / "CURRENT").exists()


def test_empty_corpus_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["index", str(empty), "--index", str(tmp_path / "a")], ["ask", QUESTION, "--index", str(tmp_path / "b"), "--corpus", str(empty)]):
        proc = run_qa(*args)
        line = assert_clean_error(proc)
        assert f"no articles found in {empty}" in line
    # refused before the model was exported into the new index folder
    assert not (tmp_path / "a" / "models").exists() and not (tmp_path / "b" / "models").exists()


# -- a damaged index ------------------------------------------------------------------------------


def _garble(path: Path) -> None:
    path.write_bytes(GARBAGE)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _current_nowhere(root: Path) -> None:
    (root / "CURRENT").write_text("gen-000042\n")


def _current_garbage(root: Path) -> None:
    (root / "CURRENT").write_bytes(b"\xff\xfe../../etc\n")


def _live(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().strip()


def _segment(root: Path) -> Path:
    """The live generation's (first) segment: its vectors, rows and postings."""
    return next(_live(root).glob("seg-*"))


def _export_file(name: str):
    def damage(root: Path) -> None:
        export = own_export(root)  # the shipped export stays intact
        if name == "model file":  # the ONNX file the encoder runs (encoder.json names it)
            name_ = json.loads((export / "encoder.json").read_text())["onnx_file"]
        else:
            name_ = name
        f = export / name_
        f.unlink()  # hard-linked to the shipped export: never write through it
        f.write_bytes(GARBAGE)

    return damage


DAMAGE = {
    "meta.sqlite garbage": lambda root: _garble(_live(root) / "meta.sqlite"),
    "meta.sqlite truncated": lambda root: _truncate(_live(root) / "meta.sqlite"),
    "sentence vectors garbage": lambda root: _garble(_segment(root) / "sentences.vectors.npy"),
    "sentence vectors truncated": lambda root: _truncate(_segment(root) / "sentences.vectors.npy"),
    "sentence vectors empty": lambda root: (_segment(root) / "sentences.vectors.npy").write_bytes(b""),
    "passage vectors garbage": lambda root: _garble(_segment(root) / "passages.vectors.npy"),
    "sentence ids garbage": lambda root: _garble(_segment(root) / "sentences.ids.npy"),
    "sentence ids truncated": lambda root: _truncate(_segment(root) / "sentences.ids.npy"),
    "sentence rows truncated": lambda root: _truncate(_segment(root) / "sentences.rows.npy"),
    "bm25 postings truncated": lambda root: _truncate(_segment(root) / "postings.tf.npy"),
    "manifest garbage": lambda root: _garble(_live(root) / "manifest.json"),
    "bm25 vocabulary garbage": lambda root: _garble(_live(root) / "vocab.json"),
    "model file garbage": _export_file("model file"),
    "tokenizer garbage": _export_file("tokenizer.json"),
    "CURRENT points nowhere": _current_nowhere,
    "CURRENT garbage": _current_garbage,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_raises_index_unusable(damage, seed_copy):
    DAMAGE[damage](seed_copy)
    before = tree_bytes(seed_copy)
    with pytest.raises(IndexUnusable) as e:
        Bot.open(seed_copy).ask(QUESTION)
    assert REBUILD_HINT in str(e.value) and str(seed_copy) in str(e.value)
    assert tree_bytes(seed_copy) == before


@pytest.mark.parametrize(
    "damage", ["meta.sqlite garbage", "sentence vectors truncated", "model file garbage", "tokenizer garbage", "CURRENT garbage"]
)
def test_damaged_index_is_one_line_on_the_command_line(damage, seed_copy):
    DAMAGE[damage](seed_copy)
    before = tree_bytes(seed_copy)
    line = assert_clean_error(run_qa("ask", QUESTION, "--index", str(seed_copy)))
    assert "`qa index --rebuild`" in line and str(seed_copy) in line
    assert tree_bytes(seed_copy) == before  # a reader never "repairs" anything


@pytest.mark.parametrize("damage", ["meta.sqlite garbage", "manifest garbage", "CURRENT points nowhere", "model file garbage"])
def test_damaged_index_refuses_an_update(damage, seed_copy, tmp_path):
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")  # so that an update would have work to do
    (tmp_path / "seeds" / "extra.txt").write_text("Extra Story\n\nA new article arrived on Monday.\n")
    DAMAGE[damage](seed_copy)
    before = tree_bytes(seed_copy)
    line = assert_clean_error(run_qa("index", "seeds", "--index", str(seed_copy), cwd=tmp_path))
    assert "`qa index --rebuild`" in line
    assert tree_bytes(seed_copy) == before


def test_rebuild_repairs_what_the_message_says_it_does(seed_copy):
    DAMAGE["CURRENT points nowhere"](seed_copy)
    proc = run_qa("index", "--rebuild", "--index", str(seed_copy))  # what the message says to do
    assert proc.returncode == 0, proc.stderr
    proc = run_qa("ask", "--json", QUESTION, "--index", str(seed_copy))
    assert proc.returncode == 0 and json_lines(proc.stdout)[0]["answered"]


def test_rebuild_replaces_a_damaged_model_export(seed_copy, model_export, other_model, monkeypatch):
    """A damaged export in the cache is re-exported by --rebuild --model (here the export itself is
    replayed from the shipped one, to spare the suite another 15 s torch export)."""
    import qa.embed
    from qa.build import build
    from qa.embed import model_id

    calls = []

    def replay_export(model_dir: Path, out_dir: Path):
        calls.append(model_dir)
        for f in model_export.iterdir():
            shutil.copyfile(f, out_dir / f.name)
        spec = qa.embed.EncoderSpec.load(out_dir)
        spec.model_id = model_id(model_dir)
        spec.save(out_dir)
        return spec

    export = own_export(seed_copy, model_id(other_model))  # the index's model is other_model ...
    (export / "model.int8.onnx").unlink()
    (export / "model.int8.onnx").write_bytes(GARBAGE)  # ... and its export in the cache is damaged
    with pytest.raises(IndexUnusable, match="unreadable"):
        Bot.open(seed_copy).ask(QUESTION)
    monkeypatch.setattr(qa.embed, "export", replay_export)
    monkeypatch.chdir(REPO)
    report = build(seed_copy, model=other_model, rebuild=True)
    assert calls == [other_model] and report.generation
    assert (export / "model.int8.onnx").read_bytes() == (model_export / "model.int8.onnx").read_bytes()
    assert Bot.open(seed_copy).ask(QUESTION).answered


def test_every_file_of_a_generation_is_guarded(seed_copy):
    """Garbage in any file of the live generation: asking either still works or raises
    IndexUnusable with the rebuild hint - never a raw library exception."""
    seg = _segment(seed_copy).name
    must_fail = {"meta.sqlite", "manifest.json", "vocab.json", "df.npy"} | {f"{seg}/{f}" for f in (
        "meta.sqlite", "sentences.vectors.npy", "passages.vectors.npy", "sentences.ids.npy", "passages.ids.npy",
        "sentences.rows.npy", "postings.indptr.npy", "postings.rows.npy", "postings.tf.npy", "postings.lengths.npy")}
    gen = _live(seed_copy)
    files = sorted(p.relative_to(gen).as_posix() for p in gen.rglob("*") if p.is_file())
    assert must_fail <= set(files)
    for rel in files:
        original = (gen / rel).read_bytes()
        _garble(gen / rel)
        try:
            Bot.open(seed_copy).ask(QUESTION)
        except IndexUnusable as e:
            assert REBUILD_HINT in str(e), rel
        else:
            assert rel not in must_fail, f"garbage in {rel} went unnoticed"
        finally:
            (gen / rel).write_bytes(original)


def test_chat_on_a_damaged_index(seed_copy):
    DAMAGE["sentence vectors garbage"](seed_copy)
    proc = run_qa("chat", "--index", str(seed_copy), stdin=QUESTION + "\n")
    line = assert_clean_error(proc)
    assert "`qa index --rebuild`" in line


# -- the model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A sentence-transformers folder that differs from the bundled one by one config key."""
    folder = tmp_path_factory.mktemp("models") / "other-minilm"
    shutil.copytree(bundled_model_path(), folder, copy_function=link_or_copy)
    config = json.loads((folder / "config.json").read_text())
    config["qa_test_marker"] = True
    (folder / "config.json").unlink()  # a hard link to the installed model: never write through it
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_ask_with_a_different_model_than_the_index(seed_index, other_model):
    before = tree_bytes(seed_index)
    proc = run_qa("ask", QUESTION, "--index", str(seed_index), "--model", str(other_model))
    line = assert_clean_error(proc)
    built_with = Index.open(seed_index).model_id
    assert f"built with model {built_with}, not other-minilm-" in line
    assert "--model" in line and "`qa index --rebuild`" in line
    assert tree_bytes(seed_index) == before


def test_index_update_with_a_different_model(seed_copy, other_model):
    before = tree_bytes(seed_copy)
    proc = run_qa("index", "--index", str(seed_copy), "--model", str(other_model))
    line = assert_clean_error(proc)
    assert "built with model" in line and "other-minilm-" in line
    assert tree_bytes(seed_copy) == before


def test_model_from_environment_is_checked_too(seed_index, other_model):
    proc = run_qa("ask", QUESTION, "--index", str(seed_index), QA_MODEL=str(other_model))
    assert "built with model" in assert_clean_error(proc)


def test_model_folder_that_is_not_a_model(seed_index, tmp_path):
    proc = run_qa("ask", QUESTION, "--index", str(seed_index), "--model", str(tmp_path))
    assert "not a sentence-transformers model folder" in assert_clean_error(proc)
    proc = run_qa("index", "seeds", "--index", str(tmp_path / "idx"), "--model", str(tmp_path / "missing"))
    assert "model folder" in assert_clean_error(proc) and "not found" in proc.stderr
