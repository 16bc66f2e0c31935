"""What an action returns, and the JSON answers of the Messages URL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from flask import Response, current_app, has_request_context
from flask.signals import got_request_exception
from markupsafe import escape
from werkzeug.wrappers import Response as BaseResponse

from ..errors import NON_FIELD_ERRORS, ErrorDict
from .outages import is_unavailable


@dataclass(frozen=True)
class Result:
    """A successful answer with a message, HTML to render, or both.

    ``html`` is trusted markup: the admin UI renders it as it is. Build it from values that
    came from users with ``markupsafe.Markup("<b>{}</b>").format(value)``, which escapes them,
    or use :meth:`from_text` to show a plain message in the HTML answer.
    """

    message: str | None = None
    html: str | None = None

    @classmethod
    def from_text(cls, text: str, message: str | None = None) -> Result:
        """A result whose ``html`` shows ``text`` as plain text, its markup escaped."""
        return cls(message=message, html=str(escape(text)))


#: The generic text of a 500 answer; the details go to the server log only.
INTERNAL_ERROR_MESSAGE = "The server failed to run the action; the error has been logged."
#: The one text of a 503 answer for a database that is down, restarting or too busy.
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; retry in a moment."


#: One encoder for every answer: ``json.dumps`` with options builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def json_response(payload: Any, status: int = 200) -> Response:
    """A compact JSON answer."""
    body = _COMPACT_JSON.encode(payload)
    return current_app.response_class(body, status=status, content_type="application/json")


def first_message(errors: ErrorDict) -> str | None:
    """The first ``non_field_errors`` message, else the first message of the first field."""
    for message in errors.get(NON_FIELD_ERRORS, ()):
        return message
    for messages in errors.values():
        for message in messages:
            return message
    return None


def error_response(errors: ErrorDict, status: int = 200) -> Response:
    """The protocol's one error shape: ``{"result": false, "errors": {...}}``.

    An error status (anything but 2xx) also carries ``detail``, the first message: Jet Admin's
    client shows ``detail`` for every error status but 400, else only the status text.
    """
    payload: dict[str, Any] = {"result": False, "errors": errors}
    if not 200 <= status < 300:
        payload["detail"] = first_message(errors) or _status_text(status)
    return json_response(payload, status)


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def message_error(message: str, status: int) -> Response:
    """An error answer carrying one ``non_field_errors`` message."""
    return error_response({NON_FIELD_ERRORS: [message]}, status)


def unavailable_response(message: str, retry_after: int) -> Response:
    """A 503 answer: nothing ran (or it was rolled back); retry after ``retry_after`` s."""
    response = message_error(message, 503)
    response.headers["Retry-After"] = str(retry_after)
    return response


def unexpected_error_response(error: Exception, context: str, retry_after: int) -> Response:
    """The answer to an exception nothing else handled: 503 for a database outage (logged
    in one line), else a generic 500, logged with its traceback and sent to Flask's
    ``got_request_exception`` signal (where error trackers such as Sentry listen).

    :param context: what failed, for the log, e.g. ``"Flex action 'refund' on 'orders'"``.
    :param retry_after: the seconds a 503 asks the client to wait.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if is_unavailable(error):
        app.logger.warning("%s: the database is unavailable (%s)", context, type(error).__name__)
        return unavailable_response(DATABASE_UNAVAILABLE_MESSAGE, retry_after)
    app.logger.error("%s failed", context, exc_info=error)
    if has_request_context():
        got_request_exception.send(app, exception=error)
    return message_error(INTERNAL_ERROR_MESSAGE, 500)


def success_answer(value: Any) -> BaseResponse | dict[str, Any]:
    """The answer for a handler's return value (see the contract), or a ``TypeError``.

    Returns a response to send as it is (a file), or the JSON payload. ``{"result": false}``
    means the run failed and must be rolled back.
    """
    if value is None or value is True:
        return {"result": True}
    if value is False:
        return {"result": False}
    if isinstance(value, str):
        return {"result": True, "message": value}
    if isinstance(value, Result):
        payload: dict[str, Any] = {"result": True}
        if value.message is not None:
            payload["message"] = str(value.message)
        if value.html is not None:
            payload["html"] = str(value.html)
        return payload
    if isinstance(value, BaseResponse):
        return value
    raise TypeError(
        f"An action returned {type(value).__name__}; return None, True, False, a str, "
        "flask_flexactions.Result(message=..., html=...) or a flask.Response."
    )


#: The headers of an answer stored with it (a job's, an approval's, an Idempotency-Key's)
#: and sent again with it.
STORED_HEADERS = ("Content-Type", "Content-Disposition")
_STORED_BY_LOWER_NAME = {name.lower(): name for name in STORED_HEADERS}


def stored_answer(response: BaseResponse) -> tuple[int, dict[str, str], bytes]:
    """The status, the :data:`STORED_HEADERS` and the whole body of ``response``, to store
    it; a file answer that streams is read whole, and can still be sent."""
    response.direct_passthrough = False
    # One pass over the headers: asking for an absent one raises (and builds) a KeyError.
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        stored = _STORED_BY_LOWER_NAME.get(name.lower())
        if stored is not None and stored not in headers:
            headers[stored] = value
    return response.status_code, headers, response.get_data()


def answer_values(response: BaseResponse) -> dict[str, Any]:
    """The ``answer_status``, ``answer_headers`` and ``answer_body`` columns of a job or an
    approval request that ended with ``response``."""
    status, headers, body = stored_answer(response)
    return {"answer_status": status, "answer_headers": headers, "answer_body": body}
