"""Write qa/weights/onnx: the default model's ONNX export, shipped so that installing, indexing
and asking need no torch (qa/exports.py).

Run it after scripts/finetune.py changes qa/weights/minilm-squad.safetensors (needs the export
extra). It is the exact output of `qa.embed.export` on the materialised fine-tuned model - the
int8 file, tokenizer.json and encoder.json - except that encoder.json's model_path names
`qa.weights` instead of this machine's cache folder. tests/test_embed.py checks that a fresh
export still gives the shipped file's vectors.

    python scripts/ship_export.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.embed import ENCODER_FILE, INT8_FILE, export  # noqa: E402
from qa.exports import SHIPPED_EXPORT, SHIPPED_SOURCE  # noqa: E402
from qa.weights import shipped_model  # noqa: E402

SHIPPED_FILES = (INT8_FILE, "tokenizer.json", ENCODER_FILE)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="qa-ship-") as tmp:
        spec = export(shipped_model(), Path(tmp))
        if spec.onnx_file != INT8_FILE:
            raise SystemExit("the int8 model failed its parity check; not shipping an fp32 export")
        SHIPPED_EXPORT.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED_FILES[:2]:
            shutil.copyfile(Path(tmp) / name, SHIPPED_EXPORT / name)
        meta = json.loads((Path(tmp) / ENCODER_FILE).read_text())
        meta["model_path"] = SHIPPED_SOURCE
        (SHIPPED_EXPORT / ENCODER_FILE).write_text(json.dumps(meta, indent=2))
    for stale in set(p.name for p in SHIPPED_EXPORT.iterdir()) - set(SHIPPED_FILES):
        (SHIPPED_EXPORT / stale).unlink()
    print(f"wrote {SHIPPED_EXPORT} ({meta['model_id']})")


if __name__ == "__main__":
    main()
