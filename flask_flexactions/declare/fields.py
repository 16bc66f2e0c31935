"""The protocol's 16 param field types as marshmallow fields, with their wire conversions."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, ClassVar, Protocol

from marshmallow import fields

from ..errors import InvalidId
from .models import Collection

__all__ = [
    "FIELD_TYPES",
    "TEXT_FIELD_TYPES",
    "Boolean",
    "Char",
    "Code",
    "Date",
    "DateTime",
    "Decimal",
    "Float",
    "ForeignKey",
    "Integer",
    "JSON",
    "Select",
    "Sql",
    "Text",
    "Time",
    "Timestamp",
    "Translatable",
    "option_extras",
    "wire_type_of",
]

_INT64 = 2**63
_INT64_DIGITS = len(str(_INT64))
# Integers beyond 2**53 cannot be sent exactly as a JSON float.
_EXACT_FLOAT_INT = 2**53
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,6})[0-9]*)?)?"
_TIME_ONLY = re.compile(_TIME)
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]" + _TIME + r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_DECIMAL_MAX_CHARS = 64
_DECIMAL_MAX_EXPONENT = 100


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class WireField(fields.Field[Any]):
    """Base of the fields that carry a protocol field type in ``wire_type``."""

    #: The field's name in ``get_action_list``, e.g. ``"DecimalField"``.
    wire_type: ClassVar[str]

    def wire_params(self) -> dict[str, Any]:
        """Field options emitted in the param's ``params`` in ``get_action_list``."""
        return {}


class Boolean(WireField):
    """``BooleanField``: JSON ``true`` or ``false`` only; no truthy strings or numbers."""

    wire_type = "BooleanField"
    default_error_messages = {"invalid": "Not a valid boolean: send true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Char(WireField):
    """``CharField``: a string. NUL characters are refused because databases cannot store them."""

    wire_type = "CharField"
    default_error_messages = {
        "invalid": "Not a valid string.",
        "nul": "Must not contain NUL characters.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if "\x00" in value:
            raise self.make_error("nul")
        return value


class Text(Char):
    """``TextField``: a multi-line string."""

    wire_type = "TextField"


class Sql(Char):
    """``SqlField``: a string holding SQL, shown with an SQL editor. It is never executed here."""

    wire_type = "SqlField"


class Code(Char):
    """``CodeField``: a string holding code, shown with a code editor."""

    wire_type = "CodeField"


class Translatable(WireField):
    """``TranslatableField``: a string, or an object of language code to string."""

    wire_type = "TranslatableField"
    default_error_messages = {
        "invalid": "Not a valid string or object of language code to string.",
        "nul": "Must not contain NUL characters.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> str | dict[str, str]:
        texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
        if not all(isinstance(text, str) for text in texts):
            raise self.make_error("invalid")
        if any("\x00" in text for text in texts):
            raise self.make_error("nul")
        return dict(value) if isinstance(value, dict) else value


def _option_key(value: Any) -> tuple[str, Any] | None:
    """The lookup key of an option value; booleans never match numbers (``True == 1``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if _is_number(value):
        return ("number", value)
    if isinstance(value, str):
        return ("text", value)
    return None


def option_extras(option: Mapping[Any, Any]) -> dict[str, str]:
    """The keys of an option besides ``value`` and ``name``, such as ``"color": "red"``, as
    declared; a ``ValueError`` naming the first one whose key or value is not a string."""
    extras: dict[str, str] = {}
    for key, value in option.items():
        if key == "value" or key == "name":
            continue
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"The option {option.get('value')!r:.80} has {key!r:.40}: {value!r:.80}; keys "
                'other than "value" and "name" must be strings with string values, e.g. '
                '"color": "red".'
            )
        extras[key] = value
    return extras


class Select(WireField):
    """``SelectField``: one of the declared option values.

    :param options: ``[{"value": ..., "name": "Shown label"}, ...]``; values are strings,
        numbers or booleans. A number option also accepts its decimal text (``"2"`` for ``2``).
        Other keys with string values, such as ``"color": "red"``, are passed on as declared.
    """

    wire_type = "SelectField"
    default_error_messages = {"invalid": "Not one of the allowed options: {choices}."}

    def __init__(self, options: Iterable[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options: list[dict[str, Any]] = []
        self._choices: dict[tuple[str, Any], Any] = {}
        for option in options:
            if not isinstance(option, Mapping) or "value" not in option:
                raise ValueError(
                    'SelectField options must be dicts like {"value": "a", "name": "A"}; '
                    f"got {option!r}."
                )
            value = option["value"]
            key = _option_key(value)
            if key is None:
                raise ValueError(
                    "SelectField option values must be strings, numbers or booleans; "
                    f"got {value!r}."
                )
            self.options.append(
                {"value": value, "name": str(option.get("name", value)), **option_extras(option)}
            )
            self._choices[key] = value
        # A number option also accepts its decimal text, unless a text option claims it.
        for option in self.options:
            if _is_number(option["value"]):
                self._choices.setdefault(("text", str(option["value"])), option["value"])
        if not self.options:
            raise ValueError("A SelectField needs at least one option in params['options'].")

    def wire_params(self) -> dict[str, Any]:
        return {"options": self.options}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        key = _option_key(value)
        if key is not None and key in self._choices:
            return self._choices[key]
        choices = ", ".join(repr(option["value"]) for option in self.options)
        raise self.make_error("invalid", choices=choices)


class RelatedRows(Protocol):
    """What loads the row of a ForeignKey param: the run converting the params provides it
    (for its app's database and its caller's row scopes) with :func:`loading_related`."""

    @property
    def wide_integer_ids(self) -> bool:
        """Whether integer keys are 64-bit whatever their declared type (SQLite)."""

    def collection_of(self, field: ForeignKey) -> Collection:
        """The collection ``field`` points to."""

    def row(self, collection: Collection, key: Any) -> Any:
        """The row of ``collection`` with primary key ``key`` the caller may see, or None."""


_related_rows: ContextVar[RelatedRows | None] = ContextVar("flexactions_related", default=None)


class _LoadingRelated:
    """The ``with`` block of :func:`loading_related` (a class: every run enters one, and a
    generator-based context manager costs three times as much)."""

    __slots__ = ("rows", "token")

    def __init__(self, rows: RelatedRows) -> None:
        self.rows = rows

    def __enter__(self) -> None:
        self.token = _related_rows.set(self.rows)

    def __exit__(self, *exc_info: object) -> None:
        _related_rows.reset(self.token)


def loading_related(rows: RelatedRows) -> AbstractContextManager[None]:
    """Convert params with ``rows`` loading the ForeignKey rows, inside the ``with`` block."""
    return _LoadingRelated(rows)


class ForeignKey(WireField):
    """``ForeignKey``: the primary key of a related row, loaded through the session.

    The handler receives the model instance; an id that matches no row is a field error.

    :param related_model: the related model class, or its wire name (resolved among the models
        of the app's ``db`` when first used).
    """

    wire_type = "ForeignKey"
    default_error_messages = {
        "invalid": "Not a valid id: {reason}.",
        "does_not_exist": "No record of {model} has the id {id}.",
    }

    def __init__(self, related_model: type[Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(related_model, str):
            if not related_model:
                raise ValueError("ForeignKey needs a related model: a model class or wire name.")
            self.related_name = related_model
            #: The related collection when given as a class; by name, each app resolves it.
            self.related: Collection | None = None
        else:
            self.related = self.checked(Collection.of(related_model))
            self.related_name = self.related.name

    @staticmethod
    def checked(collection: Collection) -> Collection:
        """``collection`` if ids can address its rows, else a ``ValueError`` naming the fix."""
        if collection.id_problem is None:
            return collection
        fix = (
            "Declare one param per key column instead."
            if collection.composite
            else "Declare the key as a plain param and load the row in the action."
        )
        raise ValueError(
            f"A ForeignKey cannot point to {collection.model.__name__}: "
            f"{collection.id_problem}. {fix}"
        )

    def wire_params(self) -> dict[str, Any]:
        return {"related_model": {"model": self.related_name}}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        related = _related_rows.get()
        if related is None:
            raise RuntimeError(
                "A ForeignKey param loads its row only while a Flex action runs: send the "
                "values through the Messages URL, the action's route or the flex_client test "
                "fixture rather than loading the params schema yourself."
            )
        collection = related.collection_of(self)
        try:
            key = collection.parse_id(value, related.wide_integer_ids)
        except InvalidId as error:
            raise self.make_error("invalid", reason=str(error)) from error
        row = related.row(collection, key)
        if row is None:
            raise self.make_error("does_not_exist", model=collection.name, id=key)
        return row


def _clock(hour: str, minute: str, second: str | None, fraction: str | None) -> dt.time:
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return dt.time(int(hour), int(minute), int(second or 0), micro)


def _utc_offset(text: str | None) -> dt.tzinfo | None:
    if not text:
        return None
    if text in "Zz":
        return dt.timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if minutes > 59:
        raise ValueError(f"invalid UTC offset {text}")
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


class DateTime(WireField):
    """``DateTimeField``: an ISO 8601 date-time (``2024-05-01T10:30:00Z``) to a ``datetime``.

    Naive when the text has no offset, aware otherwise.
    """

    wire_type = "DateTimeField"
    default_error_messages = {"invalid": "Not a valid ISO 8601 date-time."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        try:
            day_ = dt.date(int(year), int(month), int(day))
            clock = _clock(hour, minute, second, fraction)
            return dt.datetime.combine(day_, clock, tzinfo=_utc_offset(offset))
        except ValueError as error:
            raise self.make_error("invalid") from error


class Timestamp(WireField):
    """``TimestampField``: Unix seconds (a JSON number) to an aware UTC ``datetime``."""

    wire_type = "TimestampField"
    default_error_messages = {"invalid": "Not a valid Unix timestamp in seconds."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not _is_number(value):
            raise self.make_error("invalid")
        try:
            return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
        except (OverflowError, OSError, ValueError) as error:
            raise self.make_error("invalid") from error


class Date(WireField):
    """``DateField``: ``YYYY-MM-DD`` to a ``date``."""

    wire_type = "DateField"
    default_error_messages = {"invalid": "Not a valid date: use YYYY-MM-DD."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        match = _DATE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        try:
            return dt.date(*(int(part) for part in match.groups()))
        except ValueError as error:
            raise self.make_error("invalid") from error


class Time(WireField):
    """``TimeField``: ``HH:MM`` or ``HH:MM:SS`` to a ``time``."""

    wire_type = "TimeField"
    default_error_messages = {"invalid": "Not a valid time: use HH:MM or HH:MM:SS."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.time:
        match = _TIME_ONLY.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        try:
            return _clock(*match.groups())
        except ValueError as error:
            raise self.make_error("invalid") from error


def _plain_json(value: Any) -> Any:
    """A copy of a parsed JSON value with plain floats; ``ValueError`` on a NUL character."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL character")
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {_plain_json(key): _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    return value


class JSON(WireField):
    """``JSONField``: any JSON value, passed through (strings must not hold NUL characters)."""

    wire_type = "JSONField"
    default_error_messages = {"nul": "Must not contain NUL characters."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return _plain_json(value)
        except ValueError as error:
            raise self.make_error("nul") from error


class Integer(WireField):
    """``IntegerField``: a JSON integer or a string of ASCII digits, within signed 64-bit.

    A number with a fraction (``1.5``) is refused, never truncated.
    """

    wire_type = "IntegerField"
    default_error_messages = {
        "invalid": "Not a valid integer.",
        "range": "Must be between -2**63 and 2**63 - 1.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            # int() of a very long string is slow or refused; such a number is out of range.
            if len(value.lstrip("+-0")) > _INT64_DIGITS:
                raise self.make_error("range")
            number = int(value)
        elif isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_INT:
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self.make_error("invalid")
        if not -_INT64 <= number < _INT64:
            raise self.make_error("range")
        return number


class Float(WireField):
    """``FloatField``: a finite JSON number to a ``float``."""

    wire_type = "FloatField"
    default_error_messages = {"invalid": "Not a valid finite number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if not _is_number(value):
            raise self.make_error("invalid")
        try:
            number = float(value)
        except OverflowError as error:
            raise self.make_error("invalid") from error
        if not math.isfinite(number):
            raise self.make_error("invalid")
        return number


class Decimal(WireField):
    """``DecimalField``: a number or numeric string to a ``decimal.Decimal``, digit for digit.

    The text is at most 64 characters and the exponent within +-100, so no value can exhaust
    memory or time in later arithmetic.
    """

    wire_type = "DecimalField"
    default_error_messages = {
        "invalid": "Not a valid decimal number.",
        "range": "Too long or too large for a decimal number.",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> decimal.Decimal:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float):
            # A number parsed from the request keeps its source text (body.JSONFloat).
            text = getattr(value, "source", None) or repr(value)
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise self.make_error("invalid")
        if len(text) > _DECIMAL_MAX_CHARS:
            raise self.make_error("range")
        if not _DECIMAL.fullmatch(text):
            raise self.make_error("invalid")
        number = decimal.Decimal(text)
        if not math.isfinite(number) or abs(number.adjusted()) > _DECIMAL_MAX_EXPONENT:
            raise self.make_error("range")
        return number


#: Wire field type name to field class, for the list-of-dicts ``params=`` format.
FIELD_TYPES: dict[str, type[WireField]] = {
    cls.wire_type: cls
    for cls in (
        Boolean,
        Translatable,
        Select,
        ForeignKey,
        DateTime,
        Timestamp,
        Date,
        Time,
        JSON,
        Sql,
        Code,
        Char,
        Text,
        Integer,
        Float,
        Decimal,
    )
}

#: Field types whose empty string ``""`` is a value; for every other type it means "not given".
TEXT_FIELD_TYPES = frozenset(
    {"CharField", "TextField", "SqlField", "CodeField", "TranslatableField"}
)

# Plain marshmallow fields in a user's Schema, mapped to the nearest wire type (most specific
# class first along the field's MRO).
_MARSHMALLOW_WIRE_TYPES: dict[type[Any], str] = {
    fields.Boolean: "BooleanField",
    fields.String: "CharField",
    fields.Integer: "IntegerField",
    fields.Decimal: "DecimalField",
    fields.Float: "FloatField",
    fields.Number: "FloatField",
    fields.DateTime: "DateTimeField",
    fields.Date: "DateField",
    fields.Time: "TimeField",
    fields.UUID: "CharField",
    fields.Dict: "JSONField",
    fields.List: "JSONField",
    fields.Nested: "JSONField",
    fields.Raw: "JSONField",
}


def wire_type_of(field: fields.Field[Any]) -> str:
    """The protocol field type of a marshmallow field, or a ``TypeError`` naming the fix.

    ``metadata={"field": "TextField"}`` on any field overrides the mapping.
    """
    override = field.metadata.get("field")
    if override is not None:
        if override not in FIELD_TYPES:
            raise TypeError(f"metadata field={override!r} is not one of {sorted(FIELD_TYPES)}.")
        return str(override)
    if isinstance(field, WireField):
        return field.wire_type
    for cls in type(field).__mro__:
        if cls in _MARSHMALLOW_WIRE_TYPES:
            return _MARSHMALLOW_WIRE_TYPES[cls]
    raise TypeError(
        f"{type(field).__name__} has no Flex Actions field type: use a field from "
        "flask_flexactions.fields, or set metadata={'field': 'CharField'} (or another type)."
    )
