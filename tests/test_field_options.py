"""``get_field_options`` as the product documentation sends it (model, field and form, no action
name), and options that keep their ``color`` and other string keys."""

from __future__ import annotations

import decimal
import json
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request
from flask.testing import FlaskClient
from marshmallow import Schema
from werkzeug.test import TestResponse

from flask_flexactions import Caller, DynamicSelect, FlexActions
from flask_flexactions.declare.fields import Select
from flask_flexactions.run.answers import INTERNAL_ERROR_MESSAGE
from tests.conftest import AUTH, URL
from tests.models import Order, User, db

PRIORITIES = [
    {"value": 1, "name": "Low", "color": "green"},
    {"value": 2, "name": "High", "color": "red", "hint": "answer today"},
]
LEVELS = [{"value": "a", "name": "A"}, {"value": "b", "name": "B", "color": "blue"}]
REGIONS = [{"value": "eu", "name": "Europe", "color": "#0055a4"}]
SELECT = {"field": "SelectField", "params": {"options": [{"value": 1}]}}
SHADES = [{"value": "red", "name": "Red", "color": "red"}, {"value": "teal", "color": "#008080"}]

#: The request of the product documentation, byte for byte: no action name, the form's values.
DOCUMENTED = (
    b'{"name": "get_field_options", "params": {"model": "orders", "field": "owner", '
    b'"form": {"note": "urgent", "priority": 2}}}'
)


class Seen:
    """What the options function was called with, and what it should answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], Any, list[int]]] = []
        self.result: Any = None
        self.ran: list[str] = []


@pytest.fixture
def seen(app: Flask, flex: FlexActions) -> Seen:
    seen = Seen()
    with app.app_context():
        db.session.add_all([User(id=1, name="ann"), User(id=2, name="bob")])
        db.session.flush()
        db.session.add_all(
            Order(id=n, user_id=1, total=decimal.Decimal(n), note=None) for n in (1, 2)
        )
        db.session.commit()

    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        user = request.headers.get("X-User")
        if user is None:
            return None
        roles = request.headers.get("X-Roles", "").split(",")
        return Caller(id=user, roles=frozenset(filter(None, roles)), read_only=user == "reader")

    def owners(values: dict[str, Any], model: Any, rows: list[Any], search: Any) -> Any:
        seen.calls.append((values, model, [row.id for row in rows]))
        if seen.result is not None:
            return seen.result
        return [
            {"value": user.id, "name": user.name, "color": "red" if user.id == 1 else "gray"}
            for user in db.session.scalars(sa.select(User).order_by(User.id))
        ]

    @flex.action(
        Order,
        for_instance=True,
        params=[
            {"name": "owner", "field": "SelectField", "params": {"options": owners}},
            {"name": "note", "field": "TextField"},
            {"name": "priority", "field": "SelectField", "params": {"options": PRIORITIES}},
        ],
    )
    def reassign(order: Order, params: dict[str, Any]) -> str:
        seen.ran.append("reassign")
        order.user_id = params.get("owner", order.user_id)
        return f"{order.id}: owner {order.user_id}, priority {params.get('priority')}"

    @flex.action(
        Order,
        bulk=True,
        params=[{"name": "priority", "field": "SelectField", "params": {"options": LEVELS}}],
    )
    def set_priority(orders: list[Order], params: dict[str, Any]) -> None:
        seen.ran.append("set_priority")

    region = [{"name": "region", "field": "SelectField", "params": {"options": REGIONS}}]

    @flex.action(Order, name="ship", params=region)
    def ship(model: Any, params: dict[str, Any]) -> None:
        seen.ran.append("ship")

    @flex.action(Order, name="audit_orders", permission="finance", params=region)
    def audit_orders(model: Any, params: dict[str, Any]) -> None:
        seen.ran.append("audit_orders")

    @flex.action(User, params=[{"name": "note", "field": "CharField"}])
    def remark(model: Any, params: dict[str, Any]) -> None:
        seen.ran.append("remark")

    @flex.action(params=[{"name": "shade", "field": "SelectField", "params": {"options": SHADES}}])
    def paint(params: dict[str, Any]) -> str:
        seen.ran.append("paint")
        return str(params["shade"])

    return seen


def options(client: FlaskClient, headers: dict[str, str] = AUTH, **params: Any) -> TestResponse:
    return client.post(URL, json={"name": "get_field_options", "params": params}, headers=headers)


def owners(app: Flask) -> dict[int, int | None]:
    with app.app_context():
        return {order.id: order.user_id for order in db.session.scalars(sa.select(Order))}


# The documented request


def test_the_documented_request_answers_the_options_with_their_colors(
    client: FlaskClient, seen: Seen
) -> None:
    response = client.post(URL, data=DOCUMENTED, content_type="application/json", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == [
        {"value": 1, "name": "ann", "color": "red"},
        {"value": 2, "name": "bob", "color": "gray"},
    ]
    assert seen.calls == [({"note": "urgent", "priority": 2}, Order, [])]


def test_the_documented_request_with_the_charset_and_a_selection(
    client: FlaskClient, seen: Seen
) -> None:
    body = json.loads(DOCUMENTED)
    body["params"]["id"] = 2
    response = client.post(
        URL,
        data=json.dumps(body).encode(),
        headers={**AUTH, "Content-Type": "application/json;charset=utf-8"},
    )
    assert response.status_code == 200
    assert seen.calls == [({"note": "urgent", "priority": 2}, Order, [2])]


def test_static_options_keep_their_colors_in_the_list_and_in_the_answer(
    client: FlaskClient, seen: Seen
) -> None:
    listed = client.post(URL, json={"name": "get_action_list"}, headers=AUTH).get_json()
    params = {action["name"]: action["params"] for action in listed}
    assert params["reassign"][2]["params"] == {"options": PRIORITIES}
    assert params["paint"][0]["params"]["options"] == [
        {"value": "red", "name": "Red", "color": "red"},
        {"value": "teal", "name": "teal", "color": "#008080"},
    ]
    answer = options(client, field="shade").get_json()
    assert answer == params["paint"][0]["params"]["options"]
    found = options(client, field="shade", search="tea").get_json()
    assert found == [{"value": "teal", "name": "teal", "color": "#008080"}]


def test_a_param_of_a_common_action_is_found_without_a_model(
    client: FlaskClient, seen: Seen
) -> None:
    assert options(client, field="shade", model=None).status_code == 200
    assert options(client, field="shade", model="").status_code == 200


def test_several_actions_with_the_param_need_an_action_name(
    client: FlaskClient, seen: Seen
) -> None:
    response = options(client, model="orders", field="priority", form={})
    assert response.status_code == 400
    message = response.get_json()["detail"]
    assert message == (
        "Several actions on the collection 'orders' have a SelectField param 'priority': "
        "'reassign', 'set_priority'. Add \"action\" to params to choose one, "
        "e.g. \"action\": 'reassign'."
    )
    chosen = options(client, model="orders", field="priority", action="set_priority")
    assert chosen.get_json() == LEVELS
    by_name = options(client, model="orders", field="priority", name="reassign")
    assert by_name.get_json() == PRIORITIES


def test_only_actions_the_caller_may_run_are_searched(client: FlaskClient, seen: Seen) -> None:
    clerk = {"X-User": "5"}
    assert options(client, clerk, model="orders", field="region").get_json() == REGIONS
    finance = {"X-User": "6", "X-Roles": "finance"}
    both = options(client, finance, model="orders", field="region")
    assert both.status_code == 400
    assert "'ship', 'audit_orders'" in both.get_json()["detail"]
    # The shared token may run everything.
    assert options(client, model="orders", field="region").status_code == 400
    chosen = options(client, finance, model="orders", field="region", action="audit_orders")
    assert chosen.get_json() == REGIONS


def test_a_hidden_action_is_not_revealed(
    client: FlaskClient, flex: FlexActions, seen: Seen
) -> None:
    @flex.action(User, permission="finance", params=[{"name": "secret_pick", **SELECT}])
    def hidden(model: Any, params: dict[str, Any]) -> None: ...

    response = options(client, {"X-User": "5"}, model="users", field="secret_pick")
    assert response.status_code == 400
    assert response.get_json()["detail"] == (
        "No action on the collection 'users' has a SelectField param 'secret_pick'."
    )
    named = options(client, {"X-User": "5"}, model="users", field="secret_pick", action="hidden")
    assert named.status_code == 403


def test_a_read_only_caller_is_refused(client: FlaskClient, seen: Seen) -> None:
    response = options(client, {"X-User": "reader"}, model="orders", field="owner")
    assert response.status_code == 403
    assert response.get_json()["detail"] == "Read-only users may not run actions."
    assert seen.calls == []


def test_no_credentials_is_401(client: FlaskClient, seen: Seen) -> None:
    response = client.post(URL, data=DOCUMENTED, content_type="application/json")
    assert response.status_code == 401
    assert seen.calls == []


def test_form_and_params_are_both_read_and_form_wins(client: FlaskClient, seen: Seen) -> None:
    options(client, model="orders", field="owner", params={"note": "old", "priority": 1})
    options(
        client,
        model="orders",
        field="owner",
        params={"note": "old", "priority": 1},
        form={"note": "new"},
    )
    options(client, model="orders", field="owner", form='{"note": "as text"}')
    options(client, model="orders", field="owner", action="reassign", form={"note": "named"})
    assert [values for values, _, _ in seen.calls] == [
        {"note": "old", "priority": 1},
        {"note": "new", "priority": 1},
        {"note": "as text"},
        {"note": "named"},
    ]


def test_the_form_reaches_static_options_without_harm(client: FlaskClient, seen: Seen) -> None:
    answer = options(client, field="shade", form={"shade": "nope", "x": [1, {"y": None}]})
    assert answer.status_code == 200 and len(answer.get_json()) == 2


# Unknown names and hostile values of the new keys


def test_an_unknown_model_is_404(client: FlaskClient, seen: Seen) -> None:
    response = options(client, model="nope", field="owner", form={})
    assert response.status_code == 404
    assert response.get_json()["detail"] == "Unknown model 'nope': no action is registered on it."


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"model": "orders", "field": "nope"}, "No action on the collection 'orders'"),
        ({"model": "users", "field": "owner"}, "No action on the collection 'users'"),
        ({"field": "owner"}, "No action on the common actions has a SelectField param 'owner'."),
        ({"model": "orders", "field": "note"}, "The param 'note' of 'reassign' is not a Select"),
        ({"model": "users", "field": "note"}, "The param 'note' of 'remark' is not a SelectField"),
    ],
)
def test_an_unknown_param_is_400(
    client: FlaskClient, seen: Seen, params: dict[str, Any], detail: str
) -> None:
    response = options(client, form={}, **params)
    assert response.status_code == 400
    assert response.get_json()["detail"].startswith(detail)


DEEP: Any = {}
for _ in range(70):
    DEEP = {"a": DEEP}


@pytest.mark.parametrize(
    "params",
    [
        {"field": 5},
        {"field": None},
        {"field": ""},
        {"field": ["owner"]},
        {"field": {"name": "owner"}},
        {"field": True},
        {"field": "x" * 10_000},
        {"field": "own\x00er"},
        {"field": "owner", "model": 5},
        {"field": "owner", "model": ["orders"]},
        {"field": "owner", "model": {"name": "orders"}},
        {"field": "owner", "model": True},
        {"field": "owner", "form": [1]},
        {"field": "owner", "form": 5},
        {"field": "owner", "form": True},
        {"field": "owner", "form": "{not json"},
        {"field": "owner", "form": "[1, 2]"},
        {"field": "owner", "form": '"text"'},
        {"field": "owner", "form": "NaN"},
        {"field": "owner", "form": '{"a": NaN}'},
        {"field": "owner", "form": '{"a": 1e400}'},
        {"field": "owner", "form": json.dumps(DEEP)},
        {"field": "owner", "form": {}, "params": [1]},
        {"field": "owner", "form": {}, "params": "{"},
        {"field": "owner", "form": {}, "id": "1,,2"},
        {"field": "owner", "form": {}, "id": 2**70},
        {"field": "owner", "form": {}, "search": 5},
        {"field": "owner", "form": {}, "page": 0},
    ],
    ids=repr,
)
def test_hostile_documented_requests_are_400_and_run_nothing(
    app: Flask, client: FlaskClient, seen: Seen, params: dict[str, Any]
) -> None:
    params = {"model": "orders", **params}
    response = options(client, **params)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["result"] is False and body["detail"] == body["errors"]["non_field_errors"][0]
    assert len(body["detail"]) < 400
    assert seen.calls == [] and seen.ran == []
    assert owners(app) == {1: 1, 2: 1}


def test_a_form_nested_too_deep_in_the_body_is_400(client: FlaskClient, seen: Seen) -> None:
    response = options(client, model="orders", field="owner", form=DEEP)
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.get_json()["detail"]
    assert seen.calls == []


def test_a_huge_form_is_413(client: FlaskClient, seen: Seen) -> None:
    form = {f"k{n}": "v" * 1000 for n in range(1100)}
    response = options(client, model="orders", field="owner", form=form)
    assert response.status_code == 413
    assert seen.calls == []


def test_a_large_form_within_the_cap_reaches_the_function(client: FlaskClient, seen: Seen) -> None:
    form = {f"k{n}": n for n in range(10_000)}
    response = options(client, model="orders", field="owner", form=form)
    assert response.status_code == 200
    assert len(seen.calls[0][0]) == 10_000


# Colors and other keys on execute, and their declaration errors


def test_execute_takes_the_value_of_a_colored_option(
    app: Flask, client: FlaskClient, seen: Seen
) -> None:
    response = client.post(
        URL,
        json={
            "name": "execute_action",
            "params": {
                "name": "reassign",
                "model": "orders",
                "id": 1,
                "params": {"owner": 2, "priority": "2"},
            },
        },
        headers=AUTH,
    )
    assert response.get_json() == {"result": True, "message": "1: owner 2, priority 2"}
    assert owners(app) == {1: 2, 2: 1}


@pytest.mark.parametrize(
    "option",
    [
        {"value": 1, "name": "A", "color": 3},
        {"value": 1, "color": None},
        {"value": 1, "color": ["red"]},
        {"value": 1, "color": {"r": 255}},
        {"value": 1, 7: "seven"},
        {"value": 1, "name": "A", "flags": True},
    ],
    ids=repr,
)
def test_a_static_option_with_a_key_that_is_not_text_fails_at_registration(
    flex: FlexActions, option: dict[Any, Any]
) -> None:
    with pytest.raises(ValueError) as raised:
        flex.register_action(
            lambda params: None,
            name="bad",
            params=[{"name": "pick", "field": "SelectField", "params": {"options": [option]}}],
        )
    message = str(raised.value)
    assert message.startswith("Action 'bad', param 'pick': The option 1 has ")
    assert 'must be strings with string values, e.g. "color": "red".' in message


def test_an_option_name_that_is_not_text_is_shown_as_text() -> None:
    """``name`` is the label, not an extra key: any value is shown as its text."""
    assert Select([{"value": 1, "name": 2}, {"value": "b"}]).options == [
        {"value": 1, "name": "2"},
        {"value": "b", "name": "b"},
    ]


def test_a_schema_select_keeps_colors_and_refuses_other_values() -> None:
    assert Select(PRIORITIES).options == PRIORITIES
    assert Select([{"value": "x", "color": "red"}]).options == [
        {"value": "x", "name": "x", "color": "red"}
    ]
    with pytest.raises(ValueError, match="'color': 1"):
        Select([{"value": "x", "color": 1}])

    class Form(Schema):
        pick = DynamicSelect(lambda values, model, rows, search: [])
        level = Select(LEVELS)

    assert Form().fields["level"].options == LEVELS  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "junk",
    [
        [{"value": 1, "color": 3}],
        [{"value": 1, "color": None}],
        [{"value": 1, 2: "two"}],
        [{"value": 1, "name": "A"}, {"value": 2, "meta": {"a": "b"}}],
    ],
    ids=repr,
)
def test_computed_options_with_a_key_that_is_not_text_are_a_logged_500(
    client: FlaskClient, seen: Seen, junk: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen.result = junk
    with caplog.at_level(logging.ERROR):
        response = options(client, model="orders", field="owner")
    assert response.status_code == 500
    assert response.get_json()["detail"] == INTERNAL_ERROR_MESSAGE
    assert "The dynamic params of Flex action 'reassign' failed" in caplog.text
    assert "must be strings with string values" in caplog.text
