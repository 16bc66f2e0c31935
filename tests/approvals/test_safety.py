"""Approvals under attack and over time: separation of duties, forged and foreign ids,
tampering in the database, expiry, hostile messages, and two approvers at once."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_flexactions import Approval, Caller, FlexActions
from flask_flexactions.run import approvals as approvals_module
from flask_flexactions.run.approvals import APPROVALS_TABLE
from tests.approvals.support import (
    Api,
    Ran,
    Signals,
    approval_rows,
    refunded,
    trail,
)
from tests.conftest import URL
from tests.models import Order, User, db
from tests.test_fault_injection import ON_POSTGRESQL

# Separation of duties


def test_the_requester_can_never_approve_their_own_request(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    approval_id = api.request_refund("root")  # a superuser asks
    refused = api.approve("root", approval_id)
    assert refused.status_code == 403
    assert refused.get_json()["detail"] == "You made this request: someone else must approve it."
    assert api.reject("root", approval_id).status_code == 403
    mine = api.request_refund("alice", order=2)
    # The same person signed in another way, holding the approver's role: still the requester.
    assert api.approve("alice-sso", mine).status_code == 403
    assert ran.calls == []
    assert trail(flex, app, mine) == [("requested", "alice"), ("refused", "alice")]
    assert api.approve("bob", approval_id).get_json()["result"] is True


def test_an_approver_who_lost_the_role_cannot_decide(
    app: Flask, api: Api, ran: Ran, people: dict[str, Caller]
) -> None:
    approval_id = api.request_refund()
    assert [a["id"] for a in api.send("bob", "list_approvals").get_json()["to_decide"]] == [
        approval_id
    ]
    people["bob"] = Caller(id="bob", name="Bob", roles=frozenset({"clerk"}))
    assert api.send("bob", "list_approvals").get_json()["to_decide"] == []
    assert api.approve("bob", approval_id).status_code == 404
    assert api.reject("bob", approval_id).status_code == 404
    assert ran.calls == [] and api.state(approval_id) == "pending"


def test_an_approver_of_several_who_lost_the_role_is_refused(
    app: Flask, api: Api, ran: Ran, people: dict[str, Caller]
) -> None:
    approval_id = api.request("alice", "purge", "users", ids=[1])
    api.approve("bob", approval_id)
    people["bob"] = Caller(id="bob", name="Bob")
    # Bob decided it, so he still sees it; deciding again needs the role.
    assert api.show("bob", approval_id).status_code == 200
    refused = api.reject("bob", approval_id)
    assert refused.status_code == 403 and "role 'lead'" in refused.get_json()["detail"]
    assert ran.calls == [] and api.state(approval_id) == "pending"


@pytest.mark.parametrize(
    "forged",
    [
        uuid.uuid4().hex,
        "0" * 32,
        "../" * 10,
        "' OR 1=1 --",
        "A" * 32,
        "x" * 100_000,
    ],
    # Named, so a fresh uuid does not make a new test id at each collection.
    ids=["random-uuid", "zeros", "dot-dot-slash", "sql-injection", "letters", "huge"],
)
def test_forged_ids_are_unknown(app: Flask, api: Api, ran: Ran, forged: str) -> None:
    api.request_refund()
    for message in ("get_approval", "approve_action", "reject_action", "withdraw_approval"):
        response = api.send("bob", message, {"id": forged})
        assert response.status_code == 404, (message, response.get_json())
        assert response.get_json()["detail"].startswith("Unknown approval request")
    assert ran.calls == [] and [r.state for r in approval_rows(app)] == ["pending"]


def test_another_callers_request_is_unknown_to_those_who_may_not_decide_it(
    app: Flask, api: Api, ran: Ran
) -> None:
    approval_id = api.request_refund()
    for who in ("dave", "anonymous"):
        for message in ("get_approval", "approve_action", "reject_action", "withdraw_approval"):
            assert api.send(who, message, {"id": approval_id}).status_code == 404
    assert api.send("dave", "list_approvals").get_json() == {
        "result": True,
        "to_decide": [],
        "mine": [],
    }
    assert ran.calls == [] and api.state(approval_id) == "pending"


def test_the_shared_token_and_read_only_users_may_look_but_not_decide(
    app: Flask, api: Api, ran: Ran
) -> None:
    approval_id = api.request_refund()
    assert api.show("token", approval_id).status_code == 200
    refused = api.approve("token", approval_id)
    assert refused.status_code == 403 and "caller with an id" in refused.get_json()["detail"]
    read_only = api.approve("viewer", approval_id)
    assert read_only.status_code == 403 and "Read-only" in read_only.get_json()["detail"]
    assert ran.calls == [] and api.state(approval_id) == "pending"


# Tampering with the stored request


def tamper(app: Flask, approval_id: str, **values: Any) -> None:
    with app.app_context():
        table = db.metadata.tables[APPROVALS_TABLE]
        db.session.execute(table.update().where(table.c.id == approval_id).values(**values))
        db.session.commit()


def frozen_text(app: Flask, approval_id: str) -> str:
    [row] = [r for r in approval_rows(app) if r.id == approval_id]
    return str(row.frozen)


@pytest.mark.parametrize(
    "change",
    [
        "amount",
        "ids",
        "expires_at",
        "requester",
        "digest",
        "forged_decision",
        "sealed",
    ],
)
def test_a_request_altered_in_the_database_is_refused_and_never_runs(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, change: str
) -> None:
    if change == "sealed":
        approval_id = api.request("alice", "transfer", params={"amount": "10", "pin": "1"})
    else:
        approval_id = api.request_refund(amount="250.00")
    text = frozen_text(app, approval_id)
    [row] = approval_rows(app)
    if change == "amount":
        tamper(app, approval_id, frozen=text.replace('"250.00"', '"499.00"'))
    elif change == "ids":
        tamper(app, approval_id, frozen=text.replace('"ids":[1]', '"ids":[2]'))
    elif change == "expires_at":
        tamper(app, approval_id, expires_at=row.expires_at + dt.timedelta(days=365))
    elif change == "requester":
        tamper(app, approval_id, requester_id="dave")
    elif change == "digest":
        tamper(app, approval_id, digest="0" * 64)
    elif change == "forged_decision":
        forged = {
            "by": {"id": "carol", "name": "Carol", "scheme": "custom"},
            "verdict": "approved",
            "comment": None,
            "at": "2030-01-01T00:00:00Z",
            "sig": "f" * 64,
        }
        tamper(app, approval_id, decisions=[forged])
    else:
        tamper(app, approval_id, sealed=row.sealed[:-4] + "AAAA")
    shown = api.show("bob", approval_id).get_json()["approval"]
    assert shown.get("tampered") is True and "preview" not in shown
    response = api.approve("bob", approval_id)
    assert response.status_code == 409, response.get_json()
    assert "altered in the database" in response.get_json()["detail"]
    assert ran.calls == [] and refunded(app) == 0
    [row] = approval_rows(app)
    assert row.state == "failed"
    assert api.approve("carol", approval_id).status_code == 409
    assert [outcome for outcome, _ in trail(flex, app, approval_id)] == [
        "requested",
        "invalid",
        "invalid",
    ]


def test_a_rejected_request_set_back_to_pending_is_refused(app: Flask, api: Api, ran: Ran) -> None:
    approval_id = api.request_refund()
    api.reject("bob", approval_id)
    tamper(app, approval_id, state="pending", finished_at=None)
    assert api.approve("carol", approval_id).status_code == 409
    assert ran.calls == []


def test_values_changed_after_the_request_are_never_used(app: Flask, api: Api, ran: Ran) -> None:
    """What runs is what was asked, even when the request's own row keeps other values that
    still pass the signature check: only the frozen, signed text is read."""
    approval_id = api.request_refund(amount="250.00")
    tamper(app, approval_id, answer_body=None, model="orders")  # harmless columns
    body = api.approve("bob", approval_id).get_json()
    assert body["message"] == "Refunded 250.00."
    assert [call[2]["amount"] for call in ran.calls] == [decimal.Decimal("250.00")]


# Expiry


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Move the approval store's clock forward by some seconds."""

    def move(seconds: float) -> None:
        real = approvals_module.utcnow

        def shifted() -> dt.datetime:
            return real() + dt.timedelta(seconds=seconds)

        monkeypatch.setattr(approvals_module, "utcnow", shifted)

    return move


def test_a_request_expires_when_read_after_its_time(
    app: Flask, flex: FlexActions, api: Api, ran: Ran, signals: Signals, later: Any
) -> None:
    approval_id = api.request_refund()
    [row] = approval_rows(app)
    assert row.expires_at - row.created_at == dt.timedelta(days=3)  # FLEXACTIONS_APPROVAL_TTL
    later(3 * 24 * 3600 + 1)
    assert api.send("bob", "list_approvals").get_json()["to_decide"] == []
    response = api.approve("bob", approval_id)
    assert response.status_code == 409 and "expired" in response.get_json()["detail"]
    assert api.withdraw("alice", approval_id).status_code == 409
    assert api.show("alice", approval_id).get_json()["approval"]["state"] == "expired"
    assert ran.calls == []
    assert trail(flex, app, approval_id) == [
        ("requested", "alice"),
        ("expired", None),
        ("invalid", "bob"),
        ("invalid", "alice"),
    ]
    assert signals.steps(approval_id) == [("requested", "pending"), ("decided", "expired")]
    assert signals.sent[-1][3] == {"decision": None}


def test_the_sweep_expires_requests_and_an_action_may_set_its_own_time(
    app: Flask, flex: FlexActions, api: Api, later: Any
) -> None:
    @flex.action(name="quick", approval=Approval(role="lead", expires=120))
    def quick(params: dict[str, Any]) -> None:
        raise AssertionError("never runs")

    quick_id = api.request("alice", "quick")
    refund_id = api.request_refund()
    later(121)
    with app.app_context():
        counts = app.extensions["flexactions"].housekeeping.run()
    assert counts["expired_approvals"] == 1 and counts["stale_approvals"] == 0
    states = {row.id: row.state for row in approval_rows(app)}
    assert states == {quick_id: "expired", refund_id: "pending"}
    assert [outcome for outcome, _ in trail(flex, app, quick_id)] == ["requested", "expired"]


def test_final_requests_are_deleted_a_ttl_after_they_ended(
    app: Flask, api: Api, later: Any
) -> None:
    approval_id = api.request_refund()
    api.reject("bob", approval_id)
    later(3 * 24 * 3600 + 5)
    with app.app_context():
        counts = app.extensions["flexactions"].housekeeping.run()
    assert counts["deleted_approvals"] == 1 and approval_rows(app) == []


def test_an_approved_request_whose_run_never_ended_is_failed_by_the_sweep(
    app: Flask, api: Api, later: Any
) -> None:
    approval_id = api.request_refund()
    tamper(app, approval_id, state="approved", decided_at=dt.datetime(2000, 1, 1))
    later(0)
    with app.app_context():
        counts = app.extensions["flexactions"].housekeeping.run()
    assert counts["stale_approvals"] == 1
    shown = api.show("alice", approval_id).get_json()["approval"]
    assert shown["state"] == "failed"
    assert shown["answer"]["errors"] == {
        "non_field_errors": ["The run of this approved request never finished; nothing ran."]
    }


# Hostile messages: none is a 5xx, none writes


HOSTILE: list[tuple[str, Any]] = [
    ("list_approvals", {"limit": 0}),
    ("list_approvals", {"limit": 201}),
    ("list_approvals", {"limit": "5"}),
    ("list_approvals", {"limit": True}),
    ("list_approvals", {"limit": 1.5}),
    ("list_approvals", []),
    ("list_approvals", "not an object"),
    ("get_approval", None),
    ("get_approval", {}),
    ("get_approval", {"id": None}),
    ("get_approval", {"id": 5}),
    ("get_approval", {"id": ["a"]}),
    ("get_approval", {"id": {"$ne": 1}}),
    ("get_approval", {"id": "x", "download": "yes"}),
    ("approve_action", {}),
    ("approve_action", {"id": 123}),
    ("approve_action", {"id": "REQUEST", "comment": 5}),
    ("approve_action", {"id": "REQUEST", "comment": "x" * 2001}),
    ("approve_action", {"id": "REQUEST", "comment": "nul\x00"}),
    ("approve_action", {"id": "REQUEST", "comment": ["a"]}),
    ("approve_action", {"id": "REQUEST\n"}),
    ("approve_action", {"id": "REQUEST".lower() + " "}),
    ("reject_action", {"id": True}),
    ("reject_action", {"id": "REQUEST", "comment": {"a": 1}}),
    ("withdraw_approval", {"id": ""}),
    ("withdraw_approval", {"id": "REQUEST", "comment": 3.5}),
]


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("message", "params"), HOSTILE)
def test_hostile_params_never_fail_the_server_nor_write(
    app: Flask, api: Api, ran: Ran, message: str, params: Any
) -> None:
    approval_id = api.request_refund()
    if isinstance(params, dict):
        params = {
            k: v.replace("REQUEST", approval_id) if isinstance(v, str) else v
            for k, v in params.items()
        }
    before = [tuple(row) for row in approval_rows(app)]
    response = api.send("bob", message, params)
    assert 400 <= response.status_code < 500, response.get_json()
    assert response.get_json()["result"] is False
    assert [tuple(row) for row in approval_rows(app)] == before
    assert ran.calls == []


@pytest.mark.parametrize("message", ["list_approvals", "get_approval", "approve_action"])
def test_huge_and_deep_bodies_are_refused(app: Flask, api: Api, ran: Ran, message: str) -> None:
    approval_id = api.request_refund()
    before = [tuple(row) for row in approval_rows(app)]
    deep = api.send("bob", message, {"id": approval_id, "comment": nested(100)})
    assert deep.status_code == 400
    huge = api.send("bob", message, {"id": approval_id, "comment": "x" * (2 * 1024 * 1024)})
    assert huge.status_code == 413
    assert [tuple(row) for row in approval_rows(app)] == before and ran.calls == []


def test_decision_messages_need_credentials(app: Flask, api: Api, ran: Ran) -> None:
    approval_id = api.request_refund()
    for message in ("list_approvals", "get_approval", "approve_action", "withdraw_approval"):
        response = api.client.post(URL, json={"name": message, "params": {"id": approval_id}})
        assert response.status_code == 401
    assert ran.calls == [] and api.state(approval_id) == "pending"


# Two approvers at once

needs_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="needs PostgreSQL: set FLEXACTIONS_TEST_DATABASE_URL"
)


def race(app: Flask, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    """Send each (who, message, params) from a thread of its own, all released together."""
    barrier = threading.Barrier(len(requests))
    answers: list[Any] = [None] * len(requests)

    def send(index: int) -> None:
        who, message, params = requests[index]
        try:
            client = app.test_client()
            barrier.wait(timeout=30)
            response = client.post(
                URL,
                json={"name": message, "params": params},
                headers={"Authorization": f"Bearer {who}"},
            )
            answers[index] = (response.status_code, response.get_json())
        except BaseException as error:  # re-raised below, in the test's thread
            answers[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers


@needs_postgresql
def test_two_approvers_at_once_run_it_once(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    for round_ in range(5):
        with app.app_context():
            db.session.get(Order, 1).refunded = 0  # type: ignore[union-attr]
            db.session.commit()
        ran.calls.clear()
        approval_id = api.request_refund()
        answers = race(
            app,
            [
                ("bob", "approve_action", {"id": approval_id}),
                ("carol", "approve_action", {"id": approval_id}),
            ],
        )
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200, 409], (round_, answers)
        assert ran.names() == ["refund"], round_
        assert api.state(approval_id) == "ran"
        outcomes = [outcome for outcome, _ in trail(flex, app, approval_id)]
        assert outcomes.count("ran") == 1 and outcomes.count("approved") == 1


@needs_postgresql
def test_three_approvers_at_once_on_two_needed_run_it_once(
    app: Flask, flex: FlexActions, api: Api, ran: Ran
) -> None:
    for round_ in range(5):
        user_id = 100 + round_
        with app.app_context():
            db.session.add(User(id=user_id, name="to purge"))
            db.session.commit()
        ran.calls.clear()
        approval_id = api.request("alice", "purge", "users", ids=[user_id])
        answers = race(
            app,
            [
                ("bob", "approve_action", {"id": approval_id}),
                ("carol", "approve_action", {"id": approval_id}),
                ("erin", "approve_action", {"id": approval_id}),
            ],
        )
        assert sorted(status for status, _ in answers) == [200, 200, 409], (round_, answers)
        assert ran.calls == [("purge", [user_id], {})], round_
        assert api.state(approval_id) == "ran"
        outcomes = [outcome for outcome, _ in trail(flex, app, approval_id)]
        assert outcomes.count("approved") == 2 and outcomes.count("ran") == 1


@needs_postgresql
def test_two_approvers_at_once_queue_one_job(app: Flask, api: Api, ran: Ran) -> None:
    approval_id = api.request("alice", "rename_all", "users", ids=[1, 2])
    answers = race(
        app,
        [
            ("bob", "approve_action", {"id": approval_id}),
            ("carol", "approve_action", {"id": approval_id}),
        ],
    )
    assert sorted(status for status, _ in answers) == [200, 409], answers
    assert ran.names() == ["rename_all"]
    with app.app_context():
        jobs = db.session.scalar(sa.text("SELECT count(*) FROM flexactions_jobs"))
    assert jobs == 1
