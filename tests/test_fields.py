"""The 16 param field types, driven through the Messages URL with good and bad values.

Each case registers an action with one param of the type, sends ``execute_action`` and checks
what the handler received (type and value) or the field error it got instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from marshmallow import Schema, ValidationError, fields, validates_schema
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions
from flask_flexactions import fields as ff
from tests.conftest import AUTH, TOKEN, URL, Messages, database_url
from tests.models import Account, Device, Order, Tag, User, db

UTC = dt.timezone.utc
DEVICE = uuid.UUID("6f1c2a4e-8d3b-4c1a-9e2f-0a1b2c3d4e5f")
OTHER_DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000000")
BIG = 2**62
INT64_MAX = 2**63 - 1
MISSING = "Missing data for required field."


@dataclass(frozen=True)
class Raw:
    """A JSON number sent with exactly this source text (json.dumps would round it)."""

    text: str


@dataclass(frozen=True)
class Row:
    """What the handler saw for a model instance: its class and primary key."""

    model: type[Any]
    pk: Any


class Matches:
    """Compares equal to any string the regular expression matches in full."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(self.pattern, other) is not None

    def __repr__(self) -> str:
        return f"Matches({self.pattern!r})"


SELECT_OPTIONS = [
    {"value": "a", "name": "A"},
    {"value": 2, "name": "Two"},
    {"value": True, "name": "Yes"},
]

#: One param declaration per case key; the 16 plain type names come first.
DECLARATIONS: dict[str, dict[str, Any]] = {
    "BooleanField": {"field": "BooleanField"},
    "CharField": {"field": "CharField"},
    "TextField": {"field": "TextField"},
    "SqlField": {"field": "SqlField"},
    "CodeField": {"field": "CodeField"},
    "TranslatableField": {"field": "TranslatableField"},
    "SelectField": {"field": "SelectField", "params": {"options": SELECT_OPTIONS}},
    "ForeignKey": {"field": "ForeignKey", "params": {"related_model": {"model": User}}},
    "DateTimeField": {"field": "DateTimeField"},
    "TimestampField": {"field": "TimestampField"},
    "DateField": {"field": "DateField"},
    "TimeField": {"field": "TimeField"},
    "JSONField": {"field": "JSONField"},
    "IntegerField": {"field": "IntegerField"},
    "FloatField": {"field": "FloatField"},
    "DecimalField": {"field": "DecimalField"},
    # Variants.
    "SelectField[1,0]": {
        "field": "SelectField",
        "params": {"options": [{"value": 1, "name": "One"}, {"value": 0, "name": "Zero"}]},
    },
    "SelectField['2',2]": {
        "field": "SelectField",
        "params": {"options": [{"value": "2", "name": "Text"}, {"value": 2, "name": "Number"}]},
    },
    "ForeignKey(shop;account)": {
        "field": "ForeignKey",
        "params": {"related_model": {"model": "shop;account"}},
    },
    "ForeignKey(Account)": {"field": "ForeignKey", "params": {"related_model": {"model": Account}}},
    "ForeignKey(tags)": {"field": "ForeignKey", "params": {"related_model": {"model": "tags"}}},
    "ForeignKey(Device)": {"field": "ForeignKey", "params": {"related_model": {"model": Device}}},
    "ForeignKey(Order)": {"field": "ForeignKey", "params": {"related_model": {"model": Order}}},
}
FIELD_TYPES = list(DECLARATIONS)[:16]
TEXT_TYPES = {"CharField", "TextField", "SqlField", "CodeField", "TranslatableField"}

#: A good wire value and what the handler gets for it, per plain type.
SAMPLE: dict[str, tuple[Any, Any]] = {
    "BooleanField": (True, True),
    "CharField": ("abc", "abc"),
    "TextField": ("a\nb", "a\nb"),
    "SqlField": ("SELECT 1", "SELECT 1"),
    "CodeField": ("x = 1", "x = 1"),
    "TranslatableField": ({"en": "Hi"}, {"en": "Hi"}),
    "SelectField": ("2", 2),
    "ForeignKey": ("2", Row(User, 2)),
    "DateTimeField": ("2024-05-01T10:30:00Z", dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    "TimestampField": (1714559400, dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    "DateField": ("2024-05-01", dt.date(2024, 5, 1)),
    "TimeField": ("10:30", dt.time(10, 30)),
    "JSONField": ({"a": [1, None]}, {"a": [1, None]}),
    "IntegerField": ("-12", -12),
    "FloatField": (Raw("2.5"), 2.5),
    "DecimalField": (Raw("12.345678901234567890"), Decimal("12.345678901234567890")),
}

INVALID: dict[str, str] = {
    "BooleanField": "Not a valid boolean: send true or false.",
    "CharField": "Not a valid string.",
    "TextField": "Not a valid string.",
    "SqlField": "Not a valid string.",
    "CodeField": "Not a valid string.",
    "TranslatableField": "Not a valid string or object of language code to string.",
    "SelectField": "Not one of the allowed options: 'a', 2, True.",
    "SelectField[1,0]": "Not one of the allowed options: 1, 0.",
    "DateTimeField": "Not a valid ISO 8601 date-time.",
    "TimestampField": "Not a valid Unix timestamp in seconds.",
    "DateField": "Not a valid date: use YYYY-MM-DD.",
    "TimeField": "Not a valid time: use HH:MM or HH:MM:SS.",
    "IntegerField": "Not a valid integer.",
    "FloatField": "Not a valid finite number.",
    "DecimalField": "Not a valid decimal number.",
}
NUL = "Must not contain NUL characters."
INT_RANGE = "Must be between -2**63 and 2**63 - 1."
DECIMAL_RANGE = "Too long or too large for a decimal number."
BAD_ID = Matches(r"Not a valid id: .+\.")
# users.id is an INTEGER: 32-bit on PostgreSQL, 64-bit on SQLite, where 2**40 is a valid id.
BEYOND_INT32 = (
    "Not a valid id: 1099511627776 is out of range for a 32-bit integer id."
    if os.environ.get("FLEXACTIONS_TEST_DATABASE_URL", "").startswith("postgresql")
    else "No record of users has the id 1099511627776."
)
BAD_OR_MISSING_TAG = Matches(r"Not a valid id: .+\.|No record of tags has the id .+\.")


def good(field: str, wire: Any, expected: Any) -> Any:
    return pytest.param(field, wire, expected, id=f"{field}-{wire!r:.40}")


def bad(field: str, wire: Any, message: Any = None) -> Any:
    return pytest.param(field, wire, message or INVALID[field], id=f"{field}-{wire!r:.40}")


GOOD = [
    good("BooleanField", True, True),
    good("BooleanField", False, False),
    good("CharField", "abc", "abc"),
    good("CharField", "héllo ✓ 😀", "héllo ✓ 😀"),
    good("CharField", "  padded  ", "  padded  "),
    good("CharField", "12", "12"),
    good("CharField", "", ""),
    good("TextField", "line 1\nline 2\r\n", "line 1\nline 2\r\n"),
    good("TextField", "", ""),
    good("SqlField", "SELECT 1; -- DROP TABLE users", "SELECT 1; -- DROP TABLE users"),
    good("SqlField", "", ""),
    good("CodeField", "def f():\n    return 1\n", "def f():\n    return 1\n"),
    good("CodeField", "", ""),
    good("TranslatableField", "Hello", "Hello"),
    good("TranslatableField", "", ""),
    good("TranslatableField", {"en": "Hello", "fr": "Bonjour"}, {"en": "Hello", "fr": "Bonjour"}),
    good("TranslatableField", {"en": ""}, {"en": ""}),
    good("SelectField", "a", "a"),
    good("SelectField", 2, 2),
    good("SelectField", "2", 2),
    good("SelectField", True, True),
    good("SelectField[1,0]", 1, 1),
    good("SelectField[1,0]", "1", 1),
    good("SelectField[1,0]", 0, 0),
    good("SelectField['2',2]", "2", "2"),
    good("SelectField['2',2]", 2, 2),
    good("ForeignKey", 1, Row(User, 1)),
    good("ForeignKey", "2", Row(User, 2)),
    good("ForeignKey(shop;account)", 1, Row(Account, 1)),
    good("ForeignKey(shop;account)", "1", Row(Account, 1)),
    good("ForeignKey(Account)", 1, Row(Account, 1)),
    good("ForeignKey(Account)", "1", Row(Account, 1)),
    good("ForeignKey(tags)", "red", Row(Tag, "red")),
    good("ForeignKey(tags)", "7", Row(Tag, "7")),
    good("ForeignKey(tags)", 7, Row(Tag, "7")),
    good("ForeignKey(Device)", str(DEVICE), Row(Device, DEVICE)),
    good("ForeignKey(Device)", str(DEVICE).upper(), Row(Device, DEVICE)),
    good("ForeignKey(Order)", BIG, Row(Order, BIG)),
    good("ForeignKey(Order)", str(BIG), Row(Order, BIG)),
    good("DateTimeField", "2024-05-01T10:30:00Z", dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    good("DateTimeField", "2024-05-01t10:30:00z", dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    good("DateTimeField", "2024-05-01T10:30", dt.datetime(2024, 5, 1, 10, 30)),
    good("DateTimeField", "2024-05-01 10:30:15", dt.datetime(2024, 5, 1, 10, 30, 15)),
    good(
        "DateTimeField",
        "2024-05-01T10:30:15.123456",
        dt.datetime(2024, 5, 1, 10, 30, 15, 123456),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00.5Z",
        dt.datetime(2024, 5, 1, 10, 30, 0, 500000, tzinfo=UTC),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00+02:00",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00-05:30",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30))),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00+0200",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ),
    # An hours-only offset has no minutes; the largest minute is 59.
    good(
        "DateTimeField",
        "2024-05-01T10:30:00+05",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00-05",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00+05:59",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=59))),
    ),
    good(
        "DateTimeField",
        "2024-05-01T10:30:00-0059",
        dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.timezone(-dt.timedelta(minutes=59))),
    ),
    good("DateTimeField", "2024-02-29T00:00:00", dt.datetime(2024, 2, 29)),
    good("TimestampField", 0, dt.datetime(1970, 1, 1, tzinfo=UTC)),
    good("TimestampField", 1714559400, dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    good(
        "TimestampField",
        Raw("1714559400.5"),
        dt.datetime(2024, 5, 1, 10, 30, 0, 500000, tzinfo=UTC),
    ),
    good("TimestampField", Raw("1.7145594e9"), dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    good("TimestampField", -1, dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
    good("DateField", "2024-02-29", dt.date(2024, 2, 29)),
    good("DateField", "0001-01-01", dt.date(1, 1, 1)),
    good("DateField", "9999-12-31", dt.date(9999, 12, 31)),
    good("TimeField", "10:30", dt.time(10, 30)),
    good("TimeField", "00:00", dt.time(0, 0)),
    good("TimeField", "23:59:59", dt.time(23, 59, 59)),
    good("TimeField", "10:30:00.5", dt.time(10, 30, 0, 500000)),
    good("TimeField", "10:30:00.123456", dt.time(10, 30, 0, 123456)),
    good("JSONField", {"a": [1, 2.5, None, True, "x"]}, {"a": [1, 2.5, None, True, "x"]}),
    good("JSONField", [1, "two"], [1, "two"]),
    good("JSONField", "text", "text"),
    good("JSONField", 42, 42),
    good("JSONField", Raw("2.5"), 2.5),
    good("JSONField", True, True),
    good("JSONField", False, False),
    good("JSONField", 0, 0),
    good("JSONField", {}, {}),
    good("JSONField", [], []),
    good("IntegerField", 42, 42),
    good("IntegerField", -7, -7),
    good("IntegerField", 0, 0),
    good("IntegerField", "42", 42),
    good("IntegerField", "-42", -42),
    good("IntegerField", "+42", 42),
    good("IntegerField", "0042", 42),
    good("IntegerField", INT64_MAX, INT64_MAX),
    good("IntegerField", -(2**63), -(2**63)),
    good("IntegerField", str(INT64_MAX), INT64_MAX),
    good("IntegerField", str(-(2**63)), -(2**63)),
    # Leading zeros and the sign are not significant digits: 19 of them is still in range.
    good("IntegerField", "0" * 30 + "42", 42),
    good("IntegerField", "+" + "0" * 30 + str(INT64_MAX), INT64_MAX),
    good("IntegerField", "-" + "0" * 30 + str(2**63), -(2**63)),
    good("IntegerField", Raw("3.0"), 3),
    good("IntegerField", Raw("1e3"), 1000),
    good("IntegerField", Raw("9007199254740992.0"), 2**53),
    good("FloatField", Raw("1.5"), 1.5),
    good("FloatField", 3, 3.0),
    good("FloatField", Raw("-0.25"), -0.25),
    good("FloatField", Raw("1e300"), 1e300),
    good("FloatField", 0, 0.0),
    good("DecimalField", "12.50", Decimal("12.50")),
    good("DecimalField", Raw("12.50"), Decimal("12.50")),
    good("DecimalField", Raw("12.345678901234567890"), Decimal("12.345678901234567890")),
    good("DecimalField", "12.345678901234567890", Decimal("12.345678901234567890")),
    good("DecimalField", Raw("0.1"), Decimal("0.1")),
    good("DecimalField", 10, Decimal("10")),
    good("DecimalField", -3, Decimal("-3")),
    good("DecimalField", 123456789012345678901234567890, Decimal("123456789012345678901234567890")),
    good("DecimalField", "-0.001", Decimal("-0.001")),
    good("DecimalField", "+1.5", Decimal("1.5")),
    good("DecimalField", ".5", Decimal("0.5")),
    good("DecimalField", "1e2", Decimal("1E+2")),
    good("DecimalField", Raw("1.5e3"), Decimal("1.5E+3")),
    good("DecimalField", "1E-100", Decimal("1E-100")),
    good("DecimalField", "1e100", Decimal("1E+100")),
    good("DecimalField", "9" * 64, Decimal("9" * 64)),
]

BAD = [
    bad("BooleanField", 1),
    bad("BooleanField", 0),
    bad("BooleanField", Raw("1.0")),
    bad("BooleanField", "true"),
    bad("BooleanField", "false"),
    bad("BooleanField", "yes"),
    bad("BooleanField", []),
    bad("BooleanField", {}),
    bad("CharField", 12),
    bad("CharField", Raw("1.5")),
    bad("CharField", True),
    bad("CharField", []),
    bad("CharField", ["a"]),
    bad("CharField", {"en": "x"}),
    bad("CharField", "a\x00b", NUL),
    bad("TextField", 5),
    bad("TextField", False),
    bad("TextField", "\x00", NUL),
    bad("SqlField", {"q": "SELECT 1"}),
    bad("SqlField", "SELECT '\x00'", NUL),
    bad("CodeField", [1]),
    bad("CodeField", "x\x00", NUL),
    bad("TranslatableField", 5),
    bad("TranslatableField", True),
    bad("TranslatableField", ["en"]),
    bad("TranslatableField", {"en": 5}),
    bad("TranslatableField", {"en": None}),
    bad("TranslatableField", {"en": {"x": "y"}}),
    bad("TranslatableField", {"en": ["a"]}),
    bad("TranslatableField", "a\x00", NUL),
    bad("TranslatableField", {"en": "a\x00"}, NUL),
    bad("TranslatableField", {"e\x00n": "a"}, NUL),
    bad("SelectField", "b"),
    bad("SelectField", "A"),
    bad("SelectField", 3),
    bad("SelectField", 1),
    bad("SelectField", False),
    bad("SelectField", "True"),
    bad("SelectField", "2.0"),
    bad("SelectField", " 2"),
    bad("SelectField", "02"),
    bad("SelectField", Raw("2.5")),
    bad("SelectField", ["a"]),
    bad("SelectField", {"value": "a"}),
    bad("SelectField[1,0]", True),
    bad("SelectField[1,0]", False),
    bad("SelectField[1,0]", "True"),
    bad("ForeignKey", 999, "No record of users has the id 999."),
    bad("ForeignKey", "999", "No record of users has the id 999."),
    bad("ForeignKey", 2**40, BEYOND_INT32),
    bad("ForeignKey", "abc", "Not a valid id: 'abc' is not an integer id."),
    bad("ForeignKey", True, "Not a valid id: True is not an integer id."),
    bad("ForeignKey", Raw("1.5"), BAD_ID),
    bad("ForeignKey", Raw("1.0"), BAD_ID),
    bad("ForeignKey", {"id": 1}, BAD_ID),
    bad("ForeignKey", [1], BAD_ID),
    bad("ForeignKey", " 1", BAD_ID),
    bad("ForeignKey", "+1", BAD_ID),
    bad("ForeignKey", "１", BAD_ID),
    bad("ForeignKey", 2**63, BAD_ID),
    bad("ForeignKey(shop;account)", 99, "No record of shop;account has the id 99."),
    bad("ForeignKey(shop;account)", "x", BAD_ID),
    bad("ForeignKey(tags)", "blue", "No record of tags has the id blue."),
    bad("ForeignKey(tags)", True, BAD_ID),
    bad("ForeignKey(tags)", {"code": "red"}, BAD_ID),
    bad("ForeignKey(tags)", ["red"], BAD_ID),
    bad("ForeignKey(tags)", "re\x00d", BAD_OR_MISSING_TAG),
    bad("ForeignKey(Device)", "not-a-uuid", BAD_ID),
    bad("ForeignKey(Device)", 5, BAD_ID),
    bad(
        "ForeignKey(Device)", str(OTHER_DEVICE), f"No record of devices has the id {OTHER_DEVICE}."
    ),
    bad("DateTimeField", "2024-02-30T10:00:00"),
    bad("DateTimeField", "2023-02-29T10:00"),
    bad("DateTimeField", "2024-13-01T10:00"),
    bad("DateTimeField", "2024-05-01T24:00"),
    bad("DateTimeField", "2024-05-01T24:00:00"),
    bad("DateTimeField", "2024-05-01T10:60"),
    bad("DateTimeField", "2024-05-01T10:30:60"),
    bad("DateTimeField", "2024-05-01"),
    bad("DateTimeField", "2024-05-01T10"),
    bad("DateTimeField", "10:30"),
    bad("DateTimeField", "2024-05-01T10:30:00+25:00"),
    bad("DateTimeField", "2024-05-01T10:30:00+24:00"),
    bad("DateTimeField", "2024-05-01T10:30:00+02:60"),
    bad("DateTimeField", "2024-05-01T10:30:00+2:00"),
    bad("DateTimeField", "2024-05-01T10:30:00 +02:00"),
    bad("DateTimeField", "2024-05-01T10:30:00ZZ"),
    bad("DateTimeField", "2024-05-01T10:30:00UTC"),
    bad("DateTimeField", "２０２４-05-01T10:30"),
    bad("DateTimeField", "2024-05-01T10:30\n"),
    bad("DateTimeField", "0000-01-01T00:00"),
    bad("DateTimeField", 1714559400),
    bad("DateTimeField", True),
    bad("DateTimeField", ["2024-05-01T10:30:00"]),
    bad("DateTimeField", {"date": "2024-05-01"}),
    bad("TimestampField", "1714559400"),
    bad("TimestampField", True),
    bad("TimestampField", False),
    bad("TimestampField", []),
    bad("TimestampField", {}),
    bad("TimestampField", Raw("1e20")),
    bad("TimestampField", Raw("1e300")),
    bad("TimestampField", 10**20),
    bad("TimestampField", 2**63),
    bad("TimestampField", 10**400),
    bad("TimestampField", -(10**20)),
    bad("TimestampField", 253402300800),
    bad("DateField", "2024-02-30"),
    bad("DateField", "2023-02-29"),
    bad("DateField", "2024-13-01"),
    bad("DateField", "2024-00-10"),
    bad("DateField", "2024-5-1"),
    bad("DateField", "2024-05-01T00:00"),
    bad("DateField", "20240501"),
    bad("DateField", "2024/05/01"),
    bad("DateField", " 2024-05-01"),
    bad("DateField", "2024-05-01\n"),
    bad("DateField", "0000-01-01"),
    bad("DateField", "２０２４-05-01"),
    bad("DateField", ["2024-05-01"]),
    bad("DateField", 20240501),
    bad("DateField", True),
    bad("DateField", {}),
    bad("TimeField", "24:00"),
    bad("TimeField", "24:00:00"),
    bad("TimeField", "10:60"),
    bad("TimeField", "10:30:60"),
    bad("TimeField", "1:30"),
    bad("TimeField", "10:30:00Z"),
    bad("TimeField", "10:30:00+02:00"),
    bad("TimeField", "1030"),
    bad("TimeField", "10h30"),
    bad("TimeField", "10:30:"),
    bad("TimeField", 1030),
    bad("TimeField", True),
    bad("TimeField", ["10:30"]),
    bad("JSONField", "a\x00b", NUL),
    bad("JSONField", {"k": "a\x00"}, NUL),
    bad("JSONField", {"k\x00": 1}, NUL),
    bad("JSONField", [["\x00"]], NUL),
    bad("IntegerField", Raw("1.5")),
    bad("IntegerField", 2**63, INT_RANGE),
    bad("IntegerField", -(2**63) - 1, INT_RANGE),
    bad("IntegerField", "9223372036854775808", INT_RANGE),
    bad("IntegerField", "-9223372036854775809", INT_RANGE),
    bad("IntegerField", 10**30, INT_RANGE),
    # More than 19 significant digits: out of range, refused before int() reads them.
    bad("IntegerField", "1" + "0" * 19, INT_RANGE),
    bad("IntegerField", "-" + "0" * 5 + "1" + "0" * 19, INT_RANGE),
    bad("IntegerField", "9" * 5000, INT_RANGE),
    bad("IntegerField", "-" + "9" * 5000, INT_RANGE),
    bad("IntegerField", True),
    bad("IntegerField", False),
    bad("IntegerField", "１２"),
    bad("IntegerField", "٣"),
    bad("IntegerField", " 12"),
    bad("IntegerField", "12 "),
    bad("IntegerField", "12\n"),
    bad("IntegerField", "1.0"),
    bad("IntegerField", "1e3"),
    bad("IntegerField", "0x10"),
    bad("IntegerField", "+-1"),
    bad("IntegerField", "abc"),
    bad("IntegerField", Raw("9007199254740994.0")),
    bad("IntegerField", Raw("1e300")),
    bad("IntegerField", []),
    bad("IntegerField", [1]),
    bad("IntegerField", {}),
    bad("FloatField", "1.5"),
    bad("FloatField", "NaN"),
    bad("FloatField", "Infinity"),
    bad("FloatField", True),
    bad("FloatField", False),
    bad("FloatField", []),
    bad("FloatField", {}),
    bad("FloatField", 10**400),
    bad("DecimalField", "NaN"),
    bad("DecimalField", "nan"),
    bad("DecimalField", "sNaN"),
    bad("DecimalField", "Infinity"),
    bad("DecimalField", "-Infinity"),
    bad("DecimalField", "inf"),
    bad("DecimalField", "1e500", DECIMAL_RANGE),
    bad("DecimalField", "1e101", DECIMAL_RANGE),
    bad("DecimalField", "1e-101", DECIMAL_RANGE),
    bad("DecimalField", Raw("1e300"), DECIMAL_RANGE),
    bad("DecimalField", Raw("1e-500"), DECIMAL_RANGE),
    bad("DecimalField", "9" * 65, DECIMAL_RANGE),
    bad("DecimalField", "1." + "0" * 63, DECIMAL_RANGE),
    bad("DecimalField", 10**64, DECIMAL_RANGE),
    bad("DecimalField", True),
    bad("DecimalField", False),
    bad("DecimalField", []),
    bad("DecimalField", {}),
    bad("DecimalField", "abc"),
    bad("DecimalField", "1,5"),
    bad("DecimalField", " 1.5"),
    bad("DecimalField", "1.5 "),
    bad("DecimalField", "0x10"),
    bad("DecimalField", "１２"),
    bad("DecimalField", "1_000"),
    bad("DecimalField", "1.2.3"),
    bad("DecimalField", "--1"),
    bad("DecimalField", "1e"),
    bad("DecimalField", "e5"),
    bad("DecimalField", "."),
]


# Helpers


def snapshot(value: Any) -> Any:
    """Inside the handler: a model instance becomes Row(model, pk), checked to be in the session."""
    if isinstance(value, db.Model):
        state = sa.inspect(value)
        assert state.persistent, "a related row must be loaded through the session"
        assert value in db.session
        return Row(type(value), state.identity[0])
    return value


def assert_same(got: Any, expected: Any) -> None:
    """Same type, same value, same digits (Decimal) and the same offset (datetime, time)."""
    if isinstance(expected, Row):
        assert got == expected
        return
    assert type(got) is type(expected), f"{got!r} is a {type(got).__name__}, not {expected!r}"
    assert got == expected
    if isinstance(expected, Decimal):
        assert got.as_tuple() == expected.as_tuple(), f"{got!r} != {expected!r}"
    if isinstance(expected, (dt.datetime, dt.time)):
        assert (got.tzinfo is None) == (expected.tzinfo is None), f"{got!r} vs {expected!r}"
        assert got.utcoffset() == expected.utcoffset()


def assert_same_json(got: Any, expected: Any) -> None:
    """A JSONField value: equal, and equal as JSON (true is not 1, 2.5 stays a float)."""
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)


_probe_numbers = itertools.count(1)


@dataclass
class Probe:
    """A registered action under a fresh name, and the params each call of it received."""

    name: str
    calls: list[Any] = dataclasses.field(default_factory=list)


def probe(
    flex: FlexActions,
    declarations: dict[str, dict[str, Any]],
    *,
    model: type[Any] | None = None,
    required: frozenset[str] = frozenset(),
) -> Probe:
    """Register an action with these params (every test gets its own action name)."""
    result = Probe(f"probe{next(_probe_numbers)}")
    params = [
        {"name": name, "required": name in required, **declaration}
        for name, declaration in declarations.items()
    ]
    if model is None:

        @flex.action(name=result.name, params=params)
        def common(params: dict[str, Any]) -> None:
            result.calls.append({key: snapshot(value) for key, value in params.items()})

    else:

        @flex.action(model, name=result.name, params=params)
        def collection(model: type[Any], params: dict[str, Any]) -> None:
            result.calls.append((model, {key: snapshot(value) for key, value in params.items()}))

    return result


def send(messages: Messages, action: str, values: Any, *, model: str | None = None) -> TestResponse:
    """execute_action with ``values`` as the user params; Raw values keep their source text."""
    raws: dict[str, str] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, Raw):
            token = f"@@raw{len(raws)}@@"
            raws[json.dumps(token)] = value.text
            return token
        return value

    message: dict[str, Any] = {"name": action}
    if model is not None:
        message["model"] = model
    if isinstance(values, dict):
        message["params"] = {key: encode(value) for key, value in values.items()}
    else:
        message["params"] = values
    text = json.dumps({"name": "execute_action", "params": message})
    for token, source in raws.items():
        text = text.replace(token, source)
    return messages.client.post(URL, data=text, content_type="application/json", headers=AUTH)


def field_errors(response: TestResponse) -> dict[str, list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["result"] is False, body
    assert set(body) == {"result", "errors"}, body
    errors: dict[str, list[str]] = body["errors"]
    return errors


# One app for the whole module: building an app creates and drops every table, which would cost
# more than the request each case sends. The data is only read; every test registers its own
# action under a fresh name and checks the calls of that action only.


@pytest.fixture(scope="module")
def flex() -> FlexActions:
    return FlexActions()


@pytest.fixture(scope="module")
def app(flex: FlexActions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path_factory.mktemp("fields")),
        FLEXACTIONS_TOKEN=TOKEN,
    )
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    with app.app_context():
        db.create_all()
        db.session.add_all(
            [
                User(id=1, name="ann"),
                User(id=2, name="bob"),
                Account(id=1, balance=Decimal("0")),
                Tag(code="red", label="Red"),
                Tag(code="7", label="Seven"),
                Device(id=DEVICE, name="phone"),
                Order(id=BIG, total=Decimal("1.00"), refunded=Decimal("0")),
            ]
        )
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


# One field at a time, through a common action


def test_the_sixteen_types_are_all_covered() -> None:
    assert set(FIELD_TYPES) == set(ff.FIELD_TYPES)
    for cases in (GOOD, BAD):
        covered = {DECLARATIONS[case.values[0]]["field"] for case in cases}
        assert covered == set(ff.FIELD_TYPES)


@pytest.mark.parametrize(("field", "wire", "expected"), GOOD)
def test_good_value_reaches_the_handler_converted(
    flex: FlexActions, messages: Messages, field: str, wire: Any, expected: Any
) -> None:
    action = probe(flex, {"value": DECLARATIONS[field]}, required=frozenset({"value"}))

    response = send(messages, action.name, {"value": wire})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": True}
    assert len(action.calls) == 1
    assert list(action.calls[0]) == ["value"]
    if field == "JSONField":
        assert_same_json(action.calls[0]["value"], expected)
    else:
        assert_same(action.calls[0]["value"], expected)


def test_json_field_numbers_reach_the_handler_as_plain_floats(
    flex: FlexActions, messages: Messages
) -> None:
    action = probe(flex, {"value": DECLARATIONS["JSONField"]})

    send(messages, action.name, {"value": {"a": [1.5, {"b": 2.25}], "c": 3}})

    value = action.calls[0]["value"]
    assert value == {"a": [1.5, {"b": 2.25}], "c": 3}
    assert type(value["a"][0]) is float
    assert type(value["a"][1]["b"]) is float


@pytest.mark.parametrize(("field", "wire", "message"), BAD)
def test_bad_value_is_a_field_error_and_nothing_runs(
    flex: FlexActions, messages: Messages, field: str, wire: Any, message: Any
) -> None:
    action = probe(flex, {"value": DECLARATIONS[field]})

    response = send(messages, action.name, {"value": wire})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": False, "errors": {"value": [message]}}
    assert action.calls == []


# Not given: null, "" and absent

NOT_GIVEN = {"null": {"value": None}, "absent": {}, "empty string": {"value": ""}}


@pytest.mark.parametrize("field", FIELD_TYPES)
@pytest.mark.parametrize("how", list(NOT_GIVEN))
def test_required_param_not_given(
    flex: FlexActions, messages: Messages, field: str, how: str
) -> None:
    action = probe(flex, {"value": DECLARATIONS[field]}, required=frozenset({"value"}))

    response = send(messages, action.name, NOT_GIVEN[how])

    if how == "empty string" and field in TEXT_TYPES:
        assert response.get_json() == {"result": True}
        assert action.calls == [{"value": ""}]
    else:
        assert field_errors(response) == {"value": [MISSING]}
        assert action.calls == []


@pytest.mark.parametrize("field", FIELD_TYPES)
@pytest.mark.parametrize("how", list(NOT_GIVEN))
def test_optional_param_not_given_is_absent_from_params(
    flex: FlexActions, messages: Messages, field: str, how: str
) -> None:
    action = probe(
        flex,
        {"given": DECLARATIONS[field], "value": DECLARATIONS[field]},
        required=frozenset({"given"}),
    )
    wire, expected = SAMPLE[field]

    response = send(messages, action.name, {"given": wire, **NOT_GIVEN[how]})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": True}
    assert len(action.calls) == 1
    if how == "empty string" and field in TEXT_TYPES:
        assert list(action.calls[0]) == ["given", "value"]
        assert_same(action.calls[0]["value"], "")
    else:
        assert list(action.calls[0]) == ["given"]
    if field == "JSONField":
        assert_same_json(action.calls[0]["given"], expected)
    else:
        assert_same(action.calls[0]["given"], expected)


def test_unknown_keys_are_ignored(flex: FlexActions, messages: Messages) -> None:
    action = probe(flex, {"value": DECLARATIONS["IntegerField"]})

    response = send(
        messages,
        action.name,
        {"value": "5", "Value": "x", "other": {"deep": [1]}, "ids": [1], "inverseIds": True},
    )

    assert response.get_json() == {"result": True}
    assert action.calls == [{"value": 5}]


def test_no_user_params_at_all(flex: FlexActions, messages: Messages) -> None:
    action = probe(flex, {"value": DECLARATIONS["IntegerField"]})

    assert messages.execute(action.name).get_json() == {"result": True}
    assert messages.execute(action.name, params=None).get_json() == {"result": True}
    assert messages.execute(action.name, params={}).get_json() == {"result": True}
    assert messages.execute(action.name, params="{}").get_json() == {"result": True}
    assert action.calls == [{}, {}, {}, {}]


def test_user_params_as_a_json_string_of_an_object(flex: FlexActions, messages: Messages) -> None:
    action = probe(
        flex,
        {"number": DECLARATIONS["IntegerField"], "amount": DECLARATIONS["DecimalField"]},
        required=frozenset({"number"}),
    )

    response = messages.execute(
        action.name, params='{"number": "7", "amount": 12.345678901234567890, "skip": null}'
    )
    assert response.get_json() == {"result": True}
    assert action.calls == [{"number": 7, "amount": Decimal("12.345678901234567890")}]
    assert_same(action.calls[0]["amount"], Decimal("12.345678901234567890"))

    response = messages.execute(action.name, params='{"number": "x"}')
    assert field_errors(response) == {"number": ["Not a valid integer."]}
    response = messages.execute(action.name, params='{"amount": ""}')
    assert field_errors(response) == {"number": [MISSING]}
    assert len(action.calls) == 1


ROOT_PARAMS_NOT_OBJECT = "params.params must be an object of param names to values."
STRING_PARAMS_NOT_OBJECT = "params.params must be a JSON object."


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param([{"value": 1}], ROOT_PARAMS_NOT_OBJECT, id="list"),
        pytest.param([], ROOT_PARAMS_NOT_OBJECT, id="empty list"),
        pytest.param(5, ROOT_PARAMS_NOT_OBJECT, id="number"),
        pytest.param(True, ROOT_PARAMS_NOT_OBJECT, id="true"),
        pytest.param('[{"value": 1}]', STRING_PARAMS_NOT_OBJECT, id="string of a list"),
        pytest.param('"text"', STRING_PARAMS_NOT_OBJECT, id="string of a string"),
        pytest.param("null", STRING_PARAMS_NOT_OBJECT, id="string of null"),
        pytest.param("not json", Matches(r"params\.params is not valid JSON: .+"), id="not json"),
        pytest.param('{"value": NaN}', Matches(r"params\.params is not valid JSON: .+"), id="NaN"),
        pytest.param(
            '{"value": 1e400}', Matches(r"params\.params is not valid JSON: .+"), id="1e400"
        ),
    ],
)
def test_user_params_that_are_not_an_object_are_a_protocol_error(
    flex: FlexActions, messages: Messages, params: Any, message: Any
) -> None:
    action = probe(flex, {"value": DECLARATIONS["IntegerField"]})

    response = messages.execute(action.name, params=params)

    assert response.status_code == 400
    assert response.get_json() == {
        "result": False,
        "errors": {"non_field_errors": [message]},
        "detail": message,
    }
    assert action.calls == []


# All sixteen at once, through a collection action


def test_all_sixteen_good_values_at_once_on_a_collection_action(
    flex: FlexActions, messages: Messages
) -> None:
    action = probe(flex, {field: DECLARATIONS[field] for field in FIELD_TYPES}, model=Order)

    response = send(
        messages, action.name, {field: SAMPLE[field][0] for field in FIELD_TYPES}, model="orders"
    )

    assert response.get_json() == {"result": True}, response.get_json()
    assert len(action.calls) == 1
    model, params = action.calls[0]
    assert model is Order
    assert list(params) == FIELD_TYPES
    for field in FIELD_TYPES:
        if field == "JSONField":
            assert_same_json(params[field], SAMPLE[field][1])
        else:
            assert_same(params[field], SAMPLE[field][1])


def test_all_sixteen_bad_values_at_once_are_reported_together(
    flex: FlexActions, messages: Messages
) -> None:
    action = probe(flex, {field: DECLARATIONS[field] for field in FIELD_TYPES}, model=Order)
    values: dict[str, Any] = {field: [1] for field in FIELD_TYPES}
    values["JSONField"] = ["\x00"]
    values["ForeignKey"] = 404

    response = send(messages, action.name, values, model="orders")

    expected = {field: [INVALID.get(field)] for field in FIELD_TYPES}
    expected["JSONField"] = [NUL]
    expected["ForeignKey"] = ["No record of users has the id 404."]
    assert field_errors(response) == expected
    assert action.calls == []


def test_bad_params_on_a_record_action_change_nothing(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    calls: list[Any] = []

    @flex.action(
        Order,
        for_instance=True,
        name="refund_with_buyer",
        params=[
            {"name": "amount", "field": "DecimalField", "required": True},
            {"name": "buyer", "field": "ForeignKey", "params": {"related_model": {"model": User}}},
        ],
    )
    def refund(order: Order, params: dict[str, Any]) -> None:
        calls.append(params)
        order.refunded = params["amount"]

    response = messages.execute(
        "refund_with_buyer", "orders", id=BIG, params={"amount": "1e500", "buyer": 3}
    )

    assert field_errors(response) == {
        "amount": [DECIMAL_RANGE],
        "buyer": ["No record of users has the id 3."],
    }
    assert calls == []
    with app.app_context():
        assert db.session.get(Order, BIG).refunded == 0


# A marshmallow Schema subclass as params


class TransferSchema(Schema):
    amount = ff.Decimal(required=True, metadata={"label": "Amount"})
    account = ff.ForeignKey("shop;account", required=True)
    owner = ff.ForeignKey(User)
    reason = fields.String(metadata={"field": "TextField"})
    title = fields.String()
    notify = fields.Boolean()
    count = fields.Integer(data_key="howMany")
    when = fields.DateTime()
    day = fields.Date()
    colour = ff.Select([{"value": "red", "name": "Red"}, {"value": "blue", "name": "Blue"}])
    extra = fields.Dict()
    seen = ff.Timestamp()

    @validates_schema
    def check_reason(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("amount", 0) > 100 and not data.get("reason"):
            raise ValidationError("Give a reason for an amount over 100.")


@pytest.fixture
def transfer(flex: FlexActions) -> Probe:
    action = Probe(f"transfer{next(_probe_numbers)}")

    @flex.action(Account, name=action.name, params=TransferSchema)
    def transfer(model: type[Any], params: dict[str, Any]) -> None:
        assert model is Account
        action.calls.append({key: snapshot(value) for key, value in params.items()})

    return action


def test_schema_action_good_values(messages: Messages, transfer: Probe) -> None:
    values = {
        "amount": Raw("12.345678901234567890"),
        "account": "1",
        "owner": 2,
        "reason": "",
        "title": "",
        "notify": True,
        "howMany": "3",
        "when": "2024-05-01T10:30:00+00:00",
        "day": "2024-05-01",
        "colour": "blue",
        "extra": {"a": [1]},
        "seen": 0,
        "junk": "ignored",
    }

    response = send(messages, transfer.name, values, model="shop;account")

    assert response.get_json() == {"result": True}, response.get_json()
    assert transfer.calls == [
        {
            "amount": Decimal("12.345678901234567890"),
            "account": Row(Account, 1),
            "owner": Row(User, 2),
            "reason": "",
            "title": "",
            "notify": True,
            "count": 3,
            "when": dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
            "day": dt.date(2024, 5, 1),
            "colour": "blue",
            "extra": {"a": [1]},
            "seen": dt.datetime(1970, 1, 1, tzinfo=UTC),
        }
    ]
    assert_same(transfer.calls[0]["amount"], Decimal("12.345678901234567890"))
    assert_same(transfer.calls[0]["seen"], dt.datetime(1970, 1, 1, tzinfo=UTC))
    assert_same(transfer.calls[0]["when"], dt.datetime(2024, 5, 1, 10, 30, tzinfo=UTC))


def test_schema_action_not_given_values(messages: Messages, transfer: Probe) -> None:
    values = {
        "amount": "5",
        "account": 1,
        "owner": None,
        "notify": "",
        "howMany": None,
        "when": "",
        "colour": "",
        "seen": "",
        "extra": None,
    }

    response = send(messages, transfer.name, values, model="shop;account")

    assert response.get_json() == {"result": True}, response.get_json()
    assert transfer.calls == [{"amount": Decimal("5"), "account": Row(Account, 1)}]


def test_schema_action_bad_values(messages: Messages, transfer: Probe) -> None:
    values = {
        "amount": "NaN",
        "account": 99,
        "owner": "x",
        "notify": [],
        "howMany": "many",
        "day": "2024-02-30",
        "colour": "green",
        "seen": "1714559400",
    }

    response = send(messages, transfer.name, values, model="shop;account")

    assert field_errors(response) == {
        "amount": ["Not a valid decimal number."],
        "account": ["No record of shop;account has the id 99."],
        "owner": [BAD_ID],
        "notify": ["Not a valid boolean."],
        "howMany": ["Not a valid integer."],
        "day": ["Not a valid date."],
        "colour": ["Not one of the allowed options: 'red', 'blue'."],
        "seen": ["Not a valid Unix timestamp in seconds."],
    }
    assert transfer.calls == []


def test_schema_action_missing_required_and_schema_errors(
    messages: Messages, transfer: Probe
) -> None:
    response = send(messages, transfer.name, {"amount": None}, model="shop;account")
    assert field_errors(response) == {"amount": [MISSING], "account": [MISSING]}

    response = send(messages, transfer.name, {"amount": "500", "account": 1}, model="shop;account")
    assert field_errors(response) == {"non_field_errors": ["Give a reason for an amount over 100."]}
    assert transfer.calls == []

    response = send(
        messages,
        transfer.name,
        {"amount": "500", "account": 1, "reason": "Refund"},
        model="shop;account",
    )
    assert response.get_json() == {"result": True}
    assert len(transfer.calls) == 1


# Direct unit tests, for values a JSON request cannot carry


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (1.5, Decimal("1.5")),
        (1e-07, Decimal("1E-7")),
        (123456.789, Decimal("123456.789")),
    ],
)
def test_decimal_given_a_plain_float_keeps_its_shortest_repr(
    value: float, expected: Decimal
) -> None:
    assert_same(ff.Decimal().deserialize(value), expected)


@pytest.mark.parametrize(
    "field",
    [ff.Decimal(), ff.Integer(), ff.Float(), ff.Timestamp(), ff.Boolean(), ff.Char()],
    ids=lambda field: type(field).__name__,
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_python_floats_are_refused(field: Any, value: float) -> None:
    with pytest.raises(ValidationError):
        field.deserialize(value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (ff.Decimal(), Decimal("1.5")),
        (ff.Decimal(), Decimal("NaN")),
        (ff.DateTime(), dt.datetime(2024, 5, 1)),
        (ff.Date(), dt.date(2024, 5, 1)),
        (ff.Time(), dt.time(10, 30)),
        (ff.Integer(), Decimal("1")),
        (ff.Float(), Decimal("1.5")),
        (ff.Char(), b"bytes"),
        (ff.Translatable(), {"en": b"bytes"}),
    ],
    ids=lambda item: type(item).__name__,
)
def test_python_objects_that_json_cannot_carry_are_refused(field: Any, value: Any) -> None:
    with pytest.raises(ValidationError):
        field.deserialize(value)


def test_a_foreign_key_to_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        ff.ForeignKey("")
    assert str(raised.value) == "ForeignKey needs a related model: a model class or wire name."


def test_a_foreign_key_loaded_outside_a_run_says_how_to_send_it() -> None:
    """Its row is loaded through the run's session and row scopes, which only a run has."""
    with pytest.raises(RuntimeError) as raised:
        ff.ForeignKey(User).deserialize(1)
    assert str(raised.value) == (
        "A ForeignKey param loads its row only while a Flex action runs: send the values "
        "through the Messages URL, the action's route or the flex_client test fixture rather "
        "than loading the params schema yourself."
    )


def test_json_field_refuses_nul_deep_inside() -> None:
    deep: Any = "\x00"
    for _ in range(50):
        deep = {"k": [deep]}
    with pytest.raises(ValidationError, match="NUL"):
        ff.JSON().deserialize(deep)
