"""Dynamic params through the Messages URL: get_field_options, defaults, get_action_params and
dry runs, with hostile inputs."""

from __future__ import annotations

import decimal
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request
from werkzeug.test import TestResponse

from flask_flexactions import ActionError, Caller, DynamicSelect, FlexActions
from flask_flexactions.run.answers import INTERNAL_ERROR_MESSAGE
from tests.conftest import AUTH, Messages
from tests.models import Order, User, db

INTERNAL_ERROR = {
    "result": False,
    "errors": {"non_field_errors": [INTERNAL_ERROR_MESSAGE]},
    "detail": INTERNAL_ERROR_MESSAGE,
}
COLORS = [
    {"value": "red", "name": "Red"},
    {"value": "green", "name": "Green"},
    {"value": "blue", "name": "Blue"},
    {"value": 7, "name": "Lucky seven"},
]
# Users 1-3, user 2 blocked; orders 1-2 belong to user 1, order 3 to user 3.
USERS = {1: "ann", 2: "bob", 3: "cy"}
ORDERS = {1: 1, 2: 1, 3: 3}


@pytest.fixture
def config() -> dict[str, Any]:
    return {"FLEXACTIONS_AUDIT": "table"}


class Shop:
    """What the actions of the ``shop`` fixture saw."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.option_calls: list[tuple[dict[str, Any], Any, list[int], str | None]] = []
        self.options_result: Any = None
        self.options_error: Exception | None = None
        self.preview_result: Any = None
        self.preview_error: Exception | None = None
        self.default_error: Exception | None = None
        self.default_value: Any = None


@pytest.fixture
def shop(app: Flask, flex: FlexActions) -> Shop:
    seen = Shop()
    with app.app_context():
        db.session.add_all(
            User(id=key, name=name, is_blocked=key == 2) for key, name in USERS.items()
        )
        db.session.flush()
        db.session.add_all(
            Order(id=key, user_id=owner, total=decimal.Decimal(10 * key))
            for key, owner in ORDERS.items()
        )
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        if "X-User" not in request.headers:
            return None
        return Caller(id=request.headers["X-User"], read_only="X-Read-Only" in request.headers)

    def owners(
        values: dict[str, Any], model: Any, rows: list[Any], search: str | None
    ) -> list[dict[str, Any]]:
        """Users who may own the order: not blocked, not its owner, matching the search."""
        seen.option_calls.append((values, model, [row.id for row in rows], search))
        if seen.options_error is not None:
            raise seen.options_error
        if seen.options_result is not None:
            return seen.options_result  # type: ignore[no-any-return]
        statement = sa.select(User).where(User.is_blocked.is_(False)).order_by(User.id)
        if rows:
            statement = statement.where(User.id.not_in([row.user_id for row in rows]))
        if search:
            statement = statement.where(User.name.contains(search))
        return [{"value": user.id, "name": user.name} for user in db.session.scalars(statement)]

    @flex.action(
        Order,
        for_instance=True,
        scope=lambda statement, caller: statement.where(Order.id != 3),
        params=[
            {"name": "owner", "field": "SelectField", "params": {"options": owners}},
            {"name": "note", "field": "TextField"},
        ],
    )
    def assign(order: Order, params: dict[str, Any]) -> str:
        seen.calls.append(("assign", order.id, dict(params)))
        order.user_id = params.get("owner", order.user_id)
        return f"Order {order.id} belongs to {order.user_id}."

    @flex.action(
        Order,
        bulk=True,
        params=[{"name": "to", "field": "SelectField", "params": {"options": owners}}],
    )
    def assign_many(orders: list[Order], params: dict[str, Any]) -> None:
        seen.calls.append(("assign_many", [order.id for order in orders], dict(params)))

    @flex.action(
        None,
        params=[
            {"name": "color", "field": "SelectField", "params": {"options": COLORS}},
            {"name": "size", "field": "IntegerField"},
        ],
    )
    def paint(params: dict[str, Any]) -> None:
        seen.calls.append(("paint", dict(params)))

    def note_of(order: Order) -> Any:
        if seen.default_error is not None:
            raise seen.default_error
        if seen.default_value is not None:
            return seen.default_value
        return order.note if order.note is not None else f"Order {order.id}: {order.total}"

    @flex.action(
        Order,
        for_instance=True,
        params=[
            {"name": "note", "field": "TextField", "default": note_of},
            {"name": "level", "field": "IntegerField", "default": 3},
            {"name": "total", "field": "DecimalField", "default": lambda order: order.total},
            {"name": "color", "field": "SelectField", "params": {"options": COLORS}, "default": 7},
        ],
    )
    def annotate(order: Order, params: dict[str, Any]) -> None:
        seen.calls.append(("annotate", order.id, dict(params)))
        order.note = params["note"]

    def close_preview(orders: list[Order], params: dict[str, Any]) -> Any:
        for order in orders:
            order.note = "previewed"  # a preview that writes is rolled back
        if seen.preview_error is not None:
            raise seen.preview_error
        if seen.preview_result is not None:
            return seen.preview_result
        return f"Would close {len(orders)} orders worth {sum(o.total for o in orders)}."

    @flex.action(
        Order,
        bulk=True,
        label="Close orders",
        preview=close_preview,
        params=[{"name": "reason", "field": "CharField", "required": True}],
    )
    def close(orders: list[Order], params: dict[str, Any]) -> str:
        seen.calls.append(("close", [order.id for order in orders]))
        for order in orders:
            order.note = "closed"
        return "Closed."

    @flex.action(Order, label="Recount")
    def recount(model: type[Order], params: dict[str, Any]) -> None:
        seen.calls.append(("recount",))

    @flex.action(Order, for_instance=True, permission="finance", params=COLOR_PARAM)
    def secret(order: Order, params: dict[str, Any]) -> None:
        seen.calls.append(("secret",))

    return seen


COLOR_PARAM = [{"name": "color", "field": "SelectField", "params": {"options": COLORS}}]


def options(messages: Messages, **params: Any) -> TestResponse:
    return messages.post({"name": "get_field_options", "params": params})


def notes(app: Flask) -> dict[int, str | None]:
    with app.app_context():
        return {order.id: order.note for order in db.session.scalars(sa.select(Order))}


# get_action_list


def test_action_list_marks_dynamic_options_and_defaults(messages: Messages, shop: Shop) -> None:
    actions = {action["name"]: action for action in messages.action_list()}
    owner = actions["assign"]["params"][0]
    assert owner["field"] == "SelectField"
    assert owner["params"] == {"options": [], "dynamic": True}
    assert "default" not in owner
    params = {param["name"]: param for param in actions["annotate"]["params"]}
    assert params["note"]["default"] is None and params["note"]["default_from_record"] is True
    assert params["level"]["default"] == 3 and "default_from_record" not in params["level"]
    assert params["total"]["default_from_record"] is True
    assert params["color"]["default"] == 7
    assert all(param["required"] is False for param in params.values())


# get_field_options


def test_dynamic_options_get_the_form_the_model_and_the_rows(
    messages: Messages, shop: Shop
) -> None:
    response = options(
        messages, action="assign", model="orders", field="owner", id=1, params={"note": "x"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    # ann owns order 1 and bob is blocked: only cy may take it.
    assert response.get_json() == [{"value": 3, "name": "cy"}]
    assert shop.option_calls == [({"note": "x"}, Order, [1], None)]


def test_dynamic_options_without_a_selection_get_no_rows(messages: Messages, shop: Shop) -> None:
    response = options(messages, action="assign", model="orders", field="owner")
    assert response.get_json() == [{"value": 1, "name": "ann"}, {"value": 3, "name": "cy"}]
    assert shop.option_calls[0][2] == []


def test_dynamic_options_of_a_bulk_action_get_every_selected_row(
    messages: Messages, shop: Shop
) -> None:
    response = options(messages, action="assign_many", model="orders", field="to", ids="3,1")
    assert response.get_json() == []  # ann and cy own them, bob is blocked
    assert shop.option_calls[0][2] == [3, 1]


def test_dynamic_options_get_the_search(messages: Messages, shop: Shop) -> None:
    response = options(messages, action="assign", model="orders", field="owner", search="c")
    assert response.get_json() == [{"value": 3, "name": "cy"}]
    assert shop.option_calls[0][3] == "c"


def test_an_empty_search_is_none(messages: Messages, shop: Shop) -> None:
    options(messages, action="assign", model="orders", field="owner", search="")
    assert shop.option_calls[0][3] is None


def test_dynamic_options_are_paged(messages: Messages, shop: Shop) -> None:
    shop.options_result = [{"value": n, "name": f"n{n}"} for n in range(1, 121)]
    first = options(messages, action="assign", model="orders", field="owner")
    assert [option["value"] for option in first.get_json()] == list(range(1, 51))
    third = options(messages, action="assign", model="orders", field="owner", page=3)
    assert [option["value"] for option in third.get_json()] == list(range(101, 121))
    sized = options(messages, action="assign", model="orders", field="owner", page=2, limit=7)
    assert [option["value"] for option in sized.get_json()] == list(range(8, 15))
    alias = options(messages, action="assign", model="orders", field="owner", page_size=200)
    assert len(alias.get_json()) == 120
    text = options(messages, action="assign", model="orders", field="owner", page="2", limit="100")
    assert len(text.get_json()) == 20


def test_a_page_past_the_end_is_empty(messages: Messages, shop: Shop) -> None:
    for page in (3, 10**6, 10**30):
        response = options(messages, action="assign", model="orders", field="owner", page=page)
        assert response.status_code == 200
        assert response.get_json() == []


def test_option_names_default_to_the_value(messages: Messages, shop: Shop) -> None:
    shop.options_result = ({"value": v} for v in ("a", 2, True, 1.5))
    response = options(messages, action="assign", model="orders", field="owner")
    assert response.get_json() == [
        {"value": "a", "name": "a"},
        {"value": 2, "name": "2"},
        {"value": True, "name": "True"},
        {"value": 1.5, "name": "1.5"},
    ]


def test_static_options_are_searched_and_paged(messages: Messages, shop: Shop) -> None:
    assert options(messages, action="paint", field="color").get_json() == COLORS
    found = options(messages, action="paint", field="color", search="RE")
    assert found.get_json() == COLORS[:2]  # "Red", "Green"
    by_value = options(messages, action="paint", field="color", search="7")
    assert by_value.get_json() == [COLORS[3]]
    paged = options(messages, action="paint", field="color", page=2, limit=3)
    assert paged.get_json() == [COLORS[3]]


def test_the_action_may_be_named_name(messages: Messages, shop: Shop) -> None:
    assert options(messages, name="paint", field="color").get_json() == COLORS


def test_missing_and_out_of_scope_rows_answer_alike(messages: Messages, shop: Shop) -> None:
    for order in (3, 99):
        response = options(messages, action="assign", model="orders", field="owner", id=order)
        assert response.status_code == 200
        assert response.get_json() == {
            "result": False,
            "errors": {"non_field_errors": [f"No record of orders has the id {order}."]},
        }
    assert shop.option_calls == []


@pytest.mark.parametrize(
    "params",
    [
        {"field": "owner"},
        {"action": 5, "field": "owner"},
        {"action": "assign", "model": ["orders"], "field": "owner"},
        {"action": "assign"},
        {"action": "assign", "field": ""},
        {"action": "assign", "field": ["owner"]},
        {"action": "assign", "field": "nope"},
        {"action": "assign", "field": "note"},
        {"action": "assign", "field": "owner", "page": 0},
        {"action": "assign", "field": "owner", "page": -1},
        {"action": "assign", "field": "owner", "page": 1.5},
        {"action": "assign", "field": "owner", "page": True},
        {"action": "assign", "field": "owner", "page": "two"},
        {"action": "assign", "field": "owner", "page": "1" * 40},
        {"action": "assign", "field": "owner", "page": [1]},
        {"action": "assign", "field": "owner", "limit": 201},
        {"action": "assign", "field": "owner", "limit": 0},
        {"action": "assign", "field": "owner", "page_size": {"n": 1}},
        {"action": "assign", "field": "owner", "search": 5},
        {"action": "assign", "field": "owner", "search": ["a"]},
        {"action": "assign", "field": "owner", "search": "x" * 257},
        {"action": "assign", "field": "owner", "search": "a\x00b"},
        {"action": "assign", "field": "owner", "params": [1]},
        {"action": "assign", "field": "owner", "params": "{not json"},
        {"action": "assign", "field": "owner", "id": "1,,2"},
        {"action": "assign", "field": "owner", "id": 2**70},
        {"action": "assign", "field": "owner", "ids": [1, 2]},
        {"action": "assign", "field": "owner", "inverseIds": "yes"},
    ],
)
def test_hostile_field_option_requests_are_400(
    messages: Messages, shop: Shop, params: dict[str, Any]
) -> None:
    if "action" in params and params.get("model") is None and params["action"] == "assign":
        params = {**params, "model": "orders"}
    response = options(messages, **params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["result"] is False
    assert shop.option_calls == []


def test_unknown_actions_and_models_are_404(messages: Messages, shop: Shop) -> None:
    assert options(messages, action="nope", model="orders", field="owner").status_code == 404
    assert options(messages, action="assign", model="nope", field="owner").status_code == 404
    assert options(messages, action="assign", field="owner").status_code == 404


def test_field_options_need_credentials_and_permission(messages: Messages, shop: Shop) -> None:
    request = {"name": "get_field_options", "params": {"action": "paint", "field": "color"}}
    assert messages.post(request, headers={}).status_code == 401
    assert messages.post(request, headers={"X-User": "1"}).status_code == 200
    read_only = {"X-User": "1", "X-Read-Only": "1"}
    assert messages.post(request, headers=read_only).status_code == 403
    secret = {"action": "secret", "model": "orders", "field": "color"}
    denied = messages.post({"name": "get_field_options", "params": secret}, headers={"X-User": "1"})
    assert denied.status_code == 403
    assert options(messages, **secret).status_code == 200  # the shared token may run everything


def test_an_options_function_that_raises_is_a_generic_500(
    messages: Messages, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    shop.options_error = RuntimeError("database password is hunter2")
    with caplog.at_level(logging.ERROR):
        response = options(messages, action="assign", model="orders", field="owner")
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    assert "hunter2" not in response.get_data(as_text=True)
    assert "hunter2" in caplog.text


def test_an_options_function_may_refuse(messages: Messages, shop: Shop) -> None:
    shop.options_error = ActionError("Choose a note first.")
    response = options(messages, action="assign", model="orders", field="owner")
    assert response.status_code == 200
    assert response.get_json() == {
        "result": False,
        "errors": {"non_field_errors": ["Choose a note first."]},
    }


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "red",
        {"value": 1},
        [1, 2],
        [{"name": "no value"}],
        [{"value": None}],
        [{"value": [1]}],
        [{"value": float("nan")}],
        [{"value": float("inf")}],
        [{"value": {"a": 1}}],
    ],
    ids=repr,
)
def test_an_options_function_returning_junk_is_a_logged_500(
    messages: Messages, shop: Shop, junk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    shop.options_result = junk if junk is not None else 42
    with caplog.at_level(logging.ERROR):
        response = options(messages, action="assign", model="orders", field="owner")
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    assert "The dynamic params of Flex action 'assign' failed" in caplog.text


# execute_action with a dynamic SelectField


def test_execute_accepts_a_computed_option(app: Flask, messages: Messages, shop: Shop) -> None:
    response = messages.execute("assign", "orders", id=1, params={"owner": "3", "note": "n"})
    assert response.get_json() == {"result": True, "message": "Order 1 belongs to 3."}
    assert shop.calls == [("assign", 1, {"owner": 3, "note": "n"})]
    # The function saw the raw form values and the selected row, without a search.
    assert shop.option_calls == [({"owner": "3", "note": "n"}, Order, [1], None)]


@pytest.mark.parametrize(
    ("owner", "error"),
    [
        (2, "Not one of the allowed options."),  # blocked
        (1, "Not one of the allowed options."),  # already the owner
        (99, "Not one of the allowed options."),
        ([3], "Not a valid option: send a string, number or boolean."),
        ({"v": 3}, "Not a valid option: send a string, number or boolean."),
    ],
)
def test_execute_refuses_other_values(
    messages: Messages, shop: Shop, owner: Any, error: str
) -> None:
    response = messages.execute("assign", "orders", id=1, params={"owner": owner})
    assert response.status_code == 200
    assert response.get_json() == {"result": False, "errors": {"owner": [error]}}
    assert shop.calls == []


def test_execute_with_no_options_refuses_every_value(messages: Messages, shop: Shop) -> None:
    shop.options_result = []
    response = messages.execute("assign", "orders", id=1, params={"owner": 3})
    assert response.get_json() == {
        "result": False,
        "errors": {"owner": ["Not one of the allowed options."]},
    }


def test_execute_without_the_param_does_not_compute_options(messages: Messages, shop: Shop) -> None:
    assert messages.execute("assign", "orders", id=1).get_json()["result"] is True
    assert shop.option_calls == []


def test_execute_with_an_options_function_returning_junk_is_500(
    app: Flask, messages: Messages, shop: Shop
) -> None:
    shop.options_result = "junk"
    response = messages.execute("assign", "orders", id=1, params={"owner": 3})
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    assert shop.calls == []


def test_a_schema_may_declare_a_dynamic_select(
    app: Flask, flex: FlexActions, messages: Messages, shop: Shop
) -> None:
    from marshmallow import Schema

    class Pick(Schema):
        level = DynamicSelect(
            lambda values, model, rows, search: [{"value": n} for n in range(3)],
            data_key="lvl",
        )

    @flex.action(None, params=Pick)
    def pick(params: dict[str, Any]) -> str:
        return f"level {params['level']}"

    assert options(messages, action="pick", field="lvl").get_json()[2] == {
        "value": 2,
        "name": "2",
    }
    assert messages.execute("pick", params={"lvl": 2}).get_json()["message"] == "level 2"
    assert messages.execute("pick", params={"lvl": 3}).get_json()["errors"] == {
        "lvl": ["Not one of the allowed options."]
    }


def test_a_dynamic_select_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable options"):
        DynamicSelect("red")  # type: ignore[arg-type]


# Defaults


def test_omitted_params_get_their_defaults(app: Flask, messages: Messages, shop: Shop) -> None:
    assert messages.execute("annotate", "orders", id=2).get_json() == {"result": True}
    assert shop.calls == [
        (
            "annotate",
            2,
            {"note": "Order 2: 20.00", "level": 3, "total": decimal.Decimal("20.00"), "color": 7},
        )
    ]
    assert notes(app)[2] == "Order 2: 20.00"


def test_sent_params_override_defaults(messages: Messages, shop: Shop) -> None:
    params = {"note": "mine", "level": "5", "total": "1.5", "color": "red"}
    assert messages.execute("annotate", "orders", id=1, params=params).get_json()["result"]
    assert shop.calls[0][2] == {
        "note": "mine",
        "level": 5,
        "total": decimal.Decimal("1.5"),
        "color": "red",
    }


def test_null_and_empty_mean_not_given(messages: Messages, shop: Shop) -> None:
    params = {"note": None, "level": "", "total": None, "color": ""}
    assert messages.execute("annotate", "orders", id=1, params=params).get_json()["result"]
    assert shop.calls[0][2]["level"] == 3 and shop.calls[0][2]["color"] == 7


def test_a_record_default_that_does_not_convert_is_a_field_error(
    messages: Messages, shop: Shop
) -> None:
    shop.default_value = ["not", "text"]
    response = messages.execute("annotate", "orders", id=1)
    assert response.get_json() == {"result": False, "errors": {"note": ["Not a valid string."]}}
    assert shop.calls == []


def test_a_record_default_that_is_not_json_is_500(messages: Messages, shop: Shop) -> None:
    shop.default_value = object()
    response = messages.execute("annotate", "orders", id=1)
    assert response.status_code == 500 and response.get_json() == INTERNAL_ERROR
    assert shop.calls == []


def test_a_record_default_that_raises_is_500(messages: Messages, shop: Shop) -> None:
    shop.default_error = RuntimeError("boom")
    response = messages.execute("annotate", "orders", id=1)
    assert response.status_code == 500 and response.get_json() == INTERNAL_ERROR
    params = messages.post(
        {"name": "get_action_params", "params": {"name": "annotate", "model": "orders", "id": 1}}
    )
    assert params.status_code == 500 and params.get_json() == INTERNAL_ERROR


def test_get_action_params_fills_defaults_from_the_record(messages: Messages, shop: Shop) -> None:
    response = messages.post(
        {"name": "get_action_params", "params": {"name": "annotate", "model": "orders", "id": 3}}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    params = {param["name"]: param for param in response.get_json()}
    assert params["note"]["default"] == "Order 3: 30.00"
    assert params["note"]["default_from_record"] is True
    assert params["total"]["default"] == "30.00"
    assert params["level"]["default"] == 3
    assert params["color"]["params"]["options"] == COLORS
    listed = next(a for a in messages.action_list() if a["name"] == "annotate")["params"]
    assert [p["name"] for p in response.get_json()] == [p["name"] for p in listed]


def test_get_action_params_of_other_actions_is_their_list(messages: Messages, shop: Shop) -> None:
    listed = {action["name"]: action["params"] for action in messages.action_list()}
    for name, model in (("paint", None), ("assign_many", "orders"), ("recount", "orders")):
        request = {"name": name, "model": model, "ids": [1]}
        response = messages.post({"name": "get_action_params", "params": request})
        assert response.get_json() == listed[name]


@pytest.mark.parametrize(
    ("request_params", "status", "error"),
    [
        ({"id": 99}, 200, "No record of orders has the id 99."),
        ({}, 200, "No records selected: send id, ids, or inverseIds."),
        ({"id": "x"}, 400, None),
        ({"ids": [1, 2]}, 400, None),
    ],
)
def test_get_action_params_needs_one_existing_record(
    messages: Messages,
    shop: Shop,
    request_params: dict[str, Any],
    status: int,
    error: str | None,
) -> None:
    request = {"name": "annotate", "model": "orders", **request_params}
    response = messages.post({"name": "get_action_params", "params": request})
    assert response.status_code == status
    assert response.get_json()["result"] is False
    if error is not None:
        assert response.get_json()["errors"] == {"non_field_errors": [error]}


def test_get_action_params_respects_scope_and_permission(messages: Messages, shop: Shop) -> None:
    scoped = {"name": "assign", "model": "orders", "id": 3}
    response = messages.post({"name": "get_action_params", "params": scoped})
    assert response.get_json()["errors"] == {
        "non_field_errors": ["No record of orders has the id 3."]
    }
    secret = {"name": "get_action_params", "params": {"name": "secret", "model": "orders", "id": 1}}
    assert messages.post(secret, headers={"X-User": "1"}).status_code == 403
    assert messages.post(secret, headers={}).status_code == 401
    assert messages.post({"name": "get_action_params", "params": {}}).status_code == 400


@pytest.mark.parametrize(
    ("declaration", "kwargs", "error", "match"),
    [
        (
            {"name": "n", "field": "IntegerField", "required": True, "default": 1},
            {},
            ValueError,
            "never missing; drop required=True",
        ),
        (
            {"name": "n", "field": "TextField", "default": lambda row: ""},
            {"bulk": True},
            ValueError,
            "needs a record action",
        ),
        (
            {"name": "n", "field": "TextField", "default": lambda row: ""},
            {},
            ValueError,
            "needs a record action",
        ),
        ({"name": "n", "field": "IntegerField", "default": "x"}, {}, ValueError, "not a valid"),
        (
            {"name": "n", "field": "SelectField", "params": {"options": COLORS}, "default": "x"},
            {},
            ValueError,
            "not a valid value: Not one of the allowed options",
        ),
        ({"name": "n", "field": "JSONField", "default": object()}, {}, TypeError, "JSON value"),
        ({"name": "n", "field": "FloatField", "default": float("nan")}, {}, TypeError, "finite"),
    ],
)
def test_bad_defaults_fail_at_registration(
    flex: FlexActions,
    declaration: dict[str, Any],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        flex.register_action(lambda *args: None, Order, name="bad", params=[declaration], **kwargs)


def test_defaults_of_other_json_types(app: Flask, flex: FlexActions, messages: Messages) -> None:
    @flex.action(
        None,
        params=[
            {"name": "when", "field": "DateField", "default": "2024-05-01"},
            {"name": "amount", "field": "DecimalField", "default": decimal.Decimal("1.10")},
            {"name": "data", "field": "JSONField", "default": {"a": [1, None]}},
            {"name": "nothing", "field": "IntegerField", "default": None},
            {
                "name": "user",
                "field": "ForeignKey",
                "params": {"related_model": {"model": User}},
                "default": 1,
            },
        ],
    )
    def report(params: dict[str, Any]) -> None:
        calls.append(params)

    calls: list[dict[str, Any]] = []
    listed = {p["name"]: p for p in next(a for a in messages.action_list())["params"]}
    assert listed["amount"]["default"] == "1.10"
    assert listed["nothing"]["default"] is None
    assert messages.execute("report").get_json() == {
        "result": False,
        "errors": {"user": ["No record of users has the id 1."]},
    }
    with app.app_context():
        db.session.add(User(id=1, name="ann"))
        db.session.commit()
    assert messages.execute("report").get_json() == {"result": True}
    assert str(calls[0]["when"]) == "2024-05-01"
    assert calls[0]["amount"] == decimal.Decimal("1.10")
    assert calls[0]["data"] == {"a": [1, None]}
    assert "nothing" not in calls[0]
    assert calls[0]["user"].name == "ann"


# Dry runs


def dry(messages: Messages, action: str, model: str | None = "orders", **params: Any) -> Any:
    return messages.execute(action, model, dry_run=True, **params)


def test_a_dry_run_answers_the_preview_and_writes_nothing(
    app: Flask, flex: FlexActions, messages: Messages, shop: Shop
) -> None:
    response = dry(messages, "close", ids=[2, 1], params={"reason": "done"})
    assert response.status_code == 200
    assert response.get_json() == {
        "result": True,
        "dry_run": True,
        "count": 2,
        "message": "Would close 2 orders worth 30.00.",
    }
    assert shop.calls == []
    assert notes(app) == {1: None, 2: None, 3: None}
    with app.app_context():
        record = flex.audit_records(limit=1)[0]
    assert record.outcome == "dry_run" and record.status == 200


def test_a_dry_run_without_preview_says_what_would_run(messages: Messages, shop: Shop) -> None:
    assert dry(messages, "assign", id=1).get_json() == {
        "result": True,
        "dry_run": True,
        "count": 1,
        "message": "Would run assign on 1 record.",
    }
    assert dry(messages, "recount").get_json()["message"] == "Would run Recount."
    assert dry(messages, "recount").get_json()["count"] == 0
    assert dry(messages, "paint", None).get_json()["message"] == "Would run paint."
    assert dry(messages, "close", inverseIds=True, params={"reason": "x"}).get_json()["count"] == 3
    assert shop.calls == []


def test_dry_run_false_runs_for_real(app: Flask, messages: Messages, shop: Shop) -> None:
    response = messages.execute("close", "orders", ids=[1], dry_run=False, params={"reason": "x"})
    assert response.get_json() == {"result": True, "message": "Closed."}
    assert notes(app)[1] == "closed"


@pytest.mark.parametrize(
    "params",
    [
        {"ids": [1, 99], "params": {"reason": "x"}},
        {"ids": [3], "params": {}},
        {"ids": [1], "params": {"reason": 5}},
    ],
)
def test_a_dry_run_fails_exactly_like_a_run(
    messages: Messages, shop: Shop, params: dict[str, Any]
) -> None:
    real = messages.execute("close", "orders", **params)
    preview = dry(messages, "close", **params)
    assert preview.status_code == real.status_code == 200
    assert preview.get_json() == real.get_json()
    assert preview.get_json()["result"] is False


def test_a_dry_run_checks_dynamic_options_and_permissions(messages: Messages, shop: Shop) -> None:
    assert dry(messages, "assign", id=1, params={"owner": 2}).get_json() == {
        "result": False,
        "errors": {"owner": ["Not one of the allowed options."]},
    }
    request = {
        "name": "execute_action",
        "params": {"name": "secret", "model": "orders", "id": 1, "dry_run": True},
    }
    assert messages.post(request, headers={"X-User": "1"}).status_code == 403
    assert dry(messages, "assign", id=3).get_json()["errors"] == {
        "non_field_errors": ["No record of orders has the id 3."]
    }


@pytest.mark.parametrize("flag", ["yes", 1, "true", [], {}])
def test_a_dry_run_flag_must_be_a_boolean(messages: Messages, shop: Shop, flag: Any) -> None:
    response = messages.execute("close", "orders", ids=[1], dry_run=flag, params={"reason": "x"})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"non_field_errors": ["dry_run must be true or false."]}
    assert shop.calls == []


def test_a_preview_may_refuse(app: Flask, messages: Messages, shop: Shop) -> None:
    shop.preview_error = ActionError(errors={"reason": ["Say why."]})
    response = dry(messages, "close", ids=[1], params={"reason": "x"})
    assert response.get_json() == {"result": False, "errors": {"reason": ["Say why."]}}
    assert notes(app)[1] is None


@pytest.mark.parametrize("broken", ["raises", "returns-a-number"])
def test_a_broken_preview_is_a_generic_500(
    app: Flask, messages: Messages, shop: Shop, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    if broken == "raises":
        shop.preview_error = RuntimeError("secret detail")
    else:
        shop.preview_result = 42
    with caplog.at_level(logging.ERROR):
        response = dry(messages, "close", ids=[1], params={"reason": "x"})
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    assert "secret detail" not in response.get_data(as_text=True)
    assert "Flex action 'close' on 'orders' failed" in caplog.text
    assert notes(app)[1] is None
    assert shop.calls == []


def test_a_dry_run_does_not_use_up_an_idempotency_key(
    app: Flask, messages: Messages, shop: Shop
) -> None:
    headers = {**AUTH, "Idempotency-Key": "key-1"}
    body = {
        "name": "execute_action",
        "params": {"name": "close", "model": "orders", "ids": [1], "params": {"reason": "x"}},
    }
    dry_body = {**body, "params": {**body["params"], "dry_run": True}}
    assert messages.post(dry_body, headers=headers).get_json()["dry_run"] is True
    assert messages.post(dry_body, headers=headers).get_json()["dry_run"] is True
    assert messages.post(body, headers=headers).get_json() == {"result": True, "message": "Closed."}
    replay = messages.post(body, headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert shop.calls == [("close", [1])]


def test_a_preview_must_be_callable(flex: FlexActions) -> None:
    with pytest.raises(TypeError, match="preview must be a function"):
        flex.register_action(lambda *args: None, Order, name="bad", preview="summary")  # type: ignore[arg-type]
