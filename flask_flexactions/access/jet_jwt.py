"""Jet Admin's ``JWT`` credential: RS256 tokens verified offline with Jet Admin's public key."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..errors import AuthenticationError
from .caller import Caller

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
