"""JSON Schemas of actions: the request of each action, its answers, and stable operation names.

The OpenAPI document and the route of each action use them, and so can any door that
describes actions to its clients: an MCP tool's input schema is
:meth:`ActionSchemas.request_body`, its name :func:`operation_ids`, its output
:func:`answer_schema`. Every schema is JSON Schema 2020-12 (the dialect of OpenAPI 3.1) and
self-contained, without ``$ref``.

A schema accepts everything the server accepts, so that a request the schema refuses never
runs: ``null`` is "not given" for every optional param, and so is ``""`` for the non-text ones,
as on the Messages URL. The server refuses more than the schema can say (rows that must exist,
business rules, 64-character decimals): such a request answers ``result: false`` and writes
nothing.

Param fields are converted by apispec's marshmallow converter, taught the wire fields, so a
plain marshmallow field in a user's Schema keeps the conversion the Flask ecosystem knows
(``Length`` to ``maxLength``, ``OneOf`` to ``enum``, ``Email`` to ``format: email``).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import fields

from ..declare.actions import Action, ActionKind
from ..declare.defaults import DEFAULT_KEY
from ..declare.fields import (
    JSON,
    TEXT_FIELD_TYPES,
    Boolean,
    Char,
    Date,
    DateTime,
    Decimal,
    Float,
    ForeignKey,
    Integer,
    Select,
    Time,
    Timestamp,
    Translatable,
    WireField,
)
from ..declare.models import Collection, IntegerId, parse_str_id, parse_uuid_id
from ..declare.options import DynamicSelect
from ..run.approval_gate import MAX_TEXT as MAX_REASON
from ..run.jobs import STATES

if TYPE_CHECKING:
    from ..run.runtime import Runtime

__all__ = [
    "DEFAULT_FROM_RECORD_KEY",
    "DYNAMIC_OPTIONS_KEY",
    "OPENAPI_VERSION",
    "OPTIONS_KEY",
    "RELATED_COLLECTION_KEY",
    "ActionSchemas",
    "answer_schema",
    "error_schema",
    "operation_id",
    "operation_ids",
    "request_body_schema",
]

#: The OpenAPI version of the document; its schemas are JSON Schema 2020-12.
OPENAPI_VERSION = "3.1.0"
#: The extension key naming the collection a ForeignKey param points to.
RELATED_COLLECTION_KEY = "x-related-collection"
#: The extension key listing a SelectField's options as declared (``value``, ``name``, ...).
OPTIONS_KEY = "x-options"
#: The extension key of a SelectField whose options ``get_field_options`` computes.
DYNAMIC_OPTIONS_KEY = "x-dynamic-options"
#: The extension key of a param whose default the record gives (``get_action_params``).
DEFAULT_FROM_RECORD_KEY = "x-default-from-record"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The grammars of the wire fields' text forms (see declare/fields.py), anchored.
_INTEGER_TEXT = r"^[+-]?[0-9]+$"
_DECIMAL_TEXT = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_CLOCK = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
_TIME_TEXT = f"^{_CLOCK}$"
# ISO 8601 as the server reads it: RFC 3339's date-time, and also without seconds or offset.
_DATETIME_TEXT = (
    f"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[Tt ]{_CLOCK}([Zz]|[+-][0-9]{{2}}(:?[0-9]{{2}})?)?$"
)
_DIGITS = r"^[0-9]+$"
_DIGITS_LIST = r"^([0-9]+(,[0-9]+)*)?$"
_DECIMAL_MAX_CHARS = 64

#: What apispec's mapping gives each wire field: ``(type, format)``. The others get their
#: whole schema from :func:`_wire_properties`.
_WIRE_MAPPING: dict[type[fields.Field[Any]], tuple[str | None, str | None]] = {
    Boolean: ("boolean", None),
    Char: ("string", None),  # and its subclasses Text, Sql, Code
    Float: ("number", None),
    Timestamp: ("number", None),
    Date: ("string", "date"),
    # Not format date-time: RFC 3339 refuses what the server reads (10:30 without seconds).
    DateTime: ("string", None),
    Time: ("string", None),
    JSON: (None, None),
    Translatable: (None, None),
    Select: (None, None),
    DynamicSelect: (None, None),
    ForeignKey: (None, None),
    Integer: (None, None),
    Decimal: (None, None),
}

#: What a param's description says of its wire type, after the declared description.
_HINTS = {
    "DecimalField": "A decimal number: a string keeps every digit, a number is read as written.",
    "IntegerField": "An integer, or its digits as a string (signed 64-bit).",
    "TimestampField": "Unix time in seconds.",
    "DateTimeField": (
        "An ISO 8601 date and time, e.g. 2024-05-01T10:30:00Z; seconds and the offset may be "
        "left out (without an offset it is a local time)."
    ),
    "DateField": "A date, YYYY-MM-DD.",
    "TimeField": "A time of day, HH:MM or HH:MM:SS.",
    "TranslatableField": "A text, or an object of language code to text.",
    "JSONField": "Any JSON value.",
}
_DYNAMIC_HINT = (
    "One of the options the Messages URL's get_field_options answers for this form; "
    "they depend on the other values and the selected records."
)
# Keywords under which "" may fail a string schema.
_STRING_CONSTRAINTS = ("pattern", "format", "minLength", "allOf")
# Keys that describe a param rather than constrain its value; they stay on the outside when
# an optional param's schema is wrapped.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "readOnly", "writeOnly", "examples", "deprecated"}
)


def _inline(schema: Any) -> None:
    """apispec's schema name resolver: nested schemas are written in place, not as ``$ref``."""
    return None


class ActionSchemas:
    """The JSON Schemas of one app's actions.

    :param runtime: the app's run layer: it finds the collections ForeignKey params point to
        and knows the limits (``FLEXACTIONS_MAX_IDS``) and the width of integer keys. Use
        the schemas inside an app context.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._converter = _wire_converter(self)

    def request_body(self, action: Action, collection: Collection | None) -> dict[str, Any]:
        """The JSON body the route of ``action`` on ``collection`` (None for a common
        action) takes: the selection (``id``, or ``ids`` and ``inverseIds``), the input
        ``values`` and ``dry_run``. Other keys are refused."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        if action.kind is ActionKind.RECORD and collection is not None:
            properties["id"] = {
                **self.key(collection),
                "description": f"The primary key of the {collection.name} record to run on.",
            }
            required.append("id")
        elif action.kind is ActionKind.BULK and collection is not None:
            properties["ids"] = self.ids(collection)
            properties["inverseIds"] = {
                "type": ["boolean", "null"],
                "description": "True runs on every record of the collection except ids.",
            }
        values = self.values(action)
        properties["values"] = values
        if values.get("required"):
            required.append("values")
        properties["dry_run"] = {
            "type": ["boolean", "null"],
            "description": (
                "True checks the request and answers what the action would do, writing nothing."
            ),
        }
        if action.approval is not None:
            properties["reason"] = {
                "type": ["string", "null"],
                "maxLength": MAX_REASON,
                "description": "Why you ask: the approvers read it. The action needs other "
                "people's approval before it runs: the answer gives the request's id.",
            }
            if action.approval.reason:
                required.append("reason")
        body: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            body["required"] = required
        return body

    def values(self, action: Action) -> dict[str, Any]:
        """The schema of ``action``'s input values: one property per param, by wire name.

        ``null`` stands for no values; keys that name no param are ignored, as on the
        Messages URL.
        """
        entries = {entry["name"]: entry for entry in action.params.wire}
        properties: dict[str, Any] = {}
        for name, field in action.params.schema.load_fields.items():
            entry = entries[field.data_key or name]
            properties[entry["name"]] = self.param(field, entry)
        schema: dict[str, Any] = {
            "type": ["object", "null"],
            "description": "The input values, by param name.",
            "properties": properties,
        }
        required = [entry["name"] for entry in action.params.wire if entry["required"]]
        if required:
            schema["required"] = required
        return schema

    def param(self, field: fields.Field[Any], entry: dict[str, Any]) -> dict[str, Any]:
        """The schema of one param, from its field and its ``get_action_list`` entry."""
        prop = self._converter.field2property(field)
        for key, value in list(prop.items()):
            if value is None:
                del prop[key]  # apispec copies metadata such as a missing description
        if DEFAULT_KEY in field.metadata:
            prop.pop("default", None)
            if entry.get("default_from_record"):
                prop[DEFAULT_FROM_RECORD_KEY] = True
            elif entry.get("default") is not None:
                prop["default"] = entry["default"]
        if entry.get("label"):
            prop["title"] = entry["label"]
        description = _description(field, entry)
        if description:
            prop["description"] = description
        else:
            prop.pop("description", None)
        if field.metadata.get("secret") is True:
            prop["writeOnly"] = True
            if "string" in _types(prop):
                prop["format"] = "password"
        first = {key: prop.pop(key) for key in ("title", "description") if key in prop}
        prop = {**first, **prop}
        if entry["required"]:
            return prop
        return _optional(prop, text=entry["field"] in TEXT_FIELD_TYPES)

    def key(self, collection: Collection) -> dict[str, Any]:
        """The schema of one primary key of ``collection``, as ids and ForeignKey values
        are sent: integer keys also as a string of digits, text keys also as a number."""
        parser = collection.id_parser
        if isinstance(parser, IntegerId):
            bits = 64 if self.runtime.wide_integer_ids else parser.bits
            schema: dict[str, Any] = {
                "type": ["integer", "string"],
                "minimum": -(2 ** (bits - 1)),
                "maximum": 2 ** (bits - 1) - 1,
                "pattern": _DIGITS,
            }
            if bits in (32, 64):
                schema["format"] = f"int{bits}"
            return schema
        if parser is parse_uuid_id:
            return {"type": "string", "format": "uuid"}
        if parser is parse_str_id:
            return {"type": ["string", "integer"], "minLength": 1}
        return {}

    def ids(self, collection: Collection) -> dict[str, Any]:
        """The schema of the ``ids`` of a bulk action: an array of keys, a comma-separated
        string of them, or one integer key."""
        key = self.key(collection)
        forms: list[dict[str, Any]] = [
            {"type": "array", "items": key, "maxItems": self.runtime.settings.max_ids},
        ]
        if isinstance(collection.id_parser, IntegerId):
            forms.append({"type": "string", "pattern": _DIGITS_LIST})
            forms.append({k: v for k, v in key.items() if k != "pattern"} | {"type": "integer"})
        else:
            forms.append({"type": "string"})
            if collection.id_parser is parse_str_id:
                forms.append({"type": "integer"})
        return {
            "anyOf": forms,
            "description": (
                f"The primary keys of the {collection.name} records to run on, in the order "
                "the action receives them; duplicates are dropped."
            ),
        }

    def related_properties(self, field: ForeignKey) -> dict[str, Any]:
        """A ForeignKey param: the related key's schema and the collection's name."""
        collection = self.runtime.related_collection(field)
        return {**self.key(collection), RELATED_COLLECTION_KEY: collection.name}


def request_body_schema(
    runtime: Runtime, action: Action, collection: Collection | None
) -> dict[str, Any]:
    """The JSON Schema of the body of ``action`` on ``collection`` (None for a common
    action): :meth:`ActionSchemas.request_body` in one call. To describe many actions, build
    one :class:`ActionSchemas` and ask it for each."""
    return ActionSchemas(runtime).request_body(action, collection)


def _wire_converter(schemas: ActionSchemas) -> OpenAPIConverter:
    """apispec's marshmallow converter for OpenAPI 3.1, taught the wire fields."""
    # apispec documents a resolver returning None (inline the schema) but types it as str.
    plugin = MarshmallowPlugin(schema_name_resolver=_inline)  # type: ignore[arg-type]
    APISpec("flexactions", "1", OPENAPI_VERSION, plugins=[plugin])
    converter = plugin.converter
    if converter is None:  # init_spec sets it
        raise RuntimeError("apispec's marshmallow plugin has no converter.")
    # apispec keeps its field mapping in a class attribute: map our fields on a copy, so that
    # no other apispec user in the process sees them.
    converter.field_mapping = dict(converter.field_mapping)
    for cls, (type_, format_) in _WIRE_MAPPING.items():
        plugin.map_to_openapi_type(cls, type_, format_)  # type: ignore[no-untyped-call]

    def flexactions_wire_properties(
        converter: OpenAPIConverter, field: fields.Field[Any], **kwargs: Any
    ) -> dict[str, Any]:
        return _wire_properties(field, schemas)

    converter.add_attribute_function(flexactions_wire_properties)  # type: ignore[no-untyped-call]
    return converter


def _wire_properties(field: fields.Field[Any], schemas: ActionSchemas) -> dict[str, Any]:
    """The JSON Schema keywords of a wire field that apispec's ``(type, format)`` mapping
    cannot give; an apispec attribute function, so its keys win over the built-in ones."""
    if isinstance(field, Select):
        return {"enum": _choices(field.options), OPTIONS_KEY: copy.deepcopy(field.options)}
    if isinstance(field, DynamicSelect):
        return {"type": ["string", "number", "boolean"], DYNAMIC_OPTIONS_KEY: True}
    if isinstance(field, ForeignKey):
        return schemas.related_properties(field)
    if isinstance(field, Integer):
        return {
            "type": ["integer", "string"],
            "format": "int64",
            "minimum": _INT64_MIN,
            "maximum": _INT64_MAX,
            "pattern": _INTEGER_TEXT,
        }
    if isinstance(field, Decimal):
        return {
            "type": ["string", "number"],
            "format": "decimal",
            "pattern": _DECIMAL_TEXT,
            "maxLength": _DECIMAL_MAX_CHARS,
        }
    if isinstance(field, Time):
        return {"pattern": _TIME_TEXT}
    if isinstance(field, DateTime):
        return {"pattern": _DATETIME_TEXT}
    if isinstance(field, Translatable):
        return {"type": ["string", "object"], "additionalProperties": {"type": "string"}}
    return {}


def _choices(options: list[dict[str, Any]]) -> list[Any]:
    """The values a SelectField accepts: each option's value, and a number's decimal text."""
    choices: list[Any] = []
    seen: set[tuple[str, Any]] = set()
    texts = [str(o["value"]) for o in options if _is_number(o["value"])]
    for value in [option["value"] for option in options] + texts:
        kind = "bool" if isinstance(value, bool) else "number" if _is_number(value) else "text"
        if (kind, value) not in seen:
            seen.add((kind, value))
            choices.append(value)
    return choices


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else list(kind)


def _description(field: fields.Field[Any], entry: dict[str, Any]) -> str:
    parts = [str(entry["description"])] if entry.get("description") else []
    if isinstance(field, DynamicSelect):
        parts.append(_DYNAMIC_HINT)
    elif isinstance(field, ForeignKey):
        parts.append("The primary key of the related record.")
    elif isinstance(field, WireField) and entry["field"] in _HINTS:
        parts.append(_HINTS[entry["field"]])
    return " ".join(parts)


def _optional(prop: dict[str, Any], text: bool) -> dict[str, Any]:
    """The schema of an optional param: its value, or ``null`` ("not given"), or, for a type
    that is not text, ``""`` (also "not given", as the admin UI's empty inputs send it)."""
    outside = {k: v for k, v in prop.items() if k in _ANNOTATIONS or k.startswith("x-")}
    core = {k: v for k, v in prop.items() if k not in outside}
    absent: list[Any] = [None] if text else [None, ""]
    if not any(key in core for key in ("type", "enum", "const", "anyOf", "oneOf", "allOf")):
        return prop  # any value: null and "" already are
    types = _types(core)
    if "enum" in core:
        core["enum"] = core["enum"] + [value for value in absent if value not in core["enum"]]
        if types:
            core["type"] = types + [t for t in ("null", "string") if t not in types]
        return {**outside, **core}
    takes_empty = text or (
        "string" in types and not any(key in core for key in _STRING_CONSTRAINTS)
    )
    if types and takes_empty and not any(key in core for key in ("const", "anyOf", "oneOf")):
        core["type"] = types if "null" in types else [*types, "null"]
        return {**outside, **core}
    return {**outside, "anyOf": [core, {"enum": absent, "description": "Not given."}]}


def answer_schema() -> dict[str, Any]:
    """The JSON answer of a run (status 200): ``result``, and ``message``, ``html``,
    ``errors``, ``records`` (``atomic=False``), ``job`` (a background action) or ``dry_run``
    and ``count`` (a dry run), as the run gave them."""
    record = {
        "type": "object",
        "required": ["id", "result"],
        "properties": {
            "id": {"type": ["integer", "string"]},
            "result": {"type": "boolean"},
            "message": {"type": "string"},
            "html": {"type": "string"},
            "errors": _errors(),
        },
    }
    job = {
        "type": "object",
        "required": ["id", "state"],
        "properties": {
            "id": {"type": "string"},
            "state": {"enum": list(STATES)},
            "action": {"type": "string"},
            "model": {"type": ["string", "null"]},
            "progress": {
                "type": "object",
                "properties": {
                    "done": {"type": ["integer", "null"]},
                    "total": {"type": ["integer", "null"]},
                    "status": {"type": ["string", "null"]},
                },
            },
            "cancel_requested": {"type": "boolean"},
            "answer": {"type": "object"},
            "file": {"type": "object"},
        },
        "description": "The background job: ask the Messages URL's get_action_status for more.",
    }
    return {
        "type": "object",
        "required": ["result"],
        "properties": {
            "result": {
                "type": "boolean",
                "description": "False when the action refused or failed: see errors.",
            },
            "message": {"type": "string"},
            "html": {"type": "string", "description": "Markup to show as it is."},
            "errors": _errors(),
            "records": {
                "type": "array",
                "items": record,
                "description": "The outcome of each record (atomic=False).",
            },
            "job": job,
            "dry_run": {"type": "boolean"},
            "count": {"type": "integer", "minimum": 0},
        },
    }


def error_schema() -> dict[str, Any]:
    """The body of every error status: ``{"result": false, "errors": {...}, "detail": ...}``."""
    return {
        "type": "object",
        "required": ["result", "errors", "detail"],
        "properties": {
            "result": {"const": False},
            "errors": _errors(),
            "detail": {"type": "string", "description": "The first message."},
        },
    }


def _errors() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": "Messages by param name, or non_field_errors.",
    }


_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def operation_id(collection: str | None, action: str) -> str:
    """The name of an action on a collection: ``<collection>__<action>``, or ``<action>``
    for a common action, with every character outside ``[A-Za-z0-9_]`` replaced by ``_``.
    Use :func:`operation_ids` to name a set of operations without collisions."""
    raw = action if collection is None else f"{collection}__{action}"
    return _NOT_IDENTIFIER.sub("_", raw)


def operation_ids(
    operations: Iterable[tuple[str | None, str]],
) -> dict[tuple[str | None, str], str]:
    """A unique :func:`operation_id` for each ``(collection, action)`` pair.

    Pairs whose names collide all take ``_`` and the first 8 hex digits of the SHA-256 of
    ``collection/action`` (``action`` alone for a common action), so a name never depends on
    the order of registration. Name every registered operation, not only those one caller
    sees, so that a caller's names do not change with what other callers may run.
    """
    groups: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for pair in operations:
        groups[operation_id(*pair)].append(pair)
    names = {group[0]: base for base, group in groups.items() if len(group) == 1}
    taken = set(names.values())
    for base, group in groups.items():
        if len(group) == 1:
            continue
        for pair in group:
            raw = pair[1] if pair[0] is None else f"{pair[0]}/{pair[1]}"
            digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
            size = 8
            # A longer digest only if the short one lands on another operation's name.
            while f"{base}_{digest[:size]}" in taken and size < len(digest):
                size *= 2
            names[pair] = f"{base}_{digest[:size]}"
            taken.add(names[pair])
    return names
