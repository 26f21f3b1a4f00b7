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


def build_index(index: str = "embeddings", paths: list[str] | None = None, model: str | None = None, rebuild: bool = False):
    """Build or update the index folder `index` from files/folders `paths` (incremental)."""
    from pathlib import Path

    from .build import build

    return build(Path(index), [Path(p) for p in paths] if paths else None, Path(model) if model else None, rebuild=rebuild)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
