"""Sentence embeddings: sentence-transformers exported once to ONNX, then run with onnxruntime.

The default model ships already exported (qa/weights/onnx, see qa/exports.py). Any other
sentence-transformers folder (`--model DIR`) is loaded with sentence-transformers (torch, the
`export` extra), exported to ONNX with its pooling and normalisation inside the graph, checked
against sentence-transformers on real sentences and quantised, once per model, into the user
cache. Everything after that - bulk document embedding and every question - runs through the
same ONNX file with onnxruntime + tokenizers, so questions and documents share numerics and
neither a query nor an index update imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import QAError

ENCODER_FILE = "encoder.json"
PARITY_MIN_COSINE = 0.999  # fp32 ONNX vs sentence-transformers
INT8_FILE = "model.int8.onnx"
INT8_MIN_COSINE = 0.97  # measured for MiniLM: min 0.98 over real sentences
# Real news sentences used to check an export against sentence-transformers.
PARITY_SENTENCES = [
    "Beijing has announced that the United States and China have finalized details of a trade framework.",
    "Mr. Smith, a Ph.D. from Washington, D.C., paid $3.5 million on Jan. 5.",
    "Growth hit 3.5% in the U.S. last year, the Commerce Department said.",
    "Who led the delegations?",
    "Rare earths are vital for national security on both sides.",
    "short",
]

Progress = Callable[[int], None]


@dataclass
class EncoderSpec:
    model_id: str  # folder name + content hash: two different weights never share an id
    model_path: str
    dim: int
    max_tokens: int
    inputs: list[str]  # ONNX input names, in the order the tokenizer provides them
    # The file every text - document or question - is embedded with. int8 (per-channel dynamic
    # quantisation) embeds ~2x faster than fp32 at the same retrieval quality (SQuAD tune split,
    # shipped pipeline: R@1 0.6756 int8 vs 0.6748 fp32, see BENCHMARKS.md); model.onnx (fp32) stays
    # beside it as the reference checked against sentence-transformers.
    onnx_file: str = "model.onnx"
    preoptimized: bool = False  # graph already optimised by onnxruntime: sessions load ~3x faster

    def save(self, folder: Path) -> None:
        (folder / ENCODER_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> "EncoderSpec":
        return cls(**json.loads((folder / ENCODER_FILE).read_text()))


def model_id(model_dir: Path) -> str:
    """A stable id for a sentence-transformers folder: its name and a hash of its files."""
    if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
        raise QAError(f"{model_dir} is not a sentence-transformers model folder (no modules.json or config.json)")
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() != ".md":
            h.update(p.relative_to(model_dir).as_posix().encode())
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return f"{model_dir.name}-{h.hexdigest()[:16]}"


def load_sentence_transformer(model_dir: Path):
    """sentence-transformers, offline, on CPU. Imported lazily: it costs seconds."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # str(): sentence-transformers 6 fails on a PosixPath.
    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def export(model_dir: Path, out_dir: Path) -> EncoderSpec:
    """Export the folder's full sentence-transformers pipeline to `out_dir/model.onnx`."""
    from .exports import require_export_extra

    require_export_extra(f"exporting the model {model_dir} to ONNX")
    import torch

    st = load_sentence_transformer(model_dir)
    tok = st.tokenizer
    sample = tok(["hello world"], return_tensors="pt")
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            return self.st(dict(zip(inputs, tensors)))["sentence_embedding"]

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in inputs}
    axes["sentence_embedding"] = {0: "batch"}
    # The tracer warns about shape-dependent branches; the parity check below (on a padded batch
    # of mixed lengths) is what proves the export right, so the warnings are only noise.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pipeline().eval(),
            tuple(sample[n] for n in inputs),
            str(onnx_path),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    tokenizer_json = model_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")
    else:
        tok.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    spec = EncoderSpec(
        model_id=model_id(model_dir),
        model_path=str(Path(model_dir).resolve()),  # indexes in other folders re-export from it
        dim=int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else st.get_sentence_embedding_dimension()),
        max_tokens=int(st.max_seq_length),
        inputs=inputs,
    )
    spec.save(out_dir)

    reference = st.encode(PARITY_SENTENCES, normalize_embeddings=False, convert_to_numpy=True)
    ours = OnnxEncoder(out_dir).encode(PARITY_SENTENCES)
    cos = _cosines(reference, ours)
    if cos.min() < PARITY_MIN_COSINE:
        raise QAError(f"ONNX export of {model_dir} disagrees with sentence-transformers (min cosine {cos.min():.4f})")

    _quantize(onnx_path, out_dir / "model.int8.raw.onnx")
    _optimize(out_dir / "model.int8.raw.onnx", out_dir / INT8_FILE)
    (out_dir / "model.int8.raw.onnx").unlink()
    int8 = EncoderSpec(**{**asdict(spec), "onnx_file": INT8_FILE, "preoptimized": True})
    int8.save(out_dir)
    cos8 = _cosines(reference, OnnxEncoder(out_dir).encode(PARITY_SENTENCES))
    if cos8.min() < INT8_MIN_COSINE:  # an unusual model that quantises badly stays fp32
        spec.save(out_dir)
        return spec
    return int8


def _optimize(src: Path, out: Path) -> None:
    """Save onnxruntime's optimised graph once, instead of optimising at every process start.

    Extended level, not "all": the saved graph must not depend on this CPU's memory layouts.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def cpu_session(path: Path, threads: int, optimize: bool = True):
    """An onnxruntime CPU session running one model call on `threads` cores (one call at a time
    per session; `optimize`: False for a graph saved already optimised)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _quantize(fp32: Path, out: Path) -> None:
    """Dynamic int8, per channel: per-tensor scales keep only ~74 % of top-10 results."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It configures the root logger (and advises "pre-processing" through it); undo that.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
        root.handlers[:], root.level = handlers, level


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def ensure_exported(model_dir: Path, store: Path | None = None) -> Path:
    """The ONNX folder for this model, exporting it (atomically) if needed.

    `store` defaults to the user cache, shared by every index (qa/exports.py); the default
    model's export ships with qa and is never exported again.
    """
    from .exports import SHIPPED_EXPORT, exports_dir, shipped_model_id

    mid = model_id(model_dir)
    if mid == shipped_model_id():
        return SHIPPED_EXPORT
    store = exports_dir() if store is None else store
    folder = store / mid
    if (folder / ENCODER_FILE).is_file():
        return folder
    try:
        store.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=store))
    except OSError as e:
        raise QAError(f"cannot write model exports to {store} ({e.strerror}); set QA_CACHE to a writable folder") from None
    tmp.chmod(0o755)  # mkdtemp makes it private; an export is as readable as the indexes using it
    try:
        export(model_dir, tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another `qa index` exported the same model meanwhile: same content
            if not (folder / ENCODER_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def encoder_folder(model_dir: Path | None) -> Path:
    """The export to embed with for `--model DIR`, or for the default model when None."""
    from .exports import SHIPPED_EXPORT

    return SHIPPED_EXPORT if model_dir is None else ensure_exported(model_dir)


class OnnxEncoder:
    """Embeds texts with an exported model. Loads in ~0.1 s; no torch."""

    def __init__(self, folder: Path, threads: int | None = None, onnx_file: str | None = None) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.spec = EncoderSpec.load(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The bundled tokenizer.json truncates and pads to 128; sentence-transformers reads up to
        # max_seq_length and pads to the longest text in the batch. Match it exactly.
        self.tokenizer.enable_truncation(max_length=self.spec.max_tokens)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        self.threads = threads or os.cpu_count() or 1
        self._path = folder / (onnx_file or self.spec.onnx_file)
        self._preoptimized = self.spec.preoptimized and onnx_file is None
        self.session = self._session(self.threads)

    def _session(self, threads: int):
        return cpu_session(self._path, threads, optimize=not self._preoptimized)

    @cached_property
    def _bulk_session(self):
        # One question is fastest on all cores (2 cores: 4.0 vs 5.1 ms), but a single small run
        # keeps the second core half idle. For many texts, one single-threaded run per core, in
        # parallel, uses both fully (onnxruntime runs a session from several threads at once).
        return self._session(1)

    @property
    def dim(self) -> int:
        return self.spec.dim

    @cached_property
    def _counter(self):
        # A second tokenizer without truncation or padding; only indexing counts tokens, and
        # loading tokenizer.json costs ~40 ms, so a query process never builds it.
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        counter.no_truncation()
        counter.no_padding()
        return counter

    @cached_property
    def special_tokens(self) -> int:
        """[CLS]/[SEP] and the like that the tokenizer's post-processor adds to one text."""
        processor = self._counter.post_processor
        return processor.num_special_tokens_to_add(False) if processor is not None else 0

    @property
    def token_budget(self) -> int:
        """Word pieces of one text the model reads without truncating: its max_seq_length
        minus the special tokens. The chunker keeps every sentence and passage within it."""
        return self.spec.max_tokens - self.special_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, without special tokens and without truncation."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress: Progress | None = None) -> np.ndarray:
        """Embed texts; sorted by length into batches so little time goes to padding.

        The int8 model quantises activations with one scale per batch, so a text's vector would
        depend on the texts batched with it (cosine 0.985 between the same sentence in two
        batches). It embeds one text per run instead: every text - document or question - gets
        the same vector wherever it is embedded, at the same throughput (no padding either).
        """
        if batch_size is None:
            batch_size = 1 if self.spec.onnx_file == INT8_FILE else 64
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
        parallel = self.threads > 1 and len(batches) >= 4 * self.threads
        session = self._bulk_session if parallel else self.session

        def run(idx: list[int]) -> None:
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            feeds = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
            }
            (emb,) = session.run(None, {n: feeds[n] for n in self.spec.inputs})
            out[idx] = emb
            if progress:
                progress(len(idx))

        if parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(run, batches))
        else:
            for idx in batches:
                run(idx)
        return out
