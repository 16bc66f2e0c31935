"""The blueprint that serves the Messages URL: envelope, authentication, dispatch, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response as BaseResponse

from ..access.cors import ALLOW_METHODS, NOSNIFF, add_answer_headers, answer_headers
from ..caller import CALLER_KEY
from ..errors import AuthenticationError, ProtocolError
from ..run.answers import (
    INTERNAL_ERROR_MESSAGE,
    message_error,
    unavailable_response,
    unexpected_error_response,
)
from ..run.audit import Attempt
from ..run.core import run_request
from ..run.idempotency import KEY_ENVIRON, KEY_HEADER
from ..run.jobs import JobStore
from ..run.outages import is_unavailable
from ..run.request import ExecuteRequest, read_request
from .approvals import APPROVAL_MESSAGES
from .body import parse_object
from .console import register_console
from .forms import get_action_params, get_field_options
from .incoming import app_state, authenticate_caller, current_request, read_json_object
from .lookup import get_related_options
from .openapi import ALLOW as DOCUMENT_METHODS
from .openapi import VIEW as DOCUMENT_VIEW
from .openapi import register_openapi
from .routes import register_routes

if TYPE_CHECKING:
    from .state import AppState

MessageHandler = Callable[["AppState", dict[str, Any]], BaseResponse]

#: Where the message name of the current request is kept in ``flask.g`` (for the log).
MESSAGE_NAME_KEY = "flexactions_message"
#: The key of ``execute_action`` params that may carry the Idempotency-Key instead of the header.
KEY_PARAM = "request_id"


def get_action_list(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_action_list``: the actions the caller may run, as a JSON array."""
    body = state.listing.body(g.get(CALLER_KEY))
    return current_app.response_class(body, mimetype="application/json")


def execute_action(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``execute_action``: read its params into one request and run it in the core."""

    def read(attempt: Attempt) -> ExecuteRequest:
        return read_request(
            state,
            attempt,
            action=params.get("name"),
            model=params.get("model"),
            values=lambda: _input_values(params.get("params"), state.settings.max_depth),
            id=params.get("id"),
            ids=params.get("ids"),
            inverse=params.get("inverseIds"),
            dry_run=params.get("dry_run"),
            key=_idempotency_key(params) if state.idempotency is not None else None,
            door="messages",
            ids_in_values=True,
            reason=params.get("reason"),
        )

    return run_request(state, g.get(CALLER_KEY), "messages", read)


def _input_values(raw: Any, max_depth: int) -> dict[str, Any]:
    """The user's input values, ``params.params``: absent, an object or a JSON-encoded one."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return parse_object(raw, max_depth, "params.params")
    if not isinstance(raw, dict):
        raise ProtocolError("params.params must be an object of param names to values.")
    return raw


def _idempotency_key(params: dict[str, Any]) -> str | None:
    """The key from the ``Idempotency-Key`` header or ``params.request_id`` (the same, if
    both are sent)."""
    header = request.environ.get(KEY_ENVIRON)
    param = params.get(KEY_PARAM)
    if param is not None and not isinstance(param, str):
        raise ProtocolError(f"params.{KEY_PARAM} must be a string.")
    if header is not None and param is not None and header != param:
        raise ProtocolError(f"The {KEY_HEADER} header and params.{KEY_PARAM} differ.")
    return header if header is not None else param


def _jobs(state: AppState) -> JobStore:
    if state.jobs is None:
        raise ProtocolError("No background actions run here: there are no jobs to ask about.")
    return state.jobs


def get_action_status(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_action_status`` (an extension): a background job's state and answer."""
    download = params.get("download") is True
    return _jobs(state).status(params.get("job"), g.get(CALLER_KEY), download)


def cancel_action(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``cancel_action`` (an extension): stop a queued or running background job."""
    return _jobs(state).cancel(params.get("job"), g.get(CALLER_KEY))


def retry_action(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``retry_action`` (an extension): run again the batches of a batched job that
    failed or was cancelled, skipping those that committed."""
    jobs = _jobs(state)
    row = jobs.reopen(params.get("job"), g.get(CALLER_KEY))
    if jobs.inline and state.run_inline is not None:
        state.run_inline(row.id, True)
    else:
        jobs.dispatch_batches(row.id, jobs.batches.waiting(row.id))
    return jobs.status(row.id, g.get(CALLER_KEY), download=False)


def _not_yet(name: str, why: str) -> MessageHandler:
    def refuse(state: AppState, params: dict[str, Any]) -> BaseResponse:
        raise ProtocolError(f"The message {name!r} is not supported: {why}")

    return refuse


#: The message names of the protocol and what answers each.
MESSAGES: dict[str, MessageHandler] = {
    "get_action_list": get_action_list,
    "execute_action": execute_action,
    "get_action_status": get_action_status,
    "cancel_action": cancel_action,
    "retry_action": retry_action,
    "get_field_options": get_field_options,
    "get_action_params": get_action_params,
    "get_element_status": _not_yet("get_element_status", "it is reserved and unspecified."),
    # An extension of the protocol: the search behind the debug console's ForeignKey picker.
    "get_related_options": get_related_options,
    # Extensions: four-eyes approvals (list_approvals, get_approval, approve_action, ...).
    **APPROVAL_MESSAGES,
}


def create_blueprint() -> Blueprint:
    """The blueprint with the Messages URL at ``/messages/`` (with or without the slash), the
    route of each action at ``/actions/...`` and the OpenAPI document at ``/openapi.json``."""
    blueprint = Blueprint("flexactions", __name__)
    # Two rules rather than strict_slashes=False: neither path may redirect. Methods other than
    # POST and OPTIONS are routed only to answer them with the protocol's 405 body (and the
    # answer headers) rather than Flask's HTML page.
    for path in ("/messages/", "/messages"):
        blueprint.add_url_rule(
            path,
            "messages",
            messages,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            provide_automatic_options=False,
        )
    register_routes(blueprint)
    register_openapi(blueprint)
    register_console(blueprint)
    blueprint.after_request(_response_headers)
    blueprint.register_error_handler(ProtocolError, _protocol_error)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(Exception, _unexpected_error)
    return blueprint


def messages() -> BaseResponse:
    """The Messages URL: answer a CORS preflight, or authenticate and dispatch one message."""
    state = app_state()
    incoming = current_request()
    if incoming.method == "OPTIONS":
        return current_app.response_class(status=204)
    if incoming.method != "POST":
        response = message_error("The Messages URL takes POST with a JSON body.", 405)
        response.headers["Allow"] = "POST, OPTIONS"
        return response
    authenticate_caller(state, incoming)
    envelope = read_json_object(incoming, state.settings)
    name = envelope.get("name")
    if not isinstance(name, str):
        raise ProtocolError('The body needs "name", the message name, e.g. "get_action_list".')
    setattr(g, MESSAGE_NAME_KEY, name[:64])
    handler = MESSAGES.get(name)
    if handler is None:
        raise ProtocolError(f"Unknown message {name[:64]!r}; expected one of {sorted(MESSAGES)}.")
    params = envelope.get("params")
    if params is None:
        params = {}
    elif isinstance(params, str):
        params = parse_object(params, state.settings.max_depth, '"params"')
    elif not isinstance(params, dict):
        raise ProtocolError('"params" must be an object.')
    return handler(state, params)


def _response_headers(response: BaseResponse) -> BaseResponse:
    """CORS headers, and nosniff so a browser never runs an answer as another type."""
    state = current_app.extensions.get("flexactions")
    if state is None:
        add_answer_headers(response.headers, (NOSNIFF,))
        return response
    incoming = current_request()
    origin = incoming.environ.get("HTTP_ORIGIN")
    preflight = incoming.method == "OPTIONS"
    document = (incoming.endpoint or "").endswith("." + DOCUMENT_VIEW)
    methods = DOCUMENT_METHODS if document else ALLOW_METHODS
    headers = answer_headers(state.settings, origin, preflight, methods)
    add_answer_headers(response.headers, headers)
    return response


def _protocol_error(error: ProtocolError) -> BaseResponse:
    if error.status == 503:
        return unavailable_response(error.message, app_state().settings.retry_after)
    response = message_error(error.message, error.status)
    if isinstance(error, AuthenticationError):
        response.headers["WWW-Authenticate"] = 'Token realm="flexactions"'
    return response


def _http_error(error: HTTPException) -> BaseResponse:
    if isinstance(error, InternalServerError):
        # An exception nothing handled: Flask has logged it and signalled it already.
        return message_error(INTERNAL_ERROR_MESSAGE, 500)
    return message_error(error.description or error.name, error.code or 500)


def _unexpected_error(error: Exception) -> BaseResponse:
    """Answer a database outage with 503; let Flask handle anything else as it would (log,
    ``got_request_exception``, propagate under testing, then a 500 by :func:`_http_error`)."""
    if not is_unavailable(error):
        raise error
    where = f"The Flex Actions message {g.get(MESSAGE_NAME_KEY)!r}"
    return unexpected_error_response(error, where, app_state().settings.retry_after)
