"""The example shop, driven through its Messages URL the way Jet Admin calls it."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import check_password_hash
from werkzeug.test import TestResponse

from examples.shop import create_app, load_or_create_token
from examples.shop.__main__ import main
from examples.shop.models import Account, Order, User, db
from examples.shop.seed import DEMO_PASSWORD, seed_if_empty

TOKEN = "test-token"
CONFIG = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "FLEXACTIONS_TOKEN": TOKEN}
URL = "/flex/messages/"


@pytest.fixture
def app() -> Flask:
    return create_app(dict(CONFIG))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def message(client: FlaskClient, name: str, params: dict[str, Any] | None = None) -> TestResponse:
    body: dict[str, Any] = {"name": name}
    if params is not None:
        body["params"] = params
    return client.post(URL, json=body, headers={"Authorization": f"Token {TOKEN}"})


def execute(
    client: FlaskClient, action: str, model: str | None = None, **params: Any
) -> TestResponse:
    """Send ``execute_action``; ``params`` holds ``id``/``ids`` and the user's ``params``."""
    if model is not None:
        params["model"] = model
    return message(client, "execute_action", {"name": action, **params})


def get(app: Flask, model: type[Any], pk: int) -> Any:
    """A fresh copy of one row, read outside any request."""
    with app.app_context():
        row = db.session.get(model, pk)
        db.session.expunge(row)
        return row


def failed(response: TestResponse) -> dict[str, list[str]]:
    assert response.status_code == 200
    assert response.json is not None and response.json["result"] is False
    errors: dict[str, list[str]] = response.json["errors"]
    return errors


# The action list and the door


def test_action_list_offers_one_action_of_each_kind(client: FlaskClient) -> None:
    response = message(client, "get_action_list")
    assert response.status_code == 200
    actions = {action["name"]: action for action in response.json}
    assert set(actions) == {
        "reset_password",
        "rename_user",
        "block_users",
        "refund",
        "refund_in_full",
        "reassign_order",
        "account_transfer",
        "export_orders_csv",
        "sales_report",
        "ping",
    }
    kinds = {
        name: (
            a["model_action"]["model"],
            a["model_action"]["for_instance"],
            a["model_action"]["bulk"],
        )
        for name, a in actions.items()
        if "model_action" in a
    }
    assert kinds == {
        "reset_password": ("users", True, False),
        "rename_user": ("users", True, False),
        "block_users": ("users", True, True),
        "refund": ("orders", True, False),
        "refund_in_full": ("orders", True, True),
        "reassign_order": ("orders", True, False),
        "account_transfer": ("accounts", False, False),
        "export_orders_csv": ("orders", True, True),
        "sales_report": ("orders", False, False),
    }
    assert actions["ping"]["common_action"] == {}
    transfer = {param["name"]: param for param in actions["account_transfer"]["params"]}
    assert transfer["account_from"]["field"] == "ForeignKey"
    assert transfer["account_from"]["params"]["related_model"] == {"model": "accounts"}
    assert [transfer[name]["required"] for name in ("amount", "description", "date")] == [
        True,
        False,
        False,
    ]
    reason = actions["block_users"]["params"][0]
    assert [option["value"] for option in reason["params"]["options"]] == [
        "fraud",
        "spam",
        "chargebacks",
        "abuse",
    ]


@pytest.mark.parametrize("authorization", [None, "Token wrong", "Basic dGVzdA=="])
def test_refuses_callers_without_the_token(client: FlaskClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(URL, json={"name": "get_action_list"}, headers=headers)
    assert response.status_code == 401
    assert response.json["result"] is False


def test_accepts_the_token_as_bearer_and_answers_jet_admin_cors(client: FlaskClient) -> None:
    response = client.post(
        URL,
        json={"name": "execute_action", "params": {"name": "ping"}},
        headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://app.jetadmin.io"},
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.jetadmin.io"


# reset_password: a record action


def test_reset_password_stores_a_hash(app: Flask, client: FlaskClient) -> None:
    response = execute(
        client, "reset_password", "users", id=2, params={"new_password": "s3cret-enough"}
    )
    assert response.json == {
        "result": True,
        "message": "The password of grace@example.com was reset.",
    }
    user = get(app, User, 2)
    assert user.password_hash != "s3cret-enough"
    assert check_password_hash(user.password_hash, "s3cret-enough")


def test_reset_password_refuses_a_short_password(app: Flask, client: FlaskClient) -> None:
    errors = failed(
        execute(client, "reset_password", "users", id=2, params={"new_password": "short"})
    )
    assert errors == {"new_password": ["Use at least 8 characters."]}
    assert check_password_hash(get(app, User, 2).password_hash, DEMO_PASSWORD)


def test_reset_password_requires_the_password(client: FlaskClient) -> None:
    assert "new_password" in failed(execute(client, "reset_password", "users", id=2, params={}))


# block_users: a bulk action


def test_block_users_blocks_every_selected_user(app: Flask, client: FlaskClient) -> None:
    response = execute(client, "block_users", "users", ids=[1, 3], params={"reason": "fraud"})
    assert response.json == {"result": True, "message": "Blocked 2 users"}
    blocked = [(u.is_blocked, u.blocked_reason) for u in (get(app, User, pk) for pk in (1, 2, 3))]
    assert blocked == [(True, "fraud"), (False, None), (True, "fraud")]


def test_block_users_reason_is_optional(app: Flask, client: FlaskClient) -> None:
    response = execute(client, "block_users", "users", ids=[4])
    assert response.json == {"result": True, "message": "Blocked 1 user"}
    assert get(app, User, 4).is_blocked


def test_block_users_refuses_an_unknown_reason(app: Flask, client: FlaskClient) -> None:
    errors = failed(execute(client, "block_users", "users", ids=[1], params={"reason": "boredom"}))
    assert list(errors) == ["reason"]
    assert not get(app, User, 1).is_blocked


# refund: a record action with business errors


def test_refund_part_of_an_order(app: Flask, client: FlaskClient) -> None:
    response = execute(
        client, "refund", "orders", id=1, params={"amount": "5.00", "reason": "Late"}
    )
    assert response.json == {"result": True, "message": "Refunded 5.00 of order #1."}
    order = get(app, Order, 1)
    assert (order.refunded, order.status) == (Decimal("5.00"), "partially_refunded")


def test_refund_the_rest_of_an_order(app: Flask, client: FlaskClient) -> None:
    response = execute(client, "refund", "orders", id=5, params={"amount": "50.00"})
    assert response.json["result"] is True
    order = get(app, Order, 5)
    assert (order.refunded, order.status) == (Decimal("75.25"), "refunded")


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0", "The amount must be greater than zero."),
        ("-3.00", "The amount must be greater than zero."),
        ("50.01", "At most 50.00 can be refunded."),
        ("1.005", "Use at most two decimal places."),
    ],
)
def test_refund_refuses_a_wrong_amount(
    app: Flask, client: FlaskClient, amount: str, error: str
) -> None:
    errors = failed(execute(client, "refund", "orders", id=5, params={"amount": amount}))
    assert errors == {"amount": [error]}
    order = get(app, Order, 5)
    assert (order.refunded, order.status) == (Decimal("25.25"), "partially_refunded")


def test_refund_refuses_a_fully_refunded_order(app: Flask, client: FlaskClient) -> None:
    errors = failed(execute(client, "refund", "orders", id=4, params={"amount": "1.00"}))
    assert errors == {"non_field_errors": ["Order #4 is already fully refunded."]}
    assert get(app, Order, 4).refunded == Decimal("18.00")


def test_refund_of_a_missing_order_fails(client: FlaskClient) -> None:
    errors = failed(execute(client, "refund", "orders", id=999, params={"amount": "1.00"}))
    assert "999" in " ".join(errors["non_field_errors"])


# account_transfer: a collection action with ForeignKey params


def balances(app: Flask) -> list[Decimal]:
    with app.app_context():
        return list(db.session.scalars(select(Account.balance).order_by(Account.id)))


def test_account_transfer_moves_the_money(app: Flask, client: FlaskClient) -> None:
    response = execute(
        client,
        "account_transfer",
        "accounts",
        params={
            "account_from": 2,
            "account_to": "3",
            "amount": "1500.50",
            "description": "March payroll",
            "date": "2025-03-28T09:00:00Z",
        },
    )
    assert response.json == {
        "result": True,
        "message": "Transferred 1500.50 from Savings to Payroll on 2025-03-28.",
    }
    assert balances(app) == [Decimal("12500.00"), Decimal("38499.50"), Decimal("9800.50")]


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"account_from": 1, "account_to": 1, "amount": "10"},
            {"account_to": ["Choose an account other than the source account."]},
        ),
        (
            {"account_from": 3, "account_to": 1, "amount": "8300.01"},
            {"amount": ["Insufficient funds: Payroll holds 8300.00."]},
        ),
        (
            {"account_from": 1, "account_to": 1, "amount": "-5"},
            {
                "account_to": ["Choose an account other than the source account."],
                "amount": ["The amount must be greater than zero."],
            },
        ),
    ],
)
def test_account_transfer_refuses_a_wrong_transfer(
    app: Flask, client: FlaskClient, params: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    assert failed(execute(client, "account_transfer", "accounts", params=params)) == errors
    assert balances(app) == [Decimal("12500.00"), Decimal("40000.00"), Decimal("8300.00")]


def test_account_transfer_needs_existing_accounts(app: Flask, client: FlaskClient) -> None:
    params = {"account_from": 1, "account_to": 42, "amount": "10"}
    errors = failed(execute(client, "account_transfer", "accounts", params=params))
    assert list(errors) == ["account_to"]
    assert balances(app) == [Decimal("12500.00"), Decimal("40000.00"), Decimal("8300.00")]


# export_orders_csv: a bulk action that answers with a file


def test_export_orders_csv_downloads_the_selected_orders(client: FlaskClient) -> None:
    response = execute(client, "export_orders_csv", "orders", ids=[3, 1, 5])
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "orders.csv" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["id", "customer", "total", "refunded", "status", "created_at"],
        ["3", "grace@example.com", "249.99", "0.00", "shipped", "2025-01-21T11:05:00"],
        ["1", "ada@example.com", "120.00", "0.00", "shipped", "2025-01-06T09:12:00"],
        ["5", "alan@example.com", "75.25", "25.25", "partially_refunded", "2025-02-09T15:55:00"],
    ]


# sales_report: a collection action that answers with HTML


def test_sales_report_sums_orders_per_status(client: FlaskClient) -> None:
    response = execute(client, "sales_report", "orders")
    assert response.json["message"] == "10 orders, 927.48 net sales."
    html = response.json["html"]
    assert html.startswith("<table>") and html.endswith("</table>")
    assert "<tr><td>refunded</td><td>1</td><td>18.00</td><td>18.00</td></tr>" in html
    assert "<tr><th>Total</th><th>10</th><th>970.73</th><th>43.25</th></tr>" in html


def test_sales_report_since_a_day(client: FlaskClient) -> None:
    response = execute(client, "sales_report", "orders", params={"since": "2025-03-01"})
    assert response.json["message"] == "3 orders, 72.09 net sales."


def test_sales_report_escapes_values(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        db.session.get(Order, 1).status = "<script>alert(1)</script>"
        db.session.commit()
    html = execute(client, "sales_report", "orders").json["html"]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# ping: a common action


def test_ping_answers_pong(client: FlaskClient) -> None:
    response = execute(client, "ping")
    assert response.status_code == 200
    assert response.json["result"] is True
    assert response.json["message"].startswith("pong (server time 20")


# The app factory


def test_apps_are_independent(client: FlaskClient) -> None:
    other = create_app(dict(CONFIG)).test_client()
    assert execute(client, "refund", "orders", id=2, params={"amount": "35.50"}).json["result"]
    assert execute(other, "refund", "orders", id=2, params={"amount": "35.50"}).json["result"]
    assert failed(execute(client, "refund", "orders", id=2, params={"amount": "1"}))


def test_seed_runs_once(tmp_path: Path) -> None:
    config = {**CONFIG, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.db'}"}
    create_app(config)
    app = create_app(config)
    with app.app_context():
        assert not seed_if_empty(db.session)
        counts = [
            db.session.scalar(select(func.count()).select_from(m)) for m in (User, Order, Account)
        ]
    assert counts == [5, 10, 3]


def test_token_is_generated_once(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert len(token) >= 32
    assert load_or_create_token(tmp_path) == token
    assert (tmp_path / "flexactions-token.txt").read_text().strip() == token


def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEXACTIONS_TOKEN", "from-env")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["FLEXACTIONS_TOKEN"] == "from-env"


def test_main_prints_the_url_token_and_curl(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "examples.shop.__main__.create_app", lambda config=None: create_app(dict(CONFIG))
    )
    monkeypatch.setattr(Flask, "run", lambda self, host, port: started.append((host, port)))
    monkeypatch.setenv("PORT", "5123")
    main([])
    out = capsys.readouterr().out
    assert started == [("127.0.0.1", 5123)]
    assert "http://127.0.0.1:5123/flex/messages/" in out
    assert "http://127.0.0.1:5123/flex/openapi.json" in out
    assert (
        "curl -s -X POST -H 'Authorization: Token test-token' -H 'Content-Type: application/json'"
        """ -d '{"name":"get_action_list"}' http://127.0.0.1:5123/flex/messages/"""
    ) in out


# Connected to Jet Admin with JWT (a test key stands in for Jet Admin's)


@pytest.mark.parametrize(
    ("team", "sees_transfer", "status"), [("Finance", False, 403), ("finance", True, 200)]
)
def test_jet_admin_users_see_what_their_team_may_run(
    monkeypatch: pytest.MonkeyPatch, team: str, sees_transfer: bool, status: int
) -> None:
    from tests.jet import PROJECT, KeyPair

    keys = KeyPair()
    monkeypatch.setenv("FLEXACTIONS_JET_PROJECT", PROJECT)
    app = create_app({**CONFIG, "FLEXACTIONS_JET_PUBLIC_KEY": keys.public_pem})
    client = app.test_client()
    jwt = keys.token(projects={PROJECT: {"group": {"name": team}}})
    headers = {"Authorization": f"JWT {jwt}"}
    listing = client.post(URL, json={"name": "get_action_list"}, headers=headers).get_json()
    names = {entry["name"] for entry in listing}
    assert "ping" in names and ("account_transfer" in names) is sees_transfer
    before = (get(app, Account, 1).balance, get(app, Account, 2).balance)
    transfer = {"account_from": 1, "account_to": 2, "amount": "1.00"}
    body = {
        "name": "execute_action",
        "params": {"name": "account_transfer", "model": "accounts", "params": transfer},
    }
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == status
    after = (get(app, Account, 1).balance, get(app, Account, 2).balance)
    moved = Decimal("1.00") if status == 200 else Decimal(0)
    assert after == (before[0] - moved, before[1] + moved)


# A background action, run inline (no broker in the tests' config)


def test_refund_in_full_runs_as_a_job(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        rows = db.session.scalars(select(Order).order_by(Order.id)).all()
        refundable = [order.id for order in rows if order.refundable > 0][:2]
    first = execute(client, "refund_in_full", "orders", ids=refundable)
    job = first.get_json()["job"]["id"]
    again = execute(client, "refund_in_full", "orders", ids=refundable)
    status = message(client, "get_action_status", {"job": job}).get_json()["job"]
    assert status["state"] == "succeeded"
    assert status["answer"]["message"] == "2 of 2 records done, 0 failed."
    assert all(get(app, Order, pk).refundable == 0 for pk in refundable)
    # The second job finds both orders refunded: each record fails alone, nothing changes.
    second = message(client, "get_action_status", {"job": again.get_json()["job"]["id"]})
    answer = second.get_json()["job"]["answer"]
    assert answer["result"] is False and [r["result"] for r in answer["records"]] == [False, False]


# Dynamic params: computed options, defaults from the record, a dry run


def test_reassign_order_offers_other_active_customers(app: Flask, client: FlaskClient) -> None:
    assert execute(client, "block_users", "users", ids=[4]).json["result"]
    listed = {a["name"]: a for a in message(client, "get_action_list").json}
    assert listed["reassign_order"]["params"][0]["params"] == {"options": [], "dynamic": True}
    request = {"action": "reassign_order", "model": "orders", "field": "new_owner", "id": 1}
    response = message(client, "get_field_options", request)
    assert response.status_code == 200
    # Order 1 is Ada's and Edsger is blocked.
    assert [option["value"] for option in response.json] == [3, 5, 2]
    assert response.json[0] == {"value": 3, "name": "Alan Turing <alan@example.com>"}
    found = message(client, "get_field_options", {**request, "search": "HOPPER"})
    assert found.json == [{"value": 2, "name": "Grace Hopper <grace@example.com>"}]
    wildcard = message(client, "get_field_options", {**request, "search": "%"})
    assert wildcard.json == []
    paged = message(client, "get_field_options", {**request, "page": 2, "limit": 2})
    assert [option["value"] for option in paged.json] == [2]


def test_reassign_order_runs_only_with_an_offered_customer(app: Flask, client: FlaskClient) -> None:
    errors = failed(execute(client, "reassign_order", "orders", id=1, params={"new_owner": 1}))
    assert errors == {"new_owner": ["Not one of the allowed options."]}
    response = execute(client, "reassign_order", "orders", id=1, params={"new_owner": "2"})
    assert response.json == {
        "result": True,
        "message": "Order #1 now belongs to grace@example.com.",
    }
    assert get(app, Order, 1).user_id == 2


def test_rename_user_is_prefilled_from_the_record(app: Flask, client: FlaskClient) -> None:
    listed = {a["name"]: a for a in message(client, "get_action_list").json}
    name = listed["rename_user"]["params"][0]
    assert (name["default"], name["default_from_record"], name["required"]) == (None, True, False)
    response = message(
        client, "get_action_params", {"name": "rename_user", "model": "users", "id": 2}
    )
    assert response.json[0]["default"] == "Grace Hopper"
    missing = message(
        client, "get_action_params", {"name": "rename_user", "model": "users", "id": 9}
    )
    assert failed(missing) == {"non_field_errors": ["No record of users has the id 9."]}
    renamed = execute(client, "rename_user", "users", id=2, params={"name": " Amazing Grace "})
    assert renamed.json["message"] == "grace@example.com is now called Amazing Grace."
    # Left out, the name defaults to the current one.
    assert execute(client, "rename_user", "users", id=3).json["result"] is True
    assert get(app, User, 3).name == "Alan Turing"
    assert "name" in failed(execute(client, "rename_user", "users", id=3, params={"name": " "}))


def test_block_users_dry_run_blocks_no_one(app: Flask, client: FlaskClient) -> None:
    assert execute(client, "block_users", "users", ids=[2]).json["result"]
    response = execute(client, "block_users", "users", ids=[1, 2, 3], dry_run=True)
    assert response.json == {
        "result": True,
        "dry_run": True,
        "count": 3,
        "message": "Would block 2 users (1 already blocked).",
    }
    assert [get(app, User, pk).is_blocked for pk in (1, 2, 3)] == [False, True, False]
    invalid = execute(client, "block_users", "users", ids=[1], dry_run=True, params={"reason": "x"})
    assert list(failed(invalid)) == ["reason"]


def test_a_new_password_never_reaches_the_audit_log() -> None:
    app = create_app({**CONFIG, "FLEXACTIONS_AUDIT": "table"})
    password = "a brand new passphrase"
    response = execute(
        app.test_client(), "reset_password", "users", id=1, params={"new_password": password}
    )
    assert response.get_json()["result"] is True
    from examples.shop.actions import flex

    with app.app_context():
        (record,) = flex.audit_records(action="reset_password")
    assert record.params == {"new_password": "[redacted]"}
    assert password not in repr(record)


def test_engine_options_follow_the_deployment_guide() -> None:
    from examples.shop import engine_options

    assert engine_options("sqlite:///shop.db") == {"pool_pre_ping": True}
    postgres = engine_options("postgresql+psycopg://db/shop")
    assert postgres["pool_pre_ping"] is True
    assert postgres["connect_args"]["connect_timeout"] == 5
    assert "statement_timeout" in postgres["connect_args"]["options"]
