"""Frozen requests: values kept as exact JSON text, and signed so that an edit is detected.

An approval request waits for days in a table that other people may be able to write to; what
runs when it is approved must be what was asked, digit for digit. Its values are kept as the
JSON text of what the schema accepted (a number keeps its source text: ``12.345678901234567890``
stays exact, where a float would round it), and the text is signed with an HMAC-SHA256 under a
key derived with HKDF from ``FLEXACTIONS_SECRET_KEY`` (else ``SECRET_KEY``): a changed amount,
record id or expiry no longer matches its signature, and the request is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: HKDF's context, so this key differs from the one that seals secret params.
_PURPOSE = b"flask-flexactions: signed approval requests"


class ExactNumber(float):
    """A JSON number with a fraction or exponent, remembering its source text (as the
    ``DecimalField`` reads it)."""

    __slots__ = ("source",)
    source: str

    def __new__(cls, source: str) -> ExactNumber:
        value = super().__new__(cls, source)
        value.source = source
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_float=ExactNumber, parse_constant=_reject_constant)


def dumps_exact(value: Any) -> str:
    """``value`` (made of JSON types) as JSON text; a float that remembers its source text
    (parsed from a request) is written as that text."""
    if isinstance(value, float):
        source = getattr(value, "source", None)
        if isinstance(source, str):
            return source
        if not math.isfinite(value):
            raise ValueError("NaN and infinities are not JSON")
        return repr(value)
    if isinstance(value, dict):
        items = (json.dumps(str(key)) + ":" + dumps_exact(item) for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps_exact(item) for item in value) + "]"
    return json.dumps(value, allow_nan=False)


def loads_exact(text: str) -> Any:
    """Parse JSON text written by :func:`dumps_exact`, numbers keeping their source text."""
    return _decoder.decode(text)


class Signer:
    """Signs and checks frozen texts under one key."""

    def __init__(self, secret: str | bytes) -> None:
        material = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE)
        self._key = kdf.derive(material)

    def sign(self, *parts: str) -> str:
        """The hex HMAC-SHA256 of ``parts`` (joined unambiguously)."""
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, signature: Any, *parts: str) -> bool:
        """Whether ``signature`` is the signature of ``parts``, compared in constant time."""
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(signature.encode("ascii", "replace"), self.sign(*parts).encode())
