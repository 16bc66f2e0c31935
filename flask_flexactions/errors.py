"""Errors of the extension: business errors raised by actions and protocol errors with a status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The key the protocol uses for errors that belong to no single param.
NON_FIELD_ERRORS = "non_field_errors"

#: The wire form of errors: param name (or ``non_field_errors``) to a list of messages.
ErrorDict = dict[str, list[str]]


class FlexActionsError(Exception):
    """Base class of every error the extension raises."""


class ActionError(FlexActionsError):
    """A business error raised by an action handler; the answer is ``result: false``.

    ``ActionError("text")`` becomes ``{"non_field_errors": ["text"]}``;
    ``ActionError(errors={"amount": ["Too much"]})`` reports errors next to params. Both may be
    given. The action's transaction is rolled back.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Mapping[str, str | Iterable[str]] | None = None,
    ) -> None:
        self.errors: ErrorDict = normalize_errors(errors or {})
        if message is not None:
            self.errors.setdefault(NON_FIELD_ERRORS, []).insert(0, str(message))
        if not self.errors:
            self.errors = {NON_FIELD_ERRORS: ["The action failed."]}
        super().__init__(message or "; ".join(m for ms in self.errors.values() for m in ms))


class InvalidId(FlexActionsError, ValueError):
    """A wire id that does not fit the grammar or range of the primary key's type."""


class ProtocolError(FlexActionsError):
    """A request that breaks the protocol; answered with ``status`` and nothing runs."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ProtocolError):
    """The request names an action or a model that is not registered (404)."""

    status = 404


class AuthenticationError(ProtocolError):
    """Missing or invalid credentials, or no authentication configured (401)."""

    status = 401


class PermissionDenied(ProtocolError):
    """The caller is authenticated but may not do this (403)."""

    status = 403


class ServiceUnavailable(ProtocolError):
    """A service the request depends on (Jet Admin's token check) gave no usable answer (503)."""

    status = 503


def normalize_errors(errors: Mapping[str, Any], prefix: str = "") -> ErrorDict:
    """Flatten marshmallow-style error messages into the protocol's ``{key: [str, ...]}`` form.

    Nested dicts become dotted keys, marshmallow's ``_schema`` key becomes ``non_field_errors``,
    a single message (a string, or any other value, shown as text) becomes a one-element list,
    and ``None`` is skipped.
    """
    flat: ErrorDict = {}
    for key, value in errors.items():
        name = NON_FIELD_ERRORS if key == "_schema" else str(key)
        full = f"{prefix}.{name}" if prefix and name != NON_FIELD_ERRORS else name
        if value is None:
            continue
        if isinstance(value, Mapping):
            for sub_key, sub_messages in normalize_errors(value, full).items():
                flat.setdefault(sub_key, []).extend(sub_messages)
        elif isinstance(value, (list, tuple, set, frozenset)):
            flat.setdefault(full, []).extend(str(item) for item in value)
        else:
            flat.setdefault(full, []).append(str(value))
    return flat


def validation_messages(messages: str | list[Any] | dict[str, Any]) -> ErrorDict:
    """The protocol's error dict for the ``messages`` of a ``marshmallow.ValidationError``."""
    if isinstance(messages, dict):
        return normalize_errors(messages)
    if isinstance(messages, str):
        return {NON_FIELD_ERRORS: [messages]}
    return {NON_FIELD_ERRORS: [str(item) for item in messages]}
