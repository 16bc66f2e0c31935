"""Configuration keys of the extension, with their defaults, declared in one place."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

#: Every ``FLEXACTIONS_*`` key the extension reads, with its default. ``init_app`` applies these
#: with ``app.config.setdefault`` so the app's own values always win.
DEFAULTS: dict[str, Any] = {
    # Shared secret. Requests must send ``Authorization: Token <secret>`` or ``Bearer <secret>``.
    "FLEXACTIONS_TOKEN": None,
    # Origins allowed to call the Messages URL from a browser. ``"*"`` allows any origin.
    "FLEXACTIONS_CORS_ORIGINS": ["https://app.jetadmin.io"],
    # Request headers a browser may send, on top of ``Authorization`` and ``Content-Type``.
    "FLEXACTIONS_CORS_ALLOW_HEADERS": [],
    # How long (seconds) a browser may cache the answer to a CORS preflight.
    "FLEXACTIONS_CORS_MAX_AGE": 600,
    # Largest request body accepted, in bytes; larger bodies get 413 before parsing.
    "FLEXACTIONS_MAX_BODY": 1024 * 1024,
    # Deepest JSON nesting accepted in a request body.
    "FLEXACTIONS_MAX_DEPTH": 64,
    # Ids per ``SELECT ... WHERE pk IN (...)`` statement when loading records.
    "FLEXACTIONS_ID_CHUNK_SIZE": 1000,
    # The debug console at ``<url_prefix>/console/``: True, False, or None to follow app.debug.
    "FLEXACTIONS_CONSOLE": None,
}


@dataclass(frozen=True)
class Settings:
    """The extension's configuration for one app, read once in ``init_app``."""

    token: str | None
    cors_origins: frozenset[str]
    cors_allow_headers: str
    cors_max_age: int
    max_body: int
    max_depth: int
    id_chunk_size: int
    #: ``FLEXACTIONS_CONSOLE``: None means "on when the app runs in debug mode".
    console: bool | None = None

    @property
    def cors_any_origin(self) -> bool:
        """Whether every origin is allowed (``"*"`` in ``FLEXACTIONS_CORS_ORIGINS``)."""
        return "*" in self.cors_origins


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    """Accept a list, or a comma-separated string as set from an environment variable."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def _positive_int(app: Flask, key: str) -> int:
    value = app.config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}.")
    return value


def _optional_bool(app: Flask, key: str) -> bool | None:
    value = app.config[key]
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} must be True, False or None, got {value!r}.")
    return value


def load_settings(app: Flask) -> Settings:
    """Default every key on ``app.config`` and return the validated settings."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, list(value) if isinstance(value, list) else value)
    token = app.config["FLEXACTIONS_TOKEN"]
    if token is not None and not isinstance(token, str):
        raise ValueError("FLEXACTIONS_TOKEN must be a string (the shared secret) or None.")
    extra_headers = _as_list(app.config["FLEXACTIONS_CORS_ALLOW_HEADERS"])
    return Settings(
        token=token or None,
        cors_origins=frozenset(_as_list(app.config["FLEXACTIONS_CORS_ORIGINS"])),
        cors_allow_headers=", ".join(["Authorization", "Content-Type", *extra_headers]),
        cors_max_age=_positive_int(app, "FLEXACTIONS_CORS_MAX_AGE"),
        max_body=_positive_int(app, "FLEXACTIONS_MAX_BODY"),
        max_depth=_positive_int(app, "FLEXACTIONS_MAX_DEPTH"),
        id_chunk_size=_positive_int(app, "FLEXACTIONS_ID_CHUNK_SIZE"),
        console=_optional_bool(app, "FLEXACTIONS_CONSOLE"),
    )
