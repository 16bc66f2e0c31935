"""End-to-end smoke test of each action kind through the Messages URL."""

from __future__ import annotations

import decimal

from flask_flexactions import ActionError, FlexActions, Result
from tests.conftest import Messages
from tests.models import Account, Order, User, db


def test_each_kind_runs(app, flex: FlexActions, messages: Messages) -> None:
    with app.app_context():
        db.session.add_all([User(id=1, name="a"), User(id=2, name="b")])
        db.session.add_all([Order(id=10, total=decimal.Decimal("20.00"), refunded=0)])
        db.session.add_all([Account(id=1, balance=100), Account(id=2, balance=0)])
        db.session.commit()

    @flex.action(
        Order,
        for_instance=True,
        params=[
            {"name": "amount", "field": "DecimalField", "required": True},
        ],
    )
    def refund(order, params):
        if params["amount"] > order.total:
            raise ActionError(errors={"amount": ["More than the total"]})
        order.refunded += params["amount"]
        return "Refunded"

    @flex.action(User, bulk=True)
    def block(users, params):
        for user in users:
            user.is_blocked = True
        return Result(message=f"Blocked {len(users)}", html="<b>ok</b>")

    @flex.action(
        Account,
        params=[
            {
                "name": "src",
                "field": "ForeignKey",
                "required": True,
                "params": {"related_model": {"model": "shop;account"}},
            },
            {
                "name": "dst",
                "field": "ForeignKey",
                "required": True,
                "params": {"related_model": {"model": Account}},
            },
            {"name": "amount", "field": "DecimalField", "required": True},
        ],
    )
    def transfer(model, params):
        assert model is Account
        params["src"].balance -= params["amount"]
        params["dst"].balance += params["amount"]

    @flex.action()
    def ping(params):
        return "pong"

    listed = messages.action_list()
    assert [a["name"] for a in listed] == ["refund", "block", "transfer", "ping"]
    r = messages.execute("refund", "orders", id="10", params={"amount": "5.50"})
    assert r.get_json() == {"result": True, "message": "Refunded"}, r.get_json()
    r = messages.execute("refund", "orders", id=10, params={"amount": "500"})
    assert r.get_json() == {"result": False, "errors": {"amount": ["More than the total"]}}
    r = messages.execute("block", "users", ids="1,2")
    assert r.get_json() == {"result": True, "message": "Blocked 2", "html": "<b>ok</b>"}
    r = messages.execute("transfer", "shop;account", params={"src": 1, "dst": "2", "amount": 30})
    assert r.get_json() == {"result": True}, r.get_json()
    r = messages.execute("transfer", "shop;account", params={"src": 9, "dst": "2", "amount": 30})
    assert r.get_json() == {
        "result": False,
        "errors": {"src": ["No record of shop;account has the id 9."]},
    }
    r = messages.execute("ping")
    assert r.get_json() == {"result": True, "message": "pong"}
    with app.app_context():
        assert db.session.get(Order, 10).refunded == decimal.Decimal("5.50")
        assert all(u.is_blocked for u in db.session.scalars(db.select(User)))
        assert db.session.get(Account, 2).balance == 30
