"""Row scoping: rows outside a caller's scope behave exactly like rows that do not exist."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import Caller, FlexActions
from tests.conftest import URL
from tests.models import Order, User, db

# Orders 1-3 belong to user 1, orders 4-5 to user 2; order 99 does not exist.
OWNERS = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2}


@pytest.fixture
def ran(app: Flask, flex: FlexActions) -> list[Any]:
    calls: list[Any] = []
    with app.app_context():
        db.session.add_all([User(id=1, name="ann"), User(id=2, name="bob")])
        db.session.flush()  # no relationship() tells the unit of work users go first
        db.session.add_all(
            Order(id=order, user_id=owner, total=decimal.Decimal(10))
            for order, owner in OWNERS.items()
        )
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller:
        return Caller(id=request.headers.get("X-User", "0"))

    @flex.scope(Order)
    def own_orders(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        return statement.where(Order.user_id == int(caller.id or 0))

    @flex.scope(User)
    def only_self(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        return statement.where(User.id == int(caller.id or 0))

    @flex.action(Order, for_instance=True)
    def refund(order: Order, params: dict[str, Any]) -> None:
        calls.append(order.id)
        order.refunded = order.total

    @flex.action(Order, bulk=True)
    def close(orders: list[Order], params: dict[str, Any]) -> None:
        calls.append([order.id for order in orders])
        for order in orders:
            order.note = "closed"

    @flex.action(
        Order,
        bulk=True,
        scope=lambda statement, caller: statement.where(Order.id != 3),
        name="close_but_3",
    )
    def close_but_3(orders: list[Order], params: dict[str, Any]) -> None:
        calls.append([order.id for order in orders])

    @flex.action(
        params=[
            {
                "name": "owner",
                "field": "ForeignKey",
                "params": {"related_model": {"model": User}},
            }
        ]
    )
    def greet(params: dict[str, Any]) -> str:
        calls.append(params["owner"].id)
        return params["owner"].name

    return calls


def execute(client: FlaskClient, user: int, **params: Any) -> TestResponse:
    return client.post(
        URL,
        json={"name": "execute_action", "params": params},
        headers={"X-User": str(user)},
    )


def notes(app: Flask) -> dict[int, Any]:
    with app.app_context():
        return {order: note for order, note in db.session.execute(sa.select(Order.id, Order.note))}


def test_record_in_scope_runs(client: FlaskClient, ran: list[Any]) -> None:
    response = execute(client, 1, name="refund", model="orders", id=2)
    assert response.get_json() == {"result": True}
    assert ran == [2]


@pytest.mark.parametrize("order", [4, 99])
def test_record_out_of_scope_is_missing(client: FlaskClient, ran: list[Any], order: int) -> None:
    response = execute(client, 1, name="refund", model="orders", id=order)
    assert response.status_code == 200
    assert response.get_json() == {
        "result": False,
        "errors": {"non_field_errors": [f"No record of orders has the id {order}."]},
    }
    assert ran == []


def test_out_of_scope_and_missing_answer_alike(client: FlaskClient, ran: list[Any]) -> None:
    other = execute(client, 1, name="refund", model="orders", id=4).get_json()
    missing = execute(client, 2, name="refund", model="orders", id=1).get_json()
    assert other["errors"]["non_field_errors"][0].replace("4", "N") == (
        missing["errors"]["non_field_errors"][0].replace("1", "N")
    )


def test_bulk_with_one_foreign_row_runs_nothing(
    app: Flask, client: FlaskClient, ran: list[Any]
) -> None:
    before = notes(app)
    response = execute(client, 1, name="close", model="orders", ids=[1, 4, 2, 99])
    assert response.get_json()["errors"] == {
        "non_field_errors": ["No records of orders have the ids 4, 99."]
    }
    assert ran == [] and notes(app) == before


def test_bulk_in_scope_runs(app: Flask, client: FlaskClient, ran: list[Any]) -> None:
    assert execute(client, 2, name="close", model="orders", ids=[5, 4]).get_json()["result"]
    assert ran == [[5, 4]]
    assert notes(app) == {1: None, 2: None, 3: None, 4: "closed", 5: "closed"}


@pytest.mark.parametrize(("user", "excluded", "expected"), [(1, [2], [1, 3]), (2, [], [4, 5])])
def test_inverse_ids_select_only_rows_in_scope(
    client: FlaskClient, ran: list[Any], user: int, excluded: list[int], expected: list[int]
) -> None:
    response = execute(client, user, name="close", model="orders", ids=excluded, inverseIds=True)
    assert response.get_json() == {"result": True}
    assert ran == [expected]


def test_inverse_ids_with_nothing_in_scope(client: FlaskClient, ran: list[Any]) -> None:
    response = execute(client, 7, name="close", model="orders", inverseIds=True)
    assert response.get_json()["result"] is False
    assert ran == []


def test_action_scope_narrows_the_model_scope(client: FlaskClient, ran: list[Any]) -> None:
    response = execute(client, 1, name="close_but_3", model="orders", inverseIds=True)
    assert response.get_json() == {"result": True}
    assert ran == [[1, 2]]
    response = execute(client, 1, name="close_but_3", model="orders", ids=[3])
    assert "No record of orders has the id 3." in str(response.get_json())


@pytest.mark.parametrize(("user", "owner", "ok"), [(1, 1, True), (1, 2, False), (1, 99, False)])
def test_foreign_key_params_are_scoped(
    client: FlaskClient, ran: list[Any], user: int, owner: int, ok: bool
) -> None:
    response = execute(client, user, name="greet", params={"owner": owner})
    body = response.get_json()
    assert response.status_code == 200
    if ok:
        assert body == {"result": True, "message": "ann"} and ran == [owner]
    else:
        assert body["result"] is False and list(body["errors"]) == ["owner"]
        assert ran == []


def test_out_of_scope_and_missing_foreign_keys_answer_alike(
    client: FlaskClient, ran: list[Any]
) -> None:
    other = execute(client, 1, name="greet", params={"owner": 2}).get_json()
    missing = execute(client, 1, name="greet", params={"owner": 3}).get_json()
    assert other["errors"]["owner"][0].replace("2", "N") == (
        missing["errors"]["owner"][0].replace("3", "N")
    )


def test_a_hook_that_returns_no_statement_fails_closed(
    app: Flask, flex: FlexActions, client: FlaskClient, ran: list[Any]
) -> None:
    @flex.action(User, for_instance=True, scope=lambda statement, caller: None)
    def rename(user: User, params: dict[str, Any]) -> None:
        ran.append("rename")
        user.name = "renamed"

    response = execute(client, 1, name="rename", model="users", id=1)
    assert response.status_code == 500
    assert ran == []


def test_scope_declaration_errors(flex: FlexActions, ran: list[Any]) -> None:
    with pytest.raises(ValueError, match="already has a scope"):
        flex.register_scope(Order, lambda statement, caller: statement)
    with pytest.raises(TypeError, match="must be a callable"):
        flex.register_scope(User, "User.id == 1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="record or bulk action"):
        flex.register_action(lambda m, p: None, User, name="x", scope=lambda s, c: s)
    with pytest.raises(TypeError, match="not a mapped SQLAlchemy model"):
        flex.register_scope(dict, lambda statement, caller: statement)


def test_one_scope_per_model(flex: FlexActions) -> None:
    flex.register_scope(User, lambda statement, caller: statement)
    with pytest.raises(ValueError, match="already has a scope"):
        flex.register_scope(User, lambda statement, caller: statement)


def test_the_console_lookup_searches_only_rows_in_scope(
    client: FlaskClient, ran: list[Any]
) -> None:
    # ``greet`` has a ForeignKey to users; user 1 may only see itself.
    response = client.post(
        URL,
        json={"name": "get_related_options", "params": {"model": "users"}},
        headers={"X-User": "1"},
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.get_json()["results"]] == [1]


# Scope hooks that declare what they depend on: their statements are built once per value


@pytest.fixture
def keyed(app: Flask, flex: FlexActions) -> dict[str, Any]:
    """Orders scoped by the caller's id, declared as the hook's cache key; counts hook calls."""
    seen: dict[str, Any] = {"hook_calls": [], "refunded": []}
    with app.app_context():
        db.session.add_all([User(id=1, name="ann"), User(id=2, name="bob")])
        db.session.flush()
        db.session.add_all(
            Order(id=order, user_id=owner, total=decimal.Decimal(10))
            for order, owner in OWNERS.items()
        )
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller:
        return Caller(id=request.headers.get("X-User", "0"), roles=["staff"])

    @flex.scope(Order, cache_key=lambda caller: caller.id)
    def own_orders(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        seen["hook_calls"].append(caller.id)
        return statement.where(Order.user_id == int(caller.id or 0))

    @flex.action(Order, for_instance=True)
    def refund(order: Order, params: dict[str, Any]) -> None:
        seen["refunded"].append(order.id)

    @flex.action(Order, bulk=True)
    def close(orders: list[Order], params: dict[str, Any]) -> None:
        seen["refunded"].append([order.id for order in orders])

    return seen


def as_user(client: FlaskClient, user: str, **params: Any) -> TestResponse:
    return client.post(
        URL, json={"name": "execute_action", "params": params}, headers={"X-User": user}
    )


def test_a_keyed_scope_runs_once_per_key_and_never_leaks(
    client: FlaskClient, keyed: dict[str, Any]
) -> None:
    for order in (1, 2, 3, 1):
        answer = as_user(client, "1", name="refund", model="orders", id=order).get_json()
        assert answer == {"result": True}
    assert as_user(client, "1", name="close", model="orders", ids=[1, 2]).get_json()["result"]
    # The other caller gets statements of their own: user 1's orders stay out of reach.
    refused = as_user(client, "2", name="refund", model="orders", id=1).get_json()
    assert refused["result"] is False
    assert as_user(client, "2", name="refund", model="orders", id=4).get_json()["result"]
    assert keyed["hook_calls"] == ["1", "2"]
    assert keyed["refunded"] == [1, 2, 3, 1, [1, 2], 4]


def test_an_unhashable_key_falls_back_to_building_per_request(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    calls: list[int] = []

    @flex.authenticator
    def anyone(request: Request) -> Caller:
        return Caller(id="7")

    @flex.scope(User, cache_key=lambda caller: [caller.id])  # a list: not hashable
    def everyone(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        calls.append(1)
        return statement

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> None:
        pass

    with app.app_context():
        db.session.add(User(id=1, name="ann"))
        db.session.commit()
    for _ in range(2):
        assert as_user(client, "7", name="touch", model="users", id=1).get_json()["result"]
    assert calls == [1, 1]


def test_an_action_scope_can_declare_its_key_with_scope(
    app: Flask, flex: FlexActions, client: FlaskClient, keyed: dict[str, Any]
) -> None:
    from flask_flexactions import Scope

    hook_calls: list[str] = []

    def not_3(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        hook_calls.append(caller.id or "")
        return statement.where(Order.id != 3)

    @flex.action(Order, bulk=True, scope=Scope(not_3, cache_key=lambda caller: "all"))
    def close_but_3(orders: list[Order], params: dict[str, Any]) -> str:
        return ",".join(str(order.id) for order in orders)

    for user in ("1", "1"):
        answer = as_user(client, user, name="close_but_3", model="orders", inverseIds=True)
        assert answer.get_json() == {"result": True, "message": "1,2"}
    assert hook_calls == ["1"]


@pytest.mark.parametrize(
    ("hook", "cache_key", "message"),
    [
        (lambda s, c: s, "roles", "cache_key must be a callable"),
        ("not a hook", None, "scope must be a callable"),
    ],
)
def test_bad_scope_declarations(flex: FlexActions, hook: Any, cache_key: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        flex.register_scope(Order, hook, cache_key=cache_key)


def test_a_key_given_twice_is_refused(flex: FlexActions) -> None:
    from flask_flexactions import Scope

    with pytest.raises(TypeError, match="give cache_key once"):
        flex.register_scope(Order, Scope(lambda s, c: s, lambda c: 1), cache_key=lambda c: 2)


def test_the_scope_cache_is_bounded() -> None:
    from flask_flexactions.access.scoping import ScopeCache
    from flask_flexactions.declare.hooks import Scope
    from flask_flexactions.declare.models import Collection

    cache = ScopeCache(size=2)
    collection = Collection.of(Order)
    hook = Scope(lambda statement, caller: statement, cache_key=lambda caller: caller.id)
    first = cache.rows(collection, (hook,), Caller(id="1"))
    assert cache.rows(collection, (hook,), Caller(id="1")) is first
    cache.rows(collection, (hook,), Caller(id="2"))
    cache.rows(collection, (hook,), Caller(id="3"))  # a third key: the cache starts anew
    assert cache.rows(collection, (hook,), Caller(id="1")) is not first
