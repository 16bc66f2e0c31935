"""Error bodies: every error status of the Messages URL carries ``detail``, its first message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Request, abort
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import ActionError, Caller, FlexActions
from flask_flexactions.run.answers import error_response, first_message
from tests.conftest import AUTH, URL
from tests.models import User, db

KEY = {**AUTH, "Idempotency-Key": "detail-walk-1"}


@pytest.fixture
def config() -> dict[str, Any]:
    # A Jet Admin project token whose project_auth API does not answer: Token values other
    # than the shared one are checked there, and fail as 503.
    return {
        "FLEXACTIONS_MAX_BODY": 4096,
        "FLEXACTIONS_JET_PROJECT_TOKEN": "project-token",
        "FLEXACTIONS_JET_API_URL": "http://127.0.0.1:1/api/",
        "FLEXACTIONS_JET_AUTH_TIMEOUT": 2.0,
    }


@pytest.fixture
def walk(app: Flask, flex: FlexActions) -> None:
    with app.app_context():
        db.session.add(User(id=1, name="ann"))
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        user = request.headers.get("X-User")
        return Caller(id=user, read_only=user == "reader") if user else None

    @flex.action(User, for_instance=True, params=[{"name": "name", "field": "CharField"}])
    def rename(user: User, params: dict[str, Any]) -> str:
        if params.get("name") == "crash":
            raise RuntimeError("secret text")
        if params.get("name") == "conflict":
            abort(409, "The record changed meanwhile.")
        if params.get("name") == "refuse":
            raise ActionError(errors={"name": ["Not that one."]})
        user.name = params.get("name", user.name)
        return "ok"

    @flex.action(permission="finance")
    def payout(params: dict[str, Any]) -> None:
        """Only for the finance role."""


def execute(client: FlaskClient, headers: dict[str, str], **params: Any) -> TestResponse:
    return client.post(URL, json={"name": "execute_action", "params": params}, headers=headers)


def rename(client: FlaskClient, name: str, headers: dict[str, str] = AUTH) -> TestResponse:
    return execute(client, headers, name="rename", model="users", id=1, params={"name": name})


def unprocessable(client: FlaskClient) -> TestResponse:
    rename(client, "first", KEY)
    return rename(client, "second", KEY)


#: One request per error status the Messages URL answers in-process, and its first message.
STATUSES: dict[int, tuple[Callable[[FlaskClient], TestResponse], str]] = {
    400: (
        lambda c: c.post(URL, data=b'{"name": ', content_type="application/json", headers=AUTH),
        "The request body is not valid JSON",
    ),
    401: (lambda c: c.post(URL, json={"name": "get_action_list"}), "Missing or invalid"),
    403: (lambda c: execute(c, {"X-User": "7"}, name="payout"), "You may not run"),
    404: (lambda c: execute(c, AUTH, name="nope"), "Unknown action 'nope'"),
    405: (lambda c: c.get(URL, headers=AUTH), "The Messages URL takes POST"),
    409: (lambda c: rename(c, "conflict"), "The record changed meanwhile."),
    413: (
        lambda c: c.post(URL, json={"name": "x" * 5000}, headers=AUTH),
        "The request body is larger than 4096 bytes.",
    ),
    415: (
        lambda c: c.post(URL, data="{}", content_type="text/plain", headers=AUTH),
        "Send the message as JSON",
    ),
    422: (unprocessable, "This Idempotency-Key was already used for a different request"),
    500: (lambda c: rename(c, "crash"), "The server failed to run the action"),
    503: (
        lambda c: c.post(
            URL, json={"name": "get_action_list"}, headers={"Authorization": "Token user-token"}
        ),
        "Could not verify the token with Jet Admin",
    ),
}


@pytest.mark.parametrize("status", sorted(STATUSES))
def test_every_error_status_carries_its_first_message_as_detail(
    client: FlaskClient, walk: None, status: int
) -> None:
    send, start = STATUSES[status]
    response = send(client)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"result", "errors", "detail"}
    assert body["result"] is False
    assert body["detail"] == body["errors"]["non_field_errors"][0]
    assert body["detail"].startswith(start)
    assert "secret text" not in response.get_data(as_text=True)


def test_answers_of_status_200_have_no_detail(client: FlaskClient, walk: None) -> None:
    refused = rename(client, "refuse")
    assert refused.status_code == 200
    assert refused.get_json() == {"result": False, "errors": {"name": ["Not that one."]}}
    missing = execute(client, AUTH, name="rename", model="users", id=99)
    assert "detail" not in missing.get_json()


@pytest.mark.parametrize(
    ("errors", "detail"),
    [
        ({"non_field_errors": ["First", "Second"], "amount": ["Too much"]}, "First"),
        ({"amount": ["Too much", "Negative"], "non_field_errors": ["General"]}, "General"),
        ({"amount": ["Too much", "Negative"], "note": ["Too long"]}, "Too much"),
        ({"amount": [], "note": ["Too long"]}, "Too long"),
        ({"non_field_errors": [], "note": ["Too long"]}, "Too long"),
    ],
)
def test_detail_is_the_first_general_message_else_the_first_field_message(
    app: Flask, errors: dict[str, list[str]], detail: str
) -> None:
    assert first_message(errors) == detail
    with app.app_context():
        body = error_response(errors, 400).get_json()
    assert body == {"result": False, "errors": errors, "detail": detail}


def test_an_error_status_without_messages_has_the_status_text_as_detail(app: Flask) -> None:
    assert first_message({}) is None
    with app.app_context():
        assert error_response({}, 409).get_json()["detail"] == "Conflict"
        assert error_response({"a": []}, 599).get_json()["detail"] == "HTTP 599"
        assert "detail" not in error_response({"a": ["x"]}).get_json()


def test_the_client_sees_detail_for_a_read_only_caller_too(client: FlaskClient, walk: None) -> None:
    response = execute(client, {"X-User": "reader"}, name="rename", model="users", id=1)
    assert response.status_code == 403
    assert response.get_json()["detail"] == "Read-only users may not run actions."
