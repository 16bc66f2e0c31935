"""Edges a review of the auth, console and CLI code found: each failed (open, or with a 500)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient

from flask_flexactions import Caller, FlexActions
from flask_flexactions.access.project_auth import ProjectAuth
from flask_flexactions.errors import ServiceUnavailable
from flask_flexactions.testing import FlexClient
from tests.conftest import AUTH, URL
from tests.models import User, db


def serve_raw(answers: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """A one-shot HTTP server on 127.0.0.1 that answers each connection with the next bytes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    received: list[bytes] = []

    def loop() -> None:
        for answer in answers:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the client did not come back (a redirect not followed)
                return
            with connection:
                connection.settimeout(2)
                try:
                    received.append(connection.recv(65536))
                except OSError:
                    pass
                connection.sendall(answer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/api/project_auth/", received
    server.close()


@pytest.mark.parametrize(
    "answers",
    [
        [
            b"HTTP/1.1 302 Found\r\nLocation: /moved/\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        ],
        [b"HTTP/1.1 abc OK\r\n\r\n"],
    ],
    ids=["redirect", "bad-status-line"],
)
def test_project_auth_without_a_usable_answer_is_503(answers: list[bytes]) -> None:
    for url, received in serve_raw(answers):
        check = ProjectAuth(url, "proj", timeout=2, cache_seconds=0)
        with pytest.raises(ServiceUnavailable):
            check.verify("anything-at-all", {})
        assert len(received) == 1  # a redirect is not followed


@pytest.mark.parametrize(
    ("roles", "runs"),
    [("sysadmin-readonly", False), ("admin", True), ({"admin"}, True), (["guest"], False)],
)
def test_roles_given_as_a_str_or_a_set_mean_what_they_say(
    flex: FlexActions, app: Flask, client: FlaskClient, roles: Any, runs: bool
) -> None:
    @flex.action(permission="admin")
    def wipe(params: dict[str, Any]) -> str:
        return "wiped"

    @flex.authenticator
    def custom(request: Request) -> Caller:
        return Caller(id="7", roles=roles)

    listed = client.post(URL, json={"name": "get_action_list"})
    assert listed.status_code == 200
    assert ("wipe" in [a["name"] for a in listed.get_json()]) is runs
    ran = client.post(URL, json={"name": "execute_action", "params": {"name": "wipe"}})
    assert ran.status_code == (200 if runs else 403)


def test_a_long_id_with_leading_zeros_is_refused_not_crashed(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    @flex.action(User, for_instance=True)
    def poke(user: User, params: dict[str, Any]) -> str:
        return "poked"

    with app.app_context():
        db.session.add(User(id=1, name="one"))
        db.session.commit()
    body = {"name": "execute_action", "params": {"model": "users", "name": "poke"}}
    body["params"]["id"] = "0" * 5000 + "1"
    assert client.post(URL, json=body, headers=AUTH).get_json() == {
        "result": True,
        "message": "poked",
    }
    body["params"]["id"] = "0" * 5000 + "9" * 30
    assert client.post(URL, json=body, headers=AUTH).status_code == 400


def test_a_nul_in_a_related_search_is_400(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    @flex.action(
        params=[
            {"name": "owner", "field": "ForeignKey", "params": {"related_model": {"model": User}}}
        ]
    )
    def assign(params: dict[str, Any]) -> None:
        return None

    body = {"name": "get_related_options", "params": {"model": "users", "search": "u\x00"}}
    assert client.post(URL, json=body, headers=AUTH).status_code == 400


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD"])
def test_other_methods_get_the_protocols_405(client: FlaskClient, method: str) -> None:
    response = client.open(URL, method=method, headers=AUTH)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("token", ["p@ss;word", "a,b", "with space", " padded"])
def test_a_token_that_could_never_match_is_refused_at_start(token: str) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FLEXACTIONS_TOKEN=token)
    db.init_app(app)
    with pytest.raises(ValueError, match="FLEXACTIONS_TOKEN"):
        FlexActions().init_app(app, db=db)


@pytest.mark.parametrize("config", [{"FLEXACTIONS_TOKEN": "t0ken", "APPLICATION_ROOT": "/admin"}])
def test_the_client_works_under_an_application_root(
    flex: FlexActions, app: Flask, config: dict[str, Any]
) -> None:
    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    answer = FlexClient(app.test_client()).execute("ping")
    assert answer.status_code == 200 and answer.get_json()["message"] == "pong"


@pytest.mark.parametrize("text", ["nan", "1e999", "-inf"])
def test_the_cli_sends_non_finite_numbers_as_text(flex: FlexActions, app: Flask, text: str) -> None:
    @flex.action(params=[{"name": "x", "field": "FloatField", "required": True}])
    def half(params: dict[str, Any]) -> str:
        return str(params["x"] / 2)

    result = app.test_cli_runner().invoke(
        args=["flexactions", "run", "half", "--param", f"x={text}"]
    )
    assert result.exit_code == 1, result.output  # a field error, not an invalid body
    assert "finite" in result.output
