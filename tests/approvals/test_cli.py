"""``flask flexactions approvals list|show|approve|reject|withdraw`` with Click's runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.approvals.support import Api, Ran, refunded


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def approvals(runner: FlaskCliRunner, who: str | None, *args: str) -> Any:
    auth = ["--auth", f"Bearer {who}"] if who else []
    return runner.invoke(args=["flexactions", "approvals", *args, *auth])


def test_list_shows_what_awaits_the_caller_and_their_own(runner: FlaskCliRunner, api: Api) -> None:
    approval_id = api.request_refund()
    result = approvals(runner, "bob", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Awaiting your decision:"
    assert lines[1].split() == ["ID", "ACTION", "MODEL", "RECORDS", "REQUESTED", "BY", "EXPIRES"]
    assert lines[2].split()[:5] == [approval_id, "refund", "orders", "1", "Alice"]
    mine = approvals(runner, "alice", "list")
    assert "Nothing awaits your decision." in mine.output
    assert "Your requests:" in mine.output and approval_id in mine.output
    as_json = approvals(runner, "bob", "list", "--json")
    assert json.loads(as_json.output)["to_decide"][0]["id"] == approval_id


def test_show_prints_the_request_and_its_preview(runner: FlaskCliRunner, api: Api) -> None:
    approval_id = api.request_refund()
    result = approvals(runner, "bob", "show", approval_id)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:4] == [
        f"Request {approval_id}: pending",
        "Action: Refund on orders",
        "Records: 1",
        'Params: {"amount": "250.00"}',
    ]
    assert lines[4].startswith("Requested by Alice at ") and lines[6].startswith("Expires: ")
    assert lines[5] == "Reason: Damaged in transit"
    assert lines[7:] == ["Approvals: 0 of 1", "Preview: Would refund 250.00 of order 1."]
    shared_token = runner.invoke(args=["flexactions", "approvals", "show", approval_id])
    assert shared_token.exit_code == 0  # the shared token may look


def test_approve_runs_it_and_exits_0(
    app: Flask, runner: FlaskCliRunner, api: Api, ran: Ran
) -> None:
    approval_id = api.request_refund()
    result = approvals(runner, "bob", "approve", approval_id, "--comment", "Fine")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["message"] == "Refunded 250.00." and answer["approval"]["state"] == "ran"
    assert answer["approval"]["decisions"][0]["comment"] == "Fine"
    assert ran.names() == ["refund"] and refunded(app) == 250


def test_a_run_that_fails_exits_1(app: Flask, runner: FlaskCliRunner, api: Api) -> None:
    from tests.models import Order, db

    approval_id = api.request_refund()
    with app.app_context():
        db.session.delete(db.session.get(Order, 1))
        db.session.commit()
    result = approvals(runner, "bob", "approve", approval_id)
    assert result.exit_code == 1
    assert json.loads(result.output)["approval"]["state"] == "failed"


def test_reject_and_withdraw(runner: FlaskCliRunner, api: Api, ran: Ran) -> None:
    rejected = api.request_refund()
    result = approvals(runner, "bob", "reject", rejected, "-c", "No")
    assert result.exit_code == 0 and json.loads(result.output)["approval"]["state"] == "rejected"
    withdrawn = api.request_refund(order=2)
    result = approvals(runner, "alice", "withdraw", withdrawn)
    assert result.exit_code == 0 and json.loads(result.output)["approval"]["state"] == "withdrawn"
    assert ran.calls == []


@pytest.mark.parametrize(
    ("who", "command", "code", "text"),
    [
        ("alice", "approve", 2, "Error 403: You made this request"),
        (None, "approve", 2, "Error 403: Deciding an approval request needs a caller with an id"),
        ("dave", "approve", 2, "Error 404: Unknown approval request"),
        ("bob", "withdraw", 2, "Error 403: Only the requester may withdraw"),
    ],
)
def test_refusals_exit_2_and_say_why(
    runner: FlaskCliRunner, api: Api, ran: Ran, who: str | None, command: str, code: int, text: str
) -> None:
    approval_id = api.request_refund()
    result = approvals(runner, who, command, approval_id)
    assert result.exit_code == code, result.output
    assert text in result.output
    assert ran.calls == []


def test_a_decided_request_cannot_be_decided_again(runner: FlaskCliRunner, api: Api) -> None:
    approval_id = api.request_refund()
    assert approvals(runner, "bob", "approve", approval_id).exit_code == 0
    again = approvals(runner, "carol", "reject", approval_id)
    assert again.exit_code == 2 and "Error 409: This request has run" in again.output


def test_usage_errors_exit_2(runner: FlaskCliRunner, api: Api) -> None:
    assert approvals(runner, "bob", "approve").exit_code == 2
    assert approvals(runner, "bob", "list", "--limit", "0").exit_code == 2
    assert approvals(runner, "bob", "nope").exit_code == 2


def test_sweep_reports_approval_requests(runner: FlaskCliRunner, api: Api) -> None:
    api.request_refund()
    result = runner.invoke(args=["flexactions", "sweep"])
    assert result.exit_code == 0
    assert "0 approval requests expired" in result.output
    assert "0 ended approval requests deleted" in result.output
