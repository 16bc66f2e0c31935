"""Dynamic forms: the ``get_field_options`` and ``get_action_params`` messages, which ask
for a SelectField's options and for the defaults computed from a record."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, g
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..access.permissions import may_run
from ..caller import CALLER_KEY
from ..declare.actions import Action, ActionKind
from ..declare.fields import Select
from ..declare.models import Collection
from ..declare.options import DynamicSelect
from ..errors import ActionError, PermissionDenied, ProtocolError
from ..run.answers import error_response, json_response, unexpected_error_response
from ..run.forms import record_params
from ..run.selection import NO_RECORDS, load_rows, parse_selection, selection_in_values, wire_ids
from .body import parse_object

if TYPE_CHECKING:
    from .state import AppState

#: Options per page of ``get_field_options`` when the client names no ``limit``, and the most.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: The longest search text ``get_field_options`` takes.
MAX_SEARCH = 256


def get_field_options(state: AppState, request_params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_field_options``: one page of a SelectField's options, as a JSON array of
    ``{"value", "name"}`` (plus the other string keys an option declares, such as ``color``).

    Request params, as the product documentation sends them: ``model`` (the collection; absent
    for a common action), ``field`` (the param's name) and ``form`` (the form's current values).
    Also: ``action`` (or ``name``, the action's name; needed only when several actions the
    caller may run on ``model`` have a SelectField of that name), ``params`` (the current values
    too; ``form`` wins on a key both hold), ``id``/``ids``/``inverseIds`` (the selection,
    optional), ``search``, ``page`` (from 1) and ``limit`` (or ``page_size``; at most 200).
    """
    field_name = request_params.get("field")
    action_name = request_params.get("action")
    if action_name is None:
        action_name = request_params.get("name")
    if action_name is None:
        action, collection, field = _find_param(state, request_params, field_name)
    else:
        action, collection = _find_action(state, request_params, action_name, "action")
        field = _field(action, _field_name(field_name))
    search = _search(request_params.get("search"))
    page = _integer(request_params, ("page",), 1, None)
    limit = _integer(request_params, ("limit", "page_size"), DEFAULT_LIMIT, MAX_LIMIT)
    values = _form_values(request_params, state.settings.max_depth)

    def compute() -> list[dict[str, Any]]:
        if isinstance(field, DynamicSelect):
            rows = _selected_rows(state, action, collection, request_params, values, False)
            model = collection.model if collection is not None else None
            return field.compute(values, model, rows, search)
        return _matching(field.options, search)

    options = _guarded(state, action, compute)
    if isinstance(options, BaseResponse):
        return options
    start = (page - 1) * limit
    return json_response(options[start : start + limit])


def get_action_params(state: AppState, request_params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_action_params`` (an extension of the protocol): the action's ``params``
    list as in ``get_action_list``, with the defaults computed from the record ``id`` filled in.

    Request params: ``name`` (the action's name), ``model`` and, for a record action, ``id``.
    """
    action, collection = _find_action(state, request_params, request_params.get("name"), "name")

    def compute() -> list[dict[str, Any]]:
        row = None
        if action.kind is ActionKind.RECORD:
            row = _selected_rows(state, action, collection, request_params, {}, True)[0]
        return record_params(action, row)

    answer = _guarded(state, action, compute)
    return answer if isinstance(answer, BaseResponse) else json_response(answer)


def _find_action(
    state: AppState, request_params: dict[str, Any], name: Any, key: str
) -> tuple[Action, Collection | None]:
    """The action the message names and its collection, once the caller may run it."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"The message needs params.{key}, the action's name.")
    model = _model_name(request_params)
    action = state.registry.find(model, name)
    collection = action.collection(model) if model and action.collections else None
    caller = g.get(CALLER_KEY)
    if not may_run(caller, action, collection.model if collection else None):
        if caller.read_only:
            raise PermissionDenied("Read-only users may not run actions.")
        raise PermissionDenied(f"You may not run the action {action.name!r}.")
    return action, collection


def _field_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ProtocolError("get_field_options needs params.field, the name of a param.")
    return raw


def _param(action: Action, wire_name: str) -> Any:
    """The declared field whose wire name is ``wire_name``, or None."""
    for name, field in action.params.schema.load_fields.items():
        if (field.data_key or name) == wire_name:
            return field
    return None


def _not_a_select(action: Action, wire_name: str) -> ProtocolError:
    return ProtocolError(
        f"The param {wire_name[:64]!r} of {action.name!r} is not a SelectField; "
        "get_field_options answers for SelectField params only."
    )


def _field(action: Action, wire_name: str) -> Select | DynamicSelect:
    field = _param(action, wire_name)
    if field is None:
        raise ProtocolError(f"The action {action.name!r} has no param {wire_name[:64]!r}.")
    if not isinstance(field, (Select, DynamicSelect)):
        raise _not_a_select(action, wire_name)
    return field


def _find_param(
    state: AppState, request_params: dict[str, Any], raw_field: Any
) -> tuple[Action, Collection | None, Select | DynamicSelect]:
    """The SelectField param ``field`` when the request names no action, as the product
    documentation sends it: the one such param among the actions the caller may run on
    ``model`` (the common actions when ``model`` is absent), or a 400 saying why not."""
    wire_name = _field_name(raw_field)
    model = _model_name(request_params)
    caller = g.get(CALLER_KEY)
    if caller.read_only:
        raise PermissionDenied("Read-only users may not run actions.")
    found: list[tuple[Action, Collection | None, Select | DynamicSelect]] = []
    not_select: Action | None = None
    for action in state.registry.on(model):
        collection = action.collection(model) if model is not None else None
        if not may_run(caller, action, collection.model if collection else None):
            continue
        field = _param(action, wire_name)
        if isinstance(field, (Select, DynamicSelect)):
            found.append((action, collection, field))
        elif field is not None and not_select is None:
            not_select = action
    where = f"the collection {model[:64]!r}" if model is not None else "the common actions"
    if len(found) > 1:
        names = ", ".join(repr(action.name) for action, _, _ in found)
        raise ProtocolError(
            f"Several actions on {where} have a SelectField param {wire_name[:64]!r}: {names}. "
            f'Add "action" to params to choose one, e.g. "action": {found[0][0].name!r}.'
        )
    if found:
        return found[0]
    if not_select is not None:
        raise _not_a_select(not_select, wire_name)
    raise ProtocolError(f"No action on {where} has a SelectField param {wire_name[:64]!r}.")


def _model_name(request_params: dict[str, Any]) -> str | None:
    model = request_params.get("model")
    if model is not None and not isinstance(model, str):
        raise ProtocolError("params.model must be the collection's name, a string.")
    return model or None


def _search(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ProtocolError("params.search must be a string.")
    if len(raw) > MAX_SEARCH or "\x00" in raw:
        raise ProtocolError(
            f"params.search must be at most {MAX_SEARCH} characters, without NUL characters."
        )
    return raw


def _integer(
    request_params: dict[str, Any], keys: tuple[str, ...], default: int, maximum: int | None
) -> int:
    """The first of ``keys`` present, an integer from 1 to ``maximum`` (400 otherwise)."""
    for key in keys:
        raw = request_params.get(key)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            raise ProtocolError(f"params.{key} must be a whole number from 1.")
        if maximum is not None and raw > maximum:
            raise ProtocolError(f"params.{key} must be at most {maximum}.")
        return raw
    return default


def _matching(options: list[dict[str, Any]], search: str | None) -> list[dict[str, Any]]:
    """The declared options whose name or value contains ``search``, ignoring case."""
    if search is None:
        return list(options)
    needle = search.casefold()
    return [
        option
        for option in options
        if needle in option["name"].casefold() or needle in str(option["value"]).casefold()
    ]


def _form_values(request_params: dict[str, Any], max_depth: int) -> dict[str, Any]:
    """The form's current values: ``params.params`` updated with ``params.form`` (the key the
    product documentation sends), so ``form`` wins on a param both hold."""
    values = _user_values(request_params.get("params"), max_depth, "params.params")
    values.update(_user_values(request_params.get("form"), max_depth, "params.form"))
    return values


def _user_values(raw: Any, max_depth: int, where: str) -> dict[str, Any]:
    """A copy of current form values; absent, an object, or a JSON-encoded object."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return parse_object(raw, max_depth, where)
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where} must be an object of param names to values.")
    return dict(raw)


def _selected_rows(
    state: AppState,
    action: Action,
    collection: Collection | None,
    request_params: dict[str, Any],
    values: dict[str, Any],
    required: bool,
) -> list[Any]:
    """The rows the request selects, through the same scoping as ``execute_action``; an empty
    list when the action takes no records, or when none is selected and ``required`` is false.
    """
    if not action.for_instance or collection is None:
        return []
    settings = state.settings
    ids, inverse = selection_in_values(
        values, action.params.names, request_params.get("ids"), request_params.get("inverseIds")
    )
    selection = parse_selection(
        wire_ids(request_params.get("id"), ids),
        inverse,
        action,
        collection,
        state.wide_integer_ids,
        settings.max_ids,
    )
    if selection.empty:
        if required:
            raise ActionError(NO_RECORDS)
        return []
    scoped = state.restriction(collection, g.get(CALLER_KEY), action)
    return load_rows(state.db.session, collection, selection, settings.id_chunk_size, scoped)


def _guarded(
    state: AppState, action: Action, compute: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]] | BaseResponse:
    """``compute()``, with a business error as ``result: false`` and anything unexpected as a
    generic 500 (logged). The session is rolled back either way: these messages write nothing.
    """
    session = state.db.session
    try:
        return compute()
    except ActionError as error:
        return error_response(error.errors)
    except (ProtocolError, HTTPException):
        raise
    except Exception as error:
        where = f"The dynamic params of Flex action {action.name!r}"
        return unexpected_error_response(error, where, state.settings.retry_after)
    finally:
        try:
            session.rollback()
        except Exception:
            current_app.logger.exception("Rolling back after a Flex Actions message failed")
