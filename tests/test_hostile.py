"""Hostile bodies: each gets the right 4xx with the protocol's error body, and nothing runs."""

from __future__ import annotations

import io
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions
from flask_flexactions.doors.body import parse_json
from flask_flexactions.errors import ProtocolError
from tests.conftest import AUTH, URL, Messages
from tests.models import Device, Order, Tag, User, db

DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000001")


@dataclass
class Armed:
    """Actions that record their calls and write to the database, and the state before."""

    app: Flask
    calls: list[str] = field(default_factory=list)
    before: Any = None

    def snapshot(self) -> Any:
        with self.app.app_context():
            users = [(u.id, u.name, u.is_blocked) for u in db.session.scalars(sa.select(User))]
            tags = [(t.code, t.label) for t in db.session.scalars(sa.select(Tag))]
            devices = [(d.id, d.name) for d in db.session.scalars(sa.select(Device))]
        return sorted(users), sorted(tags), sorted(devices)

    def assert_nothing_ran(self) -> None:
        assert self.calls == []
        assert self.snapshot() == self.before


@pytest.fixture
def armed(app: Flask, flex: FlexActions) -> Armed:
    with app.app_context():
        db.session.add_all([User(id=pk, name=f"user{pk}") for pk in (1, 2, 3)])
        db.session.add_all([Tag(code="alpha", label="A"), Device(id=DEVICE, name="d")])
        db.session.commit()
    armed = Armed(app)

    @flex.action(User, for_instance=True, params=[{"name": "note", "field": "TextField"}])
    def touch(user: User, params: dict[str, Any]) -> None:
        armed.calls.append("touch")
        user.name = "touched"

    @flex.action(User, bulk=True)
    def block(users: list[User], params: dict[str, Any]) -> None:
        armed.calls.append("block")
        for user in users:
            user.is_blocked = True

    @flex.action(Tag, bulk=True)
    def relabel(tags: list[Tag], params: dict[str, Any]) -> None:
        armed.calls.append("relabel")
        for tag in tags:
            tag.label = "changed"

    @flex.action(Device, bulk=True)
    def rename(devices: list[Device], params: dict[str, Any]) -> None:
        armed.calls.append("rename")
        for device in devices:
            device.name = "changed"

    @flex.action(Order, bulk=True)
    def refund(orders: list[Order], params: dict[str, Any]) -> None:
        armed.calls.append("refund")
        db.session.add(User(id=998, name="refund"))

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        armed.calls.append("ping")
        db.session.add(User(id=999, name="ping"))

    armed.before = armed.snapshot()
    return armed


def post_raw(
    client: FlaskClient,
    data: bytes,
    content_type: str | None = "application/json",
    headers: dict[str, str] = AUTH,
    **kwargs: Any,
) -> TestResponse:
    return client.post(URL, data=data, content_type=content_type, headers=headers, **kwargs)


class Prefix(str):
    """An expected error message known only up to its end (a parser's position, a width)."""


def assert_protocol_error(response: TestResponse, status: int, expected: str = "") -> None:
    """The status, and the one error shape with a single non-empty message: ``expected``
    (the message of the check that must refuse the request, not just any), or its beginning
    when it is a :class:`Prefix`."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"result", "errors", "detail"}
    assert body["result"] is False
    assert list(body["errors"]) == ["non_field_errors"]
    [message] = body["errors"]["non_field_errors"]
    assert isinstance(message, str) and message
    if isinstance(expected, Prefix):
        assert message.startswith(expected), message
    elif expected:
        assert message == expected
    assert body["detail"] == message


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def execute(**params: Any) -> dict[str, Any]:
    return {"name": "execute_action", "params": params}


TOUCH = '{"name":"execute_action","params":{"name":"touch","model":"users","id":1,"params":%s}}'


def touch_with(user_params: str) -> bytes:
    """An execute body for ``touch`` whose user params are the raw text ``user_params``."""
    return (TOUCH % user_params).encode()


def nested(levels: int) -> bytes:
    """A ping body whose JSON nesting is exactly ``levels`` deep."""
    inner = levels - 3  # the envelope, its params and the user params are three levels
    lists = "[" * inner + "]" * inner
    return (
        '{"name":"execute_action","params":{"name":"ping","params":{"x":' + lists + "}}}"
    ).encode()


NOT_JSON = "The request body is not valid JSON: "
PARAMS_NOT_JSON = '"params" is not valid JSON: '
VALUES_NOT_JSON = "params.params is not valid JSON: "
NOT_UTF8 = "The request body is not valid UTF-8."
TOO_DEEP = "The JSON body is nested deeper than 64 levels."
BODY_NOT_OBJECT = "The request body must be a JSON object."
NO_NAME = 'The body needs "name", the message name, e.g. "get_action_list".'
PARAMS_NOT_OBJECT = '"params" must be an object.'
PARAMS_NOT_JSON_OBJECT = '"params" must be a JSON object.'
NO_ACTION_NAME = "execute_action needs params.name, the action's name."
MODEL_NOT_STRING = "params.model must be the collection's name, a string."
USER_PARAMS_NOT_OBJECT = "params.params must be an object of param names to values."
USER_PARAMS_NOT_JSON_OBJECT = "params.params must be a JSON object."
NOT_UNICODE = "The JSON body holds a string that is not valid Unicode."

# Each case: its id, the body, the status and the message of the check that must refuse it.
BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    # Not JSON
    (
        "invalid-json",
        b'{"name": "get_action_list"',
        400,
        Prefix(NOT_JSON + "Expecting ',' delimiter"),
    ),
    ("trailing-garbage", b'{"name":"get_action_list"} x', 400, Prefix(NOT_JSON + "Extra data")),
    (
        "single-quotes",
        b"{'name': 'get_action_list'}",
        400,
        Prefix(NOT_JSON + "Expecting property name enclosed in double quotes"),
    ),
    (
        "trailing-comma",
        b'{"name":"get_action_list",}',
        400,
        Prefix(NOT_JSON + "Expecting property name enclosed in double quotes"),
    ),
    (
        "comment",
        b'{"name":"get_action_list" /* hi */}',
        400,
        Prefix(NOT_JSON + "Expecting ',' delimiter"),
    ),
    ("empty-body", b"", 400, Prefix(NOT_JSON + "Expecting value")),
    ("whitespace-body", b"  \n ", 400, Prefix(NOT_JSON + "Expecting value")),
    # Non-standard number literals and overflowing numbers
    ("nan", touch_with('{"note":NaN}'), 400, NOT_JSON + "NaN is not valid JSON"),
    ("infinity", touch_with('{"note":Infinity}'), 400, NOT_JSON + "Infinity is not valid JSON"),
    (
        "minus-infinity",
        touch_with('{"note":-Infinity}'),
        400,
        NOT_JSON + "-Infinity is not valid JSON",
    ),
    ("nan-top-level", b"NaN", 400, NOT_JSON + "NaN is not valid JSON"),
    (
        "nan-as-id",
        b'{"name":"execute_action","params":{"name":"touch","model":"users","id":NaN}}',
        400,
        NOT_JSON + "NaN is not valid JSON",
    ),
    ("1e400", touch_with('{"note":1e400}'), 400, NOT_JSON + "number out of range: 1e400"),
    ("-1e400", touch_with('{"note":-1e400}'), 400, NOT_JSON + "number out of range: -1e400"),
    (
        "1e400-as-id",
        b'{"name":"execute_action","params":{"name":"block","model":"users","ids":[1e400]}}',
        400,
        NOT_JSON + "number out of range: 1e400",
    ),
    (
        "5000-digit-int",
        touch_with('{"note":1' + "0" * 5000 + "}"),
        400,
        Prefix(NOT_JSON),  # then Python's own words for its integer-digits limit
    ),
    # Invalid Unicode
    ("lone-surrogate", touch_with('{"note":"\\ud800"}'), 400, NOT_UNICODE),
    ("lone-low-surrogate", touch_with('{"note":"a\\udfffb"}'), 400, NOT_UNICODE),
    ("lone-surrogate-in-key", touch_with('{"\\ud800":"x"}'), 400, NOT_UNICODE),
    ("lone-surrogate-in-name", b'{"name":"get_action_list\\ud800"}', 400, NOT_UNICODE),
    ("invalid-utf8", (TOUCH % '{"note":"\xff"}').encode("latin-1"), 400, NOT_UTF8),
    ("overlong-utf8", b'{"name":"get_action_list","params":{"x":"\xc0\xaf"}}', 400, NOT_UTF8),
    ("truncated-utf8", b'{"name":"get_action_list","params":{"x":"\xe2\x82"}}', 400, NOT_UTF8),
    ("utf16-body", '{"name":"get_action_list"}'.encode("utf-16"), 400, NOT_UTF8),
    # Nesting
    ("nesting-65", nested(65), 400, TOO_DEEP),
    (
        "nesting-100000-arrays",
        touch_with('{"note":' + "[" * 100_000 + "]" * 100_000 + "}"),
        400,
        TOO_DEEP,
    ),
    ("nesting-100000-objects", ('{"a":' * 100_000 + "1" + "}" * 100_000).encode(), 400, TOO_DEEP),
    ("nesting-100000-unclosed", b"[" * 100_000, 400, TOO_DEEP),
    # The body is not an object
    ("array", b"[]", 400, BODY_NOT_OBJECT),
    ("array-of-message", b'[{"name":"get_action_list"}]', 400, BODY_NOT_OBJECT),
    ("string", b'"get_action_list"', 400, BODY_NOT_OBJECT),
    ("number", b"1", 400, BODY_NOT_OBJECT),
    ("null", b"null", 400, BODY_NOT_OBJECT),
    ("true", b"true", 400, BODY_NOT_OBJECT),
    # The message name
    ("missing-name", b"{}", 400, NO_NAME),
    ("missing-name-with-params", b'{"params":{}}', 400, NO_NAME),
    ("name-number", b'{"name":1}', 400, NO_NAME),
    ("name-null", b'{"name":null}', 400, NO_NAME),
    ("name-array", b'{"name":["get_action_list"]}', 400, NO_NAME),
    ("name-object", b'{"name":{"name":"get_action_list"}}', 400, NO_NAME),
    ("name-true", b'{"name":true}', 400, NO_NAME),
    ("unknown-name", b'{"name":"get_actions"}', 400, Prefix("Unknown message 'get_actions';")),
    ("empty-name", b'{"name":""}', 400, Prefix("Unknown message '';")),
    (
        "upper-case-name",
        b'{"name":"GET_ACTION_LIST"}',
        400,
        Prefix("Unknown message 'GET_ACTION_LIST';"),
    ),
    (
        "name-with-space",
        b'{"name":"execute_action "}',
        400,
        Prefix("Unknown message 'execute_action ';"),
    ),
    (
        "get-field-options",
        dumps({"name": "get_field_options", "params": {}}),
        400,
        "get_field_options needs params.field, the name of a param.",
    ),
    (
        "get-element-status",
        dumps({"name": "get_element_status"}),
        400,
        "The message 'get_element_status' is not supported: it is reserved and unspecified.",
    ),
    # The outer params
    ("params-list", dumps({"name": "get_action_list", "params": []}), 400, PARAMS_NOT_OBJECT),
    ("params-number", dumps({"name": "get_action_list", "params": 5}), 400, PARAMS_NOT_OBJECT),
    ("params-true", dumps({"name": "get_action_list", "params": True}), 400, PARAMS_NOT_OBJECT),
    ("params-false", dumps({"name": "get_action_list", "params": False}), 400, PARAMS_NOT_OBJECT),
    (
        "params-invalid-json-string",
        dumps({"name": "get_action_list", "params": "{"}),
        400,
        Prefix(PARAMS_NOT_JSON + "Expecting property name enclosed in double quotes"),
    ),
    (
        "params-json-string-of-list",
        dumps({"name": "get_action_list", "params": "[]"}),
        400,
        PARAMS_NOT_JSON_OBJECT,
    ),
    (
        "params-json-string-of-number",
        dumps({"name": "get_action_list", "params": "5"}),
        400,
        PARAMS_NOT_JSON_OBJECT,
    ),
    (
        "params-json-string-of-string",
        dumps({"name": "get_action_list", "params": '"{}"'}),
        400,
        PARAMS_NOT_JSON_OBJECT,
    ),
    (
        "params-json-string-empty",
        dumps({"name": "execute_action", "params": ""}),
        400,
        Prefix(PARAMS_NOT_JSON + "Expecting value"),
    ),
    (
        "params-json-string-nan",
        dumps({"name": "execute_action", "params": '{"name":NaN}'}),
        400,
        PARAMS_NOT_JSON + "NaN is not valid JSON",
    ),
    (
        "params-json-string-too-deep",
        dumps({"name": "execute_action", "params": "[" * 100 + "]" * 100}),
        400,
        TOO_DEEP,
    ),
    # execute_action params
    ("action-name-missing", dumps(execute(model="users", id=1)), 400, NO_ACTION_NAME),
    ("action-name-null", dumps(execute(name=None, model="users", id=1)), 400, NO_ACTION_NAME),
    ("action-name-number", dumps(execute(name=5, model="users", id=1)), 400, NO_ACTION_NAME),
    ("action-name-empty", dumps(execute(name="", model="users", id=1)), 400, NO_ACTION_NAME),
    ("action-name-list", dumps(execute(name=["touch"], model="users", id=1)), 400, NO_ACTION_NAME),
    ("model-number", dumps(execute(name="touch", model=5, id=1)), 400, MODEL_NOT_STRING),
    ("model-list", dumps(execute(name="touch", model=["users"], id=1)), 400, MODEL_NOT_STRING),
    (
        "model-object",
        dumps(execute(name="touch", model={"name": "users"}, id=1)),
        400,
        MODEL_NOT_STRING,
    ),
    ("model-true", dumps(execute(name="touch", model=True, id=1)), 400, MODEL_NOT_STRING),
    (
        "user-params-list",
        dumps(execute(name="touch", model="users", id=1, params=[1])),
        400,
        USER_PARAMS_NOT_OBJECT,
    ),
    (
        "user-params-number",
        dumps(execute(name="touch", model="users", id=1, params=5)),
        400,
        USER_PARAMS_NOT_OBJECT,
    ),
    (
        "user-params-string",
        dumps(execute(name="touch", model="users", id=1, params="x")),
        400,
        Prefix(VALUES_NOT_JSON + "Expecting value"),
    ),
    (
        "user-params-json-list",
        dumps(execute(name="touch", model="users", id=1, params="[1]")),
        400,
        USER_PARAMS_NOT_JSON_OBJECT,
    ),
    # Unknown actions and models
    (
        "unknown-action",
        dumps(execute(name="nope", model="users", id=1)),
        404,
        "Unknown action 'nope' on the model 'users'.",
    ),
    (
        "unknown-common-action",
        dumps(execute(name="nope")),
        404,
        "Unknown action 'nope' among the common actions.",
    ),
    (
        "unknown-model",
        dumps(execute(name="touch", model="nopes", id=1)),
        404,
        "Unknown model 'nopes': no action is registered on it.",
    ),
    (
        "model-wrong-case",
        dumps(execute(name="touch", model="Users", id=1)),
        404,
        "Unknown model 'Users': no action is registered on it.",
    ),
    (
        "model-for-common-action",
        dumps(execute(name="ping", model="users")),
        404,
        "Unknown action 'ping' on the model 'users'.",
    ),
    (
        "model-missing-for-model-action",
        dumps(execute(name="touch", id=1)),
        404,
        "Unknown action 'touch' among the common actions.",
    ),
    (
        "model-empty-for-model-action",
        dumps(execute(name="touch", model="", id=1)),
        404,
        "Unknown action 'touch' among the common actions.",
    ),
    (
        "action-on-another-model",
        dumps(execute(name="touch", model="tags", id="alpha")),
        404,
        "Unknown action 'touch' on the model 'tags'.",
    ),
    (
        "unregistered-model",
        dumps(execute(name="touch", model="shop;account", id=1)),
        404,
        "Unknown model 'shop;account': no action is registered on it.",
    ),
    (
        "table-name-of-renamed-model",
        dumps(execute(name="touch", model="accounts", id=1)),
        404,
        "Unknown model 'accounts': no action is registered on it.",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [(d, s, f) for _, d, s, f in BAD_BODIES],
    ids=[i for i, _, _, _ in BAD_BODIES],
)
def test_bad_body_is_refused_and_nothing_runs(
    armed: Armed, client: FlaskClient, data: bytes, status: int, message: str
) -> None:
    response = post_raw(client, data)
    assert_protocol_error(response, status, message)
    armed.assert_nothing_ran()


def test_bad_body_bytes_are_what_the_test_means() -> None:
    """Guard the raw fixtures above: the invalid UTF-8 body really holds a bare 0xFF byte."""
    [body] = [d for i, d, _, _ in BAD_BODIES if i == "invalid-utf8"]
    assert b"\xff" in body
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert nested(65).count(b"[") == 62 and json.loads(nested(64))


def test_nesting_of_exactly_the_limit_is_accepted(armed: Armed, client: FlaskClient) -> None:
    response = post_raw(client, nested(64))
    assert response.status_code == 200
    assert response.get_json() == {"result": True}
    assert armed.calls == ["ping"]


def ping_with(value: str) -> bytes:
    """A ping body whose user param ``x`` is the JSON text ``value``."""
    return (
        '{"name":"execute_action","params":{"name":"ping","params":{"x":' + value + "}}}"
    ).encode()


@pytest.mark.parametrize(
    ("value", "status"),
    [
        # Brackets inside strings count in the text but not in the nesting: still accepted.
        ('"' + "[{" * 100 + '"', 200),
        ('"caf\\u00e9"', 200),
        ('"café"', 200),
        # Non-ASCII text takes the full walk, which still finds the nesting.
        ('["é",' + "[" * 70 + "]" * 70 + "]", 400),
        ('"é\\udc00"', 400),
    ],
    ids=["brackets-in-a-string", "escaped-e-acute", "raw-e-acute", "deep-non-ascii", "surrogate"],
)
def test_the_text_shortcut_never_decides_a_body_it_cannot_vouch_for(
    armed: Armed, client: FlaskClient, value: str, status: int
) -> None:
    response = post_raw(client, ping_with(value))
    assert response.status_code == status
    if status == 200:
        assert armed.calls == ["ping"]
    else:
        armed.assert_nothing_ran()


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_DEPTH": 5}])
def test_nesting_limit_follows_the_config(armed: Armed, client: FlaskClient) -> None:
    assert_protocol_error(
        post_raw(client, nested(6)), 400, "The JSON body is nested deeper than 5 levels."
    )
    armed.assert_nothing_ran()
    assert post_raw(client, nested(5)).get_json() == {"result": True}
    assert armed.calls == ["ping"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["é",' + "[" * 70 + "1" + "]" * 70 + ",[1]]", TOO_DEEP),
        ('["\\u00e9",' + "[" * 70 + "1" + "]" * 70 + ",[1]]", TOO_DEEP),
        ('[["\\ud800"],[1]]', NOT_UNICODE),
        ('[{"\\ud800":1},[1],{"a":2}]', NOT_UNICODE),
    ],
    ids=["deep-then-numbers", "escaped-deep-then-numbers", "surrogate-then-numbers", "key"],
)
def test_a_number_only_container_never_ends_the_walk(
    armed: Armed, client: FlaskClient, value: str, message: str
) -> None:
    """The walk skips a container of numbers only; the siblings pushed before it (a deep one,
    a bad string) must still be checked. Each body takes the walk: non-ASCII or ``\\u``."""
    response = post_raw(client, ping_with(value))
    assert_protocol_error(response, 400, message)
    armed.assert_nothing_ran()


def nested_slow(levels: int, text: str) -> bytes:
    """A ping body nested exactly ``levels`` deep whose innermost array holds the JSON string
    ``text``: non-ASCII or escaped, so the exact walk decides, not the text shortcut."""
    inner = levels - 3
    return ping_with("[" * inner + text + "]" * inner)


@pytest.mark.parametrize("text", ['"é"', '"\\u00e9"', '"\\ud83d\\ude00"'])
@pytest.mark.parametrize(
    ("config", "cap"),
    [({}, 64), ({"FLEXACTIONS_MAX_DEPTH": 5}, 5), ({"FLEXACTIONS_MAX_DEPTH": 4}, 4)],
    ids=["default-cap", "cap-5", "cap-4"],
)
def test_the_exact_walk_accepts_the_cap_and_refuses_one_more(
    armed: Armed, client: FlaskClient, cap: int, text: str
) -> None:
    assert json.loads(nested_slow(cap, text))
    over = post_raw(client, nested_slow(cap + 1, text))
    assert_protocol_error(over, 400, f"The JSON body is nested deeper than {cap} levels.")
    armed.assert_nothing_ran()
    response = post_raw(client, nested_slow(cap, text))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": True}
    assert armed.calls == ["ping"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('"é"'.encode(), BODY_NOT_OBJECT),
        (b'"\\u00e9"', BODY_NOT_OBJECT),
        (b'"\\ud800"', NOT_UNICODE),
        ('["é"]'.encode(), BODY_NOT_OBJECT),
    ],
    ids=["e-acute", "escaped-e-acute", "lone-surrogate", "array-of-e-acute"],
)
def test_a_bare_non_ascii_body_is_checked_then_refused(
    armed: Armed, client: FlaskClient, data: bytes, message: str
) -> None:
    assert_protocol_error(post_raw(client, data), 400, message)
    armed.assert_nothing_ran()


@pytest.mark.parametrize(
    ("text", "value"),
    [('"é"', "é"), ('"\\u00e9"', "é"), ('"\\ud83d\\ude00"', "😀"), ('["é",[1]]', ["é", [1]])],
)
def test_parse_json_returns_a_valid_non_ascii_value(text: str, value: Any) -> None:
    assert parse_json(text, 3) == value
    assert parse_json(text.encode(), 3) == value


@pytest.mark.parametrize(
    ("text", "cap", "message"),
    [
        ('["é",[[[[[[1]]]]]],[1]]', 3, "The JSON body is nested deeper than 3 levels."),
        ('[["\\ud800"],[1]]', 3, NOT_UNICODE),
        ('"\\ud800"', 3, NOT_UNICODE),
        ('{"é":[["x"]]}', 2, "The JSON body is nested deeper than 2 levels."),
        ('{"\\udc00":1}', 3, NOT_UNICODE),
    ],
)
def test_parse_json_refuses_what_the_walk_finds(text: str, cap: int, message: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_json(text, cap)
    assert refused.value.message == message and refused.value.status == 400


@pytest.mark.parametrize(
    ("text", "cap"),
    [('["é",[[1]]]', 3), ('{"é":[["x"]]}', 3), ('[[["\\u00e9"]]]', 3), ('[{"a":{"é":1}}]', 3)],
)
def test_parse_json_accepts_the_walk_at_the_cap(text: str, cap: int) -> None:
    assert parse_json(text, cap) == json.loads(text)
    with pytest.raises(ProtocolError) as refused:
        parse_json(text, cap - 1)
    assert refused.value.message == f"The JSON body is nested deeper than {cap - 1} levels."


IDS_SHAPE = "ids must be an array of ids or a comma-separated string."
INVERSE = "inverseIds must be true or false."


def not_int(shown: str) -> str:
    return f"Invalid id for 'users': {shown} is not an integer id."


def out_of_range(shown: str) -> str:
    """The key's width is 32 bits on PostgreSQL, 64 on SQLite: the message is known up to it."""
    return Prefix(f"Invalid id for 'users': {shown} is out of range for a ")


def not_text(shown: str) -> str:
    return f"Invalid id for 'tags': {shown} is not a valid id."


def not_uuid(shown: str) -> str:
    return f"Invalid id for 'devices': {shown} is not a UUID."


# Each case names the message of the check that must refuse it: a malformed selection routed to
# another check (the shape of ids, inverseIds, another collection's key) is a failure too.
BAD_IDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("double-comma", "block", {"ids": "1,,2"}, not_int("''")),
    ("trailing-comma", "block", {"ids": "1,2,"}, not_int("''")),
    ("leading-comma", "block", {"ids": ",1"}, not_int("''")),
    ("lone-comma", "block", {"ids": ","}, not_int("''")),
    ("sql-injection", "block", {"ids": "1; DROP TABLE users"}, not_int("'1; DROP TABLE users'")),
    ("sql-injection-in-array", "block", {"ids": ["1 OR 1=1"]}, not_int("'1 OR 1=1'")),
    ("space-in-comma-string", "block", {"ids": "1, 2"}, not_int("' 2'")),
    ("object", "block", {"ids": {"a": 1}}, IDS_SHAPE),
    ("bool-in-array", "block", {"ids": [True]}, not_int("True")),
    ("false-in-array", "block", {"ids": [False]}, not_int("False")),
    ("ids-true", "block", {"ids": True}, IDS_SHAPE),
    ("ids-float", "block", {"ids": 1.5}, IDS_SHAPE),
    ("float-in-array", "block", {"ids": [1.5]}, not_int("1.5")),
    ("integral-float-in-array", "block", {"ids": [1.0]}, not_int("1.0")),
    ("trailing-space", "block", {"ids": ["1 "]}, not_int("'1 '")),
    ("leading-space", "block", {"ids": [" 1"]}, not_int("' 1'")),
    ("plus-sign", "block", {"ids": ["+1"]}, not_int("'+1'")),
    ("minus-sign-string", "block", {"ids": ["-1"]}, not_int("'-1'")),
    ("decimal-string", "block", {"ids": ["1.0"]}, not_int("'1.0'")),
    ("hex-string", "block", {"ids": ["0x10"]}, not_int("'0x10'")),
    ("exponent-string", "block", {"ids": ["1e3"]}, not_int("'1e3'")),
    ("fullwidth-digit", "block", {"ids": ["１"]}, not_int("'１'")),
    ("arabic-indic-digit", "block", {"ids": ["\u0661"]}, not_int("'\u0661'")),
    ("superscript-digit", "block", {"ids": ["\u00b9"]}, not_int("'\u00b9'")),
    ("above-int64", "block", {"ids": [2**63]}, out_of_range("9223372036854775808")),
    ("below-int64", "block", {"ids": [-(2**63) - 1]}, out_of_range("-9223372036854775809")),
    ("above-int64-string", "block", {"ids": [str(2**63)]}, out_of_range("9223372036854775808")),
    (
        "huge-string",
        "block",
        {"ids": ["9" * 5000]},
        "Invalid id for 'users': " + "9" * 40 + "... is out of range for an integer id.",
    ),
    ("empty-string-in-array", "block", {"ids": [""]}, not_int("''")),
    ("null-in-array", "block", {"ids": [None]}, not_int("None")),
    ("nested-array", "block", {"ids": [[1]]}, not_int("[1]")),
    ("object-in-array", "block", {"ids": [{"id": 1}]}, not_int("{'id': 1}")),
    ("one-bad-among-good", "block", {"ids": [1, 2, "x"]}, not_int("'x'")),
    ("bad-nested-ids", "block", {"params": {"ids": "1,,2"}}, not_int("''")),
    ("bad-nested-object", "block", {"params": {"ids": {"a": 1}}}, IDS_SHAPE),
    ("inverse-string", "block", {"inverseIds": "true"}, INVERSE),
    ("inverse-int", "block", {"inverseIds": 1}, INVERSE),
    ("inverse-zero", "block", {"inverseIds": 0}, INVERSE),
    ("inverse-list", "block", {"inverseIds": []}, INVERSE),
    ("nested-inverse-string", "block", {"params": {"inverseIds": "true"}}, INVERSE),
    ("inverse-with-bad-ids", "block", {"inverseIds": True, "ids": ["x"]}, not_int("'x'")),
    ("id-true", "touch", {"id": True}, not_int("True")),
    ("id-float", "touch", {"id": 1.5}, not_int("1.5")),
    ("id-list", "touch", {"id": [1]}, not_int("[1]")),
    ("id-object", "touch", {"id": {"a": 1}}, not_int("{'a': 1}")),
    ("id-empty-string", "touch", {"id": ""}, not_int("''")),
    ("id-word", "touch", {"id": "abc"}, not_int("'abc'")),
    ("id-above-int64", "touch", {"id": 2**63}, out_of_range("9223372036854775808")),
    ("id-with-newline", "touch", {"id": "1\n"}, not_int("'1\\n'")),
    ("text-empty", "relabel", {"ids": [""]}, not_text("''")),
    ("text-bool", "relabel", {"ids": [True]}, not_text("True")),
    ("text-float", "relabel", {"ids": [1.5]}, not_text("1.5")),
    ("text-null", "relabel", {"ids": [None]}, not_text("None")),
    ("text-object", "relabel", {"ids": [{"a": 1}]}, not_text("{'a': 1}")),
    ("text-list", "relabel", {"ids": [["alpha"]]}, not_text("['alpha']")),
    ("text-double-comma", "relabel", {"ids": "alpha,,beta"}, not_text("''")),
    ("uuid-word", "rename", {"ids": ["not-a-uuid"]}, not_uuid("'not-a-uuid'")),
    ("uuid-int", "rename", {"ids": [5]}, not_uuid("5")),
    ("uuid-empty", "rename", {"ids": [""]}, not_uuid("''")),
    ("uuid-bool", "rename", {"ids": [True]}, not_uuid("True")),
    (
        "uuid-short",
        "rename",
        {"ids": [str(DEVICE)[:-1]]},
        not_uuid("'00000000-0000-4000-8000-00000000000'"),
    ),
]

MODEL_OF = {"block": "users", "touch": "users", "relabel": "tags", "rename": "devices"}


@pytest.mark.parametrize(
    ("action", "selection", "message"),
    [(a, s, f) for _, a, s, f in BAD_IDS],
    ids=[i for i, _, _, _ in BAD_IDS],
)
def test_malformed_ids_are_400_and_nothing_runs(
    armed: Armed, messages: Messages, action: str, selection: dict[str, Any], message: str
) -> None:
    response = messages.execute(action, MODEL_OF[action], **selection)
    assert_protocol_error(response, 400, message)
    armed.assert_nothing_ran()


@pytest.mark.parametrize(
    "ids",
    [[2**63 - 1], [-(2**63)], [str(2**63 - 1)], [0], [-1]],
    ids=["max-int64", "min-int64", "max-int64-string", "zero", "negative-json-int"],
)
def test_ids_at_the_edges_of_int64_are_well_formed_but_missing(
    armed: Armed, messages: Messages, ids: list[Any]
) -> None:
    """``orders`` has a BIGINT key: every signed 64-bit id is well-formed."""
    response = messages.execute("refund", "orders", ids=ids)
    assert response.status_code == 200
    assert response.get_json() == {
        "result": False,
        "errors": {"non_field_errors": [f"No record of orders has the id {int(ids[0])}."]},
    }
    armed.assert_nothing_ran()


@pytest.mark.parametrize(
    "ids",
    [[2**31], [-(2**31) - 1], [2**63 - 1], [str(2**63 - 1)], ["1", 2**40]],
    ids=["above-int32", "below-int32", "max-int64", "max-int64-string", "mixed"],
)
def test_ids_beyond_a_32_bit_key_are_never_a_server_error(
    armed: Armed, messages: Messages, ids: list[Any]
) -> None:
    """``users`` has an INTEGER key: ids past its range must not reach the database as a crash.

    The protocol calls ids outside the column type's range malformed (400); answering that they
    match no row (200, result false) is accepted too. A 500 is not.
    """
    response = messages.execute("block", "users", ids=ids)
    body = response.get_json()
    if response.status_code == 200:
        assert body["result"] is False and list(body["errors"]) == ["non_field_errors"], body
    else:
        assert_protocol_error(response, 400, Prefix("Invalid id for 'users': "))
    armed.assert_nothing_ran()


@pytest.mark.parametrize(
    ("declaration", "value"),
    [
        ({"field": "IntegerField"}, "9" * 5000),
        ({"field": "IntegerField"}, "-" + "9" * 5000),
        ({"field": "ForeignKey", "params": {"related_model": {"model": "users"}}}, "9" * 5000),
        ({"field": "ForeignKey", "params": {"related_model": {"model": "users"}}}, 2**40),
        ({"field": "ForeignKey", "params": {"related_model": {"model": "users"}}}, 2**63 - 1),
        ({"field": "DecimalField"}, "9" * 5000),
    ],
    ids=[
        "integer-5000-digits",
        "integer-minus-5000-digits",
        "fk-5000-digits",
        "fk-beyond-int32",
        "fk-max-int64",
        "decimal-5000-digits",
    ],
)
def test_oversized_numbers_in_params_are_field_errors(
    armed: Armed, flex: FlexActions, messages: Messages, declaration: dict[str, Any], value: Any
) -> None:
    @flex.action(params=[{"name": "p", **declaration}])
    def form(params: dict[str, Any]) -> None:
        armed.calls.append("form")

    response = messages.execute("form", params={"p": value})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["result"] is False and list(body["errors"]) == ["p"], body
    armed.assert_nothing_ran()


# Media type

JSON_ONLY = "Send the message as JSON with Content-Type: application/json."


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", dumps({"name": "get_action_list"})),
        ("application/x-www-form-urlencoded", b"name=get_action_list"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
            b"get_action_list\r\n--x--\r\n",
        ),
        ("text/json", dumps({"name": "get_action_list"})),
        ("application/jsonp", dumps({"name": "get_action_list"})),
        ("application/json-patch+json", dumps({"name": "get_action_list"})),
        (None, dumps({"name": "get_action_list"})),
    ],
    ids=["text-plain", "form", "multipart", "text-json", "jsonp", "json-patch", "none"],
)
def test_wrong_content_type_is_415(
    armed: Armed, client: FlaskClient, content_type: str | None, data: bytes
) -> None:
    response = post_raw(client, data, content_type)
    assert_protocol_error(response, 415, JSON_ONLY)
    armed.assert_nothing_ran()


def test_form_post_with_flask_helpers_is_415(armed: Armed, client: FlaskClient) -> None:
    response = client.post(URL, data={"name": "execute_action"}, headers=AUTH)
    assert_protocol_error(response, 415, JSON_ONLY)
    armed.assert_nothing_ran()


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"],
)
def test_json_content_type_variants_are_accepted(
    armed: Armed, client: FlaskClient, content_type: str
) -> None:
    response = post_raw(client, dumps(execute(name="ping")), content_type)
    assert response.status_code == 200
    assert response.get_json() == {"result": True}
    assert armed.calls == ["ping"]


# Body size


SMALL_CAP = {"FLEXACTIONS_MAX_BODY": 1000}


def padded(size: int, trailer: bytes = b" ") -> bytes:
    """A valid touch body padded with whitespace to exactly ``size`` bytes."""
    body = touch_with('{"note":"x"}')
    return body + trailer * (size - len(body))


def post_chunked(client: FlaskClient, data: bytes, headers: dict[str, str] = AUTH) -> TestResponse:
    """POST without Content-Length, as a server that decodes chunked encoding passes it on."""
    return client.post(
        URL,
        input_stream=io.BytesIO(data),
        content_type="application/json",
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("config", [SMALL_CAP])
def test_body_at_the_cap_is_accepted(armed: Armed, client: FlaskClient) -> None:
    response = post_raw(client, padded(1000))
    assert response.status_code == 200
    assert response.get_json() == {"result": True}
    assert armed.calls == ["touch"]


@pytest.mark.parametrize("config", [SMALL_CAP])
def test_chunked_body_at_the_cap_is_accepted(armed: Armed, client: FlaskClient) -> None:
    response = post_chunked(client, padded(1000))
    assert response.status_code == 200
    assert response.get_json() == {"result": True}
    assert armed.calls == ["touch"]


@pytest.mark.parametrize("config", [SMALL_CAP])
@pytest.mark.parametrize(
    "data",
    [padded(1001), padded(5000), b"{" * 5000, b"\xff" * 5000],
    ids=["one-byte-over", "valid-json-over", "invalid-json-over", "invalid-utf8-over"],
)
def test_body_over_the_cap_is_413(armed: Armed, client: FlaskClient, data: bytes) -> None:
    response = post_raw(client, data)
    assert_protocol_error(response, 413, "The request body is larger than 1000 bytes.")
    armed.assert_nothing_ran()


@pytest.mark.parametrize("config", [SMALL_CAP])
@pytest.mark.parametrize(
    "data",
    [padded(1001), padded(5000), b"{" * 5000, touch_with('{"note":"x"}') + b"x" * 5000],
    ids=["one-byte-over", "valid-json-over", "invalid-json-over", "valid-prefix-then-garbage"],
)
def test_chunked_body_over_the_cap_is_413(armed: Armed, client: FlaskClient, data: bytes) -> None:
    response = post_chunked(client, data)
    assert_protocol_error(response, 413, "The request body is larger than 1000 bytes.")
    armed.assert_nothing_ran()


def test_body_over_the_default_cap_is_413(armed: Armed, client: FlaskClient) -> None:
    response = post_raw(client, padded(1024 * 1024 + 1))
    assert_protocol_error(response, 413, f"The request body is larger than {1024 * 1024} bytes.")
    armed.assert_nothing_ran()


# Order of the checks: auth, media type, size, JSON

ORDER_MESSAGES = {
    401: "Missing or invalid credentials in the Authorization header.",
    415: JSON_ONLY,
    413: "The request body is larger than 1000 bytes.",
}


@pytest.mark.parametrize("config", [SMALL_CAP])
@pytest.mark.parametrize(
    ("headers", "content_type", "data", "status"),
    [
        ({}, "text/plain", b"x" * 5000, 401),
        ({}, "application/json", b"x" * 5000, 401),
        ({}, "application/json", b"{", 401),
        (AUTH, "text/plain", b"x" * 5000, 415),
        (AUTH, "text/plain", b"{", 415),
        (AUTH, "application/json", b"{" * 5000, 413),
    ],
    ids=[
        "auth-before-media-type",
        "auth-before-size",
        "auth-before-json",
        "media-type-before-size",
        "media-type-before-json",
        "size-before-json",
    ],
)
def test_order_of_checks(
    armed: Armed,
    client: FlaskClient,
    headers: dict[str, str],
    content_type: str,
    data: bytes,
    status: int,
) -> None:
    response = post_raw(client, data, content_type, headers)
    assert_protocol_error(response, status, ORDER_MESSAGES[status])
    armed.assert_nothing_ran()


# Volume


# An app that raises the ids cap gets every id loaded, in few statements.
@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_IDS": 50_000}])
def test_fifty_thousand_ids_in_one_bulk_request(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    count = 50_000
    with app.app_context():
        db.session.execute(sa.insert(User), [{"id": i, "name": "u"} for i in range(1, count + 1)])
        db.session.commit()
    seen: list[int] = []

    @flex.action(User, bulk=True)
    def tally(users: list[User], params: dict[str, Any]) -> str:
        seen.extend(user.id for user in users)
        return f"{len(users)} users"

    ids = list(range(count, 0, -1))
    response = messages.execute("tally", "users", ids=ids)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": f"{count} users"}
    assert seen == ids


# Random mutations


HOSTILE_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    -(2**63) - 1,
    "",
    " ",
    "1,,2",
    "\u0000",
    "１",
    "x" * 300,
    [],
    [[]],
    [None],
    [True],
    {},
    {"a": {"b": []}},
    "{",
    "[]",
    '{"name":"touch"}',
    "get_action_list",
    "execute_action",
    "touch",
    "block",
    "users",
    "tags",
]

RAW_INSERTS = [b"\x00", b"\xff", b'"', b"{", b"[", b"]", b",", b"NaN", b"\\ud800", b"1e400", b"\\"]


def _containers(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, (dict, list)):
        out.append(value)
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            _containers(child, out)
    return out


def mutate(rng: random.Random, body: Any) -> bytes:
    """One random structural or byte-level change to a valid body."""
    kind = rng.randrange(6)
    if kind < 4:
        container = rng.choice(_containers(body, []))
        if isinstance(container, dict) and container:
            key = rng.choice(list(container))
            if kind == 0:
                del container[key]
            elif kind == 1:
                container[key] = rng.choice(HOSTILE_VALUES)
            elif kind == 2:
                container[key] = [container[key]] if rng.random() < 0.5 else {"v": container[key]}
            else:
                container[rng.choice(["inverseIds", "ids", "id", "model", "name", "params"])] = (
                    rng.choice(HOSTILE_VALUES)
                )
        elif isinstance(container, list):
            container.append(rng.choice(HOSTILE_VALUES))
        return json.dumps(body).encode()
    data = bytearray(json.dumps(body).encode())
    position = rng.randrange(len(data))
    if kind == 4:
        data[position : position + rng.randrange(1, 4)] = rng.choice(RAW_INSERTS)
    else:
        del data[position:]
    return bytes(data)


def valid_bodies() -> list[Any]:
    return [
        execute(name="touch", model="users", id=1, params={"note": "n"}),
        execute(name="block", model="users", ids=[1, 2], params={}),
        execute(name="block", model="users", ids="1,2", inverseIds=False),
        execute(name="relabel", model="tags", ids=["alpha"]),
        execute(name="rename", model="devices", ids=[str(DEVICE)]),
        execute(name="ping", params={}),
        {"name": "get_action_list", "params": {}},
    ]


def test_random_mutations_never_crash_or_write(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    with app.app_context():
        db.session.add_all([User(id=pk, name=f"user{pk}") for pk in (1, 2, 3)])
        db.session.add_all([Tag(code="alpha", label="A"), Device(id=DEVICE, name="d")])
        db.session.commit()
    armed = Armed(app)
    armed.before = armed.snapshot()

    # Every handler writes, then returns False: whatever runs must be rolled back.
    @flex.action(User, for_instance=True, params=[{"name": "note", "field": "TextField"}])
    def touch(user: User, params: dict[str, Any]) -> bool:
        armed.calls.append("touch")
        user.name = "touched"
        return False

    @flex.action(User, bulk=True)
    def block(users: list[User], params: dict[str, Any]) -> bool:
        armed.calls.append("block")
        for user in users:
            user.is_blocked = True
        return False

    @flex.action(Tag, bulk=True)
    def relabel(tags: list[Tag], params: dict[str, Any]) -> bool:
        armed.calls.append("relabel")
        tags[0].label = "changed"
        return False

    @flex.action(Device, bulk=True)
    def rename(devices: list[Device], params: dict[str, Any]) -> bool:
        armed.calls.append("rename")
        devices[0].name = "changed"
        return False

    @flex.action()
    def ping(params: dict[str, Any]) -> bool:
        armed.calls.append("ping")
        db.session.add(User(id=999, name="ping"))
        return False

    rng = random.Random(0)
    statuses: dict[int, int] = {}
    for _ in range(300):
        body = rng.choice(valid_bodies())
        data = mutate(rng, body)
        if rng.random() < 0.3:
            data = mutate(rng, json.loads(data)) if _is_json(data) else data
        calls_before = len(armed.calls)
        response = post_raw(client, data)
        status = response.status_code
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (data[:300], response.get_data(as_text=True))
        if status >= 400:
            assert_protocol_error(response, status)
            assert len(armed.calls) == calls_before, data[:300]
    assert armed.snapshot() == armed.before
    # The mutations exercise both refusals and runs.
    assert statuses.get(400, 0) > 50 and statuses.get(200, 0) > 10, statuses


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
