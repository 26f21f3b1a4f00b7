"""The cross-encoder reranker: reads the question and one candidate sentence together and says how
well the sentence answers it.

The ranker (qa.retrieve) scores each candidate from features computed separately for question and
sentence (cosines, BM25, word overlap). A cross-encoder attends across both texts and judges one
(question, sentence) pair at a time, so its judgment does not depend on how many other articles
the collection holds. It runs on the ranker's best candidates only, and only when the ranker is
not sure (qa/ranker.json):
- it re-orders the ranker's best (up to 10, `rerank_top`: those within 3 in logit of the first,
  `rerank_within`) by ranker logit + 0.75 x its logit, unless the ranker's first leads by more
  than 1.5 in logit (`rerank_margin`; tune R@1 0.793 -> 0.840, R@5 0.950 -> 0.958);
- the answerability model reads its logits for the ranker's 2 best (`reranker_top`): does the
  collection answer the question at all (issue 14; BENCHMARKS.md).

The shipped model (qa/weights/reranker/, made by scripts/gpu_train_reranker.py and
scripts/ship_reranker.py) is the bundled base MiniLM with a linear head on the mean token vector,
trained on 72,568 SQuAD *train* questions, each against 7 wrong sentences: the shipped pipeline's
own best wrong candidates where they were saved, BM25's and the base encoder's best of its article.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import QAError

SHIPPED_RERANKER = Path(__file__).resolve().parent / "weights" / "reranker"
SPEC_FILE = "reranker.json"


class CrossEncoder:
    """An exported cross-encoder (ONNX, int8) and its tokenizer. Loads in ~0.1 s; no torch."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        from .embed import cpu_session

        spec = json.loads((folder / SPEC_FILE).read_text())
        self.max_tokens = int(spec["max_tokens"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Training cut only the sentence (transformers, truncation="only_second"). "longest_first"
        # gives the same pairs while the question is under half the budget (the sentence is the
        # longer one and is cut first), and a question too long for "only_second" (which raises)
        # is cut too instead of failing. No padding: each pair runs alone (logits).
        self.tokenizer.enable_truncation(max_length=self.max_tokens, strategy="longest_first")
        self.tokenizer.no_padding()  # tokenizer.json pads to 128
        self.session = cpu_session(folder / spec["onnx_file"], threads or os.cpu_count() or 1)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits(self, question: str, sentences: list[str]) -> np.ndarray:
        """One logit per sentence: higher means it answers `question` better."""
        # One pair per run: the int8 model quantises its activations per run (dynamic
        # quantisation), so in a batch the other pairs and the padding would move each logit (by
        # 0.33 in the median for the first two of five SQuAD candidates). One at a time, a pair's
        # logit is its own whatever else is asked, and no slower here (20.2 against 21.0 ms for
        # five pairs on 2 threads).
        out = np.zeros(len(sentences), np.float32)
        for i, enc in enumerate(self.tokenizer.encode_batch([(question, s) for s in sentences])):
            arrays = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
            feed = {name: np.array([arrays[name]], np.int64) for name in self.inputs}
            out[i] = self.session.run(None, feed)[0][0]
        return out


@lru_cache(maxsize=4)
def shipped_cross_encoder(threads: int | None = None) -> CrossEncoder:
    """The shipped reranker, loaded once per process and thread count: every Bot and every index
    generation shares it."""
    if not (SHIPPED_RERANKER / SPEC_FILE).is_file():
        raise QAError(f"the reranker weights are missing from {SHIPPED_RERANKER}; reinstall qa")
    return CrossEncoder(SHIPPED_RERANKER, threads)


def best_logits(question: str, texts: list[str], scores: np.ndarray, n: int) -> np.ndarray:
    """The shipped reranker's logits of the n best of `texts` by `scores`, best first: what
    Ranker.answerability reads (for scripts that score candidates outside the Bot)."""
    best = np.argsort(-np.asarray(scores), kind="stable")[:n]
    return shipped_cross_encoder().logits(question, [texts[i] for i in best])
