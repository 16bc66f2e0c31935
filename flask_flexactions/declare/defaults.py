"""Param defaults: a JSON value, or a function of the record for record actions."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields

from ..errors import validation_messages
from .fields import ForeignKey

#: Where a param's default is kept: the ``"default"`` key of a param dict, or
#: ``metadata={"default": ...}`` on a field of a Schema.
DEFAULT_KEY = "default"


def to_wire(value: Any) -> Any:
    """``value`` as JSON: decimals as text, dates and times in ISO 8601, UUIDs as text.

    Anything else that is not JSON is a ``TypeError``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{value!r} is not a finite number")
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TypeError(f"{value!r} is not a finite number")
        return str(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: to_wire(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def has_default(field: fields.Field[Any]) -> bool:
    """Whether the param declares a default."""
    return DEFAULT_KEY in field.metadata


def wire_default(field: fields.Field[Any], where: str) -> dict[str, Any]:
    """The keys a param's ``get_action_list`` entry gets from its default.

    A JSON default is ``{"default": value}``; a function of the record is
    ``{"default": None, "default_from_record": True}`` (the client asks ``get_action_params``).
    """
    if not has_default(field):
        return {}
    default = field.metadata[DEFAULT_KEY]
    if callable(default):
        return {"default": None, "default_from_record": True}
    try:
        return {"default": to_wire(default)}
    except TypeError as error:
        raise TypeError(
            f"{where}: the default must be a JSON value ({error}), or a function of the record."
        ) from None


def check_defaults(
    action_name: str, params: Mapping[str, fields.Field[Any]], record_action: bool
) -> None:
    """Refuse, naming the fix, a default that could never be used as declared.

    :param params: the declared fields by name. :param record_action: whether the action
        runs on one record (a default computed from the record needs one).
    """
    for name, field in params.items():
        if not has_default(field):
            continue
        where = f"Action {action_name!r}, param {field.data_key or name!r}"
        if field.required:
            raise ValueError(
                f"{where}: a param with a default is never missing; drop required=True."
            )
        default = field.metadata[DEFAULT_KEY]
        if callable(default):
            if not record_action:
                raise ValueError(
                    f"{where}: a default computed from the record needs a record action "
                    "(for_instance=True without bulk); give a JSON value instead."
                )
            continue
        if default is None or isinstance(field, ForeignKey):
            continue  # a ForeignKey default is checked against the database when used
        try:
            field.deserialize(to_wire(default))
        except ValidationError as error:
            raise ValueError(
                f"{where}: the default {default!r} is not a valid value: "
                f"{'; '.join(m for ms in validation_messages(error.messages).values() for m in ms)}"
            ) from None
