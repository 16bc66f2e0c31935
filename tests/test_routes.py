"""The route of each action: the same answers as the Messages URL, its doors and its limits."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, send_file
from flask.testing import FlaskClient
from werkzeug.test import TestResponse
from werkzeug.wrappers import Response

from flask_flexactions import Caller, FlexActions, Result
from flask_flexactions.doors.routes import route_path
from tests.conftest import AUTH, Messages
from tests.models import Account, Order, Tag, User, db
from tests.test_hostile import IDS_SHAPE, INVERSE, Prefix, not_int, not_text, out_of_range

ORIGIN = "https://app.jetadmin.io"
CONFIG = {"FLEXACTIONS_BACKGROUND_INLINE": True, "FLEXACTIONS_AUDIT": "table"}
SMALL_CAP = {**CONFIG, "FLEXACTIONS_MAX_BODY": 1000, "FLEXACTIONS_MAX_DEPTH": 8}


@pytest.fixture
def config() -> dict[str, Any]:
    return dict(CONFIG)


@dataclass
class World:
    """The actions of these tests, the rows they act on, and what their handlers did."""

    app: Flask
    client: FlaskClient
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def post(
        self,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        """POST ``body`` as JSON to the route at ``path`` (under ``/flex``)."""
        if body is not None:
            kwargs["json"] = body
        return self.client.post(
            "/flex" + path, headers=AUTH if headers is None else headers, **kwargs
        )

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row the actions may write."""
        with self.app.app_context():
            connection = db.session.connection()
            rows = {
                model.__tablename__: [
                    tuple(row) for row in connection.execute(sa.select(model.__table__))
                ]
                for model in (User, Order, Account)
            }
            db.session.remove()
            return rows

    def assert_nothing_ran(self, before: dict[str, list[tuple[Any, ...]]]) -> None:
        assert self.calls == []
        assert self.rows() == before


@pytest.fixture
def world(flex: FlexActions, app: Flask, client: FlaskClient) -> World:
    world = World(app, client)

    @flex.action(
        User,
        for_instance=True,
        params=[
            {"name": "note", "field": "CharField", "required": True},
            {"name": "count", "field": "IntegerField"},
        ],
    )
    def touch(user: User, params: dict[str, Any]) -> str:
        user.name = f"touched {params['note']}"
        world.calls.append(("touch", user.id))
        return f"Touched {user.id} ({params.get('count')})"

    def preview(users: list[User], params: dict[str, Any]) -> str:
        return f"Would block {[user.id for user in users]}"

    @flex.action(User, bulk=True, preview=preview, permission="admin")
    def block(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.is_blocked = True
        world.calls.append(("block", [user.id for user in users]))
        return f"Blocked {[user.id for user in users]}"

    @flex.action(User, bulk=True, atomic=False)
    def rename_each(users: list[User], params: dict[str, Any]) -> str:
        (user,) = users
        if user.id == 2:
            return False  # type: ignore[return-value]
        user.name = f"renamed {user.id}"
        world.calls.append(("rename_each", user.id))
        return f"Renamed {user.id}"

    @flex.action(User, bulk=True, background=True)
    def block_later(users: list[User], params: dict[str, Any]) -> str:
        world.calls.append(("block_later", [user.id for user in users]))
        return f"Blocked {len(users)} later"

    @flex.action(Order, params=[{"name": "since", "field": "DateField"}])
    def report(model: type[Order], params: dict[str, Any]) -> Result:
        world.calls.append(("report", str(params.get("since"))))
        return Result(message="Report", html=f"<b>since {params.get('since')}</b>")

    @flex.action(Order, bulk=True)
    def export(orders: list[Order], params: dict[str, Any]) -> Response:
        world.calls.append(("export", [order.id for order in orders]))
        text = "".join(f"{order.id}\n" for order in orders)
        return send_file(
            io.BytesIO(text.encode()),
            mimetype="text/csv",
            as_attachment=True,
            download_name="orders.csv",
        )

    @flex.action(
        Account,
        params=[
            {
                "name": "source",
                "field": "ForeignKey",
                "required": True,
                "params": {"related_model": {"model": Account}},
            },
            {"name": "amount", "field": "DecimalField", "required": True},
        ],
    )
    def credit(model: type[Account], params: dict[str, Any]) -> str:
        params["source"].balance += params["amount"]
        world.calls.append(("credit", params["source"].id))
        return f"Credited {params['amount']}"

    @flex.action(Tag, for_instance=True)
    def relabel(tag: Tag, params: dict[str, Any]) -> str:
        world.calls.append(("relabel", tag.code))
        return f"Relabelled {tag.code}"

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        world.calls.append(("ping", None))
        return "pong"

    @flex.action(name="odd/name")
    def odd(params: dict[str, Any]) -> str:
        return "odd"

    with app.app_context():
        db.session.add_all([User(id=pk, name=f"user{pk}") for pk in (1, 2, 3, 4)])
        db.session.commit()
        db.session.add_all([Order(id=pk, user_id=1, total=10) for pk in (1, 2)])
        db.session.add_all([Account(id=1, balance=0), Tag(code="a;b", label="x")])
        db.session.commit()
    return world


def _comparable(response: TestResponse) -> dict[str, Any]:
    """What must match between the doors: status, media type, file name, body (with the
    ids of background jobs left out, since each run queues its own)."""
    body: Any = response.get_data()
    if response.mimetype == "application/json":
        body = response.get_json()
        if isinstance(body, dict) and isinstance(body.get("job"), dict):
            body["job"] = {k: v for k, v in body["job"].items() if k != "id"}
            answer = body["job"].get("answer")
            if isinstance(answer, dict) and isinstance(answer.get("job"), dict):
                answer["job"].pop("id", None)
    return {
        "status": response.status_code,
        "type": response.headers.get("Content-Type"),
        "disposition": response.headers.get("Content-Disposition"),
        "body": body,
    }


# The same answers as the Messages URL


@pytest.mark.parametrize(
    ("model", "action", "message"),
    [
        ("users", "touch", {"id": 1, "params": {"note": "n", "count": "7"}}),
        ("users", "touch", {"id": "3", "params": {"note": "n"}}),
        ("users", "touch", {"id": 1, "params": {"count": 1.5}}),  # field errors
        ("users", "touch", {"id": 99, "params": {"note": "n"}}),  # missing row
        ("users", "touch", {"params": {"note": "n"}}),  # no selection
        ("users", "touch", {"id": [1], "params": {"note": "n"}}),  # malformed id
        ("users", "touch", {"id": 1, "params": {"note": "n"}, "dry_run": True}),
        ("users", "block", {"ids": [3, 1, 3]}),
        ("users", "block", {"ids": "2,4"}),
        ("users", "block", {"ids": [1, 98, 99]}),  # missing ids
        ("users", "block", {"ids": [2], "inverseIds": True}),
        ("users", "block", {"ids": [], "inverseIds": True, "dry_run": True}),
        ("users", "block", {"ids": []}),
        ("users", "block", {"ids": "1,,2"}),
        ("users", "block", {"ids": [1], "inverseIds": "yes"}),
        ("users", "rename_each", {"ids": [1, 2, 3]}),
        ("users", "block_later", {"ids": [1, 2]}),
        ("orders", "report", {"params": {"since": "2024-05-01"}}),
        ("orders", "report", {"params": {"since": "May"}}),
        ("orders", "report", {"params": {"since": ""}}),
        ("orders", "export", {"ids": [2, 1]}),
        ("shop;account", "credit", {"params": {"source": 1, "amount": "2.50"}}),
        ("shop;account", "credit", {"params": {"source": 7, "amount": "x"}}),
        ("tags", "relabel", {"id": "a;b"}),
        (None, "ping", {}),
        (None, "ping", {"dry_run": True}),
        (None, "nope", {}),
        ("users", "nope", {}),
        ("nowhere", "touch", {}),
    ],
)
def test_a_route_answers_as_the_messages_url(
    world: World,
    messages: Messages,
    model: str | None,
    action: str,
    message: dict[str, Any],
) -> None:
    body = {key: value for key, value in message.items() if key != "params"}
    if "params" in message:
        body["values"] = message["params"]
    rows = world.rows()
    by_messages = messages.execute(action, model, **message)
    ran = list(world.calls)
    after_messages = world.rows()
    # Each door starts from the same rows.
    _restore(world, rows)
    world.calls.clear()
    by_route = world.post(route_path(model, action), body)
    assert _comparable(by_route) == _comparable(by_messages)
    assert world.calls == ran
    assert world.rows() == after_messages


def _restore(world: World, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with world.app.app_context():
        for model in (Order, Account, User):
            db.session.execute(sa.delete(model))
        for model in (User, Order, Account):
            columns = [column.name for column in model.__table__.columns]
            for row in rows[model.__tablename__]:
                db.session.execute(sa.insert(model).values(dict(zip(columns, row, strict=True))))
        db.session.commit()


def test_the_audit_log_names_the_route_door(world: World, flex: FlexActions) -> None:
    assert world.post("/actions/ping", {}).get_json() == {"result": True, "message": "pong"}
    assert world.post("/actions/users/touch", {"id": 1, "valeus": {}}).status_code == 400
    with world.app.app_context():
        records = flex.audit_records()
    assert [(record.door, record.action, record.outcome) for record in records] == [
        ("route", "touch", "invalid"),
        ("route", "ping", "ran"),
    ]


def test_a_background_job_remembers_its_door(world: World, flex: FlexActions) -> None:
    response = world.post("/actions/users/block_later", {"ids": [1, 2]})
    assert response.get_json()["job"]["state"] == "succeeded"
    with world.app.app_context():
        records = flex.audit_records()
    # The request queued the job, then the job's run was audited with the request's door.
    assert [(record.door, record.outcome) for record in records] == [
        ("route", "queued"),
        ("route", "ran"),
    ]


# The body


@pytest.mark.parametrize(
    ("path", "body", "unknown"),
    [
        ("/actions/users/touch", {"id": 1, "values": {"note": "n"}, "valeus": {}}, "'valeus'"),
        ("/actions/users/touch", {"ids": [1], "values": {"note": "n"}}, "'ids'"),
        ("/actions/users/touch", {"id": 1, "values": {"note": "n"}, "inverseIds": False}, ""),
        ("/actions/users/touch", {"id": 1, "params": {"note": "n"}}, "'params'"),
        ("/actions/users/touch", {"id": 1, "values": {"note": "n"}, "request_id": "k"}, ""),
        ("/actions/users/block", {"id": 1}, "'id'"),
        ("/actions/users/block", {"ids": [1], "model": "users"}, "'model'"),
        ("/actions/orders/report", {"id": 1}, "'id'"),
        ("/actions/ping", {"ids": [1]}, "'ids'"),
        ("/actions/ping", {"name": "ping"}, "'name'"),
        ("/actions/ping", {"": 1, "x" * 1000: 2}, "''"),
    ],
)
def test_a_key_the_action_does_not_take_is_400_and_nothing_runs(
    world: World, path: str, body: dict[str, Any], unknown: str
) -> None:
    before = world.rows()
    response = world.post(path, body)
    assert_protocol_error(response, 400)
    assert "in the body" in response.get_json()["detail"]
    assert unknown in response.get_json()["detail"]
    assert len(response.get_json()["detail"]) < 400
    world.assert_nothing_ran(before)


@pytest.mark.parametrize(
    "values", [[], "note", 1, True, '{"note": "n"}'], ids=["list", "str", "int", "bool", "json"]
)
def test_values_must_be_an_object(world: World, values: Any) -> None:
    before = world.rows()
    response = world.post("/actions/users/touch", {"id": 1, "values": values})
    assert_protocol_error(response, 400, '"values" must be an object of param names to values.')
    world.assert_nothing_ran(before)


def test_null_values_and_an_empty_body_are_no_values(world: World) -> None:
    assert world.post("/actions/ping", {"values": None}).get_json()["result"] is True
    for kwargs in ({}, {"data": b""}, {"data": b"", "content_type": "text/plain"}):
        response = world.client.post("/flex/actions/ping", headers=AUTH, **kwargs)
        assert response.get_json() == {"result": True, "message": "pong"}
    response = world.post("/actions/users/touch", {"id": 1})
    assert response.get_json()["errors"] == {"note": ["Missing data for required field."]}


def test_both_forms_of_the_path_answer_without_redirect(world: World) -> None:
    for path in ("/actions/ping", "/actions/ping/", "/actions/users/touch/"):
        body = {"id": 1, "values": {"note": "n"}} if "touch" in path else {}
        response = world.post(path, body)
        assert response.status_code == 200, path
        assert response.get_json()["result"] is True


def test_paths_are_percent_encoded_names(world: World) -> None:
    assert route_path("shop;account", "credit") == "/actions/shop%3Baccount/credit"
    assert route_path(None, "odd/name") == "/actions/odd%2Fname"
    credit = {"values": {"source": 1, "amount": "1"}}
    for path in ("/actions/shop%3Baccount/credit", "/actions/shop;account/credit"):
        assert world.post(path, credit).get_json() == {"result": True, "message": "Credited 1"}
    assert world.post("/actions/odd%2Fname", {}).get_json() == {"result": True, "message": "odd"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/actions/nope", "Unknown action 'nope' among the common actions."),
        ("/actions/users/nope", "Unknown action 'nope' on the model 'users'."),
        ("/actions/nowhere/touch", "Unknown model 'nowhere': no action is registered on it."),
        ("/actions/users/ping", "Unknown action 'ping' on the model 'users'."),
        ("/actions/touch", "Unknown action 'touch' among the common actions."),
        ("/actions/a/b/c", "Unknown model 'a': no action is registered on it."),
    ],
)
def test_an_unknown_route_is_404(world: World, path: str, message: str) -> None:
    assert_protocol_error(world.post(path, {}), 404, message)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(world: World, method: str) -> None:
    response = world.client.open("/flex/actions/ping", method=method, headers=AUTH)
    assert_protocol_error(response, 405, "An action's route takes POST with a JSON body.")
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert world.calls == []


# Authentication and permissions, as on the Messages URL


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Token wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "wrong-token", "other-scheme"],
)
def test_credentials_are_needed(world: World, messages: Messages, headers: dict[str, str]) -> None:
    before = world.rows()
    response = world.post("/actions/ping", {}, headers=headers)
    assert_protocol_error(
        response, 401, "Missing or invalid credentials in the Authorization header."
    )
    assert response.headers["WWW-Authenticate"] == 'Token realm="flexactions"'
    envelope = {"name": "execute_action", "params": {"name": "ping"}}
    assert response.get_json() == messages.post(envelope, headers=headers).get_json()
    world.assert_nothing_ran(before)


NOT_BLOCK = "You may not run the action 'block'."


def test_permissions_are_those_of_the_messages_url(world: World, flex: FlexActions) -> None:
    callers = {
        "clerk": Caller(id="c", roles=frozenset({"clerk"})),
        "admin": Caller(id="a", roles=frozenset({"admin"})),
        "reader": Caller(id="r", roles=frozenset({"admin"}), read_only=True),
    }
    flex.authenticator(lambda request: callers.get(request.headers.get("X-Who", "")))
    before = world.rows()
    for who, message in (("clerk", NOT_BLOCK), ("reader", "Read-only users may not run actions.")):
        response = world.post("/actions/users/block", {"ids": [1]}, headers={"X-Who": who})
        assert_protocol_error(response, 403, message)
        world.assert_nothing_ran(before)
    # A stranger learns nothing of the body's shape before the permission check.
    response = world.post("/actions/users/block", {"typo": 1}, headers={"X-Who": "clerk"})
    assert_protocol_error(response, 403, NOT_BLOCK)
    response = world.post("/actions/users/block", {"ids": [1]}, headers={"X-Who": "admin"})
    assert response.get_json() == {"result": True, "message": "Blocked [1]"}


# CORS


def test_a_preflight_needs_no_credentials_and_runs_nothing(world: World) -> None:
    response = world.client.options(
        "/flex/actions/users/touch",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert world.calls == []


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/actions/ping", {}, AUTH, 200),
        ("/actions/orders/export", {"ids": [1]}, AUTH, 200),
        ("/actions/users/touch", {"x": 1}, AUTH, 400),
        ("/actions/ping", {}, {}, 401),
        ("/actions/nope", {}, AUTH, 404),
    ],
)
def test_every_answer_carries_the_cors_headers(
    world: World, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    response = world.post(path, body, headers={**headers, "Origin": ORIGIN})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Expose-Headers"] == "Content-Disposition, Content-Type"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Origin" in response.headers["Vary"]
    other = world.post(path, body, headers={**headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


# Limits


def assert_protocol_error(response: TestResponse, status: int, expected: str = "") -> None:
    """The status, and the one error shape with a single message repeated as ``detail``: the
    ``expected`` message, or its beginning when it is a :class:`Prefix`."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"result", "errors", "detail"}
    assert body["result"] is False
    [message] = body["errors"]["non_field_errors"]
    if isinstance(expected, Prefix):
        assert message.startswith(expected), message
    elif expected:
        assert message == expected
    assert body["detail"] == message


TOO_LARGE = "The request body is larger than 1000 bytes."
JSON_BODY = "Send the body as JSON with Content-Type: application/json."
NOT_OBJECT = "The request body must be a JSON object."
TOO_DEEP = "The JSON body is nested deeper than 8 levels."


def _padded(size: int) -> bytes:
    body = json.dumps({"id": 1, "values": {"note": "n"}}).encode()
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("config", [SMALL_CAP])
@pytest.mark.parametrize(
    ("data", "content_type", "chunked", "status", "message"),
    [
        (_padded(1000), "application/json", False, 200, ""),
        (_padded(1000), "application/json", True, 200, ""),
        (_padded(1001), "application/json", False, 413, TOO_LARGE),
        (_padded(1001), "application/json", True, 413, TOO_LARGE),
        (b"{" * 5000, "application/json", True, 413, TOO_LARGE),
        (_padded(100), "text/plain", False, 415, JSON_BODY),
        (_padded(100), "application/x-www-form-urlencoded", False, 415, JSON_BODY),
        (_padded(100), None, False, 415, JSON_BODY),
        (
            b'{"id": 1, "values": {"note": "n"',
            "application/json",
            False,
            400,
            Prefix("The request body is not valid JSON: Expecting ',' delimiter"),
        ),
        (
            b'{"id": NaN, "values": {"note": "n"}}',
            "application/json",
            False,
            400,
            "The request body is not valid JSON: NaN is not valid JSON",
        ),
        (b"\xff\xfe", "application/json", False, 400, "The request body is not valid UTF-8."),
        (b"[1]", "application/json", False, 400, NOT_OBJECT),
        (b'"text"', "application/json", False, 400, NOT_OBJECT),
        (b"null", "application/json", False, 400, NOT_OBJECT),
        (
            b'{"id": 1, "values": ' + b"[" * 9 + b"]" * 9 + b"}",
            "application/json",
            False,
            400,
            TOO_DEEP,
        ),
        (
            b'{"id": 1, "values": {"note": "n", "x": ' + b'{"a":' * 9 + b"1" + b"}" * 9 + b"}}",
            "application/json",
            False,
            400,
            TOO_DEEP,
        ),
        (
            b'{"id": 1, "values": {"note": "\\ud800"}}',
            "application/json",
            False,
            400,
            "The JSON body holds a string that is not valid Unicode.",
        ),
    ],
    ids=[
        "at-cap",
        "chunked-at-cap",
        "over-cap",
        "chunked-over-cap",
        "chunked-deep-over-cap",
        "text-plain",
        "form",
        "no-media-type",
        "truncated",
        "nan",
        "not-utf8",
        "array",
        "string",
        "null",
        "deep-array",
        "deep-object",
        "lone-surrogate",
    ],
)
def test_body_limits_are_those_of_the_messages_url(
    world: World, data: bytes, content_type: str | None, chunked: bool, status: int, message: str
) -> None:
    before = world.rows()
    kwargs: dict[str, Any] = {"data": data, "content_type": content_type}
    if chunked:
        kwargs = {
            "input_stream": io.BytesIO(data),
            "content_type": content_type,
            "environ_overrides": {"wsgi.input_terminated": True},
        }
    headers = {**AUTH, "Transfer-Encoding": "chunked"} if chunked else AUTH
    response = world.client.post("/flex/actions/users/touch", headers=headers, **kwargs)
    if status == 200:
        assert response.get_json() == {"result": True, "message": "Touched 1 (None)"}
        return
    assert_protocol_error(response, status, message)
    world.assert_nothing_ran(before)


class _BrokenStream(io.BytesIO):
    """A request body whose framing the server cannot read."""

    def read(self, size: int | None = -1) -> bytes:
        raise ValueError("Invalid chunk size")


def test_a_malformed_chunked_body_is_400(world: World) -> None:
    before = world.rows()
    response = world.client.post(
        "/flex/actions/users/touch",
        headers={**AUTH, "Transfer-Encoding": "chunked"},
        input_stream=_BrokenStream(),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    message = "The request body could not be read: its chunked encoding is malformed."
    assert_protocol_error(response, 400, message)
    world.assert_nothing_ran(before)


# Hostile selections and values: refused, never a 5xx, never a write


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/actions/users/touch", {"id": True, "values": {"note": "n"}}, not_int("True")),
        ("/actions/users/touch", {"id": 1.5, "values": {"note": "n"}}, not_int("1.5")),
        ("/actions/users/touch", {"id": {"a": 1}, "values": {"note": "n"}}, not_int("{'a': 1}")),
        (
            "/actions/users/touch",
            {"id": 2**64, "values": {"note": "n"}},
            out_of_range("18446744073709551616"),
        ),
        (
            "/actions/users/touch",
            {"id": "1 OR 1=1", "values": {"note": "n"}},
            not_int("'1 OR 1=1'"),
        ),
        (
            "/actions/users/touch",
            {"id": 1, "values": {"note": "n"}, "dry_run": "yes"},
            "dry_run must be true or false.",
        ),
        ("/actions/users/block", {"ids": {"1": 1}}, IDS_SHAPE),
        ("/actions/users/block", {"ids": [[1]]}, not_int("[1]")),
        (
            "/actions/users/block",
            {"ids": list(range(10_001))},
            "Too many ids: 10001 sent, at most 10000 per request (FLEXACTIONS_MAX_IDS). Select "
            "fewer records, or use inverseIds to exclude a few.",
        ),
        ("/actions/users/block", {"ids": [1], "inverseIds": 1}, INVERSE),
        ("/actions/tags/relabel", {"id": ""}, not_text("''")),
    ],
)
def test_malformed_selections_are_400_and_nothing_runs(
    world: World, path: str, body: dict[str, Any], message: str
) -> None:
    before = world.rows()
    response = world.post(path, body)
    assert_protocol_error(response, 400, message)
    world.assert_nothing_ran(before)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/actions/users/touch", {"id": 99, "values": {"note": "n"}}),
        ("/actions/users/touch", {"id": 1, "values": {"note": None}}),
        ("/actions/users/touch", {"id": 1, "values": {"note": 5}}),
        ("/actions/users/touch", {"id": 1, "values": {"note": "n", "count": "1e3"}}),
        ("/actions/users/touch", {"id": 1, "values": {"note": "n", "count": 2**70}}),
        ("/actions/users/touch", {"id": 1, "values": {"note": "a\u0000b"}}),
        ("/actions/users/block", {"ids": [1, 2, 99]}),
        ("/actions/users/block", {"ids": []}),
        ("/actions/shop%3Baccount/credit", {"values": {"source": 99, "amount": "1"}}),
        ("/actions/shop%3Baccount/credit", {"values": {"source": 1, "amount": "1e999"}}),
        ("/actions/shop%3Baccount/credit", {"values": {"source": "x", "amount": "1"}}),
        ("/actions/shop%3Baccount/credit", {"values": {"source": [1], "amount": {}}}),
    ],
)
def test_invalid_values_and_missing_rows_answer_result_false_and_write_nothing(
    world: World, path: str, body: dict[str, Any]
) -> None:
    before = world.rows()
    response = world.post(path, body)
    assert response.status_code == 200
    assert response.get_json()["result"] is False
    assert response.get_json()["errors"]
    world.assert_nothing_ran(before)


# Idempotency-Key


def test_an_idempotency_key_runs_once_and_replays(world: World) -> None:
    body = {"id": 1, "values": {"note": "n"}}
    key = {**AUTH, "Idempotency-Key": "route-key-1"}
    first = world.post("/actions/users/touch", body, headers=key)
    again = world.post("/actions/users/touch", {"values": {"note": "n"}, "id": "1"}, headers=key)
    assert first.get_json() == again.get_json() == {"result": True, "message": "Touched 1 (None)"}
    assert world.calls == [("touch", 1)]
    other = world.post("/actions/users/touch", {"id": 2, "values": {"note": "n"}}, headers=key)
    assert_protocol_error(
        other,
        422,
        "This Idempotency-Key was already used for a different request; send a new key for a "
        "new request.",
    )
    assert world.calls == [("touch", 1)]


def test_an_idempotency_key_is_shared_with_the_messages_url(
    world: World, messages: Messages
) -> None:
    key = {**AUTH, "Idempotency-Key": "shared-key"}
    envelope = {
        "name": "execute_action",
        "params": {"model": "users", "name": "touch", "id": 1, "params": {"note": "n"}},
    }
    first = messages.post(envelope, headers=key)
    again = world.post("/actions/users/touch", {"id": 1, "values": {"note": "n"}}, headers=key)
    assert first.get_data() == again.get_data()
    assert world.calls == [("touch", 1)]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
def test_a_malformed_idempotency_key_is_400(world: World, key: str) -> None:
    before = world.rows()
    body = {"id": 1, "values": {"note": "n"}}
    response = world.post("/actions/users/touch", body, headers={**AUTH, "Idempotency-Key": key})
    message = "An Idempotency-Key is 1 to 255 visible ASCII characters (no spaces), e.g. a UUID."
    assert_protocol_error(response, 400, message)
    world.assert_nothing_ran(before)
