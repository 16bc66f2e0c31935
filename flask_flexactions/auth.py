"""Fail-closed authentication of Messages URL requests: the shared token or a custom callable."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request

from .errors import AuthenticationError

#: A custom authenticator: takes the request, returns a truthy caller to accept or a falsy value
#: to refuse (401). It may raise :class:`~flask_flexactions.errors.PermissionDenied` for 403.
Authenticator = Callable[[Request], Any]

#: The schemes that carry the shared ``FLEXACTIONS_TOKEN``.
TOKEN_SCHEMES = frozenset({"token", "bearer"})

NOT_CONFIGURED = (
    "No authentication is configured for Flex Actions: set FLEXACTIONS_TOKEN to a shared secret, "
    "or register a callable with @flex.authenticator."
)


@dataclass(frozen=True)
class Credential:
    """One entry of an ``Authorization`` header: ``Scheme value;key=value;...``."""

    scheme: str
    value: str
    params: dict[str, str]


def parse_authorization(header: str) -> list[Credential]:
    """Split an ``Authorization`` header into its comma-separated entries.

    Scheme names are lower-cased; an entry without a value is skipped.
    """
    credentials = []
    for entry in header.split(","):
        scheme, _, rest = entry.strip().partition(" ")
        value, *pairs = rest.strip().split(";")
        if not scheme or not value.strip():
            continue
        params = {}
        for pair in pairs:
            key, _, param = pair.partition("=")
            params[key.strip()] = param.strip()
        credentials.append(Credential(scheme.lower(), value.strip(), params))
    return credentials


def token_matches(credentials: list[Credential], token: str) -> bool:
    """Whether a ``Token`` or ``Bearer`` entry carries ``token``, compared in constant time."""
    expected = token.encode("utf-8")
    matched = False
    for credential in credentials:
        if credential.scheme in TOKEN_SCHEMES:
            given = credential.value.encode("utf-8")
            matched |= hmac.compare_digest(given, expected)
    return matched


def authenticate(request: Request, token: str | None, custom: Authenticator | None) -> Any:
    """The caller of ``request``, or :class:`AuthenticationError` (401).

    The shared token is tried first, then the custom authenticator. With neither configured
    every request is refused.
    """
    if token is None and custom is None:
        raise AuthenticationError(NOT_CONFIGURED)
    if token is not None:
        header = request.headers.get("Authorization", "")
        if token_matches(parse_authorization(header), token):
            return "token"
    if custom is not None:
        caller = custom(request)
        if caller:
            return caller
    raise AuthenticationError("Missing or invalid credentials in the Authorization header.")
