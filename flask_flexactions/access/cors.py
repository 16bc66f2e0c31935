"""CORS headers of the blueprint's URLs, which the admin UI calls straight from the browser."""

from __future__ import annotations

from functools import lru_cache

from werkzeug.datastructures import Headers

from ..config import Settings

ALLOW_METHODS = "POST, OPTIONS"
EXPOSE_HEADERS = "Content-Disposition, Content-Type"
#: Every answer of the blueprint: a browser never runs an answer as another type.
NOSNIFF = ("X-Content-Type-Options", "nosniff")


def answer_headers(
    settings: Settings, origin: str | None, preflight: bool, methods: str = ALLOW_METHODS
) -> tuple[tuple[str, str], ...]:
    """The headers every answer gets: nosniff, ``Vary: Origin`` and the CORS headers, with
    ``Access-Control-Allow-Origin`` only for an allowed origin.

    :param methods: ``Access-Control-Allow-Methods``: what the answering URL takes.
    """
    allowed = bool(origin) and (settings.cors_any_origin or origin in settings.cors_origins)
    fixed = _fixed_headers(
        settings.cors_allow_headers, settings.cors_max_age if preflight else None, methods
    )
    if not allowed:
        return fixed
    allow_origin = "*" if settings.cors_any_origin else str(origin)
    return (("Access-Control-Allow-Origin", allow_origin), *fixed)


# Built once per configuration rather than per answer: setting these headers one by one was
# about a quarter of the extension's overhead on a small record action.
@lru_cache(maxsize=32)
def _fixed_headers(
    allow_headers: str, max_age: int | None, methods: str
) -> tuple[tuple[str, str], ...]:
    fixed: tuple[tuple[str, str], ...] = (
        NOSNIFF,
        ("Vary", "Origin"),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Allow-Headers", allow_headers),
        ("Access-Control-Expose-Headers", EXPOSE_HEADERS),
    )
    if max_age is not None:
        fixed += (("Access-Control-Max-Age", str(max_age)),)
    Headers(fixed)  # werkzeug's checks (no newline in a value), once rather than per answer
    return fixed


#: Headers the extension owns on its answers: a handler's own values are dropped, so its
#: response cannot widen the configured CORS origins.
OWNED = (
    NOSNIFF[0],
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
)
_OWNED_LOWER = frozenset(name.lower() for name in OWNED)


def add_answer_headers(headers: Headers, added: tuple[tuple[str, str], ...]) -> None:
    """Add ``added`` to ``headers`` after dropping any value of an :data:`OWNED` header;
    ``Vary`` is appended to.

    ``added`` must hold only checked ``str`` pairs (see :func:`answer_headers`): they are
    appended to werkzeug's list of pairs as they are. ``Headers.extend`` checks each value
    again, and on a small record action that was the largest part of the extension's cost.
    """
    if not _OWNED_LOWER.isdisjoint(map(str.lower, headers.keys())):
        for name in OWNED:
            headers.remove(name)
    pairs = getattr(headers, "_list", None)
    if type(pairs) is list:
        pairs.extend(added)
    else:  # a werkzeug that keeps its pairs otherwise
        headers.extend(added)
