"""`printable`: text that can be printed or written as UTF-8, shared by everything that names files
given by people (the importer's outcomes, the exporter's messages)."""

from __future__ import annotations


def printable(text: str) -> str:
    """Text safe to print or write as UTF-8: undecodable file-name bytes (surrogate-escaped by `os`)
    and lone surrogates are spelled as backslash escapes instead of failing later."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
