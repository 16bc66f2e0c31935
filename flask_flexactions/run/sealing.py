"""Secret params at rest: what a queued job keeps of params marked ``secret`` is encrypted.

A background job waits in the jobs table until a worker runs it; a param declared with
``"secret": True`` (a password, an API key) must not sit there in plain text. Its value is
sealed with Fernet (AES-128-CBC with an HMAC-SHA256, from the ``cryptography`` package) under a
key derived with HKDF from ``FLEXACTIONS_SECRET_KEY``, else the app's ``SECRET_KEY``, so the web
app and its workers, which share the configuration, can open it and nobody else can.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import FlexActionsError

#: HKDF's context, so this key differs from any other derived from the same secret.
_PURPOSE = b"flask-flexactions: secret params of queued jobs"


class SealBroken(FlexActionsError):
    """Sealed values that cannot be opened: the secret key changed, or the data was altered."""


class SecretBox:
    """Seals and opens the secret params of jobs under one key."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, values: dict[str, Any]) -> str:
        """``values`` (JSON-serialisable) as an opaque, authenticated token."""
        return self._fernet.encrypt(json.dumps(values).encode("utf-8")).decode("ascii")

    def open(self, token: str) -> dict[str, Any]:
        """The values sealed in ``token``; :class:`SealBroken` if they cannot be read."""
        try:
            data = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError, UnicodeError) as error:
            raise SealBroken(
                "The secret params of this job could not be decrypted: was "
                "FLEXACTIONS_SECRET_KEY (or SECRET_KEY) changed since it was queued?"
            ) from error
        if not isinstance(data, dict):
            raise SealBroken("The secret params of this job are not an object.")
        return data
