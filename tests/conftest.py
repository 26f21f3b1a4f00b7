"""Shared fixtures: one real index of the seeds, built once per session through the CLI.

Indexes of the default model embed with its shipped export (qa/weights/onnx): no build exports
anything. Other models are exported once into a model cache private to the session ($QA_CACHE,
shared by every index like a user's ~/.cache/qa), so the user's own cache is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS_FIXTURES = FIXTURES / "corpus"
SEED = "seeds/000_a965798dc9f0230f.txt"
SEED_QUESTION = "What did London agree?"
# A second article for tests that add one to an index (qa serve's generation switches).
HARBOR = """Riverton Harbor Reopens After Dredging

The Riverton harbor reopened to cargo ships on Monday after a six-month dredging project deepened the channel to fourteen meters.

Harbor master Elena Okafor said the first vessel to dock was a grain carrier from Rotterdam.
"""

# Articles in tests/fixtures/corpus that parse cleanly (the others are there to be skipped).
CLEAN_ARTICLES = ["fed_rates.txt", "harbor_port.txt", "solar_farm.md"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
NO_BROWSER = "no browser: Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"


def start_chromium(profile: Path):
    """A headless Chromium under selenium, with this machine's closed network in mind (no
    background connections); the caller quits it."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def squad_dev_articles() -> list[dict]:
    """SQuAD v1.1 dev's articles from ../shared; the test is skipped where that data is absent."""
    from qa.eval import load_json

    path = REPO.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return load_json(path)["data"]


def qa_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell, minus anything that would point qa elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") or k == "QA_CACHE"}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONIOENCODING"] = "utf-8"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.update(extra)
    return env


def run_qa(*args: str, cwd: Path = REPO, stdin: str | None = None, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """Run `python -m qa ARGS` the way a user would, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "qa", *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=qa_env(**env),
    )


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_clean_error(proc: subprocess.CompletedProcess, exit_code: int = 1) -> str:
    """A user-facing failure: the given exit code, no traceback, exactly one `qa: error:` line
    (and it is the last line). Returns that line."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qa: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    # Anything before it is a progress note or a warning, never part of the error.
    assert all(line.startswith(("qa: indexing", "qa: warning:")) for line in lines[:-1]), proc.stderr
    return errors[0]


def tree_bytes(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks by target name)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def seed_models(src_index: Path, dst_index: Path) -> None:
    """Make a fresh index folder. (It used to copy the model export into it; exports now live in
    the shared cache, so a new folder needs nothing and its first build exports nothing.)"""
    dst_index.mkdir(parents=True, exist_ok=True)


def clone_index(src_index: Path, dst_index: Path) -> Path:
    """A private copy of a whole index, byte for byte."""
    shutil.copytree(src_index, dst_index)
    return dst_index


def own_export(index_root: Path, model_id: str | None = None) -> Path:
    """Give an index of the default model an export of its own in the cache - a copy of the
    shipped one under another model id, written into the live manifest - so a test can damage
    or remove it without touching the package. Returns the export folder."""
    from qa.exports import SHIPPED_EXPORT, exports_dir
    from qa.index import Index

    index = Index.open(index_root)
    model_id = model_id or f"test-copy-{hashlib.sha256(str(index_root).encode()).hexdigest()[:16]}"
    folder = exports_dir() / model_id
    shutil.copytree(SHIPPED_EXPORT, folder, copy_function=link_or_copy)
    spec = json.loads((folder / "encoder.json").read_text())
    (folder / "encoder.json").unlink()  # hard-linked to the package: never write through it
    (folder / "encoder.json").write_text(json.dumps({**spec, "model_id": model_id}))
    manifest = dict(index.manifest, model={**index.manifest["model"], "model_id": model_id})
    (index.folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@dataclass
class BuiltIndex:
    path: Path
    report: dict  # `qa index --json` output
    stderr: str


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """The session's model cache ($QA_CACHE): exports of models other than the default one."""
    cache = tmp_path_factory.mktemp("model-cache")
    os.environ["QA_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def seed_build(tmp_path_factory) -> BuiltIndex:
    """`qa index seeds` run from the repository root, with the shipped export of the default model."""
    idx = tmp_path_factory.mktemp("seed") / "index"
    proc = run_qa("index", "seeds", "--index", str(idx), "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    return BuiltIndex(idx, json.loads(proc.stdout), proc.stderr)


@pytest.fixture(scope="session")
def seed_index(seed_build) -> Path:
    """The seeds index. Read-only: tests that change an index use `clone_index` first."""
    return seed_build.path


@pytest.fixture(scope="session")
def model_export(seed_index) -> Path:
    """The export the seeds index embeds with: the shipped one (read-only)."""
    from qa.index import Index

    return Index.open(seed_index).model_folder


@pytest.fixture(scope="session")
def encoder(model_export):
    from qa.embed import OnnxEncoder

    return OnnxEncoder(model_export, threads=1)


@pytest.fixture
def new_index(tmp_path, seed_index):
    """Factory: an empty index folder (the default model's export ships with qa)."""
    def make(name: str = "index") -> Path:
        idx = tmp_path / name
        seed_models(seed_index, idx)
        return idx

    return make


@pytest.fixture
def seed_copy(tmp_path, seed_index) -> Path:
    """A private, writable copy of the seeds index."""
    return clone_index(seed_index, tmp_path / "seed-copy")


@dataclass
class FixtureCorpus:
    root: Path  # the folder holding `corpus/` and `index/`; commands run from here
    corpus: Path
    index: Path
    proc: subprocess.CompletedProcess  # the `qa index corpus --json` run


@pytest.fixture(scope="session")
def fixture_corpus(tmp_path_factory, seed_index) -> FixtureCorpus:
    """tests/fixtures/corpus plus two things git cannot hold (a dangling link, a folder named
    like an article), indexed with `qa index corpus` from its parent folder."""
    root = tmp_path_factory.mktemp("fixture-corpus")
    corpus = root / "corpus"
    shutil.copytree(CORPUS_FIXTURES, corpus)
    (corpus / "deleted_story.txt").symlink_to("no-such-file.txt")
    (corpus / "drafts.txt").mkdir()
    idx = root / "index"
    seed_models(seed_index, idx)
    proc = run_qa("index", "corpus", "--index", "index", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return FixtureCorpus(root, corpus, idx, proc)
