"""A small app with an action that needs approval, for the console's approvals panel.

- ``refund``: a record action on orders that clerks may ask for and a lead must approve,
  with a reason; it writes the refund, so a test sees in the database that it ran;
- ``ping``: a common action anybody may run, so a lead who may not ask for refunds still has
  an action list.

People sign in as ``Bearer <name>`` (see :data:`PEOPLE`): Alice and Dave are clerks, Bob and
Carol leads.
"""

from __future__ import annotations

import decimal
from typing import Any

from flask import Flask, Request

from flask_flexactions import Approval, Caller, FlexActions
from tests.models import Order, db

SECRET = "console-approvals-secret-key-0123456789abcdef"

#: Who may call, by the name sent as ``Authorization: Bearer <name>``.
PEOPLE = {
    "alice": Caller(id="alice", name="Alice", roles=frozenset({"clerk"})),
    "dave": Caller(id="dave", name="Dave", roles=frozenset({"clerk"})),
    "bob": Caller(id="bob", name="Bob", roles=frozenset({"lead"})),
    "carol": Caller(id="carol", name="Carol", roles=frozenset({"lead"})),
}


def create_approvals_lab(database_url: str, token: str) -> Flask:
    """The app on ``database_url``, with orders 1 to 3 (a total of 500.00 each)."""
    flex = FlexActions()

    @flex.authenticator
    def by_name(request: Request) -> Caller | None:
        scheme, _, name = request.headers.get("Authorization", "").partition(" ")
        return PEOPLE.get(name) if scheme == "Bearer" else None

    @flex.action(
        Order,
        for_instance=True,
        label="Refund",
        params=[{"name": "amount", "field": "DecimalField", "label": "Amount", "required": True}],
        permission="clerk",
        approval=Approval(role="lead", reason=True),
        preview=lambda order, params: f"Would refund {params['amount']} of order #{order.id}.",
    )
    def refund(order: Order, params: dict[str, Any]) -> str:
        order.refunded = params["amount"]
        return f"Refunded {params['amount']} of order #{order.id}."

    @flex.action(None, label="Ping")
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY=SECRET,
        FLEXACTIONS_TOKEN=token,
        FLEXACTIONS_CONSOLE=True,
    )
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    with app.app_context():
        db.create_all()
        db.session.add_all(Order(id=i, total=decimal.Decimal("500.00")) for i in (1, 2, 3))
        db.session.commit()
    return app


def refunded(app: Flask, order: int) -> decimal.Decimal:
    """What order ``order`` says was refunded."""
    with app.app_context():
        row = db.session.get(Order, order)
        assert row is not None
        return decimal.Decimal(row.refunded or 0)
