"""Safe file answers: a ``Content-Disposition`` whose file name cannot inject or traverse."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from werkzeug.datastructures import Headers
from werkzeug.http import parse_options_header

#: The name used when nothing safe is left of the one the action gave.
FALLBACK_NAME = "download"
#: Longest file name sent, in characters (most file systems stop at 255 bytes).
MAX_NAME_LENGTH = 150


def safe_filename(name: str) -> str:
    """``name`` reduced to a harmless file name.

    Keeps the last path segment (``/`` and ``\\`` both separate), drops control and format
    characters (CR, LF, NUL, bidi overrides), quotes and backslashes, trims dots and spaces at
    the ends (no ``..``, no hidden files), caps the length while keeping the extension, and
    falls back to ``download``.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        char
        for char in name
        if char not in '"' and unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
    )
    name = name.strip(". \t")
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: MAX_NAME_LENGTH - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            name = name[:MAX_NAME_LENGTH].rstrip(". ")
    return name or FALLBACK_NAME


def ascii_filename(name: str) -> str:
    """An ASCII stand-in for ``name`` for clients that ignore ``filename*``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    folded = "".join(char if char.isprintable() else "_" for char in folded)
    stem, dot, extension = folded.rpartition(".")
    if dot and not stem.strip(". "):
        # Nothing of the name survived the folding, only its extension.
        folded = f"{FALLBACK_NAME}.{extension}"
    return safe_filename(folded)


def secure_content_disposition(headers: Headers) -> None:
    """Rewrite ``Content-Disposition`` in ``headers``, if any, with a sanitised file name:
    ``filename="<ascii>"`` plus an RFC 5987 ``filename*`` when the name is not ASCII."""
    header = headers.get("Content-Disposition")
    if header is None:
        return
    disposition, options = parse_options_header(header)
    disposition = disposition.lower() if disposition.lower() == "inline" else "attachment"
    raw_name = options.get("filename")
    if raw_name is None:
        headers["Content-Disposition"] = disposition
        return
    name = safe_filename(raw_name)
    value = f'{disposition}; filename="{ascii_filename(name)}"'
    if not name.isascii():
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    headers["Content-Disposition"] = value
