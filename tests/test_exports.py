"""One export per model, in the shared cache; the default model's ships with qa; the token
budget is the model's own; earlier index layouts keep working."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_clean_error, clone_index, link_or_copy, own_export, qa_env, run_qa, tree_bytes
from qa.answer import Bot
from qa.build import build
from qa.config import bundled_model_path
from qa.embed import model_id
from qa.errors import IndexUnusable
from qa.exports import SHIPPED_EXPORT, exports_dir
from qa.index import Index

QUESTION = "Who led the trade delegations in London?"
SMALL_BUDGET = 32  # max_seq_length of the small model below: 30 word pieces + [CLS] + [SEP]

# Sentences far longer than 30 word pieces, and short ones that a 254-piece budget would pack
# three to a passage.
LONG_ARTICLE = """Harbour Authority Approves Expansion

The harbour authority approved on Tuesday a long-delayed expansion of the container terminal, which will add four deep-water berths, two rail sidings and a new customs hall by the end of 2028, according to documents seen by reporters.
Officials said the work would cost about 1.2 billion euros over six years. Dredging of the channel starts in May next year. Shipping lines and the port workers' union welcomed the plan.
Environmental groups, which had opposed the project through three rounds of public hearings and one unsuccessful court challenge, said they would keep monitoring the dredging of the estuary and the effect on the seagrass beds and the migrating birds that feed there.
"""


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """The bundled MiniLM with max_seq_length 32: a real model whose window is far smaller."""
    folder = tmp_path_factory.mktemp("models") / "minilm-32"
    shutil.copytree(bundled_model_path(), folder, copy_function=link_or_copy)
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    config["max_seq_length"] = SMALL_BUDGET
    (folder / "sentence_bert_config.json").unlink()  # hard-linked to the installed model
    (folder / "sentence_bert_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, small_model):
    """`qa index --model` with the small model: the one export of this module (~15 s)."""
    root = tmp_path_factory.mktemp("small")
    (root / "articles").mkdir()
    (root / "articles" / "harbour.txt").write_text(LONG_ARTICLE, encoding="utf-8")
    before = set(exports_dir().iterdir()) if exports_dir().is_dir() else set()
    proc = run_qa("index", "articles", "--index", "index", "--model", str(small_model), "--json", cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root, before


def test_token_budget_is_the_models_own(small_index):
    root, _ = small_index
    index = Index.open(root / "index")
    encoder = index.encoder
    assert encoder.spec.max_tokens == SMALL_BUDGET and encoder.special_tokens == 2
    assert encoder.token_budget == SMALL_BUDGET - 2
    # the article really has sentences longer than the window: they were cut, not truncated
    lines = encoder.count_tokens(LONG_ARTICLE.splitlines())
    assert max(lines) > encoder.token_budget and lines[3] > encoder.token_budget
    sentences = [t for (t,) in index.db.execute("SELECT text FROM sentences")]
    passages = [t for (t,) in index.db.execute(
        "SELECT substr(d.text, p.start + 1, p.\"end\" - p.start) FROM passages p JOIN documents d ON d.id = p.doc")]
    counts = encoder.count_tokens(sentences + passages)
    assert max(counts) <= encoder.token_budget, max(counts)
    assert len(sentences) > LONG_ARTICLE.count(".")  # long sentences became several pieces
    # the three short sentences of paragraph 2 fit the budget one or two at a time, not all three
    assert [t for t in passages if t.startswith("Officials")] and all(
        t.count(". ") < 2 for t in passages if "Dredging" in t)
    # and every piece is still verbatim text of the article
    text = index.db.execute("SELECT text FROM documents").fetchone()[0]
    assert all(s in text for s in sentences)


def test_special_tokens_come_from_the_tokenizer(encoder):
    assert encoder.special_tokens == 2  # [CLS] and [SEP] (BERT's template post-processor)
    assert encoder.count_tokens(["hello world"]) == [2]
    assert len(encoder._counter.encode("hello world").ids) == 2 + encoder.special_tokens


def test_another_model_is_exported_once_into_the_cache(small_index, small_model, tmp_path, monkeypatch):
    root, before = small_index
    mid = model_id(small_model)
    export = exports_dir() / mid
    assert set(exports_dir().iterdir()) - before == {export}  # one new export, in the cache ...
    assert not (root / "index" / "models").exists()  # ... and none in the index folder
    assert Index.open(root / "index").model_folder == export
    gen = Index.open(root / "index").folder
    assert stat.S_IMODE(export.stat().st_mode) == stat.S_IMODE(gen.stat().st_mode) == 0o755

    # The first index of another folder with the same model exports nothing.
    import qa.embed

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(qa.embed, "export", no_export)
    files = tree_bytes(export)
    report = build(tmp_path / "second", [root / "articles"], model=small_model)
    assert report.added == 1 and Index.open(tmp_path / "second").model_folder == export
    assert tree_bytes(export) == files and not (tmp_path / "second" / "models").exists()


def test_default_model_needs_no_export(tmp_path, monkeypatch):
    import qa.embed

    def no_export(*args):
        raise AssertionError("the default model was exported")

    monkeypatch.setattr(qa.embed, "export", no_export)
    before = sorted(exports_dir().iterdir()) if exports_dir().is_dir() else []
    build(tmp_path / "index", [REPO / "seeds"])
    assert Index.open(tmp_path / "index").model_folder == SHIPPED_EXPORT
    assert not (tmp_path / "index" / "models").exists()
    assert (sorted(exports_dir().iterdir()) if exports_dir().is_dir() else []) == before


def _legacy(seed_index: Path, dst: Path, model: str | None = None) -> Path:
    """An index as qa wrote it before the shared cache: its export in <index>/models/<id>."""
    clone_index(seed_index, dst)
    mid = model or Index.open(dst).model_id
    legacy = dst / "models" / mid
    shutil.copytree(SHIPPED_EXPORT, legacy)
    spec = json.loads((legacy / "encoder.json").read_text())
    (legacy / "encoder.json").write_text(json.dumps({**spec, "model_id": mid}))
    (dst / "models" / "model-from-an-older-qa-0123456789abcdef").mkdir()  # an unused leftover
    if model:
        index = Index.open(dst)
        (index.folder / "manifest.json").write_text(json.dumps(dict(index.manifest, model={**index.manifest["model"], "model_id": mid})))
    return dst


def test_an_index_of_the_earlier_layout_keeps_working(seed_index, tmp_path):
    """Built with the default model: the shipped export is the same model, so the index's own
    copy is not needed; the next `qa index` removes it."""
    before = run_qa("ask", "--json", QUESTION, "--index", str(seed_index)).stdout
    root = _legacy(seed_index, tmp_path / "old")
    assert run_qa("ask", "--json", QUESTION, "--index", str(root)).stdout == before
    proc = run_qa("index", "--index", str(root))
    assert proc.returncode == 0, proc.stderr
    assert not (root / "models").exists()
    assert run_qa("ask", "--json", QUESTION, "--index", str(root)).stdout == before


def test_an_earlier_layout_index_of_another_model_moves_its_export_to_the_cache(seed_index, tmp_path):
    mid = "legacy-minilm-0123456789abcdef"
    root = _legacy(seed_index, tmp_path / "old", model=mid)
    assert Index.open(root).model_folder == root / "models" / mid
    answer = Bot.open(root).ask(QUESTION).to_dict()
    assert build(root).generation is None  # nothing to re-embed ...
    assert not (root / "models").exists()  # ... but the export moved to the shared cache
    assert Index.open(root).model_folder == exports_dir() / mid
    assert Bot.open(root).ask(QUESTION).to_dict() == answer


def test_an_export_missing_from_the_cache(seed_copy, tmp_path, monkeypatch):
    """`qa ask` names the fix in one line; `qa index` exports the model again from its folder."""
    model = tmp_path / "other-minilm"
    shutil.copytree(SHIPPED_EXPORT, model)  # any folder with a config.json has a model id
    (model / "config.json").write_text("{}")
    mid = model_id(model)
    export = own_export(seed_copy, mid)
    index = Index.open(seed_copy)
    (index.folder / "manifest.json").write_text(json.dumps(dict(index.manifest, model={**index.manifest["model"], "model_path": str(model)})))
    files = {p.name: p.read_bytes() for p in export.iterdir()}
    shutil.rmtree(export)  # e.g. the user cleared ~/.cache

    line = assert_clean_error(run_qa("ask", QUESTION, "--index", str(seed_copy)))
    assert f"`qa index --index {seed_copy}`" in line and mid in line

    import qa.embed

    calls = []

    def replay_export(model_dir: Path, out_dir: Path):  # the real export would need a real model
        calls.append(model_dir)
        for name, data in files.items():
            (out_dir / name).write_bytes(data)
        return qa.embed.EncoderSpec.load(out_dir)

    monkeypatch.setattr(qa.embed, "export", replay_export)
    assert build(seed_copy).generation is None  # nothing to re-embed: only the export came back
    assert calls == [model] and (export / "encoder.json").is_file()
    assert Bot.open(seed_copy).ask(QUESTION).answered

    shutil.rmtree(export)
    shutil.rmtree(model)  # and now the model folder is gone too
    with pytest.raises(IndexUnusable, match="pass --model DIR .*`qa index --rebuild`"):
        build(seed_copy)


def test_model_option_without_torch_names_the_extra(tmp_path, small_model):
    """The default install has no torch: exporting another model says what to install."""
    code = (
        "import sys\n"
        "for name in ('torch', 'sentence_transformers', 'onnx'):\n"
        "    sys.modules[name] = None  # as if not installed\n"
        f"sys.argv = ['qa', 'index', 'seeds', '--index', {str(tmp_path / 'idx')!r}, '--model', {str(tmp_path / 'm')!r}]\n"
        "from qa.cli import main\n"
        "main()\n"
    )
    shutil.copytree(small_model, tmp_path / "m", copy_function=link_or_copy)
    (tmp_path / "m" / "tokenizer_config.json").unlink()  # another model id: not in the cache yet
    (tmp_path / "m" / "tokenizer_config.json").write_text("{}")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=qa_env(), capture_output=True, text=True, timeout=120)
    line = assert_clean_error(proc)
    assert "torch" in line and "'.[export]'" in line


def test_an_index_of_an_earlier_default_model(seed_copy):
    """After an upgrade that ships newly tuned default weights, an index of the old ones cannot
    embed questions alike: a one-line error that names the rebuild, for asking and updating."""
    index = Index.open(seed_copy)
    model = {**index.manifest["model"], "model_id": "model-squad-000000000000-0123456789abcdef", "model_path": "qa.weights"}
    (index.folder / "manifest.json").write_text(json.dumps(dict(index.manifest, model=model)))
    for args in (["ask", QUESTION], ["index"]):
        line = assert_clean_error(run_qa(*args, "--index", str(seed_copy)))
        assert "another version of qa's default model" in line and "`qa index --rebuild`" in line
    proc = run_qa("index", "--rebuild", "--index", str(seed_copy))
    assert proc.returncode == 0, proc.stderr
    assert Index.open(seed_copy).model_folder == SHIPPED_EXPORT
