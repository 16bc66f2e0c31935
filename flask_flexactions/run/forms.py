"""The form of a run: the defaults of the params the client left out, and the values of
dynamic SelectFields checked against the options computed for this run's rows."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ..declare.actions import Action, ActionKind
from ..declare.defaults import DEFAULT_KEY, has_default, to_wire
from ..declare.options import choose
from ..errors import ActionError, ErrorDict, validation_messages


def complete_params(
    action: Action, model: str | None, arguments: tuple[Any, ...], values: dict[str, Any]
) -> None:
    """After ``execute_action`` resolved the handler's ``arguments``: add the defaults of the
    params the client left out, then check every dynamic SelectField value against the options
    its function computes for these values and rows (``ActionError`` when it is not one)."""
    apply_defaults(action, arguments)
    dynamic = action.params.dynamic
    if not dynamic:
        return
    loaded: dict[str, Any] = arguments[-1]
    model_class = action.collection(model or "").model if action.collections else None
    if action.kind is ActionKind.BULK:
        rows = list(arguments[0])
    else:
        rows = [arguments[0]] if action.kind is ActionKind.RECORD else []
    errors: ErrorDict = {}
    for name, field in dynamic:
        key = field.attribute or name
        if key not in loaded:
            continue
        try:
            loaded[key] = choose(field.compute(values, model_class, rows, None), loaded[key])
        except ValidationError as error:
            errors[field.data_key or name] = validation_messages(error.messages).get(
                "non_field_errors", ["Not one of the allowed options."]
            )
    if errors:
        raise ActionError(errors=errors)


def apply_defaults(action: Action, arguments: tuple[Any, ...]) -> None:
    """Put the default of every param the client did not send into the handler's params
    (``arguments[-1]``), converted by its field like a sent value; a default that does not
    convert is a field error."""
    defaulted = action.params.defaulted
    if not defaulted:
        return
    loaded: dict[str, Any] = arguments[-1]
    row = arguments[0] if action.for_instance and not action.bulk else None
    errors: ErrorDict = {}
    for name, field in defaulted:
        key = field.attribute or name
        if key in loaded:
            continue
        wire_name = field.data_key or name
        default = field.metadata[DEFAULT_KEY]
        value = to_wire(default(row) if callable(default) else default)
        if value is None or (value == "" and wire_name in action.params.empty_is_missing):
            continue
        try:
            loaded[key] = field.deserialize(value)
        except ValidationError as error:
            for messages in validation_messages(error.messages).values():
                errors.setdefault(wire_name, []).extend(messages)
    if errors:
        raise ActionError(errors=errors)


def record_params(action: Action, row: Any) -> list[dict[str, Any]]:
    """The action's ``params`` list with every default computed from ``row`` filled in."""
    entries = []
    fields_ = action.params.schema.load_fields.values()
    for field, entry in zip(fields_, action.params.wire, strict=True):
        default = field.metadata.get(DEFAULT_KEY)
        if has_default(field) and callable(default) and row is not None:
            entry = {**entry, "default": to_wire(default(row))}
        entries.append(dict(entry))
    return entries
