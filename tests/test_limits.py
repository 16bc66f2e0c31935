"""Every request limit at its edge: the cap is accepted, one past it is refused and nothing runs.

Covers FLEXACTIONS_MAX_BODY, FLEXACTIONS_MAX_IDS, FLEXACTIONS_MAX_DEPTH and the strict grammar
and width of integer ids, all through the Messages URL. A refusal must carry the protocol's one
error shape, leave every handler uncalled and every table unchanged.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions
from tests.conftest import AUTH, URL, Messages
from tests.models import User, db

#: Users seeded for every test; more than the small ids cap, so ``inverseIds`` leaves some.
SEEDED = 8
SMALL_IDS = 5
SMALL_BODY = 2048
SMALL_DEPTH = 8
DEFAULT_IDS = 10_000
DEFAULT_BODY = 1024 * 1024
DEFAULT_DEPTH = 64


def table_rows(app: Flask) -> dict[str, list[str]]:
    """Every row of every table, as sorted reprs, so any write anywhere shows."""
    with app.app_context():
        return {
            table.name: sorted(repr(tuple(row)) for row in db.session.execute(sa.select(table)))
            for table in db.metadata.sorted_tables
        }


@dataclass
class World:
    """Seeded users, actions that record their calls and write, and the rows before."""

    app: Flask
    calls: list[tuple[str, list[int]]] = field(default_factory=list)
    content_lengths: list[int | None] = field(default_factory=list)
    before: dict[str, list[str]] = field(default_factory=dict)

    def assert_nothing_ran(self) -> None:
        assert self.calls == []
        assert table_rows(self.app) == self.before

    def seed(self, count: int) -> None:
        """Make the users table hold the ids 1..count, and take the snapshot again."""
        with self.app.app_context():
            existing = db.session.scalar(sa.select(sa.func.count()).select_from(User)) or 0
            rows = [{"id": i, "name": f"user{i}"} for i in range(existing + 1, count + 1)]
            if rows:
                db.session.execute(sa.insert(User), rows)
            db.session.commit()
        self.before = table_rows(self.app)


@pytest.fixture
def world(app: Flask, flex: FlexActions) -> World:
    world = World(app)
    world.seed(SEEDED)

    @app.before_request
    def note_content_length() -> None:
        world.content_lengths.append(request.content_length)

    @flex.action(User, bulk=True)
    def block(users: list[User], params: dict[str, Any]) -> str:
        world.calls.append(("block", [user.id for user in users]))
        for user in users:
            user.is_blocked = True
        return f"{len(users)} blocked"

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> None:
        world.calls.append(("touch", [user.id]))
        user.name = "touched"

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        world.calls.append(("ping", []))
        db.session.get(User, 1).name = "pinged"  # type: ignore[union-attr]

    return world


def post_raw(client: FlaskClient, data: bytes) -> TestResponse:
    """POST ``data`` with a Content-Length, as JSON, with the test token."""
    return client.post(URL, data=data, content_type="application/json", headers=AUTH)


def post_chunked(client: FlaskClient, data: bytes) -> TestResponse:
    """POST ``data`` without a Content-Length, as a server passes on a chunked body."""
    return client.post(
        URL,
        input_stream=io.BytesIO(data),
        content_type="application/json",
        headers={**AUTH, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


POSTS: dict[str, Callable[[FlaskClient, bytes], TestResponse]] = {
    "content-length": post_raw,
    "chunked": post_chunked,
}


def refusal(response: TestResponse, status: int) -> str:
    """Assert the status and the protocol's error shape; return its one message."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"result", "errors", "detail"}, body
    assert body["result"] is False
    assert list(body["errors"]) == ["non_field_errors"], body
    [message] = body["errors"]["non_field_errors"]
    assert isinstance(message, str) and message
    assert body["detail"] == message
    return message


def execute(**params: Any) -> dict[str, Any]:
    return {"name": "execute_action", "params": params}


# FLEXACTIONS_MAX_BODY


def ping_body(size: int) -> bytes:
    """A valid ping message padded with trailing whitespace to exactly ``size`` bytes."""
    data = json.dumps(execute(name="ping")).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


def broken_body(size: int) -> bytes:
    """``size`` bytes that are not JSON: parsing them is a 400, never a 413."""
    return b"{" * size


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_BODY": SMALL_BODY}])
@pytest.mark.parametrize("send", POSTS.values(), ids=POSTS.keys())
def test_body_of_exactly_the_cap_is_parsed(world: World, client: FlaskClient, send: Any) -> None:
    response = send(client, ping_body(SMALL_BODY))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": True}
    assert world.calls == [("ping", [])]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_BODY": SMALL_BODY}])
@pytest.mark.parametrize("send", POSTS.values(), ids=POSTS.keys())
def test_invalid_body_of_exactly_the_cap_is_parsed_and_refused_as_json(
    world: World, client: FlaskClient, send: Any
) -> None:
    message = refusal(send(client, broken_body(SMALL_BODY)), 400)
    assert "not valid JSON" in message
    world.assert_nothing_ran()


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_BODY": SMALL_BODY}])
@pytest.mark.parametrize("send", POSTS.values(), ids=POSTS.keys())
@pytest.mark.parametrize("make", [ping_body, broken_body], ids=["valid-json", "invalid-json"])
def test_body_one_byte_over_the_cap_is_413_before_parsing(
    world: World, client: FlaskClient, send: Any, make: Callable[[int], bytes]
) -> None:
    """Invalid JSON one byte over the cap is a 413 too: the size is checked before parsing."""
    message = refusal(send(client, make(SMALL_BODY + 1)), 413)
    assert str(SMALL_BODY) in message
    world.assert_nothing_ran()


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_BODY": SMALL_BODY}])
def test_chunked_posts_really_have_no_content_length(world: World, client: FlaskClient) -> None:
    """Guard the helpers: the chunked tests above do exercise the path without a length."""
    post_chunked(client, ping_body(SMALL_BODY))
    post_raw(client, ping_body(SMALL_BODY))
    assert world.content_lengths == [None, SMALL_BODY]


@pytest.mark.parametrize("send", POSTS.values(), ids=POSTS.keys())
def test_default_body_cap_edge(world: World, client: FlaskClient, send: Any) -> None:
    message = refusal(send(client, ping_body(DEFAULT_BODY + 1)), 413)
    assert str(DEFAULT_BODY) in message
    world.assert_nothing_ran()
    response = send(client, ping_body(DEFAULT_BODY))
    assert response.get_json() == {"result": True}
    assert world.calls == [("ping", [])]


# FLEXACTIONS_MAX_IDS


def ids_list(count: int) -> dict[str, Any]:
    return {"ids": list(range(1, count + 1))}


def ids_string(count: int) -> dict[str, Any]:
    return {"ids": ",".join(str(i) for i in range(1, count + 1))}


def id_and_ids(count: int) -> dict[str, Any]:
    return {"id": 1, "ids": list(range(2, count + 1))}


def ids_in_user_params(count: int) -> dict[str, Any]:
    """The older variant of the protocol: ``ids`` inside the user's params."""
    return {"params": {"ids": list(range(1, count + 1))}}


def inverse_exclusions(count: int) -> dict[str, Any]:
    return {"inverseIds": True, "ids": list(range(1, count + 1))}


SELECTIONS: dict[str, Callable[[int], dict[str, Any]]] = {
    "ids-list": ids_list,
    "ids-comma-string": ids_string,
    "id-plus-ids": id_and_ids,
    "ids-in-user-params": ids_in_user_params,
    "inverse-exclusions": inverse_exclusions,
}


def selected(selection: dict[str, Any], seeded: int) -> list[int]:
    """The user ids ``block`` must receive for ``selection`` (built by SELECTIONS)."""
    if selection.get("inverseIds"):
        excluded = set(selection["ids"])
        return [i for i in range(1, seeded + 1) if i not in excluded]
    raw = selection.get("ids", selection.get("params", {}).get("ids"))
    ids = [int(i) for i in (raw.split(",") if isinstance(raw, str) else raw)]
    return [selection["id"], *ids] if "id" in selection else ids


def assert_ids_cap_edge(
    world: World, messages: Messages, build: Callable[[int], dict[str, Any]], cap: int, seeded: int
) -> None:
    over = build(cap + 1)
    message = refusal(messages.execute("block", "users", **over), 400)
    assert "FLEXACTIONS_MAX_IDS" in message and str(cap) in message
    assert message.startswith("Too many ids: ") and message.endswith(
        f"sent, at most {cap} per request (FLEXACTIONS_MAX_IDS). Select fewer records, or use "
        "inverseIds to exclude a few."
    )
    world.assert_nothing_ran()

    at_cap = build(cap)
    response = messages.execute("block", "users", **at_cap)
    assert response.status_code == 200, response.get_data(as_text=True)
    expected = selected(at_cap, seeded)
    assert response.get_json() == {"result": True, "message": f"{len(expected)} blocked"}
    assert world.calls == [("block", expected)]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_IDS": SMALL_IDS}])
@pytest.mark.parametrize("build", SELECTIONS.values(), ids=SELECTIONS.keys())
def test_ids_cap_edge(world: World, messages: Messages, build: Any) -> None:
    assert_ids_cap_edge(world, messages, build, SMALL_IDS, SEEDED)


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_IDS": SMALL_IDS}])
def test_ids_cap_counts_ids_as_sent_before_removing_duplicates(
    world: World, messages: Messages
) -> None:
    """The cap bounds the work of parsing, so repeated ids count; at the cap they are one."""
    message = refusal(messages.execute("block", "users", ids=[1] * (SMALL_IDS + 1)), 400)
    assert "FLEXACTIONS_MAX_IDS" in message
    world.assert_nothing_ran()
    response = messages.execute("block", "users", ids=[1] * SMALL_IDS)
    assert response.get_json() == {"result": True, "message": "1 blocked"}


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_IDS": SMALL_IDS}])
def test_ids_cap_refuses_before_parsing_any_id(world: World, messages: Messages) -> None:
    """Past the cap the answer names the cap, not the first malformed id."""
    message = refusal(messages.execute("block", "users", ids=["x"] * (SMALL_IDS + 1)), 400)
    assert "FLEXACTIONS_MAX_IDS" in message
    world.assert_nothing_ran()


@pytest.mark.parametrize(
    "build", [ids_list, inverse_exclusions], ids=["ids-list", "inverse-exclusions"]
)
def test_default_ids_cap_edge(world: World, messages: Messages, build: Any) -> None:
    world.seed(DEFAULT_IDS + 1)
    assert_ids_cap_edge(world, messages, build, DEFAULT_IDS, DEFAULT_IDS + 1)


# FLEXACTIONS_MAX_DEPTH


def nest(levels: int) -> Any:
    """A JSON value nested exactly ``levels`` containers deep, alternating objects and arrays."""
    value: Any = []
    for level in range(levels - 1):
        value = [value] if level % 2 else {"k": value}
    return value


def depth(value: Any) -> int:
    """Containers on the deepest path of ``value``; scalars add nothing."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def in_body(levels: int) -> dict[str, Any]:
    """The whole body ``levels`` deep (envelope, params and user params are three)."""
    return execute(name="ping", params={"x": nest(levels - 3)})


def in_params_string(levels: int) -> dict[str, Any]:
    """``params`` as a JSON-encoded string whose own nesting is ``levels`` deep."""
    inner = {"name": "ping", "params": {"x": nest(levels - 2)}}
    return {"name": "execute_action", "params": json.dumps(inner)}


def in_user_params_string(levels: int) -> dict[str, Any]:
    """The user's ``params.params`` as a JSON-encoded string ``levels`` deep."""
    return execute(name="ping", params=json.dumps({"x": nest(levels - 1)}))


def nested_part(body: dict[str, Any]) -> Any:
    """What the server parses on its own: the body, or the JSON string inside it."""
    params = body["params"]
    if isinstance(params, str):
        return json.loads(params)
    if isinstance(params["params"], str):
        return json.loads(params["params"])
    return body


PLACES: dict[str, Callable[[int], dict[str, Any]]] = {
    "body": in_body,
    "params-string": in_params_string,
    "user-params-string": in_user_params_string,
}


@pytest.mark.parametrize("build", PLACES.values(), ids=PLACES.keys())
@pytest.mark.parametrize("levels", [SMALL_DEPTH, SMALL_DEPTH + 1, DEFAULT_DEPTH, 200])
def test_depth_builders_nest_exactly(build: Callable[[int], dict[str, Any]], levels: int) -> None:
    """Guard the builders: the part the server parses is exactly ``levels`` deep."""
    assert depth(nested_part(build(levels))) == levels
    if build is not in_body:
        assert depth(build(levels)) <= 3


def assert_depth_edge(
    world: World, client: FlaskClient, build: Callable[[int], dict[str, Any]], cap: int
) -> None:
    message = refusal(post_raw(client, json.dumps(build(cap + 1)).encode()), 400)
    assert f"nested deeper than {cap} levels" in message
    world.assert_nothing_ran()

    response = post_raw(client, json.dumps(build(cap)).encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"result": True}
    assert world.calls == [("ping", [])]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_MAX_DEPTH": SMALL_DEPTH}])
@pytest.mark.parametrize("build", PLACES.values(), ids=PLACES.keys())
def test_depth_cap_edge(world: World, client: FlaskClient, build: Any) -> None:
    assert_depth_edge(world, client, build, SMALL_DEPTH)


@pytest.mark.parametrize("build", PLACES.values(), ids=PLACES.keys())
def test_default_depth_cap_edge(world: World, client: FlaskClient, build: Any) -> None:
    assert_depth_edge(world, client, build, DEFAULT_DEPTH)


# Integer ids: strict grammar


#: Wire ids an integer key refuses, though Python's int() or float() would take several.
MALFORMED_INTEGER_IDS: dict[str, Any] = {
    "plus-sign": "+1",
    "minus-sign-string": "-1",
    "leading-space": " 1",
    "trailing-space": "1 ",
    "trailing-newline": "1\n",
    "underscore": "1_000",
    "arabic-indic-digits": "\u0661\u0662",
    "fullwidth-digit": "\uff11",
    "hex": "0x10",
    "exponent-string": "1e3",
    "decimal-string": "1.0",
    "empty-string": "",
    "integral-float": 1.0,
    "exponent-number": 1e3,
    "true": True,
    "false": False,
    "null": None,
    "list": [1],
    "nested-list": [[1]],
    "object": {"id": 1},
}

AS_ID = {k: v for k, v in MALFORMED_INTEGER_IDS.items() if v is not None}  # null id: none sent
AS_STRING = {k: v for k, v in MALFORMED_INTEGER_IDS.items() if isinstance(v, str)}


@pytest.mark.parametrize("bad", MALFORMED_INTEGER_IDS.values(), ids=MALFORMED_INTEGER_IDS.keys())
def test_malformed_integer_id_in_ids_is_400(world: World, messages: Messages, bad: Any) -> None:
    message = refusal(messages.execute("block", "users", ids=[1, bad]), 400)
    assert message.startswith("Invalid id for 'users'")
    world.assert_nothing_ran()


@pytest.mark.parametrize("bad", AS_ID.values(), ids=AS_ID.keys())
def test_malformed_integer_id_as_id_is_400(world: World, messages: Messages, bad: Any) -> None:
    message = refusal(messages.execute("touch", "users", id=bad), 400)
    assert message.startswith("Invalid id for 'users'")
    world.assert_nothing_ran()


@pytest.mark.parametrize("bad", AS_STRING.values(), ids=AS_STRING.keys())
def test_malformed_integer_id_in_comma_string_is_400(
    world: World, messages: Messages, bad: str
) -> None:
    message = refusal(messages.execute("block", "users", ids=f"1,{bad}"), 400)
    assert message.startswith("Invalid id for 'users'")
    world.assert_nothing_ran()


@pytest.mark.parametrize("bad", AS_STRING.values(), ids=AS_STRING.keys())
def test_malformed_integer_id_as_inverse_exclusion_is_400(
    world: World, messages: Messages, bad: str
) -> None:
    message = refusal(messages.execute("block", "users", inverseIds=True, ids=[bad]), 400)
    assert message.startswith("Invalid id for 'users'")
    world.assert_nothing_ran()


# Integer ids: the width of the key


def key_bits(app: Flask) -> int:
    """``users.id`` is an INTEGER: 32-bit on PostgreSQL, 64-bit on SQLite."""
    return 64 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 32


#: Which edge of the key's range, and how the id is sent. A string id is ASCII digits only,
#: so no string reaches the negative edge; a JSON number does.
WIDTH_CASES = [("max", "json-number"), ("max", "string"), ("min", "json-number")]


def edge_ids(bits: int, edge: str, form: str) -> tuple[Any, Any]:
    """The last id in range at ``edge`` of a signed ``bits``-bit key, and the next one out."""
    half = 2 ** (bits - 1)
    inside, outside = (half - 1, half) if edge == "max" else (-half, -half - 1)
    if form == "string":
        return str(inside), str(outside)
    return inside, outside


def missing(number: int) -> dict[str, Any]:
    return {
        "result": False,
        "errors": {"non_field_errors": [f"No record of users has the id {number}."]},
    }


@pytest.mark.parametrize(("edge", "form"), WIDTH_CASES, ids=["-".join(c) for c in WIDTH_CASES])
@pytest.mark.parametrize("action", ["block", "touch"])
def test_integer_key_width_edge(
    app: Flask, world: World, messages: Messages, action: str, edge: str, form: str
) -> None:
    bits = key_bits(app)
    inside, outside = edge_ids(bits, edge, form)
    selection = {"ids": [outside]} if action == "block" else {"id": outside}
    message = refusal(messages.execute(action, "users", **selection), 400)
    assert f"out of range for a {bits}-bit integer id" in message
    world.assert_nothing_ran()

    selection = {"ids": [inside]} if action == "block" else {"id": inside}
    response = messages.execute(action, "users", **selection)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == missing(int(inside))
    world.assert_nothing_ran()


def test_width_edges_name_the_columns_range(app: Flask) -> None:
    """Guard the edges: on PostgreSQL 2**31 really is one past an INTEGER."""
    assert edge_ids(32, "max", "json-number") == (2_147_483_647, 2_147_483_648)
    assert edge_ids(64, "min", "json-number") == (-(2**63), -(2**63) - 1)
    assert edge_ids(64, "max", "string") == (str(2**63 - 1), str(2**63))
    with app.app_context():
        dialect = db.engine.dialect.name
    assert key_bits(app) == (64 if dialect == "sqlite" else 32)
