"""Strict JSON parsing of request bodies: RFC 8259 only, bounded depth, valid Unicode."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import ProtocolError


class JSONFloat(float):
    """A JSON number with a fraction or exponent, remembering its source text.

    It behaves as a ``float`` everywhere; ``DecimalField`` reads ``source`` so that
    ``12.345678901234567890`` keeps every digit.
    """

    __slots__ = ("source",)
    source: str

    def __new__(cls, source: str) -> JSONFloat:
        value = super().__new__(cls, source)
        if not math.isfinite(value):
            raise ValueError(f"number out of range: {source[:32]}")
        value.source = source
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_float=JSONFloat, parse_constant=_reject_constant)


def parse_json(text: str | bytes, max_depth: int, where: str = "The request body") -> Any:
    """Parse ``text`` as strict JSON, or raise :class:`ProtocolError` (400) saying why.

    :param where: what the text is, as error messages name it (``params.params`` for a string
        of values inside the message).
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = _decoder.decode(text)
    except UnicodeDecodeError as error:
        raise ProtocolError(f"{where} is not valid UTF-8.") from error
    except RecursionError as error:
        raise ProtocolError(f"The JSON body is nested deeper than {max_depth} levels.") from error
    except ValueError as error:
        raise ProtocolError(f"{where} is not valid JSON: {error}") from error
    if not _plainly_within_limits(text, max_depth):
        check_structure(value, max_depth)
    return value


def _plainly_within_limits(text: str, max_depth: int) -> bool:
    """Whether the source text alone shows the parsed value passes :func:`check_structure`.

    Nesting cannot exceed the number of ``{`` and ``[`` in the text, and only a ``\\u`` escape
    can produce a lone surrogate in ASCII text. These scans run in C, so a typical message skips
    the walk over the parsed value.
    """
    return text.isascii() and "\\u" not in text and text.count("{") + text.count("[") <= max_depth


def parse_object(text: str | bytes, max_depth: int, where: str) -> dict[str, Any]:
    """Parse ``text`` as a strict JSON object; anything else is a :class:`ProtocolError`."""
    value = parse_json(text, max_depth, where)
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be a JSON object.")
    return value


_TEXT_OR_CONTAINER = frozenset({str, dict, list})


def check_structure(value: Any, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` and strings that are not valid Unicode.

    Lone surrogates (``"\\ud800"``) are legal JSON escapes but cannot be stored or encoded, so
    they are refused here rather than failing later inside an action.
    """
    if isinstance(value, str):
        _check_text(value)
        return
    if not isinstance(value, (dict, list)):
        return
    # Only containers go on the stack: scalars are checked in place, so a bulk request's list of
    # 10 000 ids costs one pass of type checks rather than 10 000 pushes and pops.
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            raise ProtocolError(f"The JSON body is nested deeper than {max_depth} levels.")
        if isinstance(container, dict):
            for key in container:
                if not key.isascii():
                    _check_text(key)
            children: Any = container.values()
        else:
            children = container
        # set(map(type, ...)) runs in C: a list of numbers is skipped without a Python loop.
        if _TEXT_OR_CONTAINER.isdisjoint(set(map(type, children))):
            continue
        for child in children:
            kind = type(child)
            if kind is str:
                if not child.isascii():
                    _check_text(child)
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ProtocolError(
                "The JSON body holds a string that is not valid Unicode."
            ) from error
