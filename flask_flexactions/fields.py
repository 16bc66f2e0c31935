"""The marshmallow fields of the wire types, for params declared as a marshmallow ``Schema``.

This is the public home of the fields; they are defined with the rest of what users declare,
in :mod:`flask_flexactions.declare.fields`.
"""

from __future__ import annotations

from .declare.fields import (
    FIELD_TYPES,
    JSON,
    TEXT_FIELD_TYPES,
    Boolean,
    Char,
    Code,
    Date,
    DateTime,
    Decimal,
    Float,
    ForeignKey,
    Integer,
    Select,
    Sql,
    Text,
    Time,
    Timestamp,
    Translatable,
    option_extras,
    wire_type_of,
)

__all__ = [
    "FIELD_TYPES",
    "JSON",
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
    "Select",
    "Sql",
    "Text",
    "Time",
    "Timestamp",
    "Translatable",
    "option_extras",
    "wire_type_of",
]
