"""Four-eyes approvals through the Messages URL: requesting, deciding, running once, the audit
trail and the signals of each path."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_flexactions import Approval, FlexActions
from flask_flexactions.run.approvals import APPROVALS_TABLE
from tests.approvals.support import (
    Api,
    Ran,
    Signals,
    approval_rows,
    records,
    refunded,
    trail,
)
from tests.conftest import AUTH, URL
from tests.models import Order, User, db

# Requesting


def test_a_request_that_needs_approval_is_stored_and_nothing_runs(
    app: Flask, api: Api, ran: Ran, signals: Signals
) -> None:
    response = api.execute(
        "alice", "refund", "orders", id=1, reason="Damaged", params={"amount": "250.00"}
    )
    body = response.get_json()
    assert response.status_code == 200
    approval_id = body["approval"]["id"]
    assert body == {
        "result": True,
        "message": f"Refund on 1 record awaits approval (request {approval_id}); nothing ran yet.",
        "approval": {
            "id": approval_id,
            "state": "pending",
            "expires_at": body["approval"]["expires_at"],
        },
    }
    assert ran.calls == [] and refunded(app) == 0
    [row] = approval_rows(app)
    assert (row.state, row.action, row.model, row.requester_id) == (
        "pending",
        "refund",
        "orders",
        "alice",
    )
    shown = api.show("alice", approval_id).get_json()["approval"]
    assert shown["params"] == {"amount": "250.00"}
    assert shown["reason"] == "Damaged" and shown["ids"] == [1] and shown["count"] == 1
    assert shown["requested_by"] == {"id": "alice", "name": "Alice"}
    assert shown["approvals"] == {"needed": 1, "given": 0}
    assert shown["can_withdraw"] is True and shown["can_decide"] is False
    assert signals.steps() == [("requested", "pending")]


def test_when_false_runs_at_once_without_approval(app: Flask, api: Api, ran: Ran) -> None:
    response = api.execute("alice", "refund", "orders", id=1, params={"amount": "50"})
    assert response.get_json() == {"result": True, "message": "Refunded 50."}
    assert ran.names() == ["refund"] and approval_rows(app) == []


def test_invalid_requests_are_answered_as_runs_are_and_nothing_is_stored(
    app: Flask, api: Api
) -> None:
    missing = api.execute("alice", "refund", "orders", id=9, reason="x", params={"amount": "500"})
    assert missing.get_json()["errors"] == {
        "non_field_errors": ["No record of orders has the id 9."]
    }
    invalid = api.execute("alice", "refund", "orders", id=1, reason="x", params={"amount": "lots"})
    assert invalid.get_json()["errors"] == {"amount": ["Not a valid decimal number."]}
    assert api.execute("dave", "nope", "orders", id=1).status_code == 404
    assert approval_rows(app) == []


def test_a_required_reason_is_a_field_error_when_missing_or_too_long(app: Flask, api: Api) -> None:
    for reason in (None, "", "   ", "x" * 2001, "a\x00b"):
        params: dict[str, Any] = {"amount": "500"}
        message: dict[str, Any] = {"name": "refund", "model": "orders", "id": 1, "params": params}
        if reason is not None:
            message["reason"] = reason
        body = api.send("alice", "execute_action", message).get_json()
        assert body["result"] is False and list(body["errors"]) == ["reason"], (reason, body)
    wrong_type = api.execute("alice", "refund", "orders", id=1, reason=5, params={"amount": "500"})
    assert wrong_type.status_code == 400
    assert approval_rows(app) == []


def test_a_dry_run_is_answered_from_the_preview_and_stores_nothing(app: Flask, api: Api) -> None:
    response = api.execute(
        "alice", "refund", "orders", id=1, dry_run=True, params={"amount": "300"}
    )
    assert response.get_json() == {
        "result": True,
        "dry_run": True,
        "count": 1,
        "message": "Would refund 300 of order 1.",
    }
    assert approval_rows(app) == []


def test_an_inverse_selection_is_frozen_to_its_ids_at_request_time(
    app: Flask, api: Api, ran: Ran
) -> None:
    approval_id = api.request("alice", "purge", "users", ids=[2], inverseIds=True)
    with app.app_context():
        db.session.add(User(id=6, name="joined later"))
        db.session.commit()
    shown = api.show("bob", approval_id).get_json()["approval"]
    assert shown["ids"] == [1, 3, 4, 5] and shown["count"] == 4
    assert "inverseIds" not in json.dumps(shown)
    api.approve("bob", approval_id)
    answer = api.approve("carol", approval_id).get_json()
    assert answer["result"] is True and answer["message"] == "Deleted 4 users."
    assert ran.calls == [("purge", [1, 3, 4, 5], {})]
    with app.app_context():
        assert sorted(db.session.scalars(sa.select(User.id))) == [2, 6]


def test_values_run_exactly_as_sent_digit_for_digit(app: Flask, api: Api, ran: Ran) -> None:
    body = (
        b'{"name": "execute_action", "params": {"name": "refund", "model": "orders", "id": 1,'
        b' "reason": "r", "params": {"amount": 123.45678901234567891}}}'
    )
    response = api.client.post(
        URL, data=body, content_type="application/json", headers={"Authorization": "Bearer alice"}
    )
    approval_id = response.get_json()["approval"]["id"]
    assert api.approve("bob", approval_id).get_json()["result"] is True
    assert ran.calls[0][2]["amount"] == decimal.Decimal("123.45678901234567891")


def test_an_idempotency_key_replays_the_same_request(app: Flask, api: Api) -> None:
    message = {
        "name": "refund",
        "model": "orders",
        "id": 1,
        "reason": "r",
        "params": {"amount": 200},
    }
    headers = {"Idempotency-Key": "refund-order-1"}
    first = api.send("alice", "execute_action", message, headers=headers)
    again = api.send("alice", "execute_action", message, headers=headers)
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(approval_rows(app)) == 1


def test_keys_reserved_for_approved_runs_are_refused(app: Flask, api: Api) -> None:
    approval_id = api.request_refund()
    message = {
        "name": "refund",
        "model": "orders",
        "id": 1,
        "reason": "r",
        "params": {"amount": 250},
    }
    forged = api.send(
        "alice", "execute_action", message, headers={"Idempotency-Key": f"approval:{approval_id}"}
    )
    assert forged.status_code == 400 and "reserved" in forged.get_json()["detail"]
    assert len(approval_rows(app)) == 1
    assert api.approve("bob", approval_id).get_json()["message"] == "Refunded 250.00."


def test_a_requester_without_an_id_is_refused(app: Flask, api: Api) -> None:
    response = api.execute(
        "anonymous", "refund", "orders", id=1, reason="r", params={"amount": 500}
    )
    assert response.status_code == 400 and "caller with an id" in response.get_json()["detail"]
    assert approval_rows(app) == []


def test_secret_params_are_sealed_and_still_reach_the_handler(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    approval_id = api.request("alice", "transfer", params={"amount": "10", "pin": "4711"})
    [row] = approval_rows(app)
    assert "4711" not in row.frozen and "4711" not in (row.sealed or "")
    shown = api.show("bob", approval_id).get_json()["approval"]
    assert shown["params"] == {"amount": "10", "pin": "[redacted]"}
    assert api.approve("bob", approval_id).get_json()["message"] == "Transferred 10."
    assert ran.calls == [("transfer", None, {"amount": decimal.Decimal("10"), "pin": "4711"})]
    [row] = approval_rows(app)
    assert row.sealed is None  # forgotten once final
    for record in records(flex, app, approval_id):
        assert "4711" not in json.dumps(record.params)


# Deciding


def test_approval_runs_the_action_once_as_the_requester(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, signals: Signals
) -> None:
    approval_id = api.request_refund()
    to_decide = api.send("bob", "list_approvals").get_json()["to_decide"]
    assert [a["id"] for a in to_decide] == [approval_id] and to_decide[0]["can_decide"] is True
    response = api.approve("bob", approval_id, comment="Photos check out")
    body = response.get_json()
    assert response.status_code == 200
    assert body["result"] is True and body["message"] == "Refunded 250.00."
    assert body["approval"]["state"] == "ran"
    assert body["approval"]["answer"] == {"result": True, "message": "Refunded 250.00."}
    assert body["approval"]["decisions"] == [
        {
            "by": {"id": "bob", "name": "Bob"},
            "verdict": "approved",
            "comment": "Photos check out",
            "at": body["approval"]["decisions"][0]["at"],
        }
    ]
    assert ran.calls == [("refund", 1, {"amount": decimal.Decimal("250.00")})]
    assert refunded(app) == decimal.Decimal("250.00")
    again = api.approve("carol", approval_id)
    assert again.status_code == 409 and ran.names() == ["refund"]
    assert trail(flex, app, approval_id) == [
        ("requested", "alice"),
        ("approved", "bob"),
        ("ran", "alice"),
        ("invalid", "carol"),
    ]
    run = records(flex, app, approval_id)[2]
    assert run.approval == {
        "id": approval_id,
        "approved_by": [{"id": "bob", "name": "Bob", "scheme": "custom"}],
    }
    assert run.params == {"amount": "250.00"} and run.target == {"ids": ["1"]}
    assert records(flex, app, approval_id)[1].approval == {
        "id": approval_id,
        "comment": "Photos check out",
        "approvals": "1/1",
    }
    assert records(flex, app, approval_id)[0].approval == {
        "id": approval_id,
        "reason": "Damaged in transit",
    }
    assert signals.steps(approval_id) == [
        ("requested", "pending"),
        ("decided", "approved"),
        ("ran", "ran"),
    ]
    decided = signals.sent[1][3]["decision"]
    assert decided["verdict"] == "approved" and decided["by"]["id"] == "bob"


def test_the_handler_sees_the_requester_as_current_caller(
    app: Flask, flex: FlexActions, api: Api
) -> None:
    from flask_flexactions import current_caller

    seen: list[Any] = []

    @flex.action(name="whoami", approval="lead")
    def whoami(params: dict[str, Any]) -> None:
        seen.append(current_caller.id)

    approval_id = api.request("alice", "whoami")
    api.approve("bob", approval_id)
    assert seen == ["alice"]


def test_rejection_ends_the_request_and_nothing_runs(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, signals: Signals
) -> None:
    approval_id = api.request_refund()
    response = api.reject("bob", approval_id, comment="No photos")
    body = response.get_json()
    assert body["result"] is True and body["message"] == "Rejected; nothing ran."
    assert body["approval"]["state"] == "rejected"
    assert body["approval"]["decisions"][0]["comment"] == "No photos"
    assert api.approve("carol", approval_id).status_code == 409
    assert ran.calls == [] and refunded(app) == 0
    assert trail(flex, app, approval_id) == [
        ("requested", "alice"),
        ("rejected", "bob"),
        ("invalid", "carol"),
    ]
    assert records(flex, app, approval_id)[1].approval == {
        "id": approval_id,
        "comment": "No photos",
    }
    assert signals.steps(approval_id) == [("requested", "pending"), ("decided", "rejected")]


def test_the_requester_may_withdraw_and_nobody_else(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, signals: Signals
) -> None:
    approval_id = api.request_refund()
    assert api.withdraw("bob", approval_id).status_code == 403
    assert api.withdraw("dave", approval_id).status_code == 404
    response = api.withdraw("alice", approval_id)
    assert response.get_json()["approval"]["state"] == "withdrawn"
    assert api.approve("bob", approval_id).status_code == 409
    assert api.withdraw("alice", approval_id).status_code == 409
    assert ran.calls == []
    assert trail(flex, app, approval_id) == [
        ("requested", "alice"),
        ("refused", "bob"),
        ("withdrawn", "alice"),
        ("invalid", "bob"),
        ("invalid", "alice"),
    ]
    assert signals.steps(approval_id)[-1] == ("decided", "withdrawn")


def test_n_approvers_must_be_distinct_people(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    approval_id = api.request("alice", "purge", "users", ids=[4, 5])
    first = api.approve("bob", approval_id).get_json()
    assert first["message"] == "Approved (1 of 2); it awaits 1 more."
    assert first["approval"]["state"] == "pending"
    assert first["approval"]["approvals"] == {"needed": 2, "given": 1}
    twice = api.approve("bob", approval_id)
    assert twice.status_code == 409 and "already" in twice.get_json()["detail"]
    assert ran.calls == []
    assert [a["id"] for a in api.send("bob", "list_approvals").get_json()["to_decide"]] == []
    assert [a["id"] for a in api.send("carol", "list_approvals").get_json()["to_decide"]] == [
        approval_id
    ]
    second = api.approve("carol", approval_id).get_json()
    assert second["result"] is True and second["approval"]["state"] == "ran"
    assert ran.calls == [("purge", [4, 5], {})]
    run = records(flex, app, approval_id)[-1]
    assert [p["id"] for p in run.approval["approved_by"]] == ["bob", "carol"]  # type: ignore[index]


def test_list_approvals_shows_what_each_caller_may_decide_and_their_own(
    app: Flask, api: Api
) -> None:
    refund_id = api.request_refund()
    special_x = api.request("dave", "special", params={"level": "x"})
    special_y = api.request("dave", "special", params={"level": "y"})
    listed = {
        who: api.send(who, "list_approvals").get_json()
        for who in ("alice", "bob", "carol", "dave", "root", "token", "viewer")
    }
    ids = {who: [a["id"] for a in answer["to_decide"]] for who, answer in listed.items()}
    assert ids["bob"] == [refund_id, special_y]
    assert ids["carol"] == [refund_id, special_x, special_y]
    assert ids["alice"] == [special_y]  # the check lets anybody with an id approve level y
    assert ids["dave"] == []  # his own requests
    assert ids["token"] == [] and ids["viewer"] == []
    assert [a["id"] for a in listed["dave"]["mine"]] == [special_y, special_x]
    assert [a["id"] for a in listed["alice"]["mine"]] == [refund_id]
    assert listed["bob"]["mine"] == []
    limited = api.send("carol", "list_approvals", {"limit": 1}).get_json()["to_decide"]
    assert [a["id"] for a in limited] == [refund_id]


def test_list_approvals_on_an_app_without_approvals_reads_no_table(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        db.metadata.tables[APPROVALS_TABLE].drop(db.engine)  # as if never created
    response = client.post(URL, json={"name": "list_approvals"}, headers=AUTH)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "to_decide": [], "mine": []}


def test_get_approval_previews_the_run_now(app: Flask, api: Api) -> None:
    approval_id = api.request_refund()
    preview = api.show("bob", approval_id).get_json()["approval"]["preview"]
    assert preview == {
        "result": True,
        "dry_run": True,
        "count": 1,
        "message": "Would refund 250.00 of order 1.",
    }
    with app.app_context():
        db.session.delete(db.session.get(Order, 1))
        db.session.commit()
    preview = api.show("bob", approval_id).get_json()["approval"]["preview"]
    assert preview == {
        "result": False,
        "errors": {"non_field_errors": ["No record of orders has the id 1."]},
    }


def test_a_check_callable_decides_who_may_approve(app: Flask, api: Api, ran: Ran) -> None:
    approval_id = api.request("dave", "special", params={"level": "x"})
    assert api.approve("bob", approval_id).status_code == 404  # may not even see it
    assert api.approve("carol", approval_id).get_json()["message"] == "Special done."


# The run fails cleanly when the records changed


def test_rows_deleted_before_approval_fail_the_run_cleanly(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, signals: Signals
) -> None:
    approval_id = api.request_refund()
    with app.app_context():
        db.session.delete(db.session.get(Order, 1))
        db.session.commit()
    response = api.approve("bob", approval_id)
    body = response.get_json()
    assert response.status_code == 200
    assert body["result"] is False
    assert body["errors"] == {"non_field_errors": ["No record of orders has the id 1."]}
    assert body["approval"]["state"] == "failed"
    assert body["approval"]["answer"]["errors"] == body["errors"]
    assert ran.calls == []
    assert trail(flex, app, approval_id) == [
        ("requested", "alice"),
        ("approved", "bob"),
        ("invalid", "alice"),
    ]
    assert signals.steps(approval_id)[-1] == ("ran", "failed")


def test_a_record_that_left_the_requesters_scope_fails_the_run(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    @flex.scope(User)
    def visible(statement: Any, caller: Any) -> Any:
        return statement.where(User.is_blocked.is_(False))

    approval_id = api.request("alice", "purge", "users", ids=[1, 2])
    with app.app_context():
        db.session.get(User, 2).is_blocked = True  # type: ignore[union-attr]
        db.session.commit()
    api.approve("bob", approval_id)
    body = api.approve("carol", approval_id).get_json()
    assert body["result"] is False and body["approval"]["state"] == "failed"
    assert body["errors"] == {"non_field_errors": ["No record of users has the id 2."]}
    assert ran.calls == []


def test_a_handler_that_refuses_fails_the_request(app: Flask, flex: FlexActions, api: Api) -> None:
    from flask_flexactions import ActionError

    @flex.action(Order, for_instance=True, name="refuse", approval="lead")
    def refuse(order: Order, params: dict[str, Any]) -> None:
        order.note = "written, then rolled back"
        raise ActionError("Refused by the handler.")

    approval_id = api.request("alice", "refuse", "orders", id=2)
    body = api.approve("bob", approval_id).get_json()
    assert body == {
        "result": False,
        "errors": {"non_field_errors": ["Refused by the handler."]},
        "approval": body["approval"],
    }
    assert body["approval"]["state"] == "failed"
    with app.app_context():
        assert db.session.get(Order, 2).note is None  # type: ignore[union-attr]
    assert trail(flex, app, approval_id)[-1] == ("failed", "alice")


def test_the_requester_losing_the_permission_fails_the_run(
    app: Flask, flex: FlexActions, api: Api
) -> None:
    allowed = {"alice"}

    # The stored requester keeps the roles they had; a permission callable that looks the
    # caller up again notices a permission lost since the request.
    @flex.action(
        name="guarded",
        permission=lambda caller, action, model: caller.id in allowed,
        approval="lead",
    )
    def guarded(params: dict[str, Any]) -> None:
        raise AssertionError("never runs")

    approval_id = api.request("alice", "guarded")
    allowed.clear()
    body = api.approve("bob", approval_id).get_json()
    assert body["result"] is False and body["approval"]["state"] == "failed"
    assert body["errors"] == {"non_field_errors": ["You may not run the action 'guarded'."]}
    assert trail(flex, app, approval_id)[-1] == ("refused", "alice")


# Background actions and file answers


def test_a_background_action_queues_its_job_once_approved(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    approval_id = api.request("alice", "rename_all", "users", ids=[1, 2])
    assert ran.calls == []
    body = api.approve("bob", approval_id).get_json()
    assert body["result"] is True and body["message"] == "Renamed 2 users."
    assert body["job"]["state"] == "succeeded"
    assert body["approval"]["state"] == "ran"
    assert ran.calls == [("rename_all", [1, 2], {})]
    job = api.send("alice", "get_action_status", {"job": body["job"]["id"]}).get_json()["job"]
    assert job["answer"] == {"result": True, "message": "Renamed 2 users."}
    outcomes = [outcome for outcome, _ in trail(flex, app, approval_id)]
    assert outcomes[:3] == ["requested", "approved", "queued"]


def test_a_file_answer_is_kept_for_the_requester(app: Flask, api: Api, ran: Ran) -> None:
    approval_id = api.request("alice", "export", "orders")
    body = api.approve("bob", approval_id).get_json()
    assert body["result"] is True and body["file"]["content_type"].startswith("text/csv")
    assert api.send("bob", "get_approval", {"id": approval_id, "download": True}).status_code == 403
    download = api.send("alice", "get_approval", {"id": approval_id, "download": True})
    assert download.status_code == 200 and download.data == b"id,total\n1,500.00\n"
    assert "orders.csv" in download.headers["Content-Disposition"]


# Declarations


@pytest.mark.parametrize(
    ("approval", "error", "text"),
    [
        (5, TypeError, "approval must be a role name"),
        ("", ValueError, "approval needs a role name"),
        (Approval(), ValueError, "say who may approve"),
        (Approval(role=""), TypeError, "must be a role name"),
        (Approval(check="x"), TypeError, "check=...) must be a function"),  # type: ignore[arg-type]
        (Approval(role="a", approvers=0), ValueError, "between 1 and 20"),
        (Approval(role="a", approvers=True), TypeError, "must be an integer"),
        (Approval(role="a", when=3), TypeError, "when=...) must be a function"),  # type: ignore[arg-type]
        (Approval(role="a", reason="yes"), TypeError, "reason=...) must be True or False"),  # type: ignore[arg-type]
        (Approval(role="a", expires=10), ValueError, "between 60 seconds and a year"),
        (Approval(role="a", expires=1.5), TypeError, "must be seconds"),  # type: ignore[arg-type]
    ],
)
def test_bad_declarations_name_the_fix(approval: Any, error: type[Exception], text: str) -> None:
    flex = FlexActions()
    with pytest.raises(
        error, match=text.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        flex.register_action(lambda params: None, name="act", approval=approval)


def test_a_param_named_reason_is_refused_on_an_action_that_needs_approval() -> None:
    """The requester's reason is answered as ``errors["reason"]``: a param of that name would
    get its errors mixed with it."""
    flex = FlexActions()
    reason = [{"name": "reason", "field": "CharField"}]
    with pytest.raises(ValueError) as raised:
        flex.register_action(lambda params: None, name="act", approval="lead", params=reason)
    assert str(raised.value) == (
        "Action 'act': an action that needs approval takes the requester's \"reason\" itself; "
        'rename the param "reason", e.g. to "note".'
    )
    flex.register_action(lambda params: None, name="free", params=reason)  # no approval: fine


def test_approval_needs_a_secret_key(tmp_path: Any) -> None:
    flex = FlexActions()
    flex.register_action(lambda params: None, name="act", approval="lead")
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}", FLEXACTIONS_TOKEN="t"
    )
    db.init_app(app)
    with pytest.raises(ValueError, match="set SECRET_KEY"):
        flex.init_app(app, db=db)


def test_the_action_list_tells_which_actions_need_approval(api: Api) -> None:
    listed = {a["name"]: a for a in api.send("alice", "get_action_list").get_json()}
    assert listed["refund"]["approval"] == {"approvers": 1, "reason": True, "conditional": True}
    assert listed["purge"]["approval"] == {"approvers": 2, "reason": False, "conditional": False}


def test_a_when_that_raises_asks_for_approval(app: Flask, flex: FlexActions, api: Api) -> None:
    def broken(params: Any, model: Any) -> bool:
        raise KeyError("amount")

    @flex.action(Order, name="fragile", approval=Approval(role="lead", when=broken))
    def fragile(model: type[Order], params: dict[str, Any]) -> None:
        raise AssertionError("never runs before an approval")

    body = api.execute("alice", "fragile", "orders").get_json()
    assert body["approval"]["state"] == "pending"


def test_a_receiver_that_raises_changes_nothing(app: Flask, api: Api, ran: Ran) -> None:
    from flask_flexactions.signals import approval_requested

    def broken(sender: Flask, **extra: Any) -> None:
        raise RuntimeError("the chat is down")

    approval_requested.connect(broken, app)
    try:
        approval_id = api.request_refund()
    finally:
        approval_requested.disconnect(broken, app)
    assert api.approve("bob", approval_id).get_json()["result"] is True
