"""Configuration keys of the extension, with their defaults, declared in one place."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

#: The key Jet Admin signs its user tokens with, as published in its documentation, page
#: "Jet Requests Auth" (https://docs.jetadmin.io/user-guide/integrations/rest-api/jet-requests-auth),
#: file ``jet_admin_key.pub``. Override it with ``FLEXACTIONS_JET_PUBLIC_KEY``.
JET_ADMIN_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAyfJablscZmsh7eHisWHi
/x2gJUjc9juL4VLkEpp6PH9Ah+wBtGmPF9nfoVlQsgH9hra63POiaLUzIwW/ewOl
jyPF0FJngsxreCxNs8lmd/WNXrcnazknFItkFFeXJuMTfoBPQGiZOmVYb14jmvkc
9vMmeXYjrbT+95SVayN3E6DzLoHDhny4Mka1OsxvIP5s77s0dOo68TzoEfBVeuto
I/dopG86DVu4wYVtYPITzJ4z47OFVPKCyYVyy5aR3+DUnmdK7xTRVr+iWmHpcr7e
hoeVcL4CqAILZ0gd54kQmnHbg7Bu6x8JtQkiLU5TQvWzjiN00io4eydvIAkQTAaR
mdd32O1vJbSHmLyCR2tEW/uV7P25naPUlkApxuLzh5C21S0XJxNJ/P07KSMymt5U
1lWqt4CInpjAwMI8qs9MkEwJev5+yumxqIrDKcQLMR3TBLJZIb+rL1teCLOW28qB
L6VSKhfKRIaXUdLpRwAcSuXraTzwa9oCCZa19tw3uizMeMFrCrv43YbyOsS9h7JQ
8ixj/a1R/ud0fCrhXWUl7nKlz0b15koILLG1Ts+MUTmIaEnHTVEY74CfJVq7waw9
x2kyzSzbsmMXvFkrVzTmyImTN631+gatU+npJ3vtcD9SooEZLOCLa4pb+DIsv9P1
EeIEAh1VZC7s2qsQZsiYTG0CAwEAAQ==
-----END PUBLIC KEY-----
"""

#: Every ``FLEXACTIONS_*`` key the extension reads, with its default. ``init_app`` applies these
#: with ``app.config.setdefault`` so the app's own values always win.
DEFAULTS: dict[str, Any] = {
    # Shared secret. Requests must send ``Authorization: Token <secret>`` or ``Bearer <secret>``.
    "FLEXACTIONS_TOKEN": None,
    # Origins allowed to call the Messages URL from a browser. ``"*"`` allows any origin.
    "FLEXACTIONS_CORS_ORIGINS": ["https://app.jetadmin.io"],
    # Request headers a browser may send, on top of ``Authorization``, ``Content-Type`` and
    # ``Idempotency-Key``.
    "FLEXACTIONS_CORS_ALLOW_HEADERS": [],
    # How long (seconds) a browser may cache the answer to a CORS preflight.
    "FLEXACTIONS_CORS_MAX_AGE": 600,
    # Largest request body accepted, in bytes; larger bodies get 413 before parsing.
    "FLEXACTIONS_MAX_BODY": 1024 * 1024,
    # Deepest JSON nesting accepted in a request body.
    "FLEXACTIONS_MAX_DEPTH": 64,
    # Most ids one request may select (``ids`` or the exclusions of ``inverseIds``).
    "FLEXACTIONS_MAX_IDS": 10_000,
    # Ids per ``SELECT ... WHERE pk IN (...)`` statement when loading records.
    "FLEXACTIONS_ID_CHUNK_SIZE": 1000,
    # The audit log of execute attempts: None (off), "table" (the flexactions_audit table),
    # "logging" (the flask_flexactions.audit logger) or an object with write(record).
    "FLEXACTIONS_AUDIT": None,
    # Honour Idempotency-Key; the answers are kept in the flexactions_idempotency table.
    "FLEXACTIONS_IDEMPOTENCY": True,
    # Seconds an Idempotency-Key and its answer are kept.
    "FLEXACTIONS_IDEMPOTENCY_TTL": 24 * 3600,
    # Run background=True actions in the request instead of on Celery (development, tests).
    "FLEXACTIONS_BACKGROUND_INLINE": False,
    # Seconds a finished background job, its answer and its file are kept.
    "FLEXACTIONS_JOB_TTL": 24 * 3600,
    # Seconds a running job's worker is trusted alive without renewing its lease (it renews
    # every third of that); then the job is failed as lost.
    "FLEXACTIONS_JOB_LEASE": 60,
    # Seconds a job may wait for a worker to start it; then it is failed, and never runs.
    "FLEXACTIONS_JOB_QUEUE_TIMEOUT": 3600,
    # Seconds between two sweeps of stale jobs and expired keys in one process.
    "FLEXACTIONS_SWEEP_INTERVAL": 60,
    # The key that encrypts the secret params of queued jobs and approval requests, and signs
    # approval requests; defaults to SECRET_KEY.
    "FLEXACTIONS_SECRET_KEY": None,
    # Seconds a request to run an action that needs approval waits for its decisions before it
    # expires (an action's Approval(expires=...) wins); a decided request is kept as long again.
    "FLEXACTIONS_APPROVAL_TTL": 3 * 24 * 3600,
    # Jet Admin project name. Setting it accepts ``Authorization: JWT <token>`` whose
    # ``projects`` claim holds this project.
    "FLEXACTIONS_JET_PROJECT": None,
    # PEM public key that verifies Jet Admin's RS256 tokens; defaults to the one Jet Admin
    # publishes (see :data:`JET_ADMIN_PUBLIC_KEY`).
    "FLEXACTIONS_JET_PUBLIC_KEY": JET_ADMIN_PUBLIC_KEY,
    # Clock skew (seconds) allowed when checking a JWT's ``exp``, ``nbf`` and ``iat``.
    "FLEXACTIONS_JET_JWT_LEEWAY": 30,
    # This app's Jet Admin project token. Setting it accepts ``Token``/``ProjectToken``
    # credentials, checked with Jet Admin's ``project_auth`` API.
    "FLEXACTIONS_JET_PROJECT_TOKEN": None,
    # Jet Admin's API root; ``project_auth/`` is appended.
    "FLEXACTIONS_JET_API_URL": "https://api.jetadmin.io/api/",
    # Seconds to wait for ``project_auth`` on each network operation; then 503.
    "FLEXACTIONS_JET_AUTH_TIMEOUT": 5.0,
    # Seconds a positive ``project_auth`` answer is reused; 0 asks Jet Admin every time.
    "FLEXACTIONS_JET_AUTH_CACHE_SECONDS": 60,
    # The debug console at ``<url_prefix>/console/``: True, False, or None to follow app.debug.
    "FLEXACTIONS_CONSOLE": None,
    # Seconds a 503 answer (database or broker unavailable) asks the client to wait, sent in
    # its ``Retry-After`` header.
    "FLEXACTIONS_RETRY_AFTER": 5,
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
    max_ids: int
    id_chunk_size: int
    jet_project: str | None
    jet_public_key: str
    jet_jwt_leeway: int
    jet_project_token: str | None
    jet_project_auth_url: str
    jet_auth_timeout: float
    jet_auth_cache_seconds: int
    audit: Any
    idempotency: bool
    idempotency_ttl: int
    background_inline: bool
    job_ttl: int
    #: ``FLEXACTIONS_CONSOLE``: None means "on when the app runs in debug mode".
    console: bool | None = None
    retry_after: int = 5
    job_lease: int = 60
    job_queue_timeout: int = 3600
    sweep_interval: int = 60
    #: ``FLEXACTIONS_SECRET_KEY``, else the app's ``SECRET_KEY``; None when neither is set.
    secret_key: str | bytes | None = None
    approval_ttl: int = 3 * 24 * 3600

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


def _header_values(app: Flask, key: str) -> list[str]:
    """``_as_list`` of a setting whose values are sent in answer headers: no line breaks."""
    values = _as_list(app.config[key])
    for value in values:
        if "\r" in value or "\n" in value:
            raise ValueError(f"{key} cannot hold line breaks, got {value!r}.")
    return values


def _positive_int(app: Flask, key: str, minimum: int = 1) -> int:
    value = app.config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}.")
    return value


def _optional_str(app: Flask, key: str, what: str) -> str | None:
    value = app.config[key]
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string ({what}) or None.")
    return value or None


def _project_auth_url(app: Flask) -> str:
    root = app.config["FLEXACTIONS_JET_API_URL"]
    if not isinstance(root, str) or not root.startswith(("https://", "http://")):
        raise ValueError(f"FLEXACTIONS_JET_API_URL must be an http(s) URL, got {root!r}.")
    return root.rstrip("/") + "/project_auth/"


def _timeout(app: Flask) -> float:
    value = app.config["FLEXACTIONS_JET_AUTH_TIMEOUT"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
        raise ValueError(
            f"FLEXACTIONS_JET_AUTH_TIMEOUT must be seconds in (0, 600], got {value!r}."
        )
    return float(value)


def _optional_bool(app: Flask, key: str) -> bool | None:
    value = app.config[key]
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} must be True, False or None, got {value!r}.")
    return value


def _secret_key(app: Flask) -> str | bytes | None:
    value = app.config["FLEXACTIONS_SECRET_KEY"] or app.config.get("SECRET_KEY")
    if value is not None and not isinstance(value, (str, bytes)):
        raise ValueError("FLEXACTIONS_SECRET_KEY (or SECRET_KEY) must be a string or bytes.")
    return value or None


def load_settings(app: Flask) -> Settings:
    """Default every key on ``app.config`` and return the validated settings."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, list(value) if isinstance(value, list) else value)
    public_key = app.config["FLEXACTIONS_JET_PUBLIC_KEY"]
    if not isinstance(public_key, str):
        raise ValueError("FLEXACTIONS_JET_PUBLIC_KEY must be a PEM string.")
    extra_headers = _header_values(app, "FLEXACTIONS_CORS_ALLOW_HEADERS")
    token = _optional_str(app, "FLEXACTIONS_TOKEN", "the shared secret")
    if token is not None and (token != token.strip() or any(c in token for c in " ,;")):
        # The Authorization header splits entries on "," and parameters on ";".
        raise ValueError(
            "FLEXACTIONS_TOKEN cannot hold spaces, ',' or ';': such a token never matches. "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return Settings(
        token=token,
        cors_origins=frozenset(_header_values(app, "FLEXACTIONS_CORS_ORIGINS")),
        cors_allow_headers=", ".join(
            ["Authorization", "Content-Type", "Idempotency-Key", *extra_headers]
        ),
        cors_max_age=_positive_int(app, "FLEXACTIONS_CORS_MAX_AGE"),
        max_body=_positive_int(app, "FLEXACTIONS_MAX_BODY"),
        max_depth=_positive_int(app, "FLEXACTIONS_MAX_DEPTH"),
        max_ids=_positive_int(app, "FLEXACTIONS_MAX_IDS"),
        id_chunk_size=_positive_int(app, "FLEXACTIONS_ID_CHUNK_SIZE"),
        jet_project=_optional_str(app, "FLEXACTIONS_JET_PROJECT", "the project name"),
        jet_public_key=public_key,
        jet_jwt_leeway=_positive_int(app, "FLEXACTIONS_JET_JWT_LEEWAY", minimum=0),
        jet_project_token=_optional_str(app, "FLEXACTIONS_JET_PROJECT_TOKEN", "a token"),
        jet_project_auth_url=_project_auth_url(app),
        jet_auth_timeout=_timeout(app),
        jet_auth_cache_seconds=_positive_int(app, "FLEXACTIONS_JET_AUTH_CACHE_SECONDS", 0),
        audit=app.config["FLEXACTIONS_AUDIT"],
        idempotency=bool(app.config["FLEXACTIONS_IDEMPOTENCY"]),
        idempotency_ttl=_positive_int(app, "FLEXACTIONS_IDEMPOTENCY_TTL"),
        background_inline=bool(app.config["FLEXACTIONS_BACKGROUND_INLINE"]),
        job_ttl=_positive_int(app, "FLEXACTIONS_JOB_TTL"),
        console=_optional_bool(app, "FLEXACTIONS_CONSOLE"),
        retry_after=_positive_int(app, "FLEXACTIONS_RETRY_AFTER"),
        job_lease=_positive_int(app, "FLEXACTIONS_JOB_LEASE", minimum=3),
        job_queue_timeout=_positive_int(app, "FLEXACTIONS_JOB_QUEUE_TIMEOUT"),
        sweep_interval=_positive_int(app, "FLEXACTIONS_SWEEP_INTERVAL"),
        secret_key=_secret_key(app),
        approval_ttl=_positive_int(app, "FLEXACTIONS_APPROVAL_TTL", minimum=60),
    )
