"""`qa serve --workers N`: conversations kept outside one process (qa.serve_chats), tested on its
own and through a real two-worker server over real HTTP, on real indexes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed (pip install -e '.[test]')")

from conftest import HARBOR, REPO, SEED_QUESTION, qa_env, run_qa  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.serve import ApiError, Conversations, _Chat  # noqa: E402
from qa.serve_chats import SharedConversations, chat_from_json, state_json  # noqa: E402

TALKS = "Where were the talks held earlier this month?"


@pytest.fixture(scope="module")
def seed_bot(seed_index) -> Bot:
    return Bot.open(seed_index)


def shared(tmp_path, **kw) -> SharedConversations:
    return SharedConversations.create(tmp_path / "conversations.sqlite", **kw)


@pytest.mark.parametrize("store", ["memory", "shared"])
def test_conversations_expire_when_idle_and_are_bounded(seed_bot, tmp_path, store):
    # one contract for both stores: the in-process one (--workers 1) and the shared SQLite one
    now = [0.0]
    kw = {"limit": 2, "idle": 30 * 60, "clock": lambda: now[0]}
    chats = Conversations(**kw) if store == "memory" else shared(tmp_path, **kw)
    a, _ = chats.new(seed_bot)
    now[0] += 1
    b, _ = chats.new(seed_bot)
    now[0] += 1
    chats.get(a)  # a is now the most recently used
    now[0] += 1
    c, _ = chats.new(seed_bot)  # over the limit: b (least recently used) goes
    with pytest.raises(ApiError) as e:
        chats.get(b)
    assert e.value.status == 404 and "unknown or expired conversation" in str(e.value)
    assert chats.get(a) and chats.get(c) and len(chats) == 2
    now[0] += 29 * 60
    chats.get(c)
    now[0] += 2 * 60  # a idle for 31 minutes, c for 2
    with pytest.raises(ApiError) as e:
        chats.get(a)
    assert e.value.status == 404 and chats.get(c) and len(chats) == 1
    for bad in (None, 7, "no-such-id"):
        with pytest.raises(ApiError):
            chats.get(bad)


def test_a_second_process_sees_the_same_conversations(seed_bot, tmp_path):
    """Every worker opens the file itself; here a separate Python process stands in for one."""
    chats = shared(tmp_path)
    cid, chat = chats.new(seed_bot)
    chat.conversation.ask(TALKS)
    assert chats.save(cid, chat)
    code = ("import sys; from qa.serve_chats import SharedConversations\n"
            f"c = SharedConversations(sys.argv[1]).get({cid!r})\n"
            "print(c.conversation.history[-1].sentences[0].text)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "conversations.sqlite")], capture_output=True,
                          text=True, env=qa_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == chat.conversation.history[-1].sentences[0].text


def test_a_stored_conversation_answers_follow_ups_and_more_like_one_kept_in_memory(seed_bot, tmp_path):
    memory, store = Conversations(), shared(tmp_path)
    mid, kept = memory.new(seed_bot)
    sid, stored = store.new(seed_bot)
    for question in (TALKS, "Who led them?"):
        expected = kept.conversation.ask(question)
        got = stored.conversation.ask(question)
        assert store.save(sid, stored)
        stored = store.get(sid, seed_bot)  # read back from the file before every turn
        assert got.to_dict() == expected.to_dict()
    assert "Bessent" in expected.sentences[0].text  # the follow-up was read in the light of the first turn
    assert stored.conversation.history[-1].to_dict() == expected.to_dict()
    assert [s.to_dict() for s in stored.conversation.more()] == [s.to_dict() for s in kept.conversation.more()]


def test_the_state_is_json_with_only_the_turns_follow_ups_read(seed_bot):
    chat = _Chat(seed_bot.chat(), 0.0, shown=2)
    for question in (TALKS, "zzzz qqqq xxxx", "Who led them?", "zzzz qqqq xxxx"):
        chat.conversation.ask(question)
    state = json.loads(state_json(chat))  # plain JSON, not pickle
    history = chat.conversation.history
    assert not history[-1].answered and history[-2].answered
    assert [t["question"] for t in state["turns"]] == ["Who led them?", "zzzz qqqq xxxx"]
    assert history[-2].more and state["turns"][0]["more"] == []  # only the last turn's `more` is read
    back = chat_from_json(state_json(chat), seed_bot, 5.0)
    assert back.shown == 2 and back.used == 5.0
    assert back.conversation.focus() == chat.conversation.focus()
    assert [a.to_dict() for a in back.conversation.history] == [a.to_dict() for a in history[-2:]]


def test_a_write_from_a_stale_read_is_refused(seed_bot, tmp_path):
    """Two requests of one conversation at once: the second to finish must not overwrite the
    first's turn (qa.serve_api then answers it again from the newer state)."""
    chats = shared(tmp_path)
    cid, chat = chats.new(seed_bot)
    assert chats.save(cid, chat)
    first, second = chats.get(cid, seed_bot), chats.get(cid, seed_bot)
    first.conversation.ask(TALKS)
    assert chats.save(cid, first)
    second.conversation.ask(SEED_QUESTION)
    assert not chats.save(cid, second)
    assert chats.get(cid, seed_bot).conversation.history[-1].question == TALKS


# -- a real `qa serve --workers 2` ---------------------------------------------------------------
def _request(port: int, path: str, body: dict | None = None) -> tuple[dict, str]:
    """One request on a connection of its own (so the two workers share them): (JSON, worker pid)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read()), r.headers["x-qa-worker"]


def _runtime_folders(tmp: Path) -> list[Path]:
    return [p for p in tmp.iterdir() if p.name.startswith("qa-serve-")]


@pytest.fixture()
def two_workers(seed_copy, tmp_path):
    runtime = tmp_path / "tmp"  # the server's TMPDIR: its runtime folder goes here
    runtime.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--index", str(seed_copy), "--port", str(port), "--workers", "2"],
                            cwd=REPO, env=qa_env(TMPDIR=str(runtime)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _request(port, "/api/health")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
                time.sleep(0.2)
        yield port, runtime
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "with 2 worker processes" in out, (out, err)
    assert not _runtime_folders(runtime), "the runtime folder was left behind"


def test_a_conversation_started_on_one_worker_continues_on_another(two_workers, seed_copy):
    port, runtime = two_workers
    (folder,) = _runtime_folders(runtime)
    assert (folder / "conversations.sqlite").is_file()
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert not list(seed_copy.rglob("conversations.sqlite*"))  # nothing of it in the index folder
    for _ in range(50):  # which worker accepts a connection is the kernel's choice: try until they differ
        first, started_on = _request(port, "/api/chat", {"question": TALKS})
        follow, answered_on = _request(port, "/api/chat", {"conversation": first["conversation"], "question": "Who led them?"})
        if answered_on != started_on:
            break
    else:
        pytest.fail("50 conversations never reached the second worker")
    assert "London" in first["sentences"][0]["text"]
    assert follow["conversation"] == first["conversation"] and "Bessent" in follow["sentences"][0]["text"]
    assert follow["interpreted"]  # it was read in the light of the first turn, kept by the other worker
    shown = len(follow["sentences"])
    workers = {started_on, answered_on}
    for _ in range(20):  # `more` and `reset` keep working wherever they land
        more, on = _request(port, "/api/more", {"conversation": first["conversation"]})
        workers.add(on)
        if more["sentences"]:
            assert more["question"] == "Who led them?" and more["first_marker"] == shown + 1
            shown += len(more["sentences"])
    reset, _ = _request(port, "/api/reset", {"conversation": first["conversation"]})
    assert reset == {"conversation": first["conversation"], "reset": True}
    assert _request(port, "/api/more", {"conversation": first["conversation"]})[0]["sentences"] == []
    assert len(workers) == 2
    with pytest.raises(urllib.error.HTTPError) as e:
        _request(port, "/api/chat", {"conversation": "nope", "question": "Who led them?"})
    assert e.value.code == 404 and "unknown or expired conversation" in json.loads(e.value.read())["error"]


def test_every_worker_switches_to_a_new_generation(two_workers, seed_copy, tmp_path):
    port, _ = two_workers
    before = {}
    for _ in range(50):
        health, worker = _request(port, "/api/health")
        before[worker] = health["generation"]
        if len(before) == 2:
            break
    assert len(before) == 2 and len(set(before.values())) == 1, before
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "harbor.txt").write_text(HARBOR, encoding="utf-8")
    proc = run_qa("index", str(extra), "--index", str(seed_copy))
    assert proc.returncode == 0, proc.stderr
    answered_by, after = set(), {}
    for _ in range(10):  # every worker, whichever the queue hands the request to
        ask, worker = _request(port, "/api/ask", {"question": "How deep is the Riverton harbor channel now?"})
        assert ask["sentences"][0]["source"].endswith("harbor.txt") and "fourteen meters" in ask["sentences"][0]["text"]
        answered_by.add(worker)
        for _ in range(2):
            health, worker = _request(port, "/api/health")
            after.setdefault(worker, set()).add(health["generation"])
    assert answered_by == set(after) == set(before), (before, after, answered_by)
    assert {g for gens in after.values() for g in gens} == {(seed_copy / "CURRENT").read_text().strip()} != set(before.values())
    # Both workers let go of the old generation: the next `qa index` deletes it.
    assert run_qa("index", "--index", str(seed_copy)).returncode == 0
    assert not (seed_copy / next(iter(before.values()))).exists()


def test_a_worker_that_dies_is_replaced(two_workers):
    import os
    import signal

    port, _ = two_workers
    pids = {_request(port, "/api/health")[1] for _ in range(4)}
    assert len(pids) == 2
    victim = min(pids)
    os.kill(int(victim), signal.SIGKILL)  # a worker of this test's own server
    seen, deadline = set(), time.monotonic() + 120
    while len(seen - pids) < 1 and time.monotonic() < deadline:
        body, worker = _request(port, "/api/ask", {"question": SEED_QUESTION})  # idle when killed: nothing fails
        assert body["answered"] and worker != victim
        seen.add(worker)
        time.sleep(0.1)
    assert seen - pids, "no replacement worker answered"


def test_a_turn_that_raced_another_is_answered_again_from_the_newer_state(seed_index, tmp_path):
    """Two workers answer turns of one conversation at once: the one that read the older state
    must not overwrite the other's turn; it answers again from the newer state."""
    from qa.serve import LiveBot
    from qa.serve_ops import Answering

    path = tmp_path / "conversations.sqlite"
    SharedConversations.create(path)
    other = Answering(LiveBot(seed_index, Bot.open(seed_index)), SharedConversations(path))
    cid = other.chat(None, SEED_QUESTION, None)["conversation"]

    class RacedOnce(SharedConversations):
        reads = 0

        def get(self, cid, bot=None):
            chat = super().get(cid, bot)
            RacedOnce.reads += 1
            if RacedOnce.reads == 1:  # meanwhile the other worker answers a turn of it
                other.chat(cid, TALKS, None)
            return chat

    answering = Answering(LiveBot(seed_index, Bot.open(seed_index)), RacedOnce(path))
    follow = answering.chat(cid, "Who led them?", None)
    assert RacedOnce.reads == 2  # read again after the refused write
    stored = SharedConversations(path).get(cid, None)
    assert stored.version == 3  # new, our first turn, the other's, then ours: nothing overwritten
    # Answered in the light of the other worker's turn (the talks), not the first question's.
    assert "Bessent" in follow["sentences"][0]["text"]
    assert stored.conversation.history[-1].question == "Who led them?"
