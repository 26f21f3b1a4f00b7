"""Index format 4: an update writes one segment and tombstones, and reuses the old segments by hard
link; search over segments answers as a from-scratch index of the same files does."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import CORPUS_FIXTURES, REPO, json_lines, run_qa, squad_dev_articles
from qa import ann, segment_write
from qa.answer import Bot
from qa.build import build
from qa.index import Index
from qa.lexical import query_terms

SEED = REPO / "seeds" / "000_a965798dc9f0230f.txt"
QUESTIONS = [
    "How much did the strike cost the regional economy?",
    "Who is Anna Lind?",  # names: BM25 carries it
    "How many homes can the solar farm's battery plant power?",
    "What did the Federal Reserve do with its benchmark rate?",
    "Who led the talks in London?",
    "Halden dockworkers contract automated cranes",
    "What did the county board approve?",
]
CHANGED_PORT = (
    "Port of Halden Stays Closed as Strike Enters Fifth Week\n\n"
    "Dockworkers at the Port of Halden rejected a new contract offer on Friday, extending a strike that has "
    "stranded more than 60 vessels. Harbor pilot Erik Voss said the queue of ships now reaches the lighthouse.\n"
)
DELETED_ONLY = "hypersonic"  # a word only the removed article holds


def _corpus(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(CORPUS_FIXTURES / name if name != "seed.txt" else SEED, folder / name)
    return folder


def _key(index: Index, rows) -> list[tuple[str, int, int]]:
    return [(s.source, s.start, s.end) for s in index.sentences_at([int(r) for r in rows])]


def _state(root: Path) -> dict:
    """What the index answers, keyed by sentence (source, offsets), never by row: answers, BM25
    scores of every matching sentence, the dense top 8 with their cosines."""
    bot = Bot.open(root)
    index = bot.index
    out: dict = {"articles": sorted((a.source, a.title, a.sentences) for a in index.articles())}
    for q in QUESTIONS:
        a = bot.ask(q)
        out[q] = {
            "answered": a.answered,
            "confidence": a.score,
            "answer": [(s.text, s.citation.source, s.citation.start, s.citation.end, s.score) for s in a.sentences],
        }
        hits = index.lexical(query_terms(q), 10)
        out[q]["bm25"] = dict(zip(_key(index, hits.bm.rows), hits.bm.values.tolist()))
        rows, cos = index.search_sentences(index.embed([q]), 8)
        out[q]["dense"] = list(zip(_key(index, rows[0]), cos[0].tolist()))
    index.close()
    return out


def _assert_same(got: dict, want: dict) -> None:
    assert got["articles"] == want["articles"]
    for q in QUESTIONS:
        g, w = got[q], want[q]
        assert g["answered"] == w["answered"], q
        assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-5), q
        assert [x[:4] for x in g["answer"]] == [x[:4] for x in w["answer"]], q
        assert [x[4] for x in g["answer"]] == pytest.approx([x[4] for x in w["answer"]], abs=1e-5), q
        assert g["bm25"].keys() == w["bm25"].keys(), q
        for k, v in w["bm25"].items():  # the same formula over the same live statistics
            assert g["bm25"][k] == pytest.approx(v, abs=1e-6), (q, k)
        assert [k for k, _ in g["dense"]] == [k for k, _ in w["dense"]], q
        assert [c for _, c in g["dense"]] == pytest.approx([c for _, c in w["dense"]], abs=1e-5), q


def _rebuilt(corpus: Path, root: Path) -> dict:
    build(root, [corpus], rebuild=True)
    index = Index.open(root)
    assert len(index.segments) == 1 and not len(index.segments[0].dead)  # a rebuild is one segment
    index.close()
    return _state(root)


def test_an_update_links_the_old_segment_and_writes_only_the_new_documents(tmp_path, new_index):
    corpus = _corpus(tmp_path / "corpus", ["fed_rates.txt", "harbor_port.txt"])
    root = new_index()
    build(root, [corpus])
    first = Index.open(root)
    (old,) = first.manifest["segments"]
    inodes = {f.name: f.stat().st_ino for f in (first.folder / old["name"]).iterdir()}
    first.close()

    _corpus(corpus, ["solar_farm.md"])
    report = build(root, [corpus])
    assert (report.added, report.unchanged) == (1, 2)
    index = Index.open(root)
    names = [g["name"] for g in index.manifest["segments"]]
    assert names[0] == old["name"] and len(names) == 2
    # Every file of the old segment is the same file (a hard link), not a copy.
    assert {f.name: f.stat().st_ino for f in (index.folder / old["name"]).iterdir()} == inodes
    assert all((index.folder / old["name"] / f).stat().st_nlink >= 1 for f in inodes)
    # The new segment holds the new document and nothing else.
    new = index.segments[1]
    assert index.manifest["segments"][1]["documents"] == 1
    sources = {s for (s,) in index.db.execute("SELECT source FROM s1.documents")}
    assert sources == {(corpus / "solar_farm.md").as_posix()}
    assert new.n == index.db.execute("SELECT count(*) FROM s1.sentences").fetchone()[0] > 0
    assert index.sentence_count == old["sentences"] + new.n
    index.close()


def test_answers_after_updates_equal_a_rebuild(tmp_path, new_index):
    corpus = _corpus(tmp_path / "corpus", ["fed_rates.txt", "harbor_port.txt", "seed.txt"])
    root = new_index()
    build(root, [corpus])
    _corpus(corpus, ["solar_farm.md"])  # add
    build(root, [corpus])
    (corpus / "harbor_port.txt").write_text(CHANGED_PORT)  # change
    build(root, [corpus])
    index = Index.open(root)
    assert len(index.segments) >= 2 and index.manifest["segments"][0]["name"] == "seg-000001"
    index.close()
    got = _state(root)
    _assert_same(got, _rebuilt(corpus, new_index("rebuilt")))

    (corpus / "fed_rates.txt").unlink()  # delete
    build(root, [corpus])
    _assert_same(_state(root), _rebuilt(corpus, new_index("rebuilt-2")))


def test_tombstoned_documents_never_come_back(tmp_path, new_index):
    # The big seed article keeps its segment below the rewrite threshold while others die in it.
    corpus = _corpus(tmp_path / "corpus", ["seed.txt", "harbor_port.txt", "fed_rates.txt"])
    (corpus / "rocket.txt").write_text("Rocket Test\n\nThe hypersonic glider flew over the test range on Thursday.\n")
    root = new_index()
    build(root, [corpus])
    old_port = [t for (t,) in Index.open(root).db.execute(
        "SELECT s.text FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.source LIKE '%harbor_port.txt'")]
    (corpus / "harbor_port.txt").write_text(CHANGED_PORT)
    (corpus / "rocket.txt").unlink()
    build(root, [corpus])
    index = Index.open(root)
    assert index.manifest["segments"][0]["dead"] > 0  # tombstones, not a rewrite
    assert [g["name"] for g in index.manifest["segments"]][0] == "seg-000001"
    dead = index.segments[0].dead
    assert len(dead) == index.manifest["segments"][0]["dead"]
    live = set(index.live_rows().tolist())
    assert not live & set((dead + 0).tolist())

    # BM25: the removed article's words match nothing; the replaced article's old words neither.
    assert not len(index.lexical([DELETED_ONLY], 10).top)
    assert len(index.lexical(query_terms("lighthouse"), 10).top) == 1  # the new text is found
    old_rows = index.lexical(query_terms("automated cranes Lind Ph.D. logistics"), 50)
    assert all(s.text not in old_port for s in index.sentences_at(old_rows.bm.rows))
    # Dense: the exact old sentences' own vectors find live rows only.
    for text in old_port[:3] + ["The hypersonic glider flew over the test range on Thursday."]:
        rows, _ = index.search_sentences(index.embed([text]), 20)
        assert set(rows[0].tolist()) <= live
        assert all(s.text != text for s in index.sentences_at(rows[0]))
    bot = Bot(index)
    for q in ["What flew over the test range?", "Who is Anna Lind?", "How long will the backlog take to clear?"]:
        for s in bot.ask(q).sentences + bot.ask(q).more:
            assert s.text not in old_port and "hypersonic" not in s.text, q
    listed = run_qa("sources", "--index", str(root), "--json")
    assert listed.returncode == 0, listed.stderr
    titles = [a["title"] for a in json_lines(listed.stdout)]
    assert "Rocket Test" not in titles and "Port of Halden Reopens After Three-Week Dockworkers' Strike" not in titles
    assert "Port of Halden Stays Closed as Strike Enters Fifth Week" in titles and len(titles) == 3
    index.close()


def test_merges_keep_the_segment_count_bounded_and_answers_unchanged(tmp_path, new_index, monkeypatch):
    monkeypatch.setattr(segment_write, "MAX_SEGMENTS", 3)
    corpus = _corpus(tmp_path / "corpus", ["seed.txt"])
    root = new_index()
    build(root, [corpus])
    counts = []
    for name in ["fed_rates.txt", "harbor_port.txt", "solar_farm.md"]:
        _corpus(corpus, [name])
        build(root, [corpus])
        counts.append(len(Index.open(root).manifest["segments"]))
    for i in range(3):
        (corpus / f"note-{i}.txt").write_text(f"Note {i}\n\nCouncil member {i} proposed a new bicycle lane on Main Street number {i}.\n")
        build(root, [corpus])
        counts.append(len(Index.open(root).manifest["segments"]))
    assert max(counts) == 3 and counts[:2] == [2, 3]  # grew, then merging held it at the bound
    index = Index.open(root)
    assert index.manifest["segments"][0]["name"] == "seg-000001"  # the big first segment was never rewritten
    index.close()
    _assert_same(_state(root), _rebuilt(corpus, new_index("rebuilt")))


def test_a_segment_with_many_tombstones_is_rewritten_without_them(tmp_path, new_index):
    corpus = _corpus(tmp_path / "corpus", ["fed_rates.txt", "harbor_port.txt"])
    root = new_index()
    build(root, [corpus])
    (corpus / "harbor_port.txt").unlink()  # half the first segment's rows die: over MAX_DEAD_SHARE
    build(root, [corpus])
    index = Index.open(root)
    assert [g["dead"] for g in index.manifest["segments"]] == [0]
    assert index.manifest["segments"][0]["name"] != "seg-000001" and not (index.folder / "tombstones").exists()
    assert index.row_space == index.sentence_count
    index.close()
    _assert_same(_state(root), _rebuilt(corpus, new_index("rebuilt")))


def test_an_ivf_segment_is_reused_and_its_tombstones_respected(tmp_path, new_index, monkeypatch):
    """Above ann.FLAT_MAX (lowered here) a segment carries an IVF-SQ8; an update links it as it is
    and the approximate search skips its tombstoned rows."""
    from qa.eval import write_articles

    monkeypatch.setattr(ann, "FLAT_MAX", 100)
    data = squad_dev_articles()
    paragraphs = data[0]["paragraphs"][:40]  # tune split (even articles); ~150 sentences
    corpus = tmp_path / "corpus"
    write_articles([{"title": f"Part {i}", "paragraphs": paragraphs[i::5]} for i in range(5)], corpus)
    root = new_index()
    build(root, [corpus])
    first = Index.open(root)
    (big,) = first.manifest["segments"]
    assert big["index_type"].startswith("ivf") and big["sentences"] > 100
    inode = (first.folder / big["name"] / "sentences.faiss").stat().st_ino
    first.close()

    gone = sorted(corpus.iterdir())[0]
    gone_texts = {t for (t,) in Index.open(root).db.execute(
        "SELECT s.text FROM sentences s JOIN documents d ON d.id = s.doc WHERE d.source = ?", (gone.as_posix(),))}
    gone.unlink()
    shutil.copy(CORPUS_FIXTURES / "solar_farm.md", corpus / "solar_farm.md")
    build(root, [corpus])
    index = Index.open(root)
    assert [g["index_type"] for g in index.manifest["segments"]] == [big["index_type"], "flat"]
    assert (index.folder / big["name"] / "sentences.faiss").stat().st_ino == inode
    assert index.manifest["segments"][0]["dead"] > 0  # tombstones inside the IVF segment
    for text in list(gone_texts)[:5]:
        rows, cos = index.search_sentences(index.embed([text]), 10)
        assert all(s.text not in gone_texts for s in index.sentences_at(rows[0][rows[0] >= 0]))
        assert np.all(np.diff(cos[0]) <= 1e-7)  # merged on exact cosines, best first
    answer = Bot(index).ask("How many homes can the solar farm's battery plant power?")
    assert answer.answered and answer.sentences[0].citation.source.endswith("solar_farm.md")
    index.close()


def test_an_index_of_format_3_is_rebuilt(tmp_path, new_index):
    import json

    corpus = _corpus(tmp_path / "corpus", ["fed_rates.txt"])
    root = new_index()
    build(root, [corpus])
    manifest_file = Index.open(root).folder / "manifest.json"
    manifest_file.write_text(json.dumps(dict(json.loads(manifest_file.read_text()), format=3)))
    ask = run_qa("ask", "Who leads the Fed?", "--index", str(root))
    assert ask.returncode == 1 and "has format 3, this qa reads 4" in ask.stderr and "`qa index --rebuild`" in ask.stderr
    proc = run_qa("index", "--index", str(root), "--json")
    assert proc.returncode == 0 and "older qa (format 3)" in proc.stderr
    assert Index.open(root).manifest["format"] == 4


def test_a_segment_whose_documents_are_all_removed_is_left_out(tmp_path, new_index):
    corpus = _corpus(tmp_path / "corpus", ["seed.txt", "fed_rates.txt"])
    root = new_index()
    build(root, [corpus])
    _corpus(corpus, ["solar_farm.md"])
    build(root, [corpus])
    assert [g["name"] for g in Index.open(root).manifest["segments"]] == ["seg-000001", "seg-000002"]
    (corpus / "solar_farm.md").unlink()
    report = build(root, [corpus])
    assert report.removed == 1
    index = Index.open(root)
    assert [(g["name"], g["dead"]) for g in index.manifest["segments"]] == [("seg-000001", 0)]
    assert not (index.folder / "seg-000002").exists() and index.db.execute("SELECT count(*) FROM dead").fetchone() == (0,)
    index.close()
    _assert_same(_state(root), _rebuilt(corpus, new_index("rebuilt")))
