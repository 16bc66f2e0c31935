"""Jet Admin's ``JWT`` credential: RS256 tokens verified offline with Jet Admin's public key."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..caller import Caller
from ..errors import AuthenticationError

#: Longest JWT accepted, in characters; real Jet Admin tokens are a few kilobytes.
MAX_TOKEN_LENGTH = 16 * 1024


def load_public_key(pem: str | bytes) -> RSAPublicKey:
    """The RSA public key in ``pem``, or a ``ValueError`` that names the config key to fix."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "FLEXACTIONS_JET_PUBLIC_KEY must be an RSA public key in PEM format "
            f"('-----BEGIN PUBLIC KEY-----...'): {error}"
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("FLEXACTIONS_JET_PUBLIC_KEY must be an RSA key: Jet Admin signs RS256.")
    return key


class JetJWT:
    """Verifies ``Authorization: JWT <token>`` for one Jet Admin project.

    RS256 only (``alg: none`` and HS256 are refused whatever key they name), ``exp`` required,
    ``leeway`` seconds of clock skew allowed, and the ``projects`` claim must hold ``project``.
    """

    def __init__(self, public_key: RSAPublicKey, project: str, leeway: int) -> None:
        self.public_key = public_key
        self.project = project
        self.leeway = leeway

    def verify(self, token: str) -> Caller:
        """The caller the token names, or :class:`AuthenticationError` (401)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("The Jet Admin token (JWT) is too long to be valid.")
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                leeway=self.leeway,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError(
                "The Jet Admin token (JWT) has expired: reload Jet Admin to get a new one."
            ) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthenticationError(
                "The Jet Admin token (JWT) is invalid: its signature, algorithm or claims do "
                "not verify with FLEXACTIONS_JET_PUBLIC_KEY."
            ) from None
        entry = self._project_entry(claims.get("projects"))
        return jet_caller(entry, claims, "jwt")

    def _project_entry(self, projects: Any) -> Mapping[str, Any]:
        """The claims of the configured project: a ``projects`` dict entry, or ``{}`` when
        ``projects`` is a list of project names."""
        if isinstance(projects, Mapping) and self.project in projects:
            entry = projects[self.project]
            return entry if isinstance(entry, Mapping) else {}
        if isinstance(projects, list) and self.project in projects:
            return {}
        raise AuthenticationError(
            f"The Jet Admin token is not valid for the project {self.project!r} "
            "(FLEXACTIONS_JET_PROJECT)."
        )


def jet_caller(entry: Mapping[str, Any], claims: Mapping[str, Any], scheme: str) -> Caller:
    """The caller described by a Jet Admin project entry (from a JWT or a ``project_auth``
    answer): ``owner``/``super_group`` make a superuser, ``read_only`` a read-only user, and
    the roles are the entry's ``roles`` list plus its team name (``group``)."""
    roles: list[Any] = []
    if isinstance(entry.get("roles"), list):
        roles.extend(entry["roles"])
    group = entry.get("group")
    roles.append(group.get("name") if isinstance(group, Mapping) else group)
    user = claims.get("user", claims.get("sub"))
    names = [claims[key] for key in ("email", "name") if isinstance(claims.get(key), str)]
    return Caller(
        id=str(user) if isinstance(user, (str, int)) and not isinstance(user, bool) else None,
        name=names[0] if names else None,
        roles=Caller.roles_of(roles),
        superuser=entry.get("owner") is True or entry.get("super_group") is True,
        read_only=entry.get("read_only") is True,
        scheme=scheme,
        claims=MappingProxyType(dict(claims)),
    )
