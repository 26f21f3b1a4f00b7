"""Load test of `qa serve` on loopback: bounded concurrent clients, then an index switch mid-run.

    python scripts/load_serve.py [--clients 16] [--seconds 60] [--work /tmp/qa-serve-load] [--workers 1,2]

Corpus: the SQuAD v1.1 dev *tune* articles (even ones), written as text files as `qa eval` does;
questions: theirs. The server is the real `qa serve` command in its own process. Each client
keeps one HTTP connection and sends, one after another, a mix of POST /api/ask (a random
question) and POST /api/chat (a conversation of up to three questions about one article).
Phases: 1 client, N clients, N clients while `qa index` commits a new generation (one article
edited) in the middle. `--workers 1,2` runs all the phases against `qa serve --workers 1`, then
against a fresh `--workers 2`, back to back (compare configurations in one run on a shared
machine); without it the server picks its default. Only 127.0.0.1; clients and duration are bounded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qa.bench import DEFAULT_SQUAD, machine  # noqa: E402
from qa.eval import load_json, split_articles, write_articles  # noqa: E402

MAX_CLIENTS = 64
MAX_SECONDS = 600


def qa_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "qa", *args]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")


class Client(threading.Thread):
    def __init__(self, port: int, questions: dict[str, list[str]], deadline: list[float], seed: int) -> None:
        super().__init__(daemon=True)
        self.port, self.questions, self._deadline = port, questions, deadline
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.server_ms: list[float] = []  # the server's own time (Server-Timing), queueing included
        self.done_at: list[float] = []
        self.errors: list[str] = []
        self.answered_by: list[str] = []  # the worker process of each response (x-qa-worker)

    @property
    def deadline(self) -> float:
        return self._deadline[0]  # shared by the clients of a phase; the switch phase moves it

    def post(self, conn: http.client.HTTPConnection, path: str, body: dict) -> dict | None:
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            r = conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.errors.append(f"{path}: {e!r}")
            conn.close()
            return None
        t1 = time.perf_counter()
        self.latencies.append(t1 - t0)
        timing = r.getheader("server-timing") or ""
        if "dur=" in timing:
            self.server_ms.append(float(timing.split("dur=")[1]))
        self.done_at.append(t1)
        self.answered_by.append(r.getheader("x-qa-worker") or "?")
        if r.status != 200:
            self.errors.append(f"{path}: {r.status} {payload[:200]!r}")
            return None
        return json.loads(payload)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sources = list(self.questions)
        while time.perf_counter() < self.deadline:
            article = self.questions[self.rng.choice(sources)]
            if self.rng.random() < 0.5:
                self.post(conn, "/api/ask", {"question": self.rng.choice(article)})
                continue
            cid = None
            for q in self.rng.sample(article, min(3, len(article))):
                if time.perf_counter() >= self.deadline:
                    break
                reply = self.post(conn, "/api/chat", {"question": q, **({"conversation": cid} if cid else {})})
                if reply is None:
                    break
                cid = reply["conversation"]
        conn.close()


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/health")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def cpu_seconds(pid: int, descendants: bool = True) -> float:
    """CPU time (user + system) of a process and (by default) all its descendants now alive (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)  # ppid, utime+stime
    family = {pid}
    for _ in range(4 if descendants else 0):  # the server, its workers, their helpers
        family |= {p for p, (ppid, _) in stats.items() if ppid in family}
    return sum(stats[p][1] for p in family if p in stats)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def phase(port: int, questions: dict, clients: int, seconds: float, during=None, server_pid: int | None = None) -> dict:
    cpu0 = (cpu_seconds(server_pid) if server_pid else 0.0, time.process_time(), cpu_seconds(server_pid, False) if server_pid else 0.0)
    t0 = time.perf_counter()
    deadline = [t0 + seconds if during is None else float("inf")]
    workers = [Client(port, questions, deadline, seed=i) for i in range(clients)]
    for w in workers:
        w.start()
    extra = {}
    if during is not None:  # run on for a third of the phase after the commit, at least
        extra = during()
        deadline[0] = max(t0 + seconds, time.perf_counter() + seconds / 3)
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    server_cpu = (cpu_seconds(server_pid) if server_pid else 0.0) - cpu0[0]
    client_cpu = time.process_time() - cpu0[1]
    http_cpu = (cpu_seconds(server_pid, False) if server_pid else 0.0) - cpu0[2]  # the process speaking HTTP
    lat = sorted(x for w in workers for x in w.latencies)
    errors = [e for w in workers for e in w.errors]
    server = sorted(x for w in workers for x in w.server_ms)
    out = {"clients": clients, "seconds": round(wall, 1), "loadavg_1min_after": round(os.getloadavg()[0], 1), "requests": len(lat), "throughput": round(len(lat) / wall, 1),
           "p50_ms": round(percentile(lat, 50) * 1000, 1), "p95_ms": round(percentile(lat, 95) * 1000, 1),
           "p99_ms": round(percentile(lat, 99) * 1000, 1), "max_ms": round(lat[-1] * 1000, 1) if lat else None,
           "server_p50_ms": round(percentile(server, 50), 1), "server_p95_ms": round(percentile(server, 95), 1),
           # CPU per request, less sensitive to a busy machine than latency: the server's processes, this client's
           "server_cpu_ms_per_request": round(server_cpu / max(1, len(lat)) * 1000, 2) if server_pid else None,
           "of_which_http_process_cpu_ms": round(http_cpu / max(1, len(lat)) * 1000, 2) if server_pid else None,
           "client_cpu_ms_per_request": round(client_cpu / max(1, len(lat)) * 1000, 2),
           "requests_by_worker": sorted(Counter(x for w in workers for x in w.answered_by).values(), reverse=True),
           "errors": len(errors), "first_errors": errors[:5], **extra}
    if extra.get("commit_at") is not None:  # requests that finished after the new generation was live
        out["requests_after_commit"] = sum(t > extra["commit_at"] for w in workers for t in w.done_at)
    out.pop("commit_at", None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--single-seconds", type=float, default=20, help="length of the one-client phase")
    ap.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    ap.add_argument("--work", type=Path, default=Path("/tmp/qa-serve-load"))
    ap.add_argument("--no-switch", action="store_true", help="skip the phase with an index commit")
    ap.add_argument("--workers", help="qa serve --workers, or several separated by commas to compare them one after another")
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        sys.exit(f"--clients must be 1..{MAX_CLIENTS} and --seconds 1..{MAX_SECONDS}")

    articles = args.work / "articles"
    index = args.work / "index"
    qs = write_articles(split_articles(load_json(args.squad)["data"], "tune"), articles)
    questions: dict[str, list[str]] = {}
    for q in qs:
        questions.setdefault(q.source, []).append(q.text)
    subprocess.run(qa_cmd("index", str(articles), "--index", str(index)), check=True, env=env(), cwd=REPO, stdout=sys.stderr)

    results: dict = {"machine": machine(), "cores": os.cpu_count(), "articles": len(questions), "questions": len(qs),
                     "loadavg_before": list(os.getloadavg())}
    configs = [int(w) for w in args.workers.split(",")] if args.workers else [None]
    for i, workers in enumerate(configs):
        key = "server" if workers is None else f"workers={workers}"
        if configs.count(workers) > 1:  # e.g. --workers 1,2,1,2: alternate, keep every run
            key += f" (run {i + 1})"
        results[key] = serve_phases(args, index, articles, questions, workers)
    print(json.dumps(results, indent=1))


def serve_phases(args, index: Path, articles: Path, questions: dict, workers: int | None) -> dict:
    """Start `qa serve` (with --workers when given), run the phases against it, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--workers", str(workers)] if workers is not None else []
    server = subprocess.Popen(qa_cmd("serve", "--index", str(index), "--port", str(port), *extra), env=env(), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results: dict = {}
    try:
        for _ in range(600):
            try:
                results["health"] = health(port)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"qa serve exited: {server.stderr.read()[-2000:]}")
                time.sleep(0.2)
        results["serving"] = server.stdout.readline().strip()  # "qa: serving ... with N worker processes ..."
        print(f"{results['serving']}: {results['health']} on port {port}", file=sys.stderr)
        results["single"] = phase(port, questions, 1, args.single_seconds, server_pid=server.pid)
        print(json.dumps(results["single"]), file=sys.stderr)
        results["concurrent"] = phase(port, questions, args.clients, args.seconds, server_pid=server.pid)
        print(json.dumps(results["concurrent"]), file=sys.stderr)
        if not args.no_switch:
            results["switch"] = phase(port, questions, args.clients, args.seconds, lambda: commit_midway(port, articles, index, args.seconds),
                                      server_pid=server.pid)
            print(json.dumps(results["switch"]), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)
    p50 = results["single"]["p50_ms"]
    results["p95_over_single_p50"] = round(results["concurrent"]["p95_ms"] / p50, 2) if p50 else None
    print(f"workers={workers}: p95 under {args.clients} clients / single-client p50 = {results['p95_over_single_p50']}", file=sys.stderr)
    return results


def commit_midway(port: int, articles: Path, index: Path, seconds: float) -> dict:
    """A sixth of the way in, edit one article and run `qa index`: a new generation goes live."""
    time.sleep(seconds / 6)
    before = health(port)["generation"]
    victim = sorted(articles.iterdir())[0]
    victim.write_text(victim.read_text(encoding="utf-8") + f"\nEdited for the load test at {time.time():.0f}.\n", encoding="utf-8")
    t0 = time.perf_counter()
    proc = subprocess.run(qa_cmd("index", str(articles), "--index", str(index)), env=env(), cwd=REPO, capture_output=True, text=True)
    commit_at = time.perf_counter()
    if proc.returncode != 0:
        return {"index_error": proc.stderr[-500:], "commit_at": None}
    return {"generation_before": before, "qa_index_s": round(commit_at - t0, 1), "commit_at": commit_at,
            "generation_after": health(port)["generation"]}


if __name__ == "__main__":
    main()
