"""An action's input form: declared as dicts or a marshmallow Schema, described and validated."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from marshmallow import EXCLUDE, Schema, fields

from .defaults import DEFAULT_KEY, has_default, wire_default
from .fields import FIELD_TYPES, TEXT_FIELD_TYPES, ForeignKey, Select, WireField, wire_type_of
from .options import DynamicSelect

#: Keys a param declaration in the list-of-dicts format may have.
PARAM_KEYS = frozenset(
    {"name", "field", "required", "params", "label", "verbose_name", "description", "secret"}
) | {DEFAULT_KEY}


@dataclass(frozen=True)
class ParamSpec:
    """The validated input form of one action.

    ``schema`` loads the user's values; ``wire`` is the ``params`` list of ``get_action_list``;
    ``empty_is_missing`` names the params whose ``""`` means "not given" (every non-text type).
    """

    schema: Schema
    wire: tuple[dict[str, Any], ...]
    empty_is_missing: frozenset[str]

    @cached_property
    def names(self) -> frozenset[str]:
        """The wire names of the declared params."""
        return frozenset(param["name"] for param in self.wire)

    @cached_property
    def secret_names(self) -> frozenset[str]:
        """The wire names of the params marked secret (``"secret": True``, or
        ``metadata={"secret": True}`` on a Schema field): the audit log never holds them."""
        return frozenset(
            field.data_key or name
            for name, field in self.schema.load_fields.items()
            if field.metadata.get("secret") is True
        )

    @cached_property
    def defaulted(self) -> tuple[tuple[str, fields.Field[Any]], ...]:
        """The params that declare a default, as ``(name, field)`` pairs."""
        return tuple(
            (name, field) for name, field in self.schema.load_fields.items() if has_default(field)
        )

    @cached_property
    def dynamic(self) -> tuple[tuple[str, DynamicSelect], ...]:
        """The dynamic SelectFields, whose options are computed for each run."""
        return tuple(
            (name, field)
            for name, field in self.schema.load_fields.items()
            if isinstance(field, DynamicSelect)
        )

    def load(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and convert the user's values, or raise ``marshmallow.ValidationError``.

        ``null`` means "not given", and so does ``""`` for non-text types; undeclared keys are
        ignored.
        """
        given = {
            key: value
            for key, value in values.items()
            if value is not None and not (value == "" and key in self.empty_is_missing)
        }
        loaded: dict[str, Any] = self.schema.load(given, unknown=EXCLUDE)
        return loaded


def build_params(
    params: Iterable[Mapping[str, Any]] | type[Schema] | None, action: str
) -> ParamSpec:
    """Turn the ``params=`` of an action into a :class:`ParamSpec`, or raise naming the fix."""
    if params is None:
        schema: Schema = Schema.from_dict({}, name=f"{action}Params")()
    elif isinstance(params, type) and issubclass(params, Schema):
        schema = params()
    elif isinstance(params, Schema):
        raise TypeError(
            f"Action {action!r}: pass the Schema class, not an instance: params=MySchema"
        )
    elif isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Iterable):
        raise TypeError(
            f"Action {action!r}: params must be a list of param dicts like "
            '[{"name": "amount", "field": "DecimalField", "required": True}] or a marshmallow '
            f"Schema subclass, got {type(params).__name__}."
        )
    else:
        declared = {}
        for declaration in params:
            name, field = _field_from_dict(declaration, action)
            if name in declared:
                raise ValueError(f"Action {action!r} declares the param {name!r} twice.")
            declared[name] = field
        schema = Schema.from_dict(declared, name=f"{action}Params")()
    wire = tuple(_describe(name, field, action) for name, field in schema.load_fields.items())
    empty_is_missing = frozenset(p["name"] for p in wire if p["field"] not in TEXT_FIELD_TYPES)
    return ParamSpec(schema=schema, wire=wire, empty_is_missing=empty_is_missing)


def _field_from_dict(declaration: Mapping[str, Any], action: str) -> tuple[str, fields.Field[Any]]:
    if not isinstance(declaration, Mapping):
        raise TypeError(f"Action {action!r}: each param must be a dict, got {declaration!r}.")
    name = declaration.get("name")
    where = f"Action {action!r}, param {name!r}"
    if not isinstance(name, str) or not name:
        raise ValueError(f"Action {action!r}: every param needs a non-empty string 'name'.")
    unknown = set(declaration) - PARAM_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(PARAM_KEYS)}.")
    wire_type = declaration.get("field")
    if wire_type not in FIELD_TYPES:
        raise ValueError(
            f"{where}: unknown field type {wire_type!r}; "
            f"use one of {', '.join(sorted(FIELD_TYPES))}."
        )
    required = declaration.get("required", False)
    secret = declaration.get("secret", False)
    if not isinstance(required, bool):
        raise TypeError(f"{where}: 'required' must be True or False.")
    if not isinstance(secret, bool):
        raise TypeError(f"{where}: 'secret' must be True or False.")
    options = dict(declaration.get("params") or {})
    metadata: dict[str, Any] = {
        "label": declaration.get("label") or declaration.get("verbose_name"),
        "description": declaration.get("description"),
        "secret": secret,
    }
    if DEFAULT_KEY in declaration:
        metadata[DEFAULT_KEY] = declaration[DEFAULT_KEY]
    kwargs: dict[str, Any] = {"required": required, "metadata": metadata}
    if wire_type == "ForeignKey":
        related = options.pop("related_model", None)
        model = related.get("model") if isinstance(related, Mapping) else related
        if not model:
            raise ValueError(
                f"{where}: a ForeignKey needs its related model: "
                "params={'related_model': {'model': Account}} (a model class or wire name)."
            )
        field: fields.Field[Any] = ForeignKey(model, **kwargs)
    elif wire_type == "SelectField" and callable(options.get("options")):
        field = DynamicSelect(options.pop("options"), **kwargs)
    elif wire_type == "SelectField":
        if not isinstance(options.get("options"), list):
            raise ValueError(
                f"{where}: a SelectField needs its choices: "
                "params={'options': [{'value': 'a', 'name': 'A'}, ...]}."
            )
        try:
            field = Select(options.pop("options"), **kwargs)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    else:
        field = FIELD_TYPES[wire_type](**kwargs)
    try:
        json.dumps(options)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: field params must be JSON values ({error}).") from error
    metadata["params"] = options
    return name, field


def _describe(name: str, field: fields.Field[Any], action: str) -> dict[str, Any]:
    """One entry of an action's ``params`` list in ``get_action_list``."""
    try:
        wire_type = wire_type_of(field)
    except TypeError as error:
        raise TypeError(f"Action {action!r}, param {name!r}: {error}") from None
    wire_params = dict(field.metadata.get("params") or {})
    if isinstance(field, WireField):
        wire_params.update(field.wire_params())
    entry: dict[str, Any] = {
        "name": field.data_key or name,
        "field": wire_type,
        "required": bool(field.required),
        "params": wire_params,
    }
    entry.update(wire_default(field, f"Action {action!r}, param {entry['name']!r}"))
    label = field.metadata.get("label")
    if label:
        entry["label"] = entry["verbose_name"] = str(label)
    description = field.metadata.get("description")
    if description:
        entry["description"] = str(description)
    return entry
