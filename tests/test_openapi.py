"""The OpenAPI document and the JSON Schemas of actions (doors/openapi.py, doors/schemas.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from apispec.ext.marshmallow.field_converter import DEFAULT_FIELD_MAPPING
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import Schema, ValidationError, fields, validate
from openapi_spec_validator import validate as validate_spec

from examples.shop import create_app
from examples.shop.models import db as shop_db
from flask_flexactions import Caller, FlexActions
from flask_flexactions import fields as flex_fields
from flask_flexactions.declare.fields import FIELD_TYPES, WireField, loading_related
from flask_flexactions.doors.schemas import (
    OPENAPI_VERSION,
    OPTIONS_KEY,
    RELATED_COLLECTION_KEY,
    ActionSchemas,
    answer_schema,
    error_schema,
    operation_id,
    operation_ids,
    request_body_schema,
)
from tests.conftest import AUTH, TOKEN, Messages
from tests.models import Account, Device, Order, Tag, User

DOCUMENT = "/flex/openapi.json"
ORIGIN = "https://app.jetadmin.io"


def document(client: FlaskClient, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    response = client.get(DOCUMENT, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def request_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    operation = doc["paths"][path]["post"]
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][reference.rpartition("/")[2]]  # type: ignore[no-any-return]


def values_of(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return request_schema(doc, path)["properties"]["values"]["properties"]  # type: ignore[no-any-return]


# The example shop


@pytest.fixture
def shop(tmp_path: Path) -> Flask:
    return create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "FLEXACTIONS_TOKEN": TOKEN}
    )


def test_the_shops_document_is_valid_openapi_3_1(shop: Flask) -> None:
    doc = document(shop.test_client())
    validate_spec(doc)
    assert doc["openapi"] == OPENAPI_VERSION == "3.1.0"
    assert doc["servers"] == [{"url": "/flex"}]
    assert doc["components"]["securitySchemes"] == {
        "sharedToken": {
            "type": "http",
            "scheme": "bearer",
            "description": doc["components"]["securitySchemes"]["sharedToken"]["description"],
        }
    }
    assert doc["security"] == [{"sharedToken": []}]
    operations = {
        path: operation["post"]["operationId"] for path, operation in doc["paths"].items()
    }
    assert operations == {
        "/actions/users/reset_password": "users__reset_password",
        "/actions/users/rename_user": "users__rename_user",
        "/actions/users/block_users": "users__block_users",
        "/actions/orders/refund": "orders__refund",
        "/actions/orders/refund_in_full": "orders__refund_in_full",
        "/actions/orders/reassign_order": "orders__reassign_order",
        "/actions/accounts/account_transfer": "accounts__account_transfer",
        "/actions/orders/export_orders_csv": "orders__export_orders_csv",
        "/actions/orders/sales_report": "orders__sales_report",
        "/actions/ping": "ping",
    }
    ping = doc["paths"]["/actions/ping"]["post"]
    assert ping["summary"] == "Ping"
    assert ping["description"].startswith("Check that the shop answers.")
    assert ping["tags"] == ["common"]
    assert ping["x-flexactions"] == {
        "action": "ping",
        "collection": None,
        "kind": "common",
        "background": False,
    }
    with shop.app_context():
        shop_db.session.remove()


def test_the_shops_params_become_json_schema(shop: Flask) -> None:
    doc = document(shop.test_client())
    reset = values_of(doc, "/actions/users/reset_password")["new_password"]
    assert reset == {
        "title": "New password",
        "description": "At least 8 characters.",
        "type": "string",
        "writeOnly": True,
        "format": "password",
    }
    block = request_schema(doc, "/actions/users/block_users")
    assert set(block["properties"]) == {"ids", "inverseIds", "values", "dry_run"}
    assert block["additionalProperties"] is False
    reason = block["properties"]["values"]["properties"]["reason"]
    assert reason["enum"] == ["fraud", "spam", "chargebacks", "abuse", None, ""]
    assert reason[OPTIONS_KEY][2] == {"value": "chargebacks", "name": "Too many chargebacks"}
    transfer = values_of(doc, "/actions/accounts/account_transfer")
    assert transfer["account_from"][RELATED_COLLECTION_KEY] == "accounts"
    assert "integer" in transfer["account_from"]["type"]
    assert transfer["amount"]["type"] == ["string", "number"]
    assert transfer["amount"]["format"] == "decimal"
    assert transfer["date"]["anyOf"][0]["type"] == "string"
    refund = request_schema(doc, "/actions/orders/refund")
    assert refund["required"] == ["id", "values"]
    owner = values_of(doc, "/actions/orders/reassign_order")["new_owner"]
    assert "enum" not in owner
    assert "get_field_options" in owner["description"]
    rename = values_of(doc, "/actions/users/rename_user")["name"]
    assert rename["x-default-from-record"] is True
    assert "default" not in rename


def test_every_operation_declares_the_answers_and_errors(shop: Flask) -> None:
    doc = document(shop.test_client())
    for operation in (path["post"] for path in doc["paths"].values()):
        responses = operation["responses"]
        assert sorted(responses) == sorted(
            ["200", "400", "401", "403", "404", "409", "413", "415", "422", "500", "503"]
        )
        assert set(responses["200"]["content"]) == {"application/json", "*/*"}
        assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    unavailable = doc["components"]["responses"]["ServiceUnavailable"]
    assert "Retry-After" in unavailable["headers"]
    assert doc["components"]["schemas"]["ErrorAnswer"] == error_schema()
    assert doc["components"]["schemas"]["ActionAnswer"] == answer_schema()


def test_the_document_needs_credentials_and_carries_cors_headers(shop: Flask) -> None:
    client = shop.test_client()
    response = client.get(DOCUMENT, headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.get_json()["detail"]
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    preflight = client.options(
        DOCUMENT, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    answer = client.get(DOCUMENT, headers={**AUTH, "Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    posted = client.post(DOCUMENT, headers=AUTH)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET, HEAD, OPTIONS"
    # The Messages URL keeps its own methods.
    messages = client.options("/flex/messages/", headers={"Origin": ORIGIN})
    assert messages.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"


def test_the_document_is_built_once_per_audience(shop: Flask) -> None:
    client = shop.test_client()
    state = shop.extensions["flexactions"]
    first = client.get(DOCUMENT, headers=AUTH).get_data()
    with shop.test_request_context():
        from flask_flexactions.access.auth import SHARED_TOKEN_CALLER

        cached = state.openapi.body(SHARED_TOKEN_CALLER, "/flex", f"Flex Actions of {shop.name}")
        again = state.openapi.body(SHARED_TOKEN_CALLER, "/flex", f"Flex Actions of {shop.name}")
    assert cached is again
    assert cached == first


# Callers see what they may run, as in get_action_list


@pytest.fixture
def callers() -> dict[str, Caller]:
    return {
        "clerk": Caller(id="c", roles=frozenset({"clerk"})),
        "admin": Caller(id="a", roles=frozenset({"admin"})),
        "reader": Caller(id="r", read_only=True),
        "orders-only": Caller(id="o", roles=frozenset({"orders"})),
    }


def test_a_caller_sees_the_operations_get_action_list_gives(
    flex: FlexActions, app: Flask, client: FlaskClient, callers: dict[str, Caller]
) -> None:
    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        return None

    @flex.action(User, bulk=True, permission="admin")
    def block(users: list[User], params: dict[str, Any]) -> None:
        return None

    def orders_only(caller: Caller, action: Any, model: Any) -> bool:
        return model is Order or caller.has_role("admin")

    @flex.action([User, Order], permission=orders_only)
    def export(model: Any, params: dict[str, Any]) -> None:
        return None

    flex.authenticator(lambda request: callers.get(request.headers.get("X-Who", "")))
    messages = Messages(client)
    seen: dict[str, set[tuple[str | None, str]]] = {}
    for who in ["clerk", "admin", "reader", "orders-only"]:
        headers = {"X-Who": who}
        doc = document(client, headers)
        validate_spec(doc)
        operations = {
            (op["post"]["x-flexactions"]["collection"], op["post"]["x-flexactions"]["action"])
            for op in doc["paths"].values()
        }
        listed = set()
        for entry in messages.post({"name": "get_action_list"}, headers=headers).get_json():
            models = entry.get("model_action", {}).get("model", [None])
            for model in models if isinstance(models, list) else [models]:
                listed.add((model, entry["name"]))
        assert operations == listed, who
        seen[who] = operations
    assert seen["reader"] == set()
    assert seen["clerk"] == {(None, "ping"), ("orders", "export")}
    assert seen["admin"] == {
        (None, "ping"),
        ("users", "block"),
        ("users", "export"),
        (
            "orders",
            "export",
        ),
    }
    # Names do not depend on who asks.
    admin = document(client, {"X-Who": "admin"})
    assert admin["paths"]["/actions/orders/export"]["post"]["operationId"] == "orders__export"


def test_security_schemes_are_those_configured(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    assert list(document(client)["components"]["securitySchemes"]) == ["sharedToken"]
    flex.authenticator(lambda request: None)
    doc = document(client)
    assert list(doc["components"]["securitySchemes"]) == ["sharedToken", "appAuthorization"]
    assert doc["security"] == [{"sharedToken": []}, {"appAuthorization": []}]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"FLEXACTIONS_JET_PROJECT": "p"}, ["sharedToken", "jetAdminJWT"]),
        ({"FLEXACTIONS_JET_PROJECT_TOKEN": "pt"}, ["sharedToken", "jetAdminToken"]),
    ],
)
def test_jet_admin_schemes_appear_when_configured(
    client: FlaskClient, config: dict[str, Any], expected: list[str]
) -> None:
    doc = document(client)
    assert list(doc["components"]["securitySchemes"]) == expected
    validate_spec(doc)


@pytest.mark.parametrize("config", [{"FLEXACTIONS_IDEMPOTENCY": False}])
def test_no_idempotency_key_parameter_when_keys_are_off(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        return None

    assert "parameters" not in document(client)["paths"]["/actions/ping"]["post"]


def test_a_registration_rebuilds_the_document(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    assert document(client)["paths"] == {}

    @flex.action(name="late")
    def late(params: dict[str, Any]) -> None:
        return None

    assert list(document(client)["paths"]) == ["/actions/late"]


# Operation names


def test_operation_ids_are_identifier_like_and_unique() -> None:
    assert operation_id("shop;account", "move-money") == "shop_account__move_money"
    assert operation_id(None, "ping") == "ping"
    pairs = [("a;b", "c"), ("a_b", "c"), (None, "a_b__c"), ("users", "block"), (None, "ping")]
    names = operation_ids(pairs)
    assert names[("users", "block")] == "users__block"
    assert names[(None, "ping")] == "ping"
    colliding = [names[pair] for pair in pairs[:3]]
    assert len(set(colliding)) == 3
    for raw, name in zip(["a;b/c", "a_b/c", "a_b__c"], colliding, strict=True):
        assert name == "a_b__c_" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    # The same names whatever the order.
    assert operation_ids(reversed(pairs)) == names


def test_colliding_names_in_an_app_get_the_digest(
    flex: FlexActions, app: Flask, client: FlaskClient
) -> None:
    @flex.action(name="move-money")
    def one(params: dict[str, Any]) -> None:
        return None

    @flex.action(name="move_money")
    def two(params: dict[str, Any]) -> None:
        return None

    doc = document(client)
    validate_spec(doc)
    ids = sorted(op["post"]["operationId"] for op in doc["paths"].values())
    assert len(set(ids)) == 2
    assert all(name.startswith("move_money_") for name in ids)


# Every field type


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class PlainSchema(Schema):
    """Plain marshmallow fields keep apispec's conversion of their validators."""

    code = fields.String(required=True, validate=validate.Length(min=2, max=8))
    email = fields.Email()
    size = fields.Integer(validate=validate.Range(min=1, max=10))
    kind = fields.String(validate=validate.OneOf(["a", "b"]))
    color = fields.Enum(Color, by_value=True, metadata={"field": "CharField"})
    tags = fields.List(fields.String())
    extra = fields.Dict(keys=fields.String(), values=fields.Integer())
    price = fields.Decimal(metadata={"description": "A price."})
    uid = fields.UUID()


EVERY_TYPE = [
    {"name": "flag", "field": "BooleanField"},
    {"name": "char", "field": "CharField", "required": True, "label": "Char"},
    {"name": "text", "field": "TextField", "default": "hello"},
    {"name": "sql", "field": "SqlField"},
    {"name": "code", "field": "CodeField"},
    {"name": "words", "field": "TranslatableField"},
    {
        "name": "pick",
        "field": "SelectField",
        "params": {"options": [{"value": 1, "name": "One"}, {"value": "b", "color": "red"}]},
    },
    {
        "name": "account",
        "field": "ForeignKey",
        "params": {"related_model": {"model": "shop;account"}},
    },
    {"name": "tag", "field": "ForeignKey", "params": {"related_model": {"model": Tag}}},
    {"name": "device", "field": "ForeignKey", "params": {"related_model": {"model": Device}}},
    {"name": "at", "field": "DateTimeField"},
    {"name": "stamp", "field": "TimestampField"},
    {"name": "day", "field": "DateField", "default": dt.date(2024, 1, 2)},
    {"name": "clock", "field": "TimeField"},
    {"name": "blob", "field": "JSONField"},
    {"name": "count", "field": "IntegerField", "description": "How many."},
    {"name": "ratio", "field": "FloatField"},
    {"name": "amount", "field": "DecimalField", "required": True, "secret": True},
    {"name": "cost", "field": "DecimalField", "default": decimal.Decimal("1.50")},
    {"name": "dyn", "field": "SelectField", "params": {"options": lambda *args: []}},
]


@pytest.fixture
def every_type(flex: FlexActions, app: Flask) -> FlexActions:
    @flex.action(User, for_instance=True, params=EVERY_TYPE, label="All", description="All.")
    def everything(user: User, params: dict[str, Any]) -> None:
        return None

    @flex.action([Tag, Device], bulk=True, params=PlainSchema)
    def plain(rows: list[Any], params: dict[str, Any]) -> None:
        return None

    @flex.action(Account)
    def on_accounts(model: Any, params: dict[str, Any]) -> None:
        return None

    return flex


def test_every_field_type_validates(every_type: FlexActions, client: FlaskClient) -> None:
    doc = document(client)
    validate_spec(doc)
    assert set(doc["paths"]) == {
        "/actions/users/everything",
        "/actions/tags/plain",
        "/actions/devices/plain",
        "/actions/shop%3Baccount/on_accounts",
    }
    every = request_schema(doc, "/actions/users/everything")
    assert set(every["properties"]) == {"id", "values", "dry_run"}
    assert every["required"] == ["id", "values"]
    values = every["properties"]["values"]
    assert values["required"] == ["char", "amount"]
    props = values["properties"]
    assert set(props) == {entry["name"] for entry in EVERY_TYPE}
    assert props["char"] == {"title": "Char", "type": "string"}
    assert props["text"] == {"type": ["string", "null"], "default": "hello"}
    assert props["flag"]["anyOf"][0] == {"type": "boolean"}
    assert props["words"]["type"] == ["string", "object", "null"]
    assert props["pick"]["enum"] == [1, "b", "1", None, ""]
    assert props["pick"][OPTIONS_KEY] == [
        {"value": 1, "name": "One"},
        {"value": "b", "name": "b", "color": "red"},
    ]
    assert props["account"][RELATED_COLLECTION_KEY] == "shop;account"
    assert props["tag"][RELATED_COLLECTION_KEY] == "tags"
    assert props["tag"]["anyOf"][0]["type"] == ["string", "integer"]
    assert props["device"]["anyOf"][0] == {"type": "string", "format": "uuid"}
    assert props["at"]["anyOf"][0]["pattern"].startswith("^[0-9]{4}-")
    assert props["stamp"]["anyOf"][0] == {"type": "number"}
    assert props["day"]["default"] == "2024-01-02"
    assert props["day"]["anyOf"][0] == {"type": "string", "format": "date"}
    assert "pattern" in props["clock"]["anyOf"][0]
    assert props["blob"] == {"description": "Any JSON value."}
    assert props["count"]["description"].startswith("How many. ")
    assert props["count"]["anyOf"][0]["format"] == "int64"
    assert props["ratio"]["anyOf"][0] == {"type": "number"}
    assert props["amount"]["writeOnly"] is True
    assert props["amount"]["format"] == "password"
    assert props["cost"]["default"] == "1.50"
    assert "enum" not in props["dyn"]
    assert props["dyn"]["x-dynamic-options"] is True
    plain = request_schema(doc, "/actions/tags/plain")
    assert set(plain["properties"]) == {"ids", "inverseIds", "values", "dry_run"}
    plain_props = plain["properties"]["values"]["properties"]
    assert plain_props["code"] == {"type": "string", "minLength": 2, "maxLength": 8}
    assert plain_props["email"]["format"] == "email"
    assert plain_props["size"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert plain_props["kind"]["enum"] == ["a", "b", None]
    assert plain_props["color"]["enum"][:2] == ["red", "blue"]
    assert plain_props["extra"]["anyOf"][0]["additionalProperties"] == {"type": "integer"}
    assert plain_props["price"]["description"] == "A price."
    device_ids = request_schema(doc, "/actions/devices/plain")["properties"]["ids"]
    assert device_ids["anyOf"][0]["items"] == {"type": "string", "format": "uuid"}
    accounts = request_schema(doc, "/actions/shop%3Baccount/on_accounts")
    assert set(accounts["properties"]) == {"values", "dry_run"}


def test_the_request_schema_is_self_contained(every_type: FlexActions, app: Flask) -> None:
    """What the MCP door needs: no $ref, plain JSON."""
    state = app.extensions["flexactions"]
    schemas = ActionSchemas(state)
    with app.app_context():
        for action in state.registry:
            for collection in action.collections or (None,):
                body = schemas.request_body(action, collection)
                assert body == request_body_schema(state, action, collection)
                text = json.dumps(body)
                assert "$ref" not in text
                jsonschema.Draft202012Validator.check_schema(body)
    jsonschema.Draft202012Validator.check_schema(answer_schema())
    jsonschema.Draft202012Validator.check_schema(error_schema())


def test_apispecs_shared_field_mapping_is_left_alone(every_type: FlexActions, app: Flask) -> None:
    ActionSchemas(app.extensions["flexactions"])
    assert not any(issubclass(cls, WireField) for cls in DEFAULT_FIELD_MAPPING)


# The schema of each param accepts every value the server accepts

PROBES: list[Any] = [
    None,
    "",
    " ",
    "x",
    "\u00e9t\u00e9",
    0,
    1,
    -1,
    1.0,
    1.5,
    -0.0,
    1e300,
    2**53,
    2**63 - 1,
    2**63,
    -(2**63),
    "0",
    "1",
    "+1",
    "-7",
    "01",
    "1.50",
    "1e3",
    ".5",
    "5.",
    "9223372036854775808",
    True,
    False,
    "true",
    "2024-05-01",
    "2024-02-30",
    "2024-05-01T10:30",
    "2024-05-01T10:30:00",
    "2024-05-01T10:30:00Z",
    "2024-05-01 10:30:00+02:00",
    "2024-05-01t10:30:00.123456789-0130",
    "10:30",
    "10:30:15",
    "10:30:15,5",
    "25:00",
    "10:30:00Z",
    [],
    [1, "a"],
    {},
    {"en": "Hello"},
    {"en": 1},
    "a\u0000b",
    "b",
    "red",
]


@pytest.mark.parametrize("entry", EVERY_TYPE, ids=lambda e: e["name"])
def test_a_param_schema_accepts_every_value_the_server_accepts(
    every_type: FlexActions, app: Flask, entry: dict[str, Any]
) -> None:
    """Probe each param with the same values through the server's loader and the schema:
    a value the server accepts must fit the schema, so a request the document refuses
    never runs."""
    state = app.extensions["flexactions"]
    action = state.registry.find("users", "everything")
    with app.test_request_context():
        schema = ActionSchemas(state).values(action)
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        accepted = 0
        for value in PROBES:
            required = {"char": "c", "amount": "1"}
            values = {**required, entry["name"]: value}
            try:
                with loading_related(state.related_rows(Caller(superuser=True))):
                    action.params.load(values)
            except ValidationError as error:
                if entry["name"] in error.messages:
                    continue
                if entry["field"] != "ForeignKey":
                    raise
                # A well-formed key of a row that does not exist: the form is accepted.
                if "No record" not in str(error.messages):
                    continue
            accepted += 1
            assert validator.is_valid(values), (entry["name"], value)
    assert accepted > 0


def test_every_wire_type_is_probed() -> None:
    assert {entry["field"] for entry in EVERY_TYPE} == set(FIELD_TYPES)
    assert all(isinstance(getattr(flex_fields, name), type) for name in ("Decimal", "Select"))
