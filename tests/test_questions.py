"""Questions as they really arrive: invalid UTF-8, escape sequences, lines with nothing to ask.

One bad line is repaired or skipped with a warning naming it; every other question of a batch
is answered, in order.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, qa_env
from qa.errors import UsageError
from qa.questions import clean_question

VALID = ["Who led the trade delegations in London?", "Where were the talks held?", "What are rare earths vital for?"]


def run_bytes(args: list[bytes], stdin: bytes = b"") -> subprocess.CompletedProcess:
    """`python -m qa ARGS` with raw bytes in argv and on stdin, as a shell would pass them."""
    return subprocess.run([sys.executable.encode(), b"-m", b"qa", *args], input=stdin, capture_output=True,
                          cwd=REPO, env=qa_env(), timeout=180)


@pytest.mark.parametrize("pasted, expected", [
    ("Who \x1b[1;31mled\x1b[0m the talks?", "Who led the talks?"),  # SGR colour
    ("\x1b[2K\x1b[1GWho led the talks?", "Who led the talks?"),  # erase line, cursor to column 1
    ("\x1b]8;;https://example.org\x1b\\Who led\x1b]8;;\x1b\\ the talks?", "Who led the talks?"),  # hyperlink (OSC 8)
    ("\x1b]0;window title\x07Who led the talks?", "Who led the talks?"),  # OSC ended by BEL
    ("Who led\x1b7 the talks?\x1b8", "Who led the talks?"),  # save/restore cursor
    ("Who led the \x9b31mtalks?", "Who led the talks?"),  # 8-bit CSI
])
def test_ansi_escape_sequences_are_removed_whole(pasted, expected):
    assert clean_question(pasted) == expected


def test_undecodable_bytes_are_dropped_and_control_only_is_empty():
    assert clean_question("Who led \udcff\udcfethe talks?") == "Who led the talks?"
    with pytest.raises(UsageError):
        clean_question("\x07\x1b[0m\udcff")


def test_a_batch_survives_bad_lines(seed_index):
    lines = [VALID[0].encode(), b"Who led \xff\xfe the talks?", b"\x07", VALID[1].encode(), b"\x1b[0m", b"\xc3", VALID[2].encode()]
    proc = run_bytes([b"ask", b"--json", b"-", b"--index", str(seed_index).encode()], stdin=b"\n".join(lines) + b"\n")
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    # Every line with something to ask is answered, in input order; the JSON says which line it was.
    assert [o["line"] for o in out] == [1, 2, 4, 7]
    assert [o["question"] for o in out] == [VALID[0], "Who led the talks?", VALID[1], VALID[2]]
    assert all(o["answered"] for o in out)
    warnings = [line for line in err.splitlines() if line.startswith("qa: warning:")]
    skipped = "skipped, nothing left to ask once invalid bytes and control characters were removed"
    assert warnings == [
        "qa: warning: line 2: invalid UTF-8 bytes removed",
        f"qa: warning: line 3: {skipped}",
        f"qa: warning: line 5: {skipped}",
        f"qa: warning: line 6: {skipped}",
    ]


def test_invalid_utf8_argument(seed_index):
    proc = run_bytes([b"ask", b"--json", b"Who led the \xe9 trade delegations in London?", b"--index", str(seed_index).encode()])
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "qa: warning: invalid UTF-8 bytes removed" in err
    (obj,) = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert obj["question"] == "Who led the trade delegations in London?" and obj["answered"]


def test_chat_survives_bad_lines(seed_index):
    stdin = b"\xff\xff\nWho led the \xff trade delegations in London?\n" + b"\n\x1b[31m" + VALID[1].encode() + b"\x1b[0m\n"
    proc = run_bytes([b"chat", b"--json", b"--index", str(seed_index).encode()], stdin=stdin)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err, err
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["question"] for o in out] == VALID[:2]
    assert err.splitlines() == ["qa: warning: line 1: skipped, nothing left to ask once invalid bytes and control characters were removed",
                                "qa: warning: line 2: invalid UTF-8 bytes removed"]
