"""Run an exported cross-encoder (scripts/ship_reranker.py) with onnxruntime + tokenizers, no torch.

Issue 14's reranker experiments read it (scripts/eval_reranker.py, scripts/fit_rerank_answerability.py).
Nothing in qa/ uses a cross-encoder: re-ordering by it and an answerability model reading it were
measured and not shipped (BENCHMARKS.md, "A cross-encoder trained on train").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SPEC_FILE = "reranker.json"


class CrossEncoder:
    """An exported cross-encoder (ONNX, int8) and its tokenizer. Loads in ~0.1 s; no torch."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        spec = json.loads((folder / SPEC_FILE).read_text())
        self.max_tokens = int(spec["max_tokens"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Training cut only the sentence (transformers, truncation="only_second"). "longest_first"
        # gives the same pairs while the question is under half the budget (the sentence is the
        # longer one and is cut first), and a question too long for "only_second" (which raises)
        # is cut too instead of failing. Padding: to the longest pair of the call.
        self.tokenizer.enable_truncation(max_length=self.max_tokens, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / spec["onnx_file"]), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits(self, question: str, sentences: list[str]) -> np.ndarray:
        """One logit per sentence: higher means it answers `question` better."""
        if not sentences:
            return np.zeros(0, np.float32)
        enc = self.tokenizer.encode_batch([(question, s) for s in sentences])
        arrays = {
            "input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64),
        }
        return self.session.run(None, {name: arrays[name] for name in self.inputs})[0].astype(np.float32)

