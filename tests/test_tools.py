"""The actions as tools (what the MCP door serves), called in-process: the tools a caller
sees, their schemas and hints, and every call through the route's core."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, send_file

from flask_flexactions import ActionError, Caller, FlexActions
from flask_flexactions.doors.tools import JOB_TOOL, KEY_ARGUMENT, ActionTools, read_answer
from tests.conftest import TOKEN
from tests.models import Order, User, db

CLERK = "Bearer clerk"


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "FLEXACTIONS_BACKGROUND_INLINE": True,
        "FLEXACTIONS_AUDIT": "table",
        "FLEXACTIONS_MAX_DEPTH": 8,
    }


@pytest.fixture
def tools(flex: FlexActions, app: Flask) -> ActionTools:
    @flex.authenticator
    def clerk(request: Any) -> Caller | None:
        if request.headers.get("Authorization") == CLERK:
            return Caller(id="clerk", roles=frozenset({"support"}))
        return None

    def preview(users: list[User], params: dict[str, Any]) -> str:
        return f"Would block {len(users)}."

    @flex.action(User, bulk=True, preview=preview, idempotent=True, destructive=False)
    def block(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.is_blocked = True
        return f"Blocked {len(users)}."

    @flex.action(
        Order,
        for_instance=True,
        label="Refund",
        description="Pay back part of an order.",
        params=[{"name": "amount", "field": "DecimalField", "required": True}],
    )
    def refund(order: Order, params: dict[str, Any]) -> str:
        if params["amount"] <= 0:
            raise ActionError(errors={"amount": ["Must be more than zero."]})
        order.refunded += params["amount"]
        return f"Refunded {params['amount']}."

    @flex.action(Order, bulk=True)
    def export(orders: list[Order], params: dict[str, Any]) -> Any:
        data = "".join(f"{order.id}\n" for order in orders).encode()
        return send_file(io.BytesIO(data), mimetype="text/csv", download_name="o.csv")

    @flex.action(User, bulk=True, background=True)
    def rename_all(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.name = "renamed"
        return f"{len(users)} renamed"

    @flex.action(None, permission="finance", destructive=True)
    def close_books(params: dict[str, Any]) -> str:
        return "closed"

    with app.app_context():
        db.session.add_all([User(id=1, name="ada"), User(id=2, name="bob")])
        db.session.commit()  # the users first: the order points to one
        db.session.add(Order(id=7, user_id=1, total=100, refunded=0))
        db.session.commit()
    return ActionTools(app, f"Token {TOKEN}")


def _rows(app: Flask, statement: Any) -> list[tuple[Any, ...]]:
    with app.app_context():
        rows = [tuple(row) for row in db.session.execute(statement)]
        db.session.remove()
        return rows


def test_one_tool_per_action_the_caller_may_run(tools: ActionTools, app: Flask) -> None:
    names = [tool.name for tool in tools.list()]
    assert names == [
        "users__block",
        "orders__refund",
        "orders__export",
        "users__rename_all",
        "close_books",
        JOB_TOOL,
    ]
    clerk = ActionTools(app, CLERK)
    assert "close_books" not in [tool.name for tool in clerk.list()]
    # Calling a tool the caller may not run is refused, and nothing runs.
    answer = clerk.call("close_books", {})
    assert answer.is_error and "Unknown tool 'close_books'" in answer.text


def test_schemas_and_hints_come_from_the_declaration(tools: ActionTools) -> None:
    found = {tool.name: tool for tool in tools.list()}
    block, refund = found["users__block"], found["orders__refund"]
    assert block.annotations == {
        "title": "block",
        "destructiveHint": False,
        "idempotentHint": True,
        "readOnlyHint": False,
        "openWorldHint": False,
    }
    assert "dry_run" in block.input_schema["properties"]
    assert "Supports dry_run" in block.description
    # Without a preview there is no dry run to offer.
    assert "dry_run" not in refund.input_schema["properties"]
    assert refund.input_schema["required"] == ["id", "values"]
    assert refund.input_schema["properties"]["values"]["required"] == ["amount"]
    assert refund.description.startswith("Pay back part of an order. Runs on one orders record")
    assert refund.title == "Refund"
    assert found["close_books"].annotations["destructiveHint"] is True
    assert "idempotentHint" not in found["close_books"].annotations
    assert "background job" in found["users__rename_all"].description
    assert refund.input_schema["properties"]["values"]["properties"]["amount"]["format"] == (
        "decimal"
    )


def test_hints_must_be_booleans(flex: FlexActions) -> None:
    with pytest.raises(TypeError, match="destructive and idempotent must be True, False or None"):
        flex.register_action(lambda params: None, name="odd", destructive="yes")  # type: ignore[arg-type]


def test_record_action_runs_and_is_audited_as_mcp(
    tools: ActionTools, flex: FlexActions, app: Flask
) -> None:
    answer = tools.call("orders__refund", {"id": 7, "values": {"amount": "12.50"}})
    assert (answer.is_error, answer.text) == (False, "Refunded 12.50.")
    assert answer.structured == {"result": True, "message": "Refunded 12.50."}
    assert _rows(app, sa.select(Order.refunded)) == [(pytest.approx(12.5),)]
    with app.app_context():
        (record,) = flex.audit_records(action="refund")
    assert (record.door, record.outcome) == ("mcp", "ran")


def test_a_bad_value_is_a_field_error_the_model_can_correct(tools: ActionTools, app: Flask) -> None:
    for values in ({"amount": "-1"}, {"amount": "lots"}, {}):
        answer = tools.call("orders__refund", {"id": 7, "values": values})
        assert answer.is_error
        assert "amount" in answer.structured["errors"], values
        assert "amount: " in answer.text and "Correct the values named" in answer.text
    assert _rows(app, sa.select(Order.refunded)) == [(0,)]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"id": 999, "values": {"amount": "1"}}, "999"),
        ({"id": "x", "values": {"amount": "1"}}, "id"),
        ({"id": 7, "values": {"amount": "1"}, "extra": 1}, "Unknown key in the body: 'extra'"),
        ({"id": 7, "values": [1]}, '"values" must be an object'),
        ({"id": [[[[[[[[[[7]]]]]]]]]]}, "nest"),
        ({"id": 7, "values": {"amount": "1"}, KEY_ARGUMENT: 5}, "must be a string"),
        ({"id": 7, "values": {"amount": "1"}, KEY_ARGUMENT: "no spaces allowed"}, "Idempotency"),
    ],
)
def test_hostile_arguments_are_refused_and_change_nothing(
    tools: ActionTools, app: Flask, arguments: dict[str, Any], fragment: str
) -> None:
    answer = tools.call("orders__refund", arguments)
    assert answer.is_error
    assert fragment in answer.text, answer.text
    assert _rows(app, sa.select(Order.refunded)) == [(0,)]


def test_bulk_dry_run_and_run(tools: ActionTools, app: Flask) -> None:
    dry = tools.call("users__block", {"ids": [1, 2], "dry_run": True})
    assert dry.text == "Dry run: nothing was written.\nWould block 2."
    assert _rows(app, sa.select(User.is_blocked)) == [(False,), (False,)]
    ran = tools.call("users__block", {"ids": [1, 2]})
    assert ran.text == "Blocked 2."
    assert _rows(app, sa.select(User.is_blocked)) == [(True,), (True,)]


def test_file_answer_is_embedded(tools: ActionTools) -> None:
    answer = tools.call("orders__export", {"ids": [7]})
    assert not answer.is_error
    assert answer.file is not None
    assert (answer.file.filename, answer.file.mimetype, answer.file.text) == (
        "o.csv",
        "text/csv",
        "7\n",
    )
    assert answer.structured["file"] == {"filename": "o.csv", "mimetype": "text/csv", "size": 2}


def test_background_action_answers_its_job(tools: ActionTools, app: Flask) -> None:
    answer = tools.call("users__rename_all", {"ids": [1]})
    job = answer.structured["job"]
    assert job["state"] == "succeeded"
    assert answer.text.startswith(f"Background job {job['id']} is succeeded.\n1 renamed")
    status = tools.call(JOB_TOOL, {"job": job["id"]})
    assert not status.is_error and status.structured["job"]["id"] == job["id"]
    for bad in ({}, {"job": 5}, {"job": job["id"], "more": 1}):
        assert tools.call(JOB_TOOL, bad).is_error
    unknown = tools.call(JOB_TOOL, {"job": "nope"})
    assert unknown.is_error and "Unknown job" in unknown.text


def test_an_idempotency_key_runs_once(tools: ActionTools, app: Flask) -> None:
    arguments = {"id": 7, "values": {"amount": "1"}, KEY_ARGUMENT: "refund-7-a"}
    first = tools.call("orders__refund", dict(arguments))
    again = tools.call("orders__refund", dict(arguments))
    assert first.structured == again.structured
    assert "Replayed" in again.text and "Replayed" not in first.text
    assert _rows(app, sa.select(Order.refunded)) == [(1,)]


def test_a_refused_credential_lists_nothing(tools: ActionTools, app: Flask) -> None:
    stranger = ActionTools(app, "Token wrong")
    answer = stranger.call("orders__refund", {"id": 7, "values": {"amount": "1"}})
    assert answer.is_error
    assert _rows(app, sa.select(Order.refunded)) == [(0,)]


def test_an_answer_that_is_not_json_is_an_error(app: Flask) -> None:
    response = app.response_class("oops", status=502, mimetype="text/plain")
    answer = read_answer(response)  # type: ignore[arg-type]
    assert answer.is_error and "502" in answer.text
