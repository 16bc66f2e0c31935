"""Fail-closed authentication of Messages URL requests: every configured way, in a fixed order."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Request

from ..caller import Caller, caller_from
from ..config import Settings
from ..errors import AuthenticationError
from .jet_jwt import JetJWT, load_public_key
from .project_auth import ProjectAuth

#: A custom authenticator: takes the request, returns a :class:`Caller` (or any truthy value)
#: to accept or a falsy value to refuse (401). It may raise ``PermissionDenied`` for 403.
Authenticator = Callable[[Request], Any]

#: The schemes that carry the shared ``FLEXACTIONS_TOKEN``.
TOKEN_SCHEMES = frozenset({"token", "bearer"})
#: The schemes Jet Admin's ``project_auth`` checks.
PROJECT_AUTH_SCHEMES = frozenset({"token", "projecttoken"})

#: The caller holding the shared token: it may run every action.
SHARED_TOKEN_CALLER = Caller(name="shared token", superuser=True, scheme="token")

NOT_CONFIGURED = (
    "No authentication is configured for Flex Actions: set FLEXACTIONS_TOKEN to a shared secret, "
    "FLEXACTIONS_JET_PROJECT (Jet Admin JWT) or FLEXACTIONS_JET_PROJECT_TOKEN (Jet Admin "
    "tokens), or register a callable with @flex.authenticator."
)
INVALID = "Missing or invalid credentials in the Authorization header."


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
            given = credential.value.encode("utf-8", "surrogatepass")
            matched |= hmac.compare_digest(given, expected)
    return matched


class Authentication:
    """The ways a Messages request may authenticate, tried in this order:

    1. a ``JWT`` entry, when ``FLEXACTIONS_JET_PROJECT`` is set: it alone decides;
    2. a ``Token``/``Bearer`` entry equal to ``FLEXACTIONS_TOKEN``;
    3. a ``Token``/``ProjectToken`` entry, when ``FLEXACTIONS_JET_PROJECT_TOKEN`` is set: Jet
       Admin's ``project_auth`` decides;
    4. the custom authenticator.

    Nothing configured, or nothing accepted, is a 401.
    """

    def __init__(self, settings: Settings, custom: Callable[[], Authenticator | None]) -> None:
        self.token = settings.token
        self._custom = custom
        self.jwt: JetJWT | None = None
        self.project_auth: ProjectAuth | None = None
        if settings.jet_project is not None:
            key = load_public_key(settings.jet_public_key)
            self.jwt = JetJWT(key, settings.jet_project, settings.jet_jwt_leeway)
        if settings.jet_project_token is not None:
            self.project_auth = ProjectAuth(
                settings.jet_project_auth_url,
                settings.jet_project_token,
                settings.jet_auth_timeout,
                settings.jet_auth_cache_seconds,
            )

    @property
    def custom_authenticator(self) -> Authenticator | None:
        """The custom authenticator registered now, if any."""
        return self._custom()

    def __call__(self, request: Request) -> Caller:
        """The caller of ``request``, or :class:`AuthenticationError` (401)."""
        custom = self._custom()
        if self.token is None and custom is None and self.jwt is None and not self.project_auth:
            raise AuthenticationError(NOT_CONFIGURED)
        credentials = parse_authorization(request.headers.get("Authorization", ""))
        if self.jwt is not None:
            for credential in credentials:
                if credential.scheme == "jwt":
                    return self.jwt.verify(credential.value)
        if self.token is not None and token_matches(credentials, self.token):
            return SHARED_TOKEN_CALLER
        if self.project_auth is not None:
            for credential in credentials:
                if credential.scheme in PROJECT_AUTH_SCHEMES:
                    return self.project_auth.verify(credential.value, credential.params)
        if custom is not None:
            caller = custom(request)
            if caller:
                return caller_from(caller)
        raise AuthenticationError(INVALID)
