"""Tests of the Quickstart's refund action, through its Messages URL."""

from decimal import Decimal

from app import Order, db


def test_refund(flex_client, app):
    response = flex_client.execute("refund", "orders", id=1, params={"amount": "5.00"})
    assert response.json == {"result": True, "message": "Refunded 5.00 of order #1."}
    with app.app_context():
        assert db.session.get(Order, 1).refunded == Decimal("5.00")


def test_refund_more_than_what_is_left(flex_client, app):
    response = flex_client.execute("refund", "orders", id=1, params={"amount": "25"})
    assert response.json == {
        "result": False,
        "errors": {"amount": ["More than what is left to refund."]},
    }
    with app.app_context():
        assert db.session.get(Order, 1).refunded == 0  # rolled back


def test_the_amount_is_required(flex_client):
    response = flex_client.execute("refund", "orders", id=1)
    assert response.json == {
        "result": False,
        "errors": {"amount": ["Missing data for required field."]},
    }


def test_a_missing_order(flex_client):
    response = flex_client.execute("refund", "orders", id=7, params={"amount": "1"})
    assert response.json == {
        "result": False,
        "errors": {"non_field_errors": ["No record of orders has the id 7."]},
    }


def test_the_token_is_required(flex_client):
    flex_client.authorization = ""  # send no credential
    response = flex_client.execute("refund", "orders", id=1, params={"amount": "5.00"})
    assert response.status_code == 401


def test_the_action_list(flex_client):
    assert [action["name"] for action in flex_client.action_list()] == ["refund"]
