"""What every door of the blueprint does first: find the app's state, authenticate the caller,
read the JSON body within the limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Request, current_app, g, request
from werkzeug.exceptions import InternalServerError

from ..caller import CALLER_KEY, Caller
from ..config import Settings
from ..errors import ProtocolError
from .body import parse_object

if TYPE_CHECKING:
    from .state import AppState

JSON_MEDIA_TYPE = "application/json"


def app_state() -> AppState:
    """The extension's state on the current app, or a ``RuntimeError`` naming the fix."""
    state = current_app.extensions.get("flexactions")
    if state is None:
        raise RuntimeError(
            "The Flex Actions blueprint is registered but the extension is not initialised on "
            "this app: call flex.init_app(app, db=db) before serving requests."
        )
    return state  # type: ignore[no-any-return]


def current_request() -> Request:
    """The request being served, taken out of ``flask.request``'s proxy once: a door reads it
    a dozen times, and each read through the proxy is a context lookup of its own."""
    return request._get_current_object()  # type: ignore[attr-defined,no-any-return]


def authenticate_caller(state: AppState, incoming: Request) -> Caller:
    """Authenticate ``incoming`` (401 or 403 as a :class:`ProtocolError`), keep the caller in
    ``flask.g`` and check declarations registered since the last request.

    A declaration that names a model that does not exist is a 500 (logged), for every door.
    """
    caller = state.authenticate(incoming)
    setattr(g, CALLER_KEY, caller)
    try:
        state.check_registrations()
    except ValueError:
        # A declaration registered after init_app names a model that does not exist.
        current_app.logger.exception("A Flex action declaration is invalid")
        raise InternalServerError() from None
    return caller


def read_json_object(
    incoming: Request,
    settings: Settings,
    what: str = "the message",
    *,
    empty_is_object: bool = False,
) -> dict[str, Any]:
    """The body of ``incoming`` as a JSON object, refusing other media types and oversized
    bodies.

    :param what: how error messages name what the body holds.
    :param empty_is_object: an empty body (whatever its media type) is ``{}`` rather than a
        protocol error, for doors whose body may be left out.
    """
    is_json = incoming.mimetype == JSON_MEDIA_TYPE
    if not is_json and not empty_is_object:
        raise _wrong_media_type(what)
    declared = incoming.content_length
    if declared is not None and declared > settings.max_body:
        raise _too_large(settings)
    # One byte past the cap tells an oversized body without a Content-Length (chunked); a
    # declared length bounds the read, so a small request never reserves the whole cap. A body
    # of another media type is read only far enough to tell whether it is empty.
    limit = settings.max_body if declared is None else declared
    try:
        data = incoming.stream.read(limit + 1 if is_json else 1)
    except Exception as error:
        # Each server's reader of a chunked body raises its own error for malformed framing
        # (gunicorn's ParseException, OSError, ValueError...); this read does nothing else.
        raise ProtocolError(
            "The request body could not be read: its chunked encoding is malformed."
        ) from error
    if not data and empty_is_object:
        return {}
    if not is_json:
        raise _wrong_media_type(what)
    if len(data) > settings.max_body:
        raise _too_large(settings)
    return parse_object(data, settings.max_depth, "The request body")


def _wrong_media_type(what: str) -> ProtocolError:
    return ProtocolError(f"Send {what} as JSON with Content-Type: application/json.", status=415)


def _too_large(settings: Settings) -> ProtocolError:
    return ProtocolError(f"The request body is larger than {settings.max_body} bytes.", status=413)
