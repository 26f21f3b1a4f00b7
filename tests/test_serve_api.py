"""`qa serve`'s HTTP API through starlette's in-process TestClient, on real indexes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed (pip install -e '.[test]')")
from starlette.testclient import TestClient  # noqa: E402

from conftest import HARBOR, REPO, SEED, SEED_QUESTION, assert_clean_error, qa_env, run_qa  # noqa: E402
from qa.answer import Bot  # noqa: E402
from qa.questions import MAX_QUESTION_CHARS  # noqa: E402
from qa.serve import MAX_BODY_BYTES, ApiError, Conversations, create_app, exposure_warning  # noqa: E402


@pytest.fixture(scope="module")
def seed_bot(seed_index) -> Bot:
    return Bot.open(seed_index)


@pytest.fixture(scope="module")
def client(seed_index, seed_bot):
    with TestClient(create_app(seed_index, seed_bot)) as c:
        yield c


def test_ask_gives_the_same_json_as_qa_ask(client, seed_index):
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "top": 3})
    assert r.status_code == 200
    body = r.json()
    cli = json.loads(run_qa("ask", "--json", "--top", "3", "--index", str(seed_index), SEED_QUESTION).stdout)
    assert [{k: v for k, v in s.items() if k != "doc"} for s in body["sentences"]] == cli["sentences"]
    assert {k: body[k] for k in ("question", "answered", "score")} == {k: cli[k] for k in ("question", "answered", "score")}
    assert all(isinstance(s["doc"], int) for s in body["sentences"])
    assert "application/json" in r.headers["content-type"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["server-timing"].startswith("app;dur=")


def test_chat_follow_up_more_and_reset(client):
    first = client.post("/api/chat", json={"question": "Where were the talks held earlier this month?"}).json()
    cid = first["conversation"]
    assert first["answered"] and "London" in first["sentences"][0]["text"]
    follow = client.post("/api/chat", json={"conversation": cid, "question": "Who led them?"})
    assert follow.status_code == 200 and follow.json()["conversation"] == cid
    assert "Bessent" in follow.json()["sentences"][0]["text"]  # needs the first question's context
    shown = len(follow.json()["sentences"])
    more = client.post("/api/more", json={"conversation": cid}).json()
    assert more["question"] == "Who led them?" and more["first_marker"] == shown + 1
    assert more["sentences"] and not {s["text"] for s in more["sentences"]} & {s["text"] for s in follow.json()["sentences"]}
    assert client.post("/api/reset", json={"conversation": cid}).json() == {"conversation": cid, "reset": True}
    assert client.post("/api/more", json={"conversation": cid}).json()["sentences"] == []
    # After the reset the follow-up has nothing to lean on, unlike before.
    alone = client.post("/api/chat", json={"conversation": cid, "question": "Who led them?"}).json()
    assert alone["sentences"] != follow.json()["sentences"]


def test_sources_health_and_paragraph_come_from_the_index(client, seed_index, seed_bot):
    health = client.get("/api/health").json()
    assert health["generation"] == seed_bot.index.folder.name
    assert health["articles"] == 1 and health["model"] == seed_bot.index.model_id
    (src,) = client.get("/api/sources").json()["sources"]
    count = seed_bot.index.db.execute("SELECT count(*) FROM sentences").fetchone()[0]
    assert src["source"] == SEED and src["sentences"] == count and src["title"].startswith("U.S. and China")
    s = client.post("/api/ask", json={"question": SEED_QUESTION}).json()["sentences"][0]
    p = client.get(f"/api/paragraph?doc={s['doc']}&paragraph={s['paragraph']}").json()
    text = (REPO / SEED).read_bytes().decode("utf-8-sig")
    assert p["text"] == text[p["start"]:p["end"]] and p["start"] <= s["start"] < s["end"] <= p["end"]
    assert p["text"][s["start"] - p["start"]:s["end"] - p["start"]] == s["text"] == text[s["start"]:s["end"]]


@pytest.mark.parametrize("path", ["/api/paragraph?doc=1&paragraph=999", "/api/paragraph?doc=999&paragraph=1",
                                  "/api/nothing", "/static/../serve.py", "/static/index.html"])
def test_unknown_things_are_404_json(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.json()["error"]


@pytest.mark.parametrize("endpoint", ["/api/chat", "/api/more", "/api/reset"])
def test_unknown_conversation_is_404(client, endpoint):
    r = client.post(endpoint, json={"conversation": "no-such-id", "question": "Who led them?"})
    assert r.status_code == 404 and "conversation" in r.json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"question": ""}, "the question is empty"),
    ({"question": " \t\n"}, "the question is empty"),
    ({"question": "x" * (MAX_QUESTION_CHARS + 1)}, "characters long"),
    ({}, "`question` must be a string"),
    ({"question": 5}, "`question` must be a string"),
    ({"question": "Who?", "top": 0}, "`top` must be"),
    ({"question": "Who?", "top": "many"}, "`top` must be"),
    ([1, 2], "JSON object"),
])
def test_bad_questions_are_400_with_the_cli_message(client, body, message):
    for endpoint in ("/api/ask", "/api/chat"):
        r = client.post(endpoint, json=body)
        assert r.status_code == 400 and message in r.json()["error"], (endpoint, r.text)


def test_empty_question_message_is_the_clis(client, seed_index):
    cli = run_qa("ask", "--index", str(seed_index), " ").stderr.strip()
    assert cli == "qa: error: " + client.post("/api/ask", json={"question": " "}).json()["error"]


def test_not_json_is_400(client):
    r = client.post("/api/ask", content=b"question=hi", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]


def test_body_over_the_limit_is_413_declared_or_streamed(client):
    big = json.dumps({"question": "a" * MAX_BODY_BYTES}).encode()
    assert client.post("/api/ask", content=big).status_code == 413  # Content-Length says so
    chunks = (big[i:i + 4096] for i in range(0, len(big), 4096))  # chunked: no length up front
    r = client.post("/api/ask", content=chunks)
    assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_date_filters_are_the_clis(client):
    # The seed is undated: any range leaves it out, so the question is declined, not refused.
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "since": "2020-01-01"})
    assert r.status_code == 200 and r.json()["answered"] is False
    assert client.post("/api/ask", json={"question": SEED_QUESTION, "until": "2099"}).json()["answered"] is False
    r = client.post("/api/ask", json={"question": SEED_QUESTION, "since": "2020-13"})
    assert r.status_code == 400 and r.json()["error"] == "--since '2020-13' is not a date; use YYYY, YYYY-MM or YYYY-MM-DD"
    assert client.post("/api/ask", json={"question": SEED_QUESTION, "until": 2020}).status_code == 400


def test_token_is_required_on_every_request(seed_index, seed_bot):
    with TestClient(create_app(seed_index, seed_bot, token="s3cret")) as c:
        for path in ("/", "/static/app.js", "/api/health", "/api/sources"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403, path
            assert c.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
        assert c.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 401
        assert c.post("/api/ask", json={"question": SEED_QUESTION}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/?token=wrong").status_code == 403
        # The page's own link: the token is checked, kept in an HttpOnly cookie and dropped from the URL.
        r = c.get("/?token=s3cret", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/" and "HttpOnly" in r.headers["set-cookie"]
        assert c.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 200  # the cookie now rides along


def test_query_token_counts_only_for_the_page(seed_index, seed_bot):
    with TestClient(create_app(seed_index, seed_bot, token="s3cret")) as c:
        assert c.get("/api/health?token=s3cret").status_code == 401


def test_unusable_index_is_503_until_repaired(seed_copy):
    bot = Bot.open(seed_copy)
    with TestClient(create_app(seed_copy, bot)) as c:
        assert c.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 200
        good = (seed_copy / "CURRENT").read_text()
        (seed_copy / "CURRENT").write_text("gen-999999\n")  # points nowhere: really unusable
        for r in (c.post("/api/ask", json={"question": SEED_QUESTION}), c.post("/api/chat", json={"question": SEED_QUESTION}),
                  c.get("/api/health"), c.get("/api/sources")):
            assert r.status_code == 503 and "qa index --rebuild" in r.json()["error"], r.text
        (seed_copy / "CURRENT").write_text(good)
        assert c.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 200


def test_new_generation_is_served_without_restart_or_failed_request(seed_copy, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "harbor.txt").write_text(HARBOR, encoding="utf-8")
    bot = Bot.open(seed_copy)
    question = "How deep is the Riverton harbor channel now?"
    with TestClient(create_app(seed_copy, bot)) as c:
        before = c.get("/api/health").json()
        assert not any("harbor" in s["source"] for s in c.post("/api/ask", json={"question": question}).json()["sentences"])
        cid = c.post("/api/chat", json={"question": SEED_QUESTION}).json()["conversation"]
        failures, statuses, stop = [], [], threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    r = c.post("/api/ask", json={"question": SEED_QUESTION})
                    statuses.append(r.status_code)
                except Exception as e:  # noqa: BLE001 - any failure at all is what we look for
                    failures.append(repr(e))

        workers = [threading.Thread(target=hammer) for _ in range(3)]
        for w in workers:
            w.start()
        try:
            proc = run_qa("index", str(extra), "--index", str(seed_copy))
        finally:
            time.sleep(0.5)  # let requests run on after the commit, across the switch
            stop.set()
            for w in workers:
                w.join()
        assert proc.returncode == 0, proc.stderr
        assert not failures and statuses and set(statuses) == {200}, (failures, set(statuses))
        after = c.get("/api/health").json()
        assert after["generation"] != before["generation"] and after["articles"] == 2
        # The server let go of the old generation when it switched: the next `qa index` deletes it
        # (a generation is deleted only when no reader holds it; qa.store).
        assert run_qa("index", "--index", str(seed_copy)).returncode == 0
        assert not (seed_copy / before["generation"]).exists()
        top = c.post("/api/ask", json={"question": question}).json()["sentences"][0]
        assert top["source"].endswith("harbor.txt") and "fourteen meters" in top["text"]
        assert c.post("/api/chat", json={"conversation": cid, "question": "Who led them?"}).status_code == 200


def test_a_long_conversation_keeps_a_bounded_history(seed_index, seed_bot):
    from qa.serve import MAX_HISTORY

    chats = Conversations()
    with TestClient(create_app(seed_index, seed_bot, conversations=chats)) as c:
        cid = c.post("/api/chat", json={"question": SEED_QUESTION}).json()["conversation"]
        for i in range(MAX_HISTORY + 3):
            assert c.post("/api/chat", json={"conversation": cid, "question": f"And what about {i}?"}).status_code == 200
        history = chats.get(cid).conversation.history
        assert len(history) == MAX_HISTORY and history[-1].question == f"And what about {MAX_HISTORY + 2}?"


def test_only_loopback_serves_without_a_warning():
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("::1", None) is None
    assert exposure_warning("localhost", None) is None
    assert "no authentication" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", "t0ken") is None


def test_ask_never_imports_the_server_stack(seed_index):
    code = (
        "import os, sys\n"
        "os._exit = sys.exit\n"
        f"sys.argv = ['qa', 'ask', '--index', {str(seed_index)!r}, 'What did London agree?']\n"
        "from qa.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('SERVER', sorted(m for m in ('starlette', 'uvicorn', 'anyio', 'httpx', 'qa.serve') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=qa_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SERVER []" in proc.stdout and "[1]" in proc.stdout, proc.stdout


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]], ids=["default workers", "one process"])
def test_qa_serve_command_serves_the_index(seed_index, workers):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--index", str(seed_index), "--port", str(port), *workers],
                            cwd=REPO, env=qa_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
                    health, answered_by = json.loads(r.read()), r.headers["x-qa-worker"]
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
                time.sleep(0.2)
        assert health["articles"] == 1 and health["status"] == "ok"
        if workers:  # one process answers itself; with workers (more than one core) a worker does
            assert answered_by == str(proc.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b'id="question"' in r.read()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert "Traceback" not in err and "serving" in out, (out, err)


def test_port_in_use_is_a_one_line_error(seed_index):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = run_qa("serve", "--index", str(seed_index), "--port", str(busy.getsockname()[1]))
    assert "cannot listen on 127.0.0.1 port" in assert_clean_error(proc)


def test_listening_socket_lets_asyncio_turn_nagle_off():
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP (accepted connections
    inherit it); with Nagle on, each response on a kept-alive connection waited ~40 ms for the
    client's delayed ACK (BENCHMARKS.md, serving under load)."""
    import asyncio.base_events
    import socket

    from qa.serve import ServerThread, listen

    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        sock.listen()
        conn = socket.create_connection(sock.getsockname())
        accepted, _ = sock.accept()
        with accepted, conn:
            asyncio.base_events._set_nodelay(accepted)  # what asyncio's transport does
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
    thread = ServerThread(None)
    with thread.sock:
        assert thread.sock.proto == socket.IPPROTO_TCP


def test_the_server_embeds_questions_on_one_thread(seed_index):
    """Concurrency comes from requests, so each question's encoder run is single-threaded. The
    check used to look for model.onnx while the shipped export embeds with model.int8.onnx: the
    server silently kept onnxruntime's two threads, whose spinning pool thread burned as much CPU
    as the question itself (6.5 -> 14 ms CPU per question on a busy machine; BENCHMARKS.md)."""
    from qa.serve import LiveBot

    plain, served = Bot.open(seed_index), Bot.open(seed_index)
    try:
        assert plain.index.encoder.spec.onnx_file == "model.int8.onnx"  # the case the old check missed
        LiveBot(seed_index, served)
        assert "encoder" in served.index.__dict__ and served.index.encoder.threads == 1
        assert served.index.encoder.session.get_session_options().intra_op_num_threads == 1
    finally:
        plain.index.close()
        served.index.close()
