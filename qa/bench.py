"""`qa bench`: speed and memory on a real corpus, every figure measured in one run.

Default corpus: the 48 SQuAD v1.1 dev articles, written as text files exactly as `qa eval` does.
Reported: index build (wall, peak RSS, embedding throughput beside raw
SentenceTransformer.encode on the same texts), re-index of an unchanged corpus, index size, cold
`qa ask` (separate processes, median), warm per-question latency (p50/p95 over real questions),
and optionally the 1,000,000-vector scale test of `qa.ann`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_SQUAD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "squad" / "dev-v1.1.json.gz"
CONVERSATIONS = Path(__file__).resolve().parent.parent / "scripts" / "data" / "conversations_tune.json"


# Runs a command and writes its wall seconds and peak RSS (KB) to argv[1]. A child started straight from this
# (large) bench process would report the bench's peak instead: on exec Linux folds the old
# address space's high-water mark into the child's ru_maxrss, and subprocess uses vfork.
_LAUNCHER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(f"{time.perf_counter() - t0} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _qa(*args: str) -> tuple[float, float, str]:
    """Run `python -m qa ARGS` as a user would: (wall seconds, that process's peak RSS MB, stdout)."""
    import tempfile

    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, tempfile.NamedTemporaryFile("r") as rss:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, rss.name, sys.executable, "-m", "qa", *args],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"qa {' '.join(args)} failed: {err.read().strip()[-500:]}")
        wall, kb = rss.read().split()
        return float(wall), int(kb) / 1024, out.read()


def _python(code: str) -> float:
    """Wall seconds of a fresh `python -c CODE`."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(work: Path, corpus: Path | None = None, squad: Path = DEFAULT_SQUAD, cold_runs: int = 7,
        warm_questions: int = 400, st_sample: int = 3000, scale: int = 0, reindex_articles: int = 1000, log=print,
        sizes: list[int] | None = None, sizes_only: bool = False) -> dict:
    from .eval import load_json, write_articles

    work.mkdir(parents=True, exist_ok=True)
    questions: list[str] = []
    if corpus is None:
        data = load_json(squad)["data"]
        corpus = work / "articles"
        questions = [q.text for q in write_articles(data, corpus) if q.spans]
    index = work / "index"
    result: dict = {"machine": machine(), "corpus": str(corpus), "date": time.strftime("%Y-%m-%d")}

    # 1. Full build in a separate process (its own peak RSS), then an unchanged re-index.
    log("building the index ...")
    wall, rss, out = _qa("index", str(corpus), "--index", str(index), "--rebuild", "--json")
    rep = json.loads(out)
    result["index"] = {
        "documents": rep["documents"], "sentences": rep["sentences"], "texts_embedded": rep["embedded"],
        "wall_s": round(wall, 1), "embed_s": round(rep["embed_seconds"], 1),
        "throughput_texts_per_s": round(rep["embedded"] / rep["embed_seconds"], 1),
        "overhead_share": round(1 - rep["embed_seconds"] / wall, 3),
        "peak_rss_mb": round(rss),
    }
    if sizes:
        from .bench_sizes import measure

        tune = load_json(squad)["data"][0::2]  # filler for updates: tune-split paragraphs (never the held-out ones)
        new = [{"title": f"Update {k}", "paragraphs": [p]} for k, p in enumerate(p for art in tune for p in art["paragraphs"][:1])][:10]
        result["sizes"] = measure(work, index, sizes, questions or ["What happened?"] * 4, new, _qa, log)
        if sizes_only:
            return result
    times = [_qa("index", "--index", str(index), "--json")[0] for _ in range(3)]
    result["reindex_unchanged_s"] = round(statistics.median(times), 2)
    if reindex_articles and corpus == work / "articles":
        result["reindex_many"] = _reindex_many(work, load_json(squad)["data"], reindex_articles, log)

    from .index import Index

    idx = Index.open(index)
    result["index"]["size_mb"] = round(_dir_size(idx.folder) / 2**20, 1)
    result["index"]["model_export_mb"] = round(_dir_size(idx.model_folder) / 2**20, 1)

    # 2. Cold one-shot `qa ask`, each in a fresh process.
    log("measuring cold qa ask ...")
    asks = questions[:cold_runs] if questions else ["What happened?"] * cold_runs
    _qa("ask", "--index", str(index), asks[0])  # page cache warm, as for any second use
    cold = [_qa("ask", "--index", str(index), q)[:2] for q in asks]
    result["cold_ask_s"] = {"median": round(statistics.median(c[0] for c in cold), 3), "runs": [round(c[0], 3) for c in cold],
                            "peak_rss_mb": round(max(c[1] for c in cold))}
    # The floor on this machine, now: any process that embeds a question with onnxruntime and
    # ranks with numpy pays for these imports (the machine is shared, so compare in the same run).
    floor = [_python("import numpy, onnxruntime, tokenizers") for _ in range(cold_runs)]
    result["cold_ask_s"]["import_floor_median"] = round(statistics.median(floor), 3)

    # 3. Warm latency inside one process, answer ranking included.
    log("measuring warm latency ...")
    from .answer import Bot

    bot = Bot(idx)
    sample = questions[:: max(1, len(questions) // warm_questions)][:warm_questions] if questions else asks
    bot.ask(sample[0])
    lat = []
    for q in sample:
        t0 = time.perf_counter()
        bot.ask(q)
        lat.append((time.perf_counter() - t0) * 1000)
    result["warm_ms"] = {"questions": len(lat), "p50": round(float(np.percentile(lat, 50)), 2),
                         "p95": round(float(np.percentile(lat, 95)), 2)}
    if CONVERSATIONS.exists():
        result["follow_up_ms"] = _follow_ups(bot, result["warm_ms"]["p50"])

    # 4. Embedding throughput (last: this process then holds torch, and forked children would
    # report its memory as theirs), ours vs raw sentence-transformers, on the same texts.
    log("measuring embedding throughput ...")
    texts = [t for (t,) in idx.db.execute("SELECT text FROM sentences ORDER BY row LIMIT ?", (st_sample,))]
    from .embed import OnnxEncoder, load_sentence_transformer

    ours = OnnxEncoder(idx.model_folder)
    ours.encode(texts[:64])
    t0 = time.perf_counter()
    ours.encode(texts)
    ours_tps = len(texts) / (time.perf_counter() - t0)
    from .exports import model_source

    st = load_sentence_transformer(model_source(idx.manifest["model"]))
    st.encode(texts[:64])
    t0 = time.perf_counter()
    st.encode(texts, batch_size=64)
    st_tps = len(texts) / (time.perf_counter() - t0)
    del st
    result["embedding"] = {"texts": len(texts), "qa_onnx_per_s": round(ours_tps, 1),
                           "sentence_transformers_per_s": round(st_tps, 1), "ratio": round(ours_tps / st_tps, 2)}

    if scale:
        log(f"scale test at {scale:,} vectors ...")
        from .ann import scale_benchmark

        base = idx.sentence_vectors_at(np.arange(idx.sentence_count))
        qvecs = idx.encoder.encode(sample)
        result["scale"] = scale_benchmark(base, n=scale, queries=qvecs)
    return result


def _follow_ups(bot, ask_p50: float) -> dict:
    """Warm latency of a follow-up in a conversation (`Conversation.ask`, as `qa chat`): the second
    turns of the tune conversations, each after its first turn, against warm `qa ask` p50."""
    from .chat import Conversation

    convs = json.loads(CONVERSATIONS.read_text())["conversations"]
    conv = Conversation(bot)
    lat = []
    for c in convs:
        first, follow = c["turns"][0], c["turns"][1]
        conv.reset()
        conv.ask(first["question"])
        t0 = time.perf_counter()
        conv.ask(follow["question"])
        lat.append((time.perf_counter() - t0) * 1000)
    p50 = float(np.percentile(lat, 50))
    return {"questions": len(lat), "p50": round(p50, 2), "p95": round(float(np.percentile(lat, 95)), 2),
            "ratio_to_ask_p50": round(p50 / ask_p50, 2)}


def _reindex_many(work: Path, data: list, n: int, log) -> dict:
    """Re-index an unchanged corpus of n articles: each SQuAD paragraph as its own article file."""
    from .eval import write_articles

    articles = [{"title": f"{art['title']} ({k})", "paragraphs": [p]} for art in data for k, p in enumerate(art["paragraphs"], 1)][:n]
    corpus, index = work / f"articles-{len(articles)}", work / f"index-{len(articles)}"
    write_articles(articles, corpus)
    log(f"building a {len(articles)}-article index for the re-index measurement ...")
    _qa("index", str(corpus), "--index", str(index), "--rebuild")
    times = [_qa("index", str(corpus), "--index", str(index), "--json")[0] for _ in range(3)]
    return {"articles": len(articles), "median_s": round(statistics.median(times), 2), "runs": [round(t, 2) for t in times]}


def markdown(r: dict, command: str) -> str:
    """The figures as the BENCHMARKS.md section between the bench markers."""
    if "embedding" not in r:  # --sizes-only
        from .bench_sizes import markdown_rows

        return "\n".join([f"Command: `{command}` — {r['date']}, {r['machine']}.", *markdown_rows(r.get("sizes", []))])
    i, e, c, w = r["index"], r["embedding"], r["cold_ask_s"], r["warm_ms"]
    end_to_end = i["texts_embedded"] / i["wall_s"]
    lines = [
        "<!-- bench:start -->",
        f"Command: `{command}` — {r['date']}, {r['machine']}. Corpus: {r['corpus']} "
        f"({i['documents']} articles, {i['sentences']} sentences).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| cold `qa ask` wall, median of {len(c['runs'])} processes | {c['median']:.2f} s (runs {', '.join(f'{x:.2f}' for x in c['runs'])}) | ≤ 0.6 s |",
        *([f"| same-run floor: `python -c \"import numpy, onnxruntime, tokenizers\"`, median of {len(c['runs'])} | {c['import_floor_median']:.2f} s | |"]
          if "import_floor_median" in c else []),
        f"| cold `qa ask` peak RSS | {c['peak_rss_mb']} MB | |",
        f"| warm question latency, {w['questions']} real questions | p50 {w['p50']:.1f} ms, p95 {w['p95']:.1f} ms | p50 ≤ 15 ms, p95 ≤ 40 ms |",
        *([f"| warm follow-up in a conversation (`Conversation.ask`), {r['follow_up_ms']['questions']} follow-ups of the tune conversations | "
           f"p50 {r['follow_up_ms']['p50']:.1f} ms, p95 {r['follow_up_ms']['p95']:.1f} ms (×{r['follow_up_ms']['ratio_to_ask_p50']:.2f} the warm p50 above) | ≤ 1.5× |"]
          if "follow_up_ms" in r else []),
        f"| embedding throughput, same {e['texts']} sentences | qa (ONNX) {e['qa_onnx_per_s']:.0f}/s vs SentenceTransformer.encode {e['sentence_transformers_per_s']:.0f}/s (×{e['ratio']:.2f}) | |",
        f"| full index build (`qa index --rebuild`) | {i['wall_s']:.1f} s wall, {i['texts_embedded']} texts, embedding {i['embed_s']:.1f} s ({i['throughput_texts_per_s']:.0f}/s); non-embedding share {i['overhead_share']:.0%}; peak RSS {i['peak_rss_mb']} MB | |",
        f"| indexing end to end (texts embedded / build wall) vs SentenceTransformer.encode | {end_to_end:.0f}/s vs {e['sentence_transformers_per_s']:.0f}/s (×{end_to_end / e['sentence_transformers_per_s']:.2f}) | ≥ 0.9× |",
        f"| re-index, unchanged corpus above (median of 3) | {r['reindex_unchanged_s']:.2f} s | |",
        *([f"| re-index, unchanged corpus of {r['reindex_many']['articles']:,} articles (one SQuAD paragraph each; median of 3) | "
            f"{r['reindex_many']['median_s']:.2f} s (runs {', '.join(f'{x:.2f}' for x in r['reindex_many']['runs'])}) | ≤ 2 s |"]
          if "reindex_many" in r else []),
        f"| index size on disk | {i['size_mb']} MB (+ model export {i['model_export_mb']} MB, shared by generations) | |",
    ]
    if "scale" in r:
        s = r["scale"]
        lines.append(
            f"| {s['n']:,} vectors from real embeddings, {s['index']} (nlist {s['nlist']}, nprobe {s['nprobe']}) | "
            f"build {s['build_s']:.0f} s, {s['disk_bytes'] / 2**20:.0f} MB on disk, {s['ram_mb']:.0f} MB RAM loaded "
            f"({s['ram_mmap_after_load_mb']:.1f} MB memory-mapped, {s['ram_mmap_after_queries_mb']:.0f} MB after {s['queries']} queries); "
            f"query p50 {s['query_p50_ms']:.1f} ms, p95 {s['query_p95_ms']:.1f} ms; recall@{s['k']} {s['recall_at_k']:.3f} vs exact "
            "| p50 ≤ 20 ms, recall@10 ≥ 0.95, RAM ≤ 1 GB |"
        )
    if "sizes" in r:
        from .bench_sizes import markdown_rows

        lines += markdown_rows(r["sizes"])
    lines.append("<!-- bench:end -->")
    return "\n".join(lines)


def write_markdown(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if "<!-- bench:start -->" in text:
        head, rest = text.split("<!-- bench:start -->", 1)
        text = head + section + rest.split("<!-- bench:end -->", 1)[1]
    else:
        text = text.rstrip() + "\n\n## Speed (`qa bench`)\n\n" + section + "\n"
    path.write_text(text)
