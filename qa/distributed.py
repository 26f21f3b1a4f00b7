"""Bulk embedding on a Ray cluster (`qa index --ray`): Ray Data map_batches, one ONNX int8
encoder per actor. Imported only with --ray: nothing else in qa imports ray.

Each actor loads the same export (qa.embed.OnnxEncoder, one thread) and embeds one text per run,
as every encoder in qa does, so a sentence gets the same vector on any machine: the vectors equal
one-process embedding (tests/test_scale.py). Texts carry their position, so results are placed
by it whatever order the batches finish in; progress ticks as batches stream back.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .errors import QAError

BATCH = 64  # texts per map_batches call: small enough to stream, large enough to amortise a task


class _Encode:
    """One per Ray actor: loads the export once and embeds the batches sent to it."""

    def __init__(self, folder: str) -> None:
        from qa.embed import OnnxEncoder

        self.encoder = OnnxEncoder(Path(folder), threads=1)

    def __call__(self, batch: dict) -> dict:
        return {"i": batch["i"], "vector": self.encoder.encode(list(batch["text"]))}


class RayEmbedder:
    """embed(texts, folder, tick) -> (n, dim) float32 on the cluster at `address` ("" starts a
    local one; "auto" joins the running one). Joins (or starts) once, at the first call;
    close() shuts down a local cluster it started."""

    def __init__(self, address: str = "") -> None:
        self.address, self.started = address, False

    def __call__(self, texts: list[str], folder: Path, tick=None) -> np.ndarray:
        if not texts:
            return embed_with_ray(texts, folder, self.address, tick)
        if not self.started:
            self.started = _init(self.address)
        return embed_with_ray(texts, folder, self.address, tick)

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def ray_embedder(address: str = "") -> RayEmbedder:
    return RayEmbedder(address)


def _init(address: str) -> bool:
    """Join or start a cluster unless this process already has one; True when it did."""
    try:
        import ray
    except ImportError:
        raise QAError("--ray needs the scale extra: pip install 'qa[scale]'") from None
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), **quiet)
    except Exception as e:  # ConnectionError, RuntimeError, ray's own
        raise QAError(f"cannot start or join the Ray cluster {address or '(local)'}: {str(e).splitlines()[0][:300]}") from None
    return True


def embed_with_ray(texts: list[str], folder: Path, address: str = "", tick=None, actors: int | None = None) -> np.ndarray:
    try:
        import ray
    except ImportError:
        raise QAError("--ray needs the scale extra: pip install 'qa[scale]'") from None
    from .embed import EncoderSpec

    dim = EncoderSpec.load(folder).dim
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    started = _init(address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # qa shows its own progress
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        n = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
        ds = ds.map_batches(_Encode, fn_constructor_args=(str(folder),), batch_size=BATCH, concurrency=n, num_cpus=1,
                            batch_format="numpy")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["i"]] = batch["vector"]
            if tick:
                tick(len(batch["i"]))
    finally:
        if started:
            ray.shutdown()
    return out
