"""Per-action permissions: a caller x action matrix for get_action_list and execute_action."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import Action, Caller, FlexActions
from tests.conftest import URL
from tests.models import Order, User, db

CALLERS = {
    "plain": Caller(id="p"),
    "finance": Caller(id="f", roles=frozenset({"finance"})),
    "support": Caller(id="s", roles=frozenset({"support"})),
    "auditor": Caller(id="a", roles=frozenset({"auditor"})),
    "superuser": Caller(id="su", superuser=True),
    "read-only": Caller(id="ro", roles=frozenset({"finance", "support"}), read_only=True),
    "root": Caller(id="root"),
}

# What each caller may run; audit@users and audit@orders are one action on two collections.
ALLOWED = {
    "plain": {"ping", "audit@users"},
    "finance": {"ping", "refund", "audit@users"},
    "support": {"ping", "block", "audit@users"},
    "auditor": {"ping", "audit@users", "audit@orders"},
    "superuser": {"ping", "refund", "block", "audit@users", "audit@orders"},
    "read-only": set(),
    "root": {"ping", "audit@users", "danger"},
}

REQUESTS: dict[str, dict[str, Any]] = {
    "ping": {"name": "ping"},
    "refund": {"name": "refund", "model": "orders", "id": 1},
    "block": {"name": "block", "model": "users", "ids": [1, 2]},
    "audit@users": {"name": "audit", "model": "users"},
    "audit@orders": {"name": "audit", "model": "orders"},
    "danger": {"name": "danger"},
}


def audit_permission(caller: Caller, action: Action, model: Any) -> bool:
    return caller.has_role("auditor") or model is User


@pytest.fixture
def ran(app: Flask, flex: FlexActions) -> list[str]:
    calls: list[str] = []
    with app.app_context():
        db.session.add_all([User(id=1, name="a"), User(id=2, name="b")])
        db.session.add(Order(id=1, total=decimal.Decimal("10")))
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        return CALLERS.get(request.headers.get("X-Caller", ""))

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        calls.append("ping")

    @flex.action(Order, for_instance=True, permission="finance")
    def refund(order: Order, params: dict[str, Any]) -> None:
        calls.append("refund")
        order.refunded = order.total

    @flex.action(User, bulk=True, permission="support")
    def block(users: list[User], params: dict[str, Any]) -> None:
        calls.append("block")
        for user in users:
            user.is_blocked = True

    @flex.action([User, Order], permission=audit_permission)
    def audit(model: type[Any], params: dict[str, Any]) -> None:
        calls.append(f"audit@{model.__tablename__}")

    @flex.action(permission=lambda caller, action, model: caller.id == "root")
    def danger(params: dict[str, Any]) -> None:
        calls.append("danger")

    return calls


def send(client: FlaskClient, caller: str, body: dict[str, Any]) -> TestResponse:
    return client.post(URL, json=body, headers={"X-Caller": caller})


def listed(client: FlaskClient, caller: str) -> set[str]:
    response = send(client, caller, {"name": "get_action_list"})
    assert response.status_code == 200
    names = set()
    for entry in response.get_json():
        models = entry.get("model_action", {}).get("model")
        if entry["name"] == "audit":
            names.update(f"audit@{model}" for model in models)
        else:
            names.add(entry["name"])
    return names


def test_each_caller_lists_what_it_may_run(client: FlaskClient, ran: list[str]) -> None:
    # All callers share one app, so the per-role-set cache is exercised between them.
    for _ in range(2):
        for caller, allowed in ALLOWED.items():
            assert listed(client, caller) == allowed, caller


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("action", list(REQUESTS))
def test_execute_matrix(
    app: Flask, client: FlaskClient, ran: list[str], caller: str, action: str
) -> None:
    response = send(client, caller, {"name": "execute_action", "params": REQUESTS[action]})
    if action in ALLOWED[caller]:
        assert response.status_code == 200
        assert response.get_json() == {"result": True}
        assert ran == [action]
    else:
        assert response.status_code == 403
        body = response.get_json()
        assert body["result"] is False
        expected = "Read-only users" if caller == "read-only" else f"'{action.split('@')[0]}'"
        assert expected in body["errors"]["non_field_errors"][0]
        assert ran == []
        with app.app_context():
            assert db.session.scalar(sa.select(Order.refunded)) == 0
            assert not any(db.session.scalars(sa.select(User.is_blocked)))


def test_forbidden_is_refused_before_ids_and_params_are_read(
    client: FlaskClient, ran: list[str]
) -> None:
    body = {"name": "refund", "model": "orders", "ids": "x,-1", "params": "{not json"}
    response = send(client, "plain", {"name": "execute_action", "params": body})
    assert response.status_code == 403
    assert ran == []


def test_a_listed_action_on_one_collection_keeps_the_list_shape(
    client: FlaskClient, ran: list[str]
) -> None:
    response = send(client, "plain", {"name": "get_action_list"})
    (audit,) = [entry for entry in response.get_json() if entry["name"] == "audit"]
    assert audit["model_action"]["model"] == ["users"]


def test_a_raising_permission_refuses_and_is_logged(
    app: Flask, flex: FlexActions, client: FlaskClient, ran: list[str], caplog: Any
) -> None:
    @flex.action(permission=lambda caller, action, model: 1 / 0)
    def broken(params: dict[str, Any]) -> None:
        ran.append("broken")

    assert "broken" not in listed(client, "superuser")
    response = send(client, "superuser", {"name": "execute_action", "params": {"name": "broken"}})
    assert response.status_code == 403 and ran == []
    assert "permission check of the Flex action 'broken' raised" in caplog.text
    logged = [r.getMessage() for r in caplog.records if r.exc_info]
    assert "The permission check of the Flex action 'broken' raised; access refused" in logged


def test_a_late_registration_reaches_the_cached_lists(
    flex: FlexActions, client: FlaskClient, ran: list[str]
) -> None:
    assert "late" not in listed(client, "finance")

    @flex.action(permission="finance")
    def late(params: dict[str, Any]) -> None:
        pass

    assert "late" in listed(client, "finance")
    assert "late" not in listed(client, "support")


@pytest.mark.parametrize("permission", ["", 3, ["finance"]], ids=repr)
def test_a_bad_permission_is_refused_at_registration(flex: FlexActions, permission: Any) -> None:
    with pytest.raises(TypeError, match="permission must be a role name"):
        flex.register_action(lambda params: None, name="x", permission=permission)


def test_without_any_permission_the_list_is_shared(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    @flex.authenticator
    def anyone(request: Request) -> Caller:
        return Caller(id=request.headers.get("X-Caller"))

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        pass

    first = send(client, "a", {"name": "get_action_list"}).data
    assert first == send(client, "b", {"name": "get_action_list"}).data
    assert b'"ping"' in first


def test_a_callable_permission_gets_the_caller_the_action_and_the_model(
    flex: FlexActions, client: FlaskClient, ran: list[str]
) -> None:
    """The documented signature ``(caller, action, model)``: the action being checked, and the
    model class, or None for a common action; for listing and for running alike."""
    seen: list[tuple[Caller, Action, Any]] = []

    def recorder(caller: Caller, action: Action, model: Any) -> bool:
        seen.append((caller, action, model))
        return caller.id == "a" and (model is None or model is Order)

    @flex.action(permission=recorder)
    def report(params: dict[str, Any]) -> None:
        ran.append("report")

    @flex.action([User, Order], permission=recorder)
    def recount(model: type[Any], params: dict[str, Any]) -> None:
        ran.append(f"recount@{model.__tablename__}")

    auditor = CALLERS["auditor"]
    listing = send(client, "auditor", {"name": "get_action_list"}).get_json()
    entries = {entry["name"]: entry for entry in listing}
    assert "report" in entries and entries["recount"]["model_action"]["model"] == ["orders"]
    assert {(action.name, model) for _, action, model in seen} == {
        ("report", None),
        ("recount", User),
        ("recount", Order),
    }
    for caller, action, _ in seen:
        assert caller == auditor and isinstance(action, Action)
        assert action.permission is recorder

    for params, expected in [
        ({"name": "report"}, ("report", None)),
        ({"name": "recount", "model": "orders"}, ("recount", Order)),
        ({"name": "recount", "model": "users"}, ("recount", User)),
    ]:
        seen.clear()
        response = send(client, "auditor", {"name": "execute_action", "params": params})
        assert response.status_code == (403 if expected[1] is User else 200)
        [(caller, action, model)] = seen
        assert caller == auditor and (action.name, model) == expected
        assert action.permission is recorder
    assert ran == ["report", "recount@orders"]
