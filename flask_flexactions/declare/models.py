"""SQLAlchemy models as collections: wire names, primary keys and the grammar of their ids."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

from ..errors import InvalidId

#: Class attribute that sets a model's wire name, e.g. ``__flexactions_name__ = "shop;account"``.
WIRE_NAME_ATTRIBUTE = "__flexactions_name__"

_DIGITS = re.compile(r"[0-9]+\Z")


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


IdParser = Callable[[Any, bool], Any]


def id_parser(column: sa.ColumnElement[Any]) -> IdParser | None:
    """The parser of wire ids for ``column``, or None for a key type ids cannot address.

    Keys of integer, text (not enum) and UUID types are supported.
    """
    column_type = column.type
    if isinstance(column_type, sa.Enum):
        return None
    if isinstance(column_type, sa.Integer):
        return IntegerId(_integer_bits(column_type))
    if isinstance(column_type, (sa.Uuid, sa.String)):
        return parse_uuid_id if isinstance(column_type, sa.Uuid) else parse_str_id
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return None
    if python_type is int:
        return IntegerId(64)
    if python_type is str:
        return parse_str_id
    return parse_uuid_id if python_type is uuid.UUID else None


def _integer_bits(column_type: sa.types.TypeEngine[Any]) -> int:
    """Width of an integer key: SQLAlchemy's ``Integer`` is 32-bit on server databases."""
    if isinstance(column_type, sa.SmallInteger):
        return 16
    if isinstance(column_type, sa.BigInteger):
        return 64
    return 32


@dataclass(frozen=True)
class IntegerId:
    """Parses integer ids: a JSON integer or a string of ASCII digits, within the key's width.

    An id beyond the column's range is refused here, because a database such as PostgreSQL
    answers an out-of-range comparison with an error rather than with no row. ``wide`` lifts
    the width to 64 bits, for SQLite, where every integer key is 64-bit.
    """

    bits: int

    def __call__(self, value: Any, wide: bool = False) -> int:
        if isinstance(value, bool):
            raise InvalidId(f"{value!r} is not an integer id")
        if isinstance(value, str):
            if not _DIGITS.match(value):
                raise InvalidId(f"{value[:40]!r} is not an integer id")
            if len(value.lstrip("0")) > 20:
                raise InvalidId(f"{value[:40]}... is out of range for an integer id")
            number = int(value.lstrip("0") or "0")
        elif isinstance(value, int):
            number = value
        else:
            raise InvalidId(f"{value!r:.40} is not an integer id")
        bits = 64 if wide else self.bits
        if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
            shown = str(number) if abs(number) < 10**40 else f"{str(number)[:40]}..."
            raise InvalidId(f"{shown} is out of range for a {bits}-bit integer id")
        return number


def parse_str_id(value: Any, wide: bool = False) -> str:
    """A text id: a JSON string, or a number taken as its decimal text."""
    if isinstance(value, str) and value and "\x00" not in value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidId(f"{value!r:.40} is not a valid id")


def parse_uuid_id(value: Any, wide: bool = False) -> uuid.UUID:
    """A UUID id, in any of the textual forms :class:`uuid.UUID` accepts."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidId(f"{value!r:.40} is not a UUID")


@dataclass(frozen=True)
class Collection:
    """A model as the protocol sees it: its wire name and how ids address its rows.

    ``id_problem`` says why ids cannot address rows (a composite key, or a key type without an
    id grammar); then ``primary_key``, ``pk_attribute`` and ``id_parser`` are None.
    """

    model: type[Any]
    name: str
    primary_key: sa.ColumnElement[Any] | None
    pk_attribute: Any
    id_parser: IdParser | None
    id_problem: str | None

    @classmethod
    def of(cls, model: type[Any]) -> Collection:
        """Describe ``model``."""
        mapper = mapper_of(model)
        name = wire_name(model)
        columns = mapper.primary_key
        if len(columns) != 1:
            problem = "its primary key has several columns"
            return cls(model, name, None, None, None, problem)
        column = columns[0]
        parser = id_parser(column)
        if parser is None:
            problem = (
                f"its primary key type {column.type} has no id grammar "
                "(only integer, text and UUID keys have one)"
            )
            return cls(model, name, None, None, None, problem)
        attribute = getattr(model, mapper.get_property_by_column(column).key)
        return cls(model, name, column, attribute, parser, None)

    @functools.cached_property
    def select_by_ids(self) -> sa.Select[Any]:
        """``SELECT model WHERE pk IN :ids``, built once; execute it with ``{"ids": [...]}``."""
        in_ids = self.pk_attribute.in_(sa.bindparam("ids", expanding=True))
        return sa.select(self.model).where(in_ids)

    @functools.cached_property
    def select_by_id(self) -> sa.Select[Any]:
        """``SELECT model WHERE pk = :id``, built once; execute it with ``{"id": value}``.

        A record action loads one row: a plain parameter skips the per-execution rendering
        an expanding ``IN`` needs (about a third of the load's cost on a small action)."""
        return sa.select(self.model).where(self.pk_attribute == sa.bindparam("id"))

    @property
    def composite(self) -> bool:
        """Whether the primary key has several columns."""
        return len(mapper_of(self.model).primary_key) > 1

    def parse_id(self, value: Any, wide: bool = False) -> Any:
        """The primary key value for the wire id ``value``, or :class:`InvalidId`.

        :param wide: integer keys are 64-bit whatever their declared width (SQLite).
        """
        if self.id_parser is None:
            raise InvalidId(f"{self.model.__name__}: {self.id_problem}")
        return self.id_parser(value, wide)
