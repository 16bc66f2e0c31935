"""The Messages URL end to end: envelopes, id selection, missing rows, query counts, answers."""

from __future__ import annotations

import io
import json
import math
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, jsonify, make_response, send_file
from flask.testing import FlaskClient
from werkzeug.test import TestResponse
from werkzeug.wrappers import Response as WerkzeugResponse

from flask_flexactions import FlexActions, Result
from flask_flexactions.run.answers import INTERNAL_ERROR_MESSAGE
from tests.conftest import AUTH, URL, Messages
from tests.models import Device, Tag, User, db

EXPOSE = "Content-Disposition, Content-Type"
NO_SELECTION = "No records selected: send id, ids, or inverseIds."
NO_ROWS = "No records selected: the collection has no rows to act on."
INTERNAL_ERROR = {
    "result": False,
    "errors": {"non_field_errors": [INTERNAL_ERROR_MESSAGE]},
    "detail": INTERNAL_ERROR_MESSAGE,
}

#: Inserted out of primary key order, so "pk order" cannot come from insertion order.
USER_IDS = [5, 3, 1, 4, 2]
DEVICE_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
DEVICE_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def seed_users(app: Flask, ids: list[int] = USER_IDS) -> None:
    with app.app_context():
        db.session.add_all([User(id=pk, name=f"user{pk}") for pk in ids])
        db.session.commit()


def user_names(app: Flask) -> dict[int, str]:
    """Every user's name, read in a fresh session after the request."""
    with app.app_context():
        return {user.id: user.name for user in db.session.scalars(sa.select(User))}


def not_found(message: str) -> dict[str, Any]:
    return {"result": False, "errors": {"non_field_errors": [message]}}


def refused(message: str) -> dict[str, Any]:
    """The body of an error status: one message, repeated as ``detail``."""
    return {"result": False, "errors": {"non_field_errors": [message]}, "detail": message}


# Envelope


@pytest.mark.parametrize(
    "body",
    [
        {"name": "get_action_list"},
        {"name": "get_action_list", "params": {}},
        {"name": "get_action_list", "params": None},
        {"name": "get_action_list", "params": "{}"},
        {"name": "get_action_list", "params": ' {"anything": [1, 2]} '},
        {"name": "get_action_list", "params": {"unrelated": 1}, "extra": True},
    ],
    ids=["absent", "empty", "null", "json-string", "json-string-spaces", "extra-keys"],
)
def test_get_action_list_envelope_variants(
    flex: FlexActions, messages: Messages, body: dict[str, Any]
) -> None:
    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    response = messages.post(body)
    assert response.status_code == 200
    assert response.get_json() == [{"name": "ping", "common_action": {}, "params": []}]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "ping"}, {}),
        (json.dumps({"name": "ping"}), {}),
        (json.dumps({"name": "ping", "params": {"n": 7}}), {"n": 7}),
        ({"name": "ping", "params": json.dumps({"n": 7})}, {"n": 7}),
    ],
    ids=["object", "json-string", "json-string-with-user-params", "user-params-json-string"],
)
def test_execute_action_envelope_variants(
    flex: FlexActions, messages: Messages, params: Any, expected: dict[str, Any]
) -> None:
    received: list[dict[str, Any]] = []

    @flex.action(params=[{"name": "n", "field": "IntegerField"}])
    def ping(values: dict[str, Any]) -> str:
        received.append(values)
        return "pong"

    response = messages.post({"name": "execute_action", "params": params})
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": "pong"}
    assert received == [expected]


# Ids of a record action


RECORD_VARIANTS = [
    ({"id": 2}, "id-int"),
    ({"id": "2"}, "id-str"),
    ({"ids": [2]}, "ids-one-int"),
    ({"ids": ["2"]}, "ids-one-str"),
    ({"ids": "2"}, "ids-comma-string"),
    ({"ids": 2}, "ids-single-int"),
    ({"ids": [2, "2", 2]}, "ids-duplicates"),
    ({"id": 2, "ids": [2]}, "id-and-same-ids"),
    ({"params": {"ids": [2]}}, "nested-ids"),
    ({"params": {"ids": "2"}}, "nested-comma-string"),
    ({"params": json.dumps({"ids": [2]})}, "nested-ids-json-string"),
    ({"id": 2, "inverseIds": False}, "inverse-false"),
    ({"id": 2, "inverseIds": None}, "inverse-null"),
]


@pytest.mark.parametrize(
    "selection", [v for v, _ in RECORD_VARIANTS], ids=[i for _, i in RECORD_VARIANTS]
)
def test_record_action_id_variants(
    app: Flask, flex: FlexActions, messages: Messages, selection: dict[str, Any]
) -> None:
    seed_users(app)
    calls: list[tuple[int, dict[str, Any]]] = []

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> None:
        calls.append((user.id, params))

    response = messages.execute("touch", "users", **selection)
    assert response.status_code == 200
    assert response.get_json() == {"result": True}
    assert calls == [(2, {})]


TWO_IDS = "'touch' is a record action: send one id, not 2."
INVERSE = "'touch' is a record action: inverseIds needs bulk."


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"ids": [1, 2]}, TWO_IDS),
        ({"ids": "1,2"}, TWO_IDS),
        ({"id": 1, "ids": [2]}, TWO_IDS),
        ({"params": {"ids": [1, 2]}}, TWO_IDS),
        ({"id": 1, "inverseIds": True}, INVERSE),
        ({"inverseIds": True}, INVERSE),
        ({"params": {"inverseIds": True}}, INVERSE),
    ],
    ids=[
        "array",
        "comma-string",
        "id-plus-ids",
        "nested",
        "inverse-with-id",
        "inverse-alone",
        "inverse-nested",
    ],
)
def test_record_action_refuses_several_ids_and_inverse_ids(
    app: Flask, flex: FlexActions, messages: Messages, selection: dict[str, Any], message: str
) -> None:
    seed_users(app)
    calls: list[Any] = []

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> None:
        calls.append(user)

    response = messages.execute("touch", "users", **selection)
    assert response.status_code == 400
    assert response.get_json() == refused(message)
    assert calls == []


# Ids of a bulk action


BULK_VARIANTS = [
    ({"ids": [3, 1, 2]}, [3, 1, 2], "array-in-sent-order"),
    ({"ids": [5, 4, 3, 2, 1]}, [5, 4, 3, 2, 1], "array-reversed"),
    ({"ids": "3,1,2"}, [3, 1, 2], "comma-string"),
    ({"ids": ["3", 1, "2"]}, [3, 1, 2], "mixed-int-and-str"),
    ({"ids": [4]}, [4], "one-element"),
    ({"ids": 4}, [4], "single-int"),
    ({"id": 4}, [4], "id"),
    ({"id": 4, "ids": [2, 3]}, [4, 2, 3], "id-first-then-ids"),
    ({"ids": [2, 1, 2, 3, 1]}, [2, 1, 3], "duplicates-keep-first"),
    ({"ids": "2,1,2"}, [2, 1], "duplicates-in-comma-string"),
    ({"ids": [2, "2", 1]}, [2, 1], "duplicates-int-and-str"),
    ({"params": {"ids": [2, 1]}}, [2, 1], "nested-array"),
    ({"params": {"ids": "2,1"}}, [2, 1], "nested-comma-string"),
    ({"params": json.dumps({"ids": [2, 1]})}, [2, 1], "nested-in-json-string"),
    ({"ids": [1], "params": {"ids": [2]}}, [1], "top-level-wins-over-nested"),
    ({"inverseIds": True}, [1, 2, 3, 4, 5], "inverse-all-pk-order"),
    ({"inverseIds": True, "ids": []}, [1, 2, 3, 4, 5], "inverse-empty-array"),
    ({"inverseIds": True, "ids": ""}, [1, 2, 3, 4, 5], "inverse-empty-string"),
    ({"inverseIds": True, "ids": [4, 2]}, [1, 3, 5], "inverse-except-array"),
    ({"inverseIds": True, "ids": "4,2"}, [1, 3, 5], "inverse-except-comma-string"),
    ({"inverseIds": True, "ids": [99, 4]}, [1, 2, 3, 5], "inverse-except-unknown-id"),
    ({"params": {"inverseIds": True}}, [1, 2, 3, 4, 5], "nested-inverse"),
    ({"params": {"inverseIds": True, "ids": [4]}}, [1, 2, 3, 5], "nested-inverse-and-ids"),
    ({"inverseIds": False, "ids": [3]}, [3], "inverse-false"),
    ({"inverseIds": None, "ids": [3]}, [3], "inverse-null"),
]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [(v, e) for v, e, _ in BULK_VARIANTS],
    ids=[i for _, _, i in BULK_VARIANTS],
)
def test_bulk_action_id_variants(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    selection: dict[str, Any],
    expected: list[int],
) -> None:
    seed_users(app)
    calls: list[tuple[list[int], dict[str, Any]]] = []

    @flex.action(User, bulk=True)
    def tag(users: list[User], params: dict[str, Any]) -> str:
        calls.append(([user.id for user in users], params))
        return f"{len(users)}"

    response = messages.execute("tag", "users", **selection)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": str(len(expected))}
    assert calls == [(expected, {})]


def test_declared_param_named_ids_is_a_user_param(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    seed_users(app)
    calls: list[tuple[list[int], dict[str, Any]]] = []

    @flex.action(User, bulk=True, params=[{"name": "ids", "field": "JSONField"}])
    def tag(users: list[User], params: dict[str, Any]) -> None:
        calls.append(([user.id for user in users], params))

    response = messages.execute("tag", "users", ids=[1], params={"ids": [9, 8]})
    assert response.get_json() == {"result": True}
    assert calls == [([1], {"ids": [9, 8]})]
    # Without a top-level selection, the declared param does not select anything.
    response = messages.execute("tag", "users", params={"ids": [1]})
    assert response.get_json() == not_found(NO_SELECTION)
    assert len(calls) == 1


def test_declared_param_named_inverse_ids_is_a_user_param(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    seed_users(app)
    calls: list[tuple[list[int], dict[str, Any]]] = []

    @flex.action(User, bulk=True, params=[{"name": "inverseIds", "field": "BooleanField"}])
    def tag(users: list[User], params: dict[str, Any]) -> None:
        calls.append(([user.id for user in users], params))

    response = messages.execute("tag", "users", ids=[2], params={"inverseIds": True})
    assert response.get_json() == {"result": True}
    assert calls == [([2], {"inverseIds": True})]


# Text and UUID primary keys


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"ids": ["gamma", "alpha"]}, ["gamma", "alpha"]),
        ({"ids": "gamma,alpha"}, ["gamma", "alpha"]),
        ({"ids": [10, "beta"]}, ["10", "beta"]),
        ({"id": "beta"}, ["beta"]),
        ({"ids": ["beta", "beta", "alpha"]}, ["beta", "alpha"]),
        ({"inverseIds": True, "ids": ["beta"]}, ["10", "alpha", "gamma"]),
    ],
    ids=["array", "comma-string", "number-as-text", "id", "duplicates", "inverse"],
)
def test_text_primary_key(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    selection: dict[str, Any],
    expected: list[str],
) -> None:
    with app.app_context():
        db.session.add_all([Tag(code=code) for code in ["gamma", "10", "beta", "alpha"]])
        db.session.commit()
    calls: list[list[str]] = []

    @flex.action(Tag, bulk=True)
    def mark(tags: list[Tag], params: dict[str, Any]) -> None:
        calls.append([tag.code for tag in tags])

    response = messages.execute("mark", "tags", **selection)
    assert response.get_json() == {"result": True}
    assert calls == [expected]


def test_text_primary_key_record_action_and_missing(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    with app.app_context():
        db.session.add(Tag(code="alpha", label="A"))
        db.session.commit()
    calls: list[str] = []

    @flex.action(Tag, for_instance=True)
    def show(tag: Tag, params: dict[str, Any]) -> str:
        calls.append(tag.code)
        return tag.label

    assert messages.execute("show", "tags", id="alpha").get_json() == {
        "result": True,
        "message": "A",
    }
    response = messages.execute("show", "tags", id="nope")
    assert response.get_json() == not_found("No record of tags has the id nope.")
    assert calls == ["alpha"]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"id": str(DEVICE_A)}, [DEVICE_A]),
        ({"id": str(DEVICE_A).upper()}, [DEVICE_A]),
        ({"ids": [str(DEVICE_B), str(DEVICE_A)]}, [DEVICE_B, DEVICE_A]),
        ({"ids": f"{DEVICE_B},{DEVICE_A}"}, [DEVICE_B, DEVICE_A]),
        ({"ids": [str(DEVICE_A), str(DEVICE_A).upper()]}, [DEVICE_A]),
        ({"inverseIds": True, "ids": [str(DEVICE_A)]}, [DEVICE_B]),
    ],
    ids=["id", "id-upper-case", "array", "comma-string", "duplicates-any-case", "inverse"],
)
def test_uuid_primary_key(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    selection: dict[str, Any],
    expected: list[uuid.UUID],
) -> None:
    with app.app_context():
        db.session.add_all([Device(id=DEVICE_B, name="b"), Device(id=DEVICE_A, name="a")])
        db.session.commit()
    calls: list[list[uuid.UUID]] = []

    @flex.action(Device, bulk=True)
    def reboot(devices: list[Device], params: dict[str, Any]) -> None:
        calls.append([device.id for device in devices])

    response = messages.execute("reboot", "devices", **selection)
    assert response.get_json() == {"result": True}
    assert calls == [expected]


def test_uuid_primary_key_missing(app: Flask, flex: FlexActions, messages: Messages) -> None:
    with app.app_context():
        db.session.add(Device(id=DEVICE_A))
        db.session.commit()
    calls: list[Any] = []

    @flex.action(Device, bulk=True)
    def reboot(devices: list[Device], params: dict[str, Any]) -> None:
        calls.append(devices)

    unknown = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
    response = messages.execute("reboot", "devices", ids=[str(DEVICE_A), str(unknown)])
    assert response.get_json() == not_found(f"No record of devices has the id {unknown}.")
    assert calls == []


# Missing ids


@pytest.mark.parametrize(
    ("action", "selection", "message"),
    [
        ("bulk", {"ids": [1, 99, 2, 98]}, "No records of users have the ids 99, 98."),
        ("bulk", {"ids": "99,1"}, "No record of users has the id 99."),
        ("bulk", {"ids": [98, 99, 98]}, "No records of users have the ids 98, 99."),
        ("record", {"id": 99}, "No record of users has the id 99."),
        ("record", {"ids": ["99"]}, "No record of users has the id 99."),
        (
            "bulk",
            {"ids": list(range(100, 120))},
            "No records of users have the ids " + ", ".join(map(str, range(100, 120))) + ".",
        ),
        (
            "bulk",
            {"ids": [1, *range(100, 125)]},
            "No records of users have the ids "
            + ", ".join(map(str, range(100, 120)))
            + " and 5 more.",
        ),
        (
            "bulk",
            {"ids": [*range(100, 121), 1]},
            "No records of users have the ids "
            + ", ".join(map(str, range(100, 120)))
            + " and 1 more.",
        ),
    ],
    ids=[
        "some",
        "comma-string",
        "dup",
        "record",
        "record-ids",
        "twenty",
        "more-than-twenty",
        "twenty-one",
    ],
)
def test_missing_ids_are_named_and_nothing_runs(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    action: str,
    selection: dict[str, Any],
    message: str,
) -> None:
    seed_users(app)
    calls: list[Any] = []

    @flex.action(User, bulk=True)
    def bulk(users: list[User], params: dict[str, Any]) -> None:
        calls.append(users)
        for user in users:
            user.name = "changed"

    @flex.action(User, for_instance=True)
    def record(user: User, params: dict[str, Any]) -> None:
        calls.append(user)
        user.name = "changed"

    response = messages.execute(action, "users", **selection)
    assert response.status_code == 200
    assert response.get_json() == not_found(message)
    assert calls == []
    assert user_names(app) == {pk: f"user{pk}" for pk in USER_IDS}


def test_missing_ids_and_bad_params_are_reported_together(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    seed_users(app)
    calls: list[Any] = []

    @flex.action(
        User,
        bulk=True,
        params=[
            {"name": "n", "field": "IntegerField", "required": True},
            {"name": "when", "field": "DateField"},
        ],
    )
    def bulk(users: list[User], params: dict[str, Any]) -> None:
        calls.append(users)

    response = messages.execute("bulk", "users", ids=[1, 99], params={"when": "tomorrow"})
    assert response.status_code == 200
    assert response.get_json() == {
        "result": False,
        "errors": {
            "non_field_errors": ["No record of users has the id 99."],
            "n": ["Missing data for required field."],
            "when": ["Not a valid date: use YYYY-MM-DD."],
        },
    }
    assert calls == []


# Empty selections


@pytest.mark.parametrize(
    ("action", "selection"),
    [
        ("bulk", {}),
        ("bulk", {"ids": []}),
        ("bulk", {"ids": None}),
        ("bulk", {"ids": ""}),
        ("bulk", {"inverseIds": False}),
        ("bulk", {"params": {"ids": []}}),
        ("record", {}),
        ("record", {"id": None}),
        ("record", {"ids": []}),
    ],
    ids=[
        "bulk-nothing",
        "bulk-empty-array",
        "bulk-null",
        "bulk-empty-string",
        "bulk-inverse-false",
        "bulk-nested-empty",
        "record-nothing",
        "record-null-id",
        "record-empty-ids",
    ],
)
def test_empty_selection_is_result_false(
    app: Flask, flex: FlexActions, messages: Messages, action: str, selection: dict[str, Any]
) -> None:
    seed_users(app)
    calls: list[Any] = []

    @flex.action(User, bulk=True)
    def bulk(users: list[User], params: dict[str, Any]) -> None:
        calls.append(users)

    @flex.action(User, for_instance=True)
    def record(user: User, params: dict[str, Any]) -> None:
        calls.append(user)

    response = messages.execute(action, "users", **selection)
    assert response.status_code == 200
    assert response.get_json() == not_found(NO_SELECTION)
    assert calls == []


@pytest.mark.parametrize(
    ("seeded", "selection"),
    [
        ([], {"inverseIds": True}),
        ([], {"inverseIds": True, "ids": [1]}),
        ([1, 2], {"inverseIds": True, "ids": [2, 1]}),
    ],
    ids=["empty-table", "empty-table-with-exclusions", "everything-excluded"],
)
def test_inverse_ids_selecting_nothing_is_result_false(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    seeded: list[int],
    selection: dict[str, Any],
) -> None:
    seed_users(app, seeded)
    calls: list[Any] = []

    @flex.action(User, bulk=True)
    def bulk(users: list[User], params: dict[str, Any]) -> None:
        calls.append(users)

    response = messages.execute("bulk", "users", **selection)
    assert response.status_code == 200
    assert response.get_json() == not_found(NO_ROWS)
    assert calls == []


# Query counts


def run_counting(app: Flask, messages: Messages, **selection: Any) -> tuple[Any, list[str]]:
    """Execute ``count`` with ``selection``; return the JSON answer and the SQL statements run."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = messages.execute("count", "users", **selection)
    finally:
        with app.app_context():
            sa.event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json(), statements


@pytest.mark.parametrize("config", [{"FLEXACTIONS_ID_CHUNK_SIZE": 1000}])
def test_bulk_loads_one_query_per_chunk_never_one_per_row(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    with app.app_context():
        db.session.execute(sa.insert(User), [{"id": i, "name": f"u{i}"} for i in range(1, 2501)])
        db.session.commit()
    seen: list[list[int]] = []

    @flex.action(User, bulk=True)
    def count(users: list[User], params: dict[str, Any]) -> str:
        seen.append([user.id for user in users])
        return str(sum(len(user.name) for user in users))

    few = list(range(10, 0, -1))
    many = list(range(2500, 0, -1))
    few_answer, few_sql = run_counting(app, messages, ids=few)
    many_answer, many_sql = run_counting(app, messages, ids=many)
    assert few_answer["result"] is True and many_answer["result"] is True
    assert seen == [few, many]

    def selects(statements: list[str]) -> list[str]:
        return [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    assert len(selects(few_sql)) == 1
    assert len(selects(many_sql)) == math.ceil(2500 / 1000)
    # Everything else the request runs is the same for 10 ids and 2500 ids.
    assert len(many_sql) - len(few_sql) == math.ceil(2500 / 1000) - 1
    assert len(many_sql) <= 5, many_sql


@pytest.mark.parametrize("config", [{"FLEXACTIONS_ID_CHUNK_SIZE": 1000}])
@pytest.mark.parametrize("excluded", [10, 1500], ids=["small-exclusion", "large-exclusion"])
def test_inverse_ids_loads_with_one_query(
    app: Flask, flex: FlexActions, messages: Messages, excluded: int
) -> None:
    with app.app_context():
        db.session.execute(sa.insert(User), [{"id": i, "name": f"u{i}"} for i in range(1, 2501)])
        db.session.commit()
    seen: list[list[int]] = []

    @flex.action(User, bulk=True)
    def count(users: list[User], params: dict[str, Any]) -> None:
        seen.append([user.id for user in users])

    answer, statements = run_counting(
        app, messages, inverseIds=True, ids=list(range(excluded, 0, -1))
    )
    assert answer == {"result": True}
    assert seen == [list(range(excluded + 1, 2501))]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len(statements) <= 3, statements


# File answers


@pytest.mark.parametrize(
    ("data", "mimetype", "download_name", "content_type", "disposition"),
    [
        (
            b"id,name\n1,user1\n",
            "text/csv",
            "users.csv",
            "text/csv; charset=utf-8",
            'attachment; filename="users.csv"',
        ),
        (
            bytes(range(256)),
            "application/octet-stream",
            "dump.bin",
            "application/octet-stream",
            'attachment; filename="dump.bin"',
        ),
        (
            b"%PDF-1.4\n",
            "application/pdf",
            "café report.pdf",
            "application/pdf",
            "attachment; filename=\"cafe report.pdf\"; filename*=UTF-8''caf%C3%A9%20report.pdf",
        ),
    ],
    ids=["csv", "binary", "non-ascii-name"],
)
def test_file_answer(
    app: Flask,
    flex: FlexActions,
    client: FlaskClient,
    data: bytes,
    mimetype: str,
    download_name: str,
    content_type: str,
    disposition: str,
) -> None:
    seed_users(app)

    @flex.action(User, bulk=True)
    def export(users: list[User], params: dict[str, Any]) -> Any:
        users[0].name = "exported"
        return send_file(
            io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=download_name
        )

    body = {"name": "execute_action", "params": {"name": "export", "model": "users", "ids": [1]}}
    response = client.post(URL, json=body, headers={**AUTH, "Origin": "https://app.jetadmin.io"})
    assert response.status_code == 200
    assert response.data == data
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == disposition
    assert response.headers["Access-Control-Expose-Headers"] == EXPOSE
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.jetadmin.io"
    assert user_names(app)[1] == "exported"


# Return values


SUCCESS_ANSWERS = [
    (None, {"result": True}, "none"),
    (True, {"result": True}, "true"),
    ("Done", {"result": True, "message": "Done"}, "str"),
    ("", {"result": True, "message": ""}, "empty-str"),
    (Result(message="Done"), {"result": True, "message": "Done"}, "result-message"),
    (Result(html="<b>ok</b>"), {"result": True, "html": "<b>ok</b>"}, "result-html"),
    (
        Result(message="Done", html="<b>ok</b>"),
        {"result": True, "message": "Done", "html": "<b>ok</b>"},
        "result-both",
    ),
    (Result(), {"result": True}, "result-empty"),
]


def run_rename_returning(
    app: Flask, flex: FlexActions, messages: Messages, value: Any
) -> TestResponse:
    """Run a record action that renames user 1, then returns ``value``."""
    seed_users(app)

    @flex.action(User, for_instance=True)
    def rename(user: User, params: dict[str, Any]) -> Any:
        user.name = "renamed"
        return value

    return messages.execute("rename", "users", id=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, e) for v, e, _ in SUCCESS_ANSWERS],
    ids=[i for _, _, i in SUCCESS_ANSWERS],
)
def test_return_value_success_commits(
    app: Flask, flex: FlexActions, messages: Messages, value: Any, expected: dict[str, Any]
) -> None:
    response = run_rename_returning(app, flex, messages, value)
    assert response.status_code == 200
    assert response.get_json() == expected
    assert user_names(app)[1] == "renamed"


def test_return_false_is_result_false_and_rolls_back(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    seed_users(app)

    @flex.action(User, for_instance=True)
    def rename(user: User, params: dict[str, Any]) -> bool:
        user.name = "renamed"
        db.session.add(User(id=77, name="new"))
        db.session.flush()
        return False

    response = messages.execute("rename", "users", id=1)
    assert response.status_code == 200
    assert response.get_json() == {"result": False}
    assert user_names(app) == {pk: f"user{pk}" for pk in USER_IDS}


@pytest.mark.parametrize(
    ("make", "status", "data", "content_type"),
    [
        (lambda: make_response(jsonify(custom=1), 202), 202, b'{"custom":1}\n', "application/json"),
        (
            lambda: WerkzeugResponse("plain text", status=201, mimetype="text/plain"),
            201,
            b"plain text",
            "text/plain; charset=utf-8",
        ),
    ],
    ids=["flask-response", "werkzeug-response"],
)
def test_return_response_is_passed_through(
    app: Flask,
    flex: FlexActions,
    client: FlaskClient,
    make: Any,
    status: int,
    data: bytes,
    content_type: str,
) -> None:
    seed_users(app)

    @flex.action(User, for_instance=True)
    def rename(user: User, params: dict[str, Any]) -> Any:
        user.name = "renamed"
        return make()

    body = {"name": "execute_action", "params": {"name": "rename", "model": "users", "id": 1}}
    response = client.post(URL, json=body, headers=AUTH)
    assert response.status_code == status
    assert response.data == data
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Access-Control-Expose-Headers"] == EXPOSE
    assert user_names(app)[1] == "renamed"


@pytest.mark.parametrize(
    "value",
    [42, 0, 1, 1.5, {"result": True}, ["done"], b"bytes", ("Done", 200), object()],
    ids=["int", "zero", "one", "float", "dict", "list", "bytes", "tuple", "object"],
)
def test_return_value_of_a_bad_type_is_500_and_rolls_back(
    app: Flask, flex: FlexActions, messages: Messages, value: Any
) -> None:
    response = run_rename_returning(app, flex, messages, value)
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    assert user_names(app)[1] == "user1"


# URL forms


@pytest.mark.parametrize("url", ["/flex/messages/", "/flex/messages"])
def test_both_url_forms_answer_without_redirect(
    flex: FlexActions, client: FlaskClient, url: str
) -> None:
    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    response = client.post(url, json={"name": "get_action_list"}, headers=AUTH)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.get_json() == [{"name": "ping", "common_action": {}, "params": []}]
    body = {"name": "execute_action", "params": {"name": "ping"}}
    response = client.post(url, json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": "pong"}


@pytest.mark.parametrize("url", ["/flex/messages/", "/flex/messages"])
def test_get_is_method_not_allowed(flex: FlexActions, client: FlaskClient, url: str) -> None:
    calls: list[Any] = []

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        calls.append(params)

    response = client.get(url, headers=AUTH)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}
    assert response.get_json() == refused("The Messages URL takes POST with a JSON body.")
    assert calls == []


def test_integer_ids_beyond_32_bits_follow_the_database(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    """users.id is an INTEGER: 64-bit on SQLite (such rows exist), 32-bit on PostgreSQL."""
    big = 3_000_000_000
    on_sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    if on_sqlite:
        seed_users(app, [big])
    calls: list[Any] = []

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> None:
        calls.append(user.id)

    response = messages.execute("touch", "users", id=big)

    if on_sqlite:
        assert response.get_json() == {"result": True}
        assert calls == [big]
    else:
        assert response.status_code == 400
        assert response.get_json() == refused(
            f"Invalid id for 'users': {big} is out of range for a 32-bit integer id."
        )
        assert calls == []
