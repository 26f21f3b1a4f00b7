"""qa: cited, verbatim answers from a local collection of news articles.

    from qa import Bot, build_index
    build_index("embeddings", ["seeds"])
    answer = Bot.open("embeddings").ask("What did London agree?")
    answer.sentences[0].text, answer.sentences[0].citation

Names are imported on first use, so `import qa` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__all__ = ["Bot", "Answer", "AnswerSentence", "Citation", "Conversation", "Index", "IndexReport", "QAError", "build_index"]

_WHERE = {
    "Bot": "answer", "Answer": "answer", "AnswerSentence": "answer", "Citation": "answer",
    "Conversation": "chat", "Index": "index", "IndexReport": "build", "QAError": "errors",
}

if TYPE_CHECKING:
    from .answer import Answer, AnswerSentence, Bot, Citation
    from .build import IndexReport
    from .chat import Conversation
    from .errors import QAError
    from .index import Index


def build_index(index: str = "embeddings", paths: list[str] | None = None, model: str | None = None, rebuild: bool = False,
                *, milvus: str | None = None, collection: str = "qa", ray: str | None = None):
    """Build or update the index folder `index` from files/folders `paths` (incremental); with
    `milvus` (a URI; a *.db file is Milvus Lite) the collection `collection` there instead.
    `ray` (a cluster address, "" for a new local cluster) embeds with Ray Data (qa[scale])."""
    from pathlib import Path

    from .build import build

    p = [Path(x) for x in paths] if paths else None
    m = Path(model) if model else None
    embed = None
    if ray is not None:
        from .distributed import ray_embedder

        embed = ray_embedder(ray)
    try:
        if milvus:
            from .stores.milvus_build import build_milvus

            return build_milvus(milvus, collection, p, m, rebuild=rebuild, embed=embed)
        return build(Path(index), p, m, rebuild=rebuild, embed=embed)
    finally:
        if embed is not None:
            embed.close()


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
