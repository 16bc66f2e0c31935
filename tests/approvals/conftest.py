"""Fixtures of the approval tests: an app with actions that need approval, the people who
call it, and a fake receiver of the approval signals."""

from __future__ import annotations

import decimal
import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request, send_file
from flask.testing import FlaskClient

from flask_flexactions import Approval, Caller, FlexActions
from flask_flexactions.signals import approval_decided, approval_ran, approval_requested
from tests.approvals.support import PEOPLE, SECRET, Api, Ran, Signals, lead_for_level
from tests.models import Order, User, db


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "SECRET_KEY": SECRET,
        "FLEXACTIONS_AUDIT": "table",
        "FLEXACTIONS_BACKGROUND_INLINE": True,
    }


@pytest.fixture
def people() -> dict[str, Caller]:
    """The callers, by name; a test may change someone's roles before they decide."""
    return dict(PEOPLE)


@pytest.fixture
def ran(app: Flask, flex: FlexActions, people: dict[str, Caller]) -> Ran:
    """The actions that need approval, registered on ``flex``, and the rows they act on."""
    ran = Ran()
    with app.app_context():
        db.session.add_all(User(id=i, name=f"user {i}") for i in range(1, 6))
        db.session.add_all(Order(id=i, total=decimal.Decimal("500.00")) for i in (1, 2))
        db.session.commit()

    @flex.authenticator
    def by_name(request: Request) -> Caller | None:
        scheme, _, name = request.headers.get("Authorization", "").partition(" ")
        return people.get(name) if scheme == "Bearer" else None

    @flex.action(
        Order,
        for_instance=True,
        label="Refund",
        params=[
            {"name": "amount", "field": "DecimalField", "required": True},
            {"name": "note", "field": "TextField"},
        ],
        approval=Approval(
            role="lead", when=lambda params, order: params["amount"] > 100, reason=True
        ),
        preview=lambda order, params: f"Would refund {params['amount']} of order {order.id}.",
    )
    def refund(order: Order, params: dict[str, Any]) -> str:
        ran.calls.append(("refund", order.id, dict(params)))
        order.refunded = params["amount"]
        return f"Refunded {params['amount']}."

    @flex.action(
        User,
        bulk=True,
        approval=Approval(role="lead", approvers=2),
        preview=lambda users, params: f"Would delete {len(users)} users.",
    )
    def purge(users: list[User], params: dict[str, Any]) -> str:
        ran.calls.append(("purge", [u.id for u in users], dict(params)))
        for user in users:
            db.session.delete(user)
        return f"Deleted {len(users)} users."

    @flex.action(
        params=[
            {"name": "amount", "field": "DecimalField", "required": True},
            {"name": "pin", "field": "CharField", "secret": True},
        ],
        approval="lead",
    )
    def transfer(params: dict[str, Any]) -> str:
        ran.calls.append(("transfer", None, dict(params)))
        return f"Transferred {params['amount']}."

    @flex.action(User, bulk=True, background=True, approval="lead")
    def rename_all(users: list[User], params: dict[str, Any]) -> str:
        ran.calls.append(("rename_all", [u.id for u in users], dict(params)))
        for user in users:
            user.name = f"renamed {user.id}"
        return f"Renamed {len(users)} users."

    @flex.action(Order, approval="lead")
    def export(model: type[Order], params: dict[str, Any]) -> Any:
        ran.calls.append(("export", None, dict(params)))
        data = io.BytesIO(b"id,total\n1,500.00\n")
        return send_file(data, mimetype="text/csv", as_attachment=True, download_name="orders.csv")

    @flex.action(
        name="special",
        params=[{"name": "level", "field": "CharField"}],
        approval=Approval(check=lead_for_level),
    )
    def special(params: dict[str, Any]) -> str:
        ran.calls.append(("special", None, dict(params)))
        return "Special done."

    return ran


@pytest.fixture
def api(client: FlaskClient, ran: Ran) -> Api:
    return Api(client)


@pytest.fixture
def signals(app: Flask) -> Iterator[Signals]:
    """A fake receiver of the three approval signals, for this app only."""
    caught = Signals()
    receivers = []
    for signal in (approval_requested, approval_decided, approval_ran):

        def receive(
            sender: Flask, approval: dict[str, Any], _name: str = signal.name, **extra: Any
        ) -> None:
            caught.sent.append((_name, approval["state"], approval, extra))

        signal.connect(receive, app)
        receivers.append((signal, receive))
    yield caught
    for signal, receive in receivers:
        signal.disconnect(receive, app)
