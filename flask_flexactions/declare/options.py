"""SelectField params whose options a function computes from the form, the model and the rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import ValidationError

from .fields import Select, WireField, option_extras

#: A dynamic options function: ``fn(values, model, rows, search) -> [{"value", "name"}, ...]``;
#: an option may carry other keys with string values, such as ``"color": "red"``.
#: ``values`` are the form's current values as the client sent them (not validated), ``model``
#: the model class of the request (None for a common action), ``rows`` the selected rows (an
#: empty list when none are selected) and ``search`` the user's search text or None.
OptionsFunction = Callable[[dict[str, Any], Any, list[Any], "str | None"], Any]


class DynamicSelect(WireField):
    """``SelectField`` whose options come from ``options(values, model, rows, search)``.

    ``get_action_list`` shows it as ``"params": {"options": [], "dynamic": true}``; the client
    asks for the options with ``get_field_options``. ``execute_action`` calls the function again
    (with ``search=None``, so it must then return every valid option) and refuses a value that
    is not among them.
    """

    wire_type = "SelectField"
    default_error_messages = {"invalid": "Not a valid option: send a string, number or boolean."}

    def __init__(self, options: OptionsFunction, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(options):
            raise TypeError(
                "DynamicSelect needs a callable options(values, model, rows, search) returning "
                f'[{{"value": ..., "name": ...}}, ...]; got {options!r}.'
            )
        self.options_function = options

    def wire_params(self) -> dict[str, Any]:
        return {"options": [], "dynamic": True}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        # Membership is checked once the rows are loaded (see check_choices).
        if isinstance(value, bool) or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and math.isfinite(value):
            return value
        raise self.make_error("invalid")

    def compute(
        self, values: dict[str, Any], model: Any, rows: list[Any], search: str | None
    ) -> list[dict[str, Any]]:
        """The options for this form, checked; a ``TypeError`` when the function returns junk."""
        return normalize_options(self.options_function(values, model, rows, search))


def normalize_options(result: Any) -> list[dict[str, Any]]:
    """``result`` as a list of ``{"value", "name"}`` dicts, or a ``TypeError`` saying why not.

    Values must be strings, finite numbers or booleans; a missing ``name`` is the value's text.
    Other keys of an option (``"color"``) are kept when they and their values are strings.
    """
    if isinstance(result, (str, bytes, Mapping)) or not hasattr(result, "__iter__"):
        raise TypeError(
            f"An options function returned {type(result).__name__}; it must return a list of "
            '{"value": ..., "name": ...} dicts.'
        )
    options: list[dict[str, Any]] = []
    for option in result:
        if not isinstance(option, Mapping) or "value" not in option:
            raise TypeError(f'An option must be a dict with a "value"; got {option!r:.80}.')
        value = option["value"]
        plain = isinstance(value, (str, bool)) or (
            isinstance(value, (int, float)) and math.isfinite(value)
        )
        if not plain:
            raise TypeError(
                "An option value must be a string, a finite number or a boolean; "
                f"got {value!r:.80}."
            )
        name = option.get("name")
        try:
            extras = option_extras(option)
        except ValueError as error:
            raise TypeError(str(error)) from None
        options.append({"value": value, "name": str(value if name is None else name), **extras})
    return options


def choose(options: list[dict[str, Any]], value: Any) -> Any:
    """The option value ``value`` designates (``"2"`` designates ``2``), or ``ValidationError``."""
    if options:
        try:
            return Select(options).deserialize(value)
        except ValidationError:
            pass
    # Select's own message lists every choice; a computed list may be long.
    raise ValidationError("Not one of the allowed options.")
