"""Declaring actions: mistakes fail at registration naming the fix; get_action_list is exact."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields

from flask_flexactions import Action, ActionKind, FlexActions
from flask_flexactions import fields as ff
from tests.conftest import TOKEN, Messages, database_url
from tests.models import Account, Device, Membership, Order, Price, Tag, User, db

WAYS = ["decorator", "register_action"]


def handler(*args: Any) -> None:
    """A handler that accepts any call shape."""


def declare(flex: FlexActions, way: str, *args: Any, **kwargs: Any) -> Any:
    """Register ``handler`` with ``@flex.action(...)`` or ``flex.register_action(...)``."""
    if way == "decorator":
        return flex.action(*args, **kwargs)(handler)
    return flex.register_action(handler, *args, **kwargs)


class NotAModel:
    pass


class Colour(enum.Enum):
    RED = "red"


class ChildSchema(Schema):
    x = fields.Integer()


def schema_with(field: fields.Field[Any]) -> type[Schema]:
    return Schema.from_dict({"bad": field}, name="OneField")


def fk(model: Any) -> dict[str, Any]:
    return {"name": "a", "field": "ForeignKey", "params": {"related_model": {"model": model}}}


def select(options: Any) -> dict[str, Any]:
    return {"name": "a", "field": "SelectField", "params": {"options": options}}


def mistake(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str, id: str
) -> Any:
    return pytest.param(args, kwargs, error, match, id=id)


UNKNOWN_TYPE = r"unknown field type {}; use one of BooleanField, CharField, CodeField"
FK_FIX = re.escape("a ForeignKey needs its related model: params={'related_model': {'model': ")
SELECT_FIX = re.escape("a SelectField needs its choices: params={'options': [{'value': 'a', ")
# From the ": " after the param's name to the "got" before the value: the whole fixed text.
OPTION_FIX = re.escape(': SelectField options must be dicts like {"value": "a", "name": "A"}; got ')
OPTION_VALUE_FIX = re.escape(
    ": SelectField option values must be strings, numbers or booleans; got "
)
PARAMS_FIX = re.escape(
    "params must be a list of param dicts like "
    '[{"name": "amount", "field": "DecimalField", "required": True}] or a marshmallow '
    "Schema subclass"
)
NOT_MAPPED_FIX = re.escape(
    "is not a mapped SQLAlchemy model class; pass a model class such as `Order`"
)
COMPOSITE_FIX = "Use for_instance=False and take the keys as params"
NO_MODEL_FIX = re.escape(
    "for_instance/bulk need a model; pass the model class as the first argument, "
    "e.g. @flex.action(User, bulk=True)"
)
NO_WIRE_TYPE_FIX = re.escape(
    "has no Flex Actions field type: use a field from flask_flexactions.fields, "
    "or set metadata={'field': 'CharField'}"
)

MISTAKES = [
    mistake(
        (),
        {"params": [{"name": "a", "field": "MoneyField"}]},
        ValueError,
        UNKNOWN_TYPE.format("'MoneyField'"),
        "unknown field type",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "charfield"}]},
        ValueError,
        UNKNOWN_TYPE.format("'charfield'"),
        "field type in the wrong case",
    ),
    mistake(
        (),
        {"params": [{"name": "a"}]},
        ValueError,
        UNKNOWN_TYPE.format("None"),
        "field type missing",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "CharField", "requird": True}]},
        ValueError,
        r"unknown keys \['requird'\]; allowed: \[.*'required'.*\]",
        "unknown key in a param dict",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "CharField"}, {"name": "a", "field": "TextField"}]},
        ValueError,
        "declares the param 'a' twice",
        "param declared twice",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "CharField", "required": "yes"}]},
        TypeError,
        "'required' must be True or False",
        "required is a string",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "CharField", "required": 1}]},
        TypeError,
        "'required' must be True or False",
        "required is 1",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "ForeignKey"}]},
        ValueError,
        FK_FIX,
        "ForeignKey without related_model",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "ForeignKey", "params": {"related_model": {}}}]},
        ValueError,
        FK_FIX,
        "ForeignKey with an empty related_model",
    ),
    mistake((), {"params": [fk("")]}, ValueError, FK_FIX, "ForeignKey to an empty name"),
    mistake(
        (),
        {"params": [fk(Membership)]},
        ValueError,
        "its primary key has several columns. Declare one param per key column instead",
        "ForeignKey to a composite primary key",
    ),
    mistake((), {"params": [fk(NotAModel)]}, TypeError, NOT_MAPPED_FIX, "ForeignKey to a class"),
    mistake(
        (),
        {"params": [{"name": "a", "field": "SelectField"}]},
        ValueError,
        SELECT_FIX,
        "SelectField without options",
    ),
    mistake((), {"params": [select("a,b")]}, ValueError, SELECT_FIX, "SelectField options str"),
    mistake((), {"params": [select({"a": "A"})]}, ValueError, SELECT_FIX, "options a dict"),
    mistake(
        (),
        {"params": [select([])]},
        ValueError,
        re.escape(": A SelectField needs at least one option in params['options'].") + "$",
        "SelectField with no options",
    ),
    mistake((), {"params": [select([{"name": "A"}])]}, ValueError, OPTION_FIX, "no value"),
    mistake((), {"params": [select(["a"])]}, ValueError, OPTION_FIX, "option not a dict"),
    mistake(
        (),
        {"params": [select([{"value": [1], "name": "A"}])]},
        ValueError,
        OPTION_VALUE_FIX,
        "option value a list",
    ),
    mistake(
        (),
        {"params": [select([{"value": None, "name": "None"}])]},
        ValueError,
        OPTION_VALUE_FIX,
        "option value null",
    ),
    mistake(
        (),
        {"params": ChildSchema()},
        TypeError,
        re.escape("pass the Schema class, not an instance: params=MySchema"),
        "Schema instance",
    ),
    mistake(
        (),
        {"params": {"name": "a", "field": "CharField"}},
        TypeError,
        PARAMS_FIX,
        "params a dict",
    ),
    mistake((), {"params": "amount"}, TypeError, PARAMS_FIX, "params a string"),
    mistake((), {"params": 5}, TypeError, PARAMS_FIX, "params a number"),
    mistake((), {"params": ["amount"]}, TypeError, "each param must be a dict", "param not a dict"),
    mistake(
        (),
        {"params": [{"field": "CharField"}]},
        ValueError,
        "every param needs a non-empty string 'name'",
        "param without a name",
    ),
    mistake(
        (),
        {"params": [{"name": 5, "field": "CharField"}]},
        ValueError,
        "every param needs a non-empty string 'name'",
        "param name not a string",
    ),
    mistake(
        (),
        {"params": [{"name": "a", "field": "CharField", "params": {"x": object()}}]},
        TypeError,
        "field params must be JSON values",
        "field params not JSON",
    ),
    mistake(([User, User],), {}, ValueError, "lists the collection 'users' twice", "model twice"),
    mistake(
        ([Account, Order, Account],),
        {},
        ValueError,
        "lists the collection 'shop;account' twice",
        "model twice among others",
    ),
    mistake(([],), {}, ValueError, "the list of models is empty", "empty model list"),
    mistake((), {"for_instance": True}, ValueError, NO_MODEL_FIX, "for_instance without model"),
    mistake((), {"bulk": True}, ValueError, NO_MODEL_FIX, "bulk without model"),
    mistake(
        (Membership,), {"for_instance": True}, ValueError, COMPOSITE_FIX, "record on composite"
    ),
    mistake((Membership,), {"bulk": True}, ValueError, COMPOSITE_FIX, "bulk on composite"),
    mistake(
        ([User, Membership],),
        {"bulk": True},
        ValueError,
        COMPOSITE_FIX,
        "bulk on a list holding a composite",
    ),
    mistake((NotAModel,), {}, TypeError, NOT_MAPPED_FIX, "model not mapped"),
    mistake((User(name="x"),), {}, TypeError, NOT_MAPPED_FIX, "model instance"),
    mistake(("users",), {}, TypeError, NOT_MAPPED_FIX, "model given by name"),
    mistake(([User, NotAModel],), {}, TypeError, NOT_MAPPED_FIX, "unmapped in a list"),
    mistake(
        (),
        {"params": schema_with(fields.Enum(Colour))},
        TypeError,
        "param 'bad': Enum " + NO_WIRE_TYPE_FIX,
        "Schema with fields.Enum",
    ),
    mistake(
        (),
        {"params": schema_with(fields.Function(deserialize=lambda value: value))},
        TypeError,
        "param 'bad': Function " + NO_WIRE_TYPE_FIX,
        "Schema with fields.Function",
    ),
    mistake(
        (),
        {"params": schema_with(fields.Tuple((fields.String(), fields.String())))},
        TypeError,
        "param 'bad': Tuple " + NO_WIRE_TYPE_FIX,
        "Schema with fields.Tuple",
    ),
    mistake(
        (),
        {"params": schema_with(fields.String(metadata={"field": "MoneyField"}))},
        TypeError,
        r"metadata field='MoneyField' is not one of \[",
        "Schema metadata field unknown",
    ),
    mistake(
        (),
        {"name": ""},
        ValueError,
        re.escape("An action needs a name: pass name='...'"),
        "empty name",
    ),
    mistake(
        (),
        {"name": 5},
        ValueError,
        re.escape("An action needs a name: pass name='...'"),
        "name not a string",
    ),
]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(("args", "kwargs", "error", "match"), MISTAKES)
def test_declaration_mistake_raises_at_registration(
    flex: FlexActions,
    way: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        declare(flex, way, *args, **kwargs)
    assert len(flex.registry) == 0


def test_a_handler_that_is_not_callable_is_refused(flex: FlexActions) -> None:
    with pytest.raises(TypeError, match="An action handler must be callable"):
        flex.register_action("refund", Order)  # type: ignore[arg-type]
    assert len(flex.registry) == 0


def test_a_handler_without_a_name_needs_name(flex: FlexActions) -> None:
    class Callable_:
        def __call__(self, params: dict[str, Any]) -> None:
            pass

    with pytest.raises(ValueError, match=re.escape("pass name='...'")):
        flex.register_action(Callable_())
    action = flex.register_action(Callable_(), name="callable")
    assert action.name == "callable"


@pytest.mark.parametrize("way", WAYS)
def test_same_name_twice_on_a_collection_is_refused(flex: FlexActions, way: str) -> None:
    declare(flex, way, User, name="archive")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "An action named 'archive' is already registered on the collection 'users'; "
            "give one of them another name with name='...'"
        ),
    ):
        declare(flex, way, User, name="archive", bulk=True)
    assert len(flex.registry) == 1


@pytest.mark.parametrize("way", WAYS)
def test_same_name_twice_among_common_actions_is_refused(flex: FlexActions, way: str) -> None:
    declare(flex, way, name="ping")
    with pytest.raises(
        ValueError,
        match=re.escape("already registered on the common actions; give one of them another name"),
    ):
        declare(flex, way, name="ping")
    assert len(flex.registry) == 1


@pytest.mark.parametrize("way", WAYS)
def test_same_name_on_overlapping_model_lists_registers_nothing(
    app: Flask, flex: FlexActions, messages: Messages, way: str
) -> None:
    declare(flex, way, [User, Order], name="sync")
    with pytest.raises(ValueError, match="already registered on the collection 'orders'"):
        declare(flex, way, [Tag, Order], name="sync")

    assert len(flex.registry) == 1
    assert messages.action_list() == [
        {
            "name": "sync",
            "model_action": {"model": ["users", "orders"], "for_instance": False, "bulk": False},
            "params": [],
        }
    ]
    response = messages.execute("sync", "tags")
    assert response.status_code == 404


@pytest.mark.parametrize("way", WAYS)
def test_same_name_on_different_collections_is_fine(flex: FlexActions, way: str) -> None:
    declare(flex, way, User, name="archive", for_instance=True)
    declare(flex, way, Order, name="archive", bulk=True)
    declare(flex, way, [Tag, Device], name="archive")
    declare(flex, way, name="archive")
    assert len(flex.registry) == 4


def test_the_decorator_returns_the_function_unchanged(flex: FlexActions) -> None:
    def refund(order: Order, params: dict[str, Any]) -> str:
        return "done"

    decorated = flex.action(
        Order,
        for_instance=True,
        params=[{"name": "amount", "field": "DecimalField", "required": True}],
        label="Refund",
    )(refund)

    assert decorated is refund
    assert decorated(None, {}) == "done"
    assert flex.action()(handler) is handler


def test_register_action_returns_the_action(flex: FlexActions) -> None:
    def block(users: list[User], params: dict[str, Any]) -> None:
        pass

    action = flex.register_action(block, User, bulk=True)

    assert isinstance(action, Action)
    assert action.handler is block
    assert action.name == "block"
    assert action.for_instance is True
    assert action.bulk is True
    assert action.kind is ActionKind.BULK
    assert list(flex.registry) == [action]


# get_action_list


def test_action_list_of_each_kind(flex: FlexActions, messages: Messages) -> None:
    assert messages.action_list() == []

    @flex.action(Order, for_instance=True)
    def refund(order: Order, params: dict[str, Any]) -> None:
        pass

    @flex.action(User, bulk=True, for_instance=False)
    def block_users(users: list[User], params: dict[str, Any]) -> None:
        pass

    @flex.action([User, Order])
    def export(model: type[Any], params: dict[str, Any]) -> None:
        pass

    @flex.action([Tag])
    def tidy(model: type[Any], params: dict[str, Any]) -> None:
        pass

    @flex.action(Account, name="audit_accounts")
    def audit(model: type[Any], params: dict[str, Any]) -> None:
        pass

    @flex.action(Device, for_instance=True, label="Wipe", description="Erase the device.")
    def wipe(device: Device, params: dict[str, Any]) -> None:
        pass

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        pass

    @flex.action(Membership)
    def prune(model: type[Any], params: dict[str, Any]) -> None:
        pass

    assert messages.action_list() == [
        {
            "name": "refund",
            "model_action": {"model": "orders", "for_instance": True, "bulk": False},
            "params": [],
        },
        {
            "name": "block_users",
            "model_action": {"model": "users", "for_instance": True, "bulk": True},
            "params": [],
        },
        {
            "name": "export",
            "model_action": {"model": ["users", "orders"], "for_instance": False, "bulk": False},
            "params": [],
        },
        {
            "name": "tidy",
            "model_action": {"model": ["tags"], "for_instance": False, "bulk": False},
            "params": [],
        },
        {
            "name": "audit_accounts",
            "model_action": {"model": "shop;account", "for_instance": False, "bulk": False},
            "params": [],
        },
        {
            "name": "wipe",
            "model_action": {"model": "devices", "for_instance": True, "bulk": False},
            "params": [],
            "label": "Wipe",
            "verbose_name": "Wipe",
            "description": "Erase the device.",
        },
        {"name": "ping", "common_action": {}, "params": []},
        {
            "name": "prune",
            "model_action": {"model": "memberships", "for_instance": False, "bulk": False},
            "params": [],
        },
    ]


def test_action_list_says_which_actions_have_a_preview_or_run_in_the_background(
    flex: FlexActions,
) -> None:
    """Extensions for clients such as the console: absent unless declared."""

    def preview(users: list[User], params: dict[str, Any]) -> str:
        return "Would block them."

    plain = flex.register_action(handler, User, bulk=True, name="plain")
    previewed = flex.register_action(handler, User, bulk=True, name="block", preview=preview)
    queued = flex.register_action(handler, User, bulk=True, name="later", background=True)

    assert "preview" not in plain.wire() and "background" not in plain.wire()
    assert previewed.wire()["preview"] is True and "background" not in previewed.wire()
    assert queued.wire()["background"] is True and "preview" not in queued.wire()


def test_registration_after_a_listing_rebuilds_the_list(
    flex: FlexActions, messages: Messages
) -> None:
    flex.register_action(handler, name="first")
    assert [action["name"] for action in messages.action_list()] == ["first"]

    flex.register_action(handler, User, name="second")

    assert [action["name"] for action in messages.action_list()] == ["first", "second"]


def param(name: str, field: str, required: bool = False, **extra: Any) -> dict[str, Any]:
    """A param entry as get_action_list shows it."""
    return {"name": name, "field": field, "required": required, "params": {}, **extra}


def test_action_list_params_from_dicts(flex: FlexActions, messages: Messages) -> None:
    @flex.action(
        Order,
        for_instance=True,
        params=[
            {"name": "flag", "field": "BooleanField", "required": True},
            {"name": "char", "field": "CharField", "required": False},
            {"name": "text", "field": "TextField", "params": {"placeholder": "Why?"}},
            {"name": "sql", "field": "SqlField"},
            {"name": "code", "field": "CodeField"},
            {"name": "title", "field": "TranslatableField"},
            {
                "name": "kind",
                "field": "SelectField",
                "required": True,
                "params": {
                    "options": [
                        {"value": "a", "name": "A"},
                        {"value": 2, "name": "Two"},
                        {"value": True, "name": "Yes"},
                        {"value": "b"},
                    ]
                },
            },
            {
                "name": "account_from",
                "field": "ForeignKey",
                "required": True,
                "params": {"related_model": {"model": Account}},
            },
            {
                "name": "account_to",
                "field": "ForeignKey",
                "params": {"related_model": {"model": "shop;account"}},
            },
            {"name": "tag", "field": "ForeignKey", "params": {"related_model": {"model": Tag}}},
            {"name": "at", "field": "DateTimeField"},
            {"name": "seen", "field": "TimestampField"},
            {"name": "day", "field": "DateField"},
            {"name": "clock", "field": "TimeField"},
            {"name": "data", "field": "JSONField"},
            {"name": "count", "field": "IntegerField"},
            {"name": "ratio", "field": "FloatField"},
            {
                "name": "amount",
                "field": "DecimalField",
                "required": True,
                "label": "Amount",
                "description": "How much to give back.",
            },
            {"name": "note", "field": "TextField", "verbose_name": "Note"},
        ],
    )
    def refund(order: Order, params: dict[str, Any]) -> None:
        pass

    [entry] = messages.action_list()

    assert entry["params"] == [
        param("flag", "BooleanField", True),
        param("char", "CharField"),
        param("text", "TextField", params={"placeholder": "Why?"}),
        param("sql", "SqlField"),
        param("code", "CodeField"),
        param("title", "TranslatableField"),
        param(
            "kind",
            "SelectField",
            True,
            params={
                "options": [
                    {"value": "a", "name": "A"},
                    {"value": 2, "name": "Two"},
                    {"value": True, "name": "Yes"},
                    {"value": "b", "name": "b"},
                ]
            },
        ),
        param(
            "account_from",
            "ForeignKey",
            True,
            params={"related_model": {"model": "shop;account"}},
        ),
        param("account_to", "ForeignKey", params={"related_model": {"model": "shop;account"}}),
        param("tag", "ForeignKey", params={"related_model": {"model": "tags"}}),
        param("at", "DateTimeField"),
        param("seen", "TimestampField"),
        param("day", "DateField"),
        param("clock", "TimeField"),
        param("data", "JSONField"),
        param("count", "IntegerField"),
        param("ratio", "FloatField"),
        param(
            "amount",
            "DecimalField",
            True,
            label="Amount",
            verbose_name="Amount",
            description="How much to give back.",
        ),
        param("note", "TextField", label="Note", verbose_name="Note"),
    ]
    assert {p["field"] for p in entry["params"]} == set(ff.FIELD_TYPES)
    assert all(isinstance(p["required"], bool) for p in entry["params"])


class EverythingSchema(Schema):
    flag = fields.Boolean(required=True)
    title = fields.String(metadata={"label": "Title", "description": "Shown on top."})
    email = fields.Email()
    count = fields.Integer(data_key="howMany", required=True)
    price = fields.Decimal()
    ratio = fields.Float()
    at = fields.DateTime()
    aware = fields.AwareDateTime()
    day = fields.Date()
    clock = fields.Time()
    meta = fields.Dict()
    tags = fields.List(fields.String())
    child = fields.Nested(ChildSchema)
    raw = fields.Raw()
    body = fields.String(metadata={"field": "TextField"})
    state = fields.Enum(Colour, metadata={"field": "CharField"})
    account = ff.ForeignKey(Account, required=True)
    owner = ff.ForeignKey("users")
    kind = ff.Select(
        [{"value": "a", "name": "A"}, {"value": 2, "name": "Two"}], metadata={"label": "Kind"}
    )
    seen = ff.Timestamp()
    name = ff.Translatable()
    data = ff.JSON()
    query = ff.Sql()
    code = ff.Code()
    text = ff.Text()
    char = ff.Char()
    on = ff.Boolean()
    n = ff.Integer()
    f = ff.Float()
    d = ff.Decimal()
    when = ff.DateTime()
    date = ff.Date()
    time = ff.Time()
    script = ff.Char(metadata={"field": "CodeField"})
    computed = fields.String(dump_only=True)


def test_action_list_params_from_a_schema(flex: FlexActions, messages: Messages) -> None:
    flex.register_action(handler, name="everything", params=EverythingSchema)

    assert messages.action_list() == [
        {
            "name": "everything",
            "common_action": {},
            "params": [
                param("flag", "BooleanField", True),
                param(
                    "title",
                    "CharField",
                    label="Title",
                    verbose_name="Title",
                    description="Shown on top.",
                ),
                param("email", "CharField"),
                param("howMany", "IntegerField", True),
                param("price", "DecimalField"),
                param("ratio", "FloatField"),
                param("at", "DateTimeField"),
                param("aware", "DateTimeField"),
                param("day", "DateField"),
                param("clock", "TimeField"),
                param("meta", "JSONField"),
                param("tags", "JSONField"),
                param("child", "JSONField"),
                param("raw", "JSONField"),
                param("body", "TextField"),
                param("state", "CharField"),
                param(
                    "account",
                    "ForeignKey",
                    True,
                    params={"related_model": {"model": "shop;account"}},
                ),
                param("owner", "ForeignKey", params={"related_model": {"model": "users"}}),
                param(
                    "kind",
                    "SelectField",
                    params={"options": [{"value": "a", "name": "A"}, {"value": 2, "name": "Two"}]},
                    label="Kind",
                    verbose_name="Kind",
                ),
                param("seen", "TimestampField"),
                param("name", "TranslatableField"),
                param("data", "JSONField"),
                param("query", "SqlField"),
                param("code", "CodeField"),
                param("text", "TextField"),
                param("char", "CharField"),
                param("on", "BooleanField"),
                param("n", "IntegerField"),
                param("f", "FloatField"),
                param("d", "DecimalField"),
                param("when", "DateTimeField"),
                param("date", "DateField"),
                param("time", "TimeField"),
                param("script", "CodeField"),
            ],
        }
    ]


def test_same_action_name_on_two_models_is_listed_twice_and_runs_its_own_handler(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    with app.app_context():
        db.session.add_all([User(id=1, name="ann"), Order(id=5, total=1, refunded=0)])
        db.session.commit()
    ran: list[str] = []

    @flex.action(User, name="archive", for_instance=True)
    def archive_user(user: User, params: dict[str, Any]) -> str:
        ran.append(f"user {user.id}")
        return "user"

    @flex.action(Order, name="archive", bulk=True)
    def archive_orders(orders: list[Order], params: dict[str, Any]) -> str:
        ran.append(f"orders {[order.id for order in orders]}")
        return "orders"

    @flex.action(name="archive")
    def archive_everything(params: dict[str, Any]) -> str:
        ran.append("everything")
        return "everything"

    assert messages.action_list() == [
        {
            "name": "archive",
            "model_action": {"model": "users", "for_instance": True, "bulk": False},
            "params": [],
        },
        {
            "name": "archive",
            "model_action": {"model": "orders", "for_instance": True, "bulk": True},
            "params": [],
        },
        {"name": "archive", "common_action": {}, "params": []},
    ]
    assert messages.execute("archive", "users", id=1).get_json() == {
        "result": True,
        "message": "user",
    }
    assert messages.execute("archive", "orders", ids=[5]).get_json() == {
        "result": True,
        "message": "orders",
    }
    assert messages.execute("archive").get_json() == {"result": True, "message": "everything"}
    assert ran == ["user 1", "orders [5]", "everything"]


# ForeignKey given by wire name: resolved at init_app


def bare_app(tmp_path: Path) -> Flask:
    """A second app, with the database set up but no extension yet."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True, SQLALCHEMY_DATABASE_URI=database_url(tmp_path), FLEXACTIONS_TOKEN=TOKEN
    )
    db.init_app(app)
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


class OwnerSchema(Schema):
    owner = ff.ForeignKey("shop;acount")


@pytest.mark.parametrize(
    ("register", "match"),
    [
        pytest.param(
            lambda flex: flex.register_action(handler, name="a", params=[fk("shop;acount")]),
            r"No model has the wire name 'shop;acount'\. Pass the model class instead of its "
            r"name, import the model before init_app, or set __flexactions_name__ on the model",
            id="dict params",
        ),
        pytest.param(
            lambda flex: flex.register_action(handler, name="a", params=OwnerSchema),
            r"No model has the wire name 'shop;acount'\. Pass the model class instead",
            id="schema params",
        ),
        pytest.param(
            lambda flex: flex.register_action(handler, Order, name="a", params=[fk("Account")]),
            r"No model has the wire name 'Account'\. Pass the model class instead",
            id="class name instead of wire name",
        ),
        pytest.param(
            lambda flex: flex.register_action(handler, name="a", params=[fk("memberships")]),
            "its primary key has several columns. Declare one param per key column instead",
            id="composite primary key",
        ),
    ],
)
def test_foreign_key_to_an_unknown_wire_name_fails_at_init_app(
    tmp_path: Path, register: Callable[[FlexActions], Any], match: str
) -> None:
    flex = FlexActions()
    register(flex)
    app = bare_app(tmp_path)
    try:
        with pytest.raises(ValueError, match=match):
            flex.init_app(app)
        assert "flexactions" not in app.extensions
    finally:
        dispose(app)


def test_foreign_key_to_a_known_wire_name_passes_init_app(tmp_path: Path) -> None:
    flex = FlexActions()
    flex.register_action(handler, name="a", params=[fk("shop;account")])
    flex.register_action(handler, name="b", params=[fk("tags")])
    app = bare_app(tmp_path)
    try:
        flex.init_app(app)
        assert "flexactions" in app.extensions
    finally:
        dispose(app)


def test_foreign_key_to_an_unknown_wire_name_registered_after_init_app_fails_at_first_use(
    flex: FlexActions, messages: Messages
) -> None:
    ran: list[Any] = []

    @flex.action(params=[fk("nothing;here")])
    def late(params: dict[str, Any]) -> None:
        ran.append(params)

    response = messages.execute("late", params={"a": 1})

    assert response.status_code == 500
    assert response.get_json() == {
        "result": False,
        "errors": {
            "non_field_errors": ["The server failed to run the action; the error has been logged."]
        },
        "detail": "The server failed to run the action; the error has been logged.",
    }
    assert ran == []


# Key types without an id grammar, and values that cannot be listed as JSON


@pytest.mark.parametrize("options", [{"for_instance": True}, {"bulk": True}])
def test_record_action_on_a_key_type_without_id_grammar_is_refused(
    flex: FlexActions, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="has no id grammar .* Use for_instance=False"):
        flex.register_action(handler, Price, name="reprice", **options)


def test_collection_action_on_a_key_type_without_id_grammar_is_fine(
    flex: FlexActions, messages: Messages
) -> None:
    flex.register_action(lambda model, params: None, Price, name="reprice_all")

    assert messages.execute("reprice_all", "prices").get_json() == {"result": True}


@pytest.mark.parametrize("related", [Price, "prices"], ids=["class", "wire-name"])
def test_foreign_key_to_a_key_type_without_id_grammar_is_refused(
    app: Flask, flex: FlexActions, related: Any
) -> None:
    register = lambda: flex.register_action(handler, name="a", params=[fk(related)])  # noqa: E731
    fix = (
        r"has no id grammar .*\. Declare the key as a plain param and load the row in the action\.$"
    )
    if isinstance(related, str):
        register()  # resolved per app, at init_app or the first message
        fresh = Flask(__name__)
        fresh.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FLEXACTIONS_TOKEN=TOKEN)
        db.init_app(fresh)
        with pytest.raises(ValueError, match=fix):
            flex.init_app(fresh, db=db)
    else:
        with pytest.raises(ValueError, match=fix):
            register()


class LazyText:
    """Stands in for a lazily translated string such as Flask-Babel's lazy_gettext."""

    def __str__(self) -> str:
        return "Refund order"


def test_lazy_label_and_description_are_listed_as_text(
    flex: FlexActions, messages: Messages
) -> None:
    flex.register_action(handler, name="a", label=LazyText(), description=LazyText())  # type: ignore[arg-type]

    (entry,) = messages.action_list()
    assert entry["label"] == entry["verbose_name"] == entry["description"] == "Refund order"


def test_field_params_that_are_not_json_are_refused_at_registration(flex: FlexActions) -> None:
    class Params(Schema):
        note = fields.String(metadata={"params": {"placeholder": object()}})

    with pytest.raises(TypeError, match="cannot be listed as JSON"):
        flex.register_action(handler, name="a", params=Params)
    assert len(flex.registry) == 0


def test_unknown_wire_name_registered_after_init_app_fails_every_message_loudly(
    flex: FlexActions, messages: Messages, caplog: pytest.LogCaptureFixture
) -> None:
    flex.register_action(handler, name="a", params=[fk("nothing;here")])

    response = messages.post({"name": "get_action_list"})

    assert response.status_code == 500
    assert "No model has the wire name 'nothing;here'" in caplog.text
