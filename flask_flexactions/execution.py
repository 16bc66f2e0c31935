"""Running one action: resolve its records and params, call the handler in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, g
from flask.signals import got_request_exception
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from .actions import Action, ActionKind
from .answers import (
    INTERNAL_ERROR_MESSAGE,
    error_response,
    json_response,
    message_error,
    success_answer,
)
from .body import parse_object
from .caller import CALLER_KEY
from .downloads import secure_content_disposition
from .errors import ActionError, ErrorDict, PermissionDenied, ProtocolError, validation_messages
from .permissions import may_run
from .selection import load_rows, parse_selection

if TYPE_CHECKING:
    from .extension import AppState


def execute_action(state: AppState, request_params: dict[str, Any]) -> BaseResponse:
    """Answer an ``execute_action`` message (the request's ``params`` object)."""
    name = request_params.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("execute_action needs params.name, the action's name.")
    model = request_params.get("model")
    if model is not None and not isinstance(model, str):
        raise ProtocolError("params.model must be the collection's name, a string.")
    action = state.registry.find(model or None, name)
    _check_permission(action, model)
    values = _user_values(request_params.get("params"), state.settings.max_depth)
    session = state.db.session
    try:
        arguments = _resolve(state, action, model, request_params, values)
        answer = success_answer(action.handler(*arguments))
        if isinstance(answer, dict) and answer["result"] is False:
            _rollback(session)
            return json_response(answer)
        session.commit()
    except ActionError as error:
        _rollback(session)
        return error_response(error.errors)
    except ValidationError as error:
        _rollback(session)
        return error_response(validation_messages(error.messages))
    except (ProtocolError, HTTPException):
        _rollback(session)
        raise
    except Exception as error:
        _rollback(session)
        current_app.logger.exception("Flex action %r on %r failed", action.name, model)
        got_request_exception.send(current_app._get_current_object(), exception=error)  # type: ignore[attr-defined]
        return message_error(INTERNAL_ERROR_MESSAGE, 500)
    if isinstance(answer, BaseResponse):
        secure_content_disposition(answer.headers)
        return answer
    return json_response(answer)


def _check_permission(action: Action, model: str | None) -> None:
    """Refuse (403) before anything is parsed or loaded when the caller may not run it."""
    collection = action.collection(model) if model and action.collections else None
    caller = g.get(CALLER_KEY)
    if may_run(caller, action, collection.model if collection else None):
        return
    if caller.read_only:
        raise PermissionDenied("Read-only users may not run actions.")
    raise PermissionDenied(f"You may not run the action {action.name!r}.")


def _user_values(raw: Any, max_depth: int) -> dict[str, Any]:
    """A copy of the user's input values; ``params`` may be absent or a JSON-encoded object."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return parse_object(raw, max_depth, "params.params")
    if not isinstance(raw, dict):
        raise ProtocolError("params.params must be an object of param names to values.")
    return dict(raw)


def _resolve(
    state: AppState,
    action: Action,
    model: str | None,
    request_params: dict[str, Any],
    values: dict[str, Any],
) -> tuple[Any, ...]:
    """The handler's arguments; every failure is gathered into one ActionError."""
    kind = action.kind
    if kind is ActionKind.COMMON:
        return (action.params.load(values),)
    collection = action.collection(model or "")
    if kind is ActionKind.COLLECTION:
        return (collection.model, action.params.load(values))
    settings = state.settings
    selection = parse_selection(
        request_params, values, action, collection, state.wide_integer_ids, settings.max_ids
    )
    errors: ErrorDict = {}
    rows: list[Any] = []
    try:
        restrict = state.restriction(collection, action)
        rows = load_rows(state.db.session, collection, selection, settings.id_chunk_size, restrict)
        if not rows:
            raise ActionError("No records selected: the collection has no rows to act on.")
    except ActionError as error:
        errors.update(error.errors)
    try:
        loaded = action.params.load(values)
    except ValidationError as error:
        for key, messages in validation_messages(error.messages).items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ActionError(errors=errors)
    return (rows if kind is ActionKind.BULK else rows[0], loaded)


def _rollback(session: Any) -> None:
    """Roll the session back; a failure here (a dead connection) is logged, not raised."""
    try:
        session.rollback()
    except Exception:
        current_app.logger.exception("Rolling back after a Flex action failed")
