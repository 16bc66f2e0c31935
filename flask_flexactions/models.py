"""SQLAlchemy models as collections: wire names, primary keys and the grammar of their ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

#: Class attribute that sets a model's wire name, e.g. ``__flexactions_name__ = "shop;account"``.
WIRE_NAME_ATTRIBUTE = "__flexactions_name__"

_DIGITS = re.compile(r"[0-9]+\Z")


class InvalidId(ValueError):
    """An id that does not fit the grammar of the primary key's type."""


def mapper_of(model: Any) -> Mapper[Any]:
    """The SQLAlchemy mapper of ``model``, or a ``TypeError`` that says what was expected."""
    if isinstance(model, type):
        mapper: Any = sa.inspect(model, raiseerr=False)
        if isinstance(mapper, Mapper):
            return mapper
    raise TypeError(
        f"{model!r} is not a mapped SQLAlchemy model class; pass a model class such as "
        "`Order` (a subclass of `db.Model`)."
    )


def wire_name(model: type[Any]) -> str:
    """The collection name of ``model`` on the wire: ``__flexactions_name__`` or its table name."""
    name = getattr(model, WIRE_NAME_ATTRIBUTE, None)
    if name is None:
        table = mapper_of(model).local_table
        name = getattr(table, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"Cannot name the collection of {model.__name__}: set "
            f'`{WIRE_NAME_ATTRIBUTE} = "..."` on the model.'
        )
    return name


def id_parser(column: sa.ColumnElement[Any]) -> Callable[[Any], Any]:
    """A function that turns a wire id into a value of ``column``'s type, or raises InvalidId."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    if python_type is int:
        return IntegerId(_integer_bits(column.type))
    if issubclass(python_type, uuid.UUID):
        return parse_uuid_id
    return parse_str_id


def _integer_bits(column_type: sa.types.TypeEngine[Any]) -> int:
    """Width of an integer key: SQLAlchemy's ``Integer`` is 32-bit on every server database."""
    if isinstance(column_type, sa.SmallInteger):
        return 16
    if isinstance(column_type, sa.Integer) and not isinstance(column_type, sa.BigInteger):
        return 32
    return 64


@dataclass(frozen=True)
class IntegerId:
    """Parses integer ids: a JSON integer or a string of ASCII digits, within the key's width.

    An id beyond the column's range is refused here, because a database such as PostgreSQL
    answers an out-of-range comparison with an error rather than with no row.
    """

    bits: int

    def __call__(self, value: Any) -> int:
        if isinstance(value, bool):
            raise InvalidId(f"{value!r} is not an integer id")
        if isinstance(value, str):
            if not _DIGITS.match(value):
                raise InvalidId(f"{value[:40]!r} is not an integer id")
            if len(value.lstrip("0")) > 20:
                raise InvalidId(f"{value[:40]}... is out of range for an integer id")
            number = int(value)
        elif isinstance(value, int):
            number = value
        else:
            raise InvalidId(f"{value!r:.40} is not an integer id")
        limit = 2 ** (self.bits - 1)
        if not -limit <= number < limit:
            shown = str(number) if abs(number) < 10**40 else f"{str(number)[:40]}..."
            raise InvalidId(f"{shown} is out of range for a {self.bits}-bit integer id")
        return number


def parse_str_id(value: Any) -> str:
    """A text id: a JSON string, or a number taken as its decimal text."""
    if isinstance(value, str) and value and "\x00" not in value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidId(f"{value!r:.40} is not a valid id")


def parse_uuid_id(value: Any) -> uuid.UUID:
    """A UUID id, in any of the textual forms :class:`uuid.UUID` accepts."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidId(f"{value!r:.40} is not a UUID")


@dataclass(frozen=True)
class Collection:
    """A model as the protocol sees it: its wire name and its single-column primary key.

    ``primary_key`` (the column) and ``pk_attribute`` (the mapped attribute, e.g. ``Order.id``)
    are None when the key has several columns.
    """

    model: type[Any]
    name: str
    primary_key: sa.ColumnElement[Any] | None
    pk_attribute: Any
    parse_id: Callable[[Any], Any]

    @classmethod
    def of(cls, model: type[Any]) -> Collection:
        """Describe ``model``; ``primary_key`` is None when the key has several columns."""
        mapper = mapper_of(model)
        columns = mapper.primary_key
        if len(columns) != 1:
            return cls(model, wire_name(model), None, None, parse_str_id)
        column = columns[0]
        attribute = getattr(model, mapper.get_property_by_column(column).key)
        return cls(model, wire_name(model), column, attribute, id_parser(column))
