"""A saved web page's bytes as the HTML a browser would read: decoded, not only as UTF-8, and
unpacked from a single-file (MHTML) save.

Real news pages are often saved in the encoding their site serves: windows-1252 in English and
Western Europe, Shift_JIS or EUC-JP in Japan, GBK in China, EUC-KR in Korea. The order follows
the HTML standard's: a byte-order mark, then (as a fast path) valid UTF-8, then the charset the
page declares in a `<meta>` near its top, then a guess by charset-normalizer; only if all of those
fail are undecodable bytes replaced (U+FFFD) and the caller told so.

Offsets of an HTML document index the extracted text, never the file's bytes, so the encoding
changes no citation.

A browser's "save as a single file" (`.mhtml`/`.mht`, Chrome's and Edge's default) is a MIME
message: the page is its first `text/html` part, in that part's transfer encoding and charset.
"""

from __future__ import annotations

import codecs
import re

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# <meta charset="x"> or <meta http-equiv="Content-Type" content="text/html; charset=x">
_DECLARED = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
PRESCAN_BYTES = 4096  # the standard prescans 1,024 bytes; real pages put long <head>s first
# Labels whose encodings browsers read as a superset (the Encoding Standard's label table):
# a page labelled latin-1 with curly quotes (0x92) is windows-1252 in every browser.
_SUPERSETS = {
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
    "iso-8859-9": "cp1254", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "big5": "big5hkscs", "tis-620": "cp874",
    # a <meta> that says UTF-16 is wrong by construction (it was readable as ASCII): the standard reads UTF-8
    "utf-16": "utf-8", "utf-16le": "utf-8", "utf-16be": "utf-8",
}


def declared_charset(data: bytes) -> str | None:
    """The Python codec of the charset a page declares near its top, if Python knows it."""
    m = _DECLARED.search(data[:PRESCAN_BYTES])
    return _codec(m.group(1).decode("ascii", "ignore")) if m else None


def _codec(label: str) -> str | None:
    """The Python codec a browser reads for a charset label, if Python knows it."""
    label = label.strip().lower()
    try:
        return codecs.lookup(_SUPERSETS.get(label, label)).name
    except LookupError:
        return None


def decode_page(data: bytes) -> tuple[str, str | None]:
    """(text, problem): the page as text, and a one-line problem if bytes had to be replaced."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        utf8_error = f"{e.reason} at byte {e.start}"
    declared = declared_charset(data)
    for codec in filter(None, (declared, _guess(data))):
        try:
            return data.decode(codec), None
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(declared or "utf-8", errors="replace"), f"undecodable bytes replaced (as UTF-8: {utf8_error})"


def mhtml_page(data: bytes) -> tuple[str, str | None] | None:
    """(text, problem) of the page an MHTML file holds (`decode_page`'s), or None without one."""
    import email

    message = email.message_from_bytes(data)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            body = part.get_payload(decode=True) or b""
            codec = _codec(part.get_content_charset() or "")
            if codec:
                try:
                    return body.decode(codec), None
                except UnicodeDecodeError:
                    pass
            return decode_page(body)
    return None


def _guess(data: bytes) -> str | None:
    from charset_normalizer import from_bytes  # lazy: only a page that is not UTF-8 needs it

    best = from_bytes(data).best()
    return best.encoding if best is not None else None
