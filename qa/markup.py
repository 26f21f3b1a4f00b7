"""Markdown inline markup removed for citation, with a map back to file offsets.

`plain(text, start, end)` renders text[start:end] without inline markup and returns, for every
character it keeps, its offset in `text`. Sentences are found in the rendering, cited as rendered,
and located in the file through the map, so `.md` offsets still index the file.
"""

from __future__ import annotations

import re

# (pattern, groups kept): each match is replaced by the kept groups' text, in order.
_RULES: list[tuple[re.Pattern, tuple[int, ...]]] = [
    (re.compile(r"<!--.*?-->", re.DOTALL), ()),  # HTML comments
    (re.compile(r"!\[([^\]]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"), ()),  # images: their alt text is no article text
    (re.compile(r"!\[([^\]]*)\]\[[^\]]*\]"), ()),  # ![alt][ref]
    (re.compile(r"(?<!\!)\[([^\]]+)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)"), (1,)),  # [text](url) -> text
    (re.compile(r"(?<!\!)\[([^\]]+)\]\[[^\]]*\]"), (1,)),  # [text][ref]
    (re.compile(r"<((?:https?|mailto):[^>\s]+)>"), (1,)),  # <https://...> -> the address
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s+[^<>]*?)?\s*/?>"), ()),  # HTML tags
    (re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)"), (2,)),  # `code` -> code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), (2,)),  # **strong** / __strong__
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~[ \t]?"), ()),  # ~~struck~~: deleted words are not shown
    (re.compile(r"(?<![\w*])\*(?=[^\s*])([^*]+?)(?<=[^\s*])\*(?![\w*])"), (1,)),  # *em*
    (re.compile(r"(?<![\w_])_(?=[^\s_])([^_]+?)(?<=[^\s_])_(?![\w_])"), (1,)),  # _em_ (not snake_case)
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])"), (1,)),  # \* -> *
]


def plain(text: str, start: int, end: int) -> tuple[str, list[int]]:
    """text[start:end] without Markdown inline markup, and each kept character's offset in text."""
    s = text[start:end]
    pos = list(range(start, end))
    for pattern, keep in _RULES:
        if not pattern.search(s):
            continue
        out: list[str] = []
        out_pos: list[int] = []
        last = 0
        for m in pattern.finditer(s):
            out.append(s[last : m.start()])
            out_pos.extend(pos[last : m.start()])
            for g in keep:
                out.append(m.group(g))
                out_pos.extend(pos[m.start(g) : m.end(g)])
            last = m.end()
        out.append(s[last:])
        out_pos.extend(pos[last:])
        s, pos = "".join(out), out_pos
    return s, pos


def plain_text(text: str) -> str:
    """The whole of `text` without inline markup (for titles)."""
    return plain(text, 0, len(text))[0]
