"""Property: whatever arrives at the Messages URL, the answer is never a 5xx and nothing is written.

Hypothesis generates requests of two kinds: envelope-shaped messages built from the registered
message, action, collection and param names (so many reach id parsing, row loading, param
loading and the handlers), and arbitrary bytes, JSON values and headers (so the front door sees
invalid UTF-8, lone surrogates, ``NaN``, odd media types and random ``Authorization`` schemes).

How "no write" is proved: every registered handler really writes (and flushes, so the statements
reach the database), then fails with ``ActionError`` or by returning ``False``. Valid requests
are therefore allowed to run, and the extension must roll each one back: whole transactions,
the per-record SAVEPOINTs of an ``atomic=False`` action, and runs under ``lock=True``. After
every example, every row of every table in the database must equal the seeded rows: a single
row left behind, on any path, is a failure. Every ``execute_action`` answer of 200 must then be
``result: false``. No example sends an ``Idempotency-Key`` (header or ``params.request_id``):
keeping its answer is a write by design.

Authentication seen by the examples: the shared token (and wrong ones), Jet Admin ``JWT``
entries (verified offline against the default public key, so always refused), ``ProjectToken``
and other schemes (never sent anywhere: ``FLEXACTIONS_JET_PROJECT_TOKEN`` stays unset), and a
custom authenticator that turns an ``X-Property-Caller`` header into a clerk, a read-only user
or a caller with no roles, so permission refusals (403) and row scoping are on the paths too.

The runs are derandomized (the same examples every run) and keep no example database. The
figures of the last run of each property (cases, statuses, 5xx, writes, handler runs) are
written to ``test-artifacts/property-figures.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from flask_flexactions import ActionError, Caller, FlexActions
from tests.conftest import TOKEN, URL
from tests.models import Account, Device, Membership, Order, Price, Tag, User, db

FIGURES = Path(__file__).resolve().parent.parent / "test-artifacts" / "property-figures.json"
DEVICE = uuid.UUID("00000000-0000-4000-8000-000000000001")

MESSAGE_NAMES = ["get_action_list", "execute_action", "get_field_options", "get_element_status"]
#: Each registered action and the collection it is offered on (None: a common action).
ACTIONS: dict[str, str | None] = {
    "touch": "users",
    "block": "users",
    "relabel": "tags",
    "rename": "devices",
    "refund": "orders",
    "import_orders": "orders",
    "settle": "orders",
    "ping": None,
}
WIRE_NAMES = ["users", "orders", "tags", "devices", "shop;account", "memberships", "prices"]
PARAM_NAMES = ["note", "user", "amount", "at", "count", "ids", "inverseIds"]
CALLER_HEADER = "X-Property-Caller"

PROPERTY_SETTINGS = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


@pytest.fixture
def config() -> dict[str, Any]:
    """Accept Jet Admin JWTs (verified offline) on top of the shared token."""
    return {"FLEXACTIONS_JET_PROJECT": "flex-property"}


# The application under test


def table_rows(app: Flask) -> dict[str, list[str]]:
    """Every row of every table in the database (the extension's own tables too), as sorted
    reprs, so any write anywhere shows."""
    with app.app_context():
        connection = db.session.connection()
        return {
            name: sorted(
                repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{name}"'))
            )
            for name in sa.inspect(connection).get_table_names()
        }


def seed(app: Flask) -> None:
    with app.app_context():
        db.session.add_all([User(id=pk, name=f"user{pk}") for pk in (1, 2, 3, 4)])
        # Rows pointing to users go in after them: the models declare no relationships, so
        # the session would not order the inserts by the foreign keys.
        db.session.commit()
        db.session.add_all([Tag(code="alpha", label="A"), Tag(code="beta", label="B")])
        db.session.add_all([Device(id=DEVICE, name="d"), Account(id=1, balance=10)])
        db.session.add_all(
            [Order(id=pk, user_id=1, total=decimal.Decimal("9.50")) for pk in (1, 2)]
        )
        db.session.add_all([Membership(user_id=1, group="staff"), Price(amount=1)])
        db.session.commit()


def custom_caller(request: Request) -> Caller | None:
    """A caller named by a test header, after the shared token and JWTs were refused."""
    return {
        "clerk": Caller(name="clerk", roles=frozenset({"clerk"})),
        "reader": Caller(name="reader", read_only=True),
        "nobody": Caller(name="nobody"),
    }.get(request.headers.get(CALLER_HEADER, ""))


def register(flex: FlexActions, runs: Counter[str]) -> None:
    """Realistic actions; each writes and flushes, then fails, so its work must roll back."""
    flex.authenticator(custom_caller)

    @flex.scope(User)
    def hide_user_3(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        return statement.where(User.id != 3)

    @flex.action(User, for_instance=True, params=[{"name": "note", "field": "TextField"}])
    def touch(user: User, params: dict[str, Any]) -> None:
        runs["touch"] += 1
        user.name = "touched"
        db.session.flush()
        raise ActionError("touch always fails after writing")

    @flex.action(User, bulk=True, scope=lambda statement, caller: statement.where(User.id < 100))
    def block(users: list[User], params: dict[str, Any]) -> bool:
        runs["block"] += 1
        for user in users:
            user.is_blocked = True
        db.session.flush()
        return False

    @flex.action(Tag, bulk=True)
    def relabel(tags: list[Tag], params: dict[str, Any]) -> bool:
        runs["relabel"] += 1
        for tag in tags:
            tag.label = "changed"
        db.session.flush()
        return False

    @flex.action(Device, bulk=True, permission="clerk")
    def rename(devices: list[Device], params: dict[str, Any]) -> bool:
        runs["rename"] += 1
        for device in devices:
            device.name = "changed"
        db.session.flush()
        return False

    @flex.action(
        Order,
        bulk=True,
        permission=lambda caller, action, model: caller.superuser or caller.has_role("clerk"),
    )
    def refund(orders: list[Order], params: dict[str, Any]) -> None:
        runs["refund"] += 1
        for order in orders:
            order.refunded = order.total
        db.session.flush()
        raise ActionError(errors={"amount": ["refund always fails after writing"]})

    @flex.action(
        Order,
        permission="finance",
        lock=True,
        params=[
            {"name": "user", "field": "ForeignKey", "required": True,
             "params": {"related_model": {"model": "users"}}},
            {"name": "amount", "field": "DecimalField", "required": True},
            {"name": "at", "field": "DateTimeField"},
        ],
    )  # fmt: skip
    def import_orders(model: type[Order], params: dict[str, Any]) -> bool:
        runs["import_orders"] += 1
        amount: decimal.Decimal = params["amount"]
        if abs(amount) >= 10**9:
            raise ActionError(errors={"amount": ["Too large for an order."]})
        at: dt.datetime | None = params.get("at")
        user: User = params["user"]
        db.session.add(model(id=1000, user_id=user.id, total=amount, note=str(at)))
        db.session.flush()
        return False

    @flex.action(Order, bulk=True, atomic=False, lock=True)
    def settle(orders: list[Order], params: dict[str, Any]) -> bool:
        """Record by record, each in a SAVEPOINT: every record fails one way or the other."""
        runs["settle"] += 1
        [order] = orders
        order.note = "settled"
        db.session.flush()
        if order.id % 2:
            raise ActionError("settle always fails after writing")
        return False

    @flex.action(params=[{"name": "count", "field": "IntegerField"}])
    def ping(params: dict[str, Any]) -> None:
        runs["ping"] += 1
        db.session.add(User(id=999, name="ping"))
        db.session.flush()
        raise ActionError("ping always fails after writing")


# Strategies


def pick(draw: st.DrawFn, *choices: tuple[int, st.SearchStrategy[Any]]) -> Any:
    """Draw from one of ``choices``, each chosen in proportion to its weight."""
    roll = draw(st.integers(0, sum(weight for weight, _ in choices) - 1))
    for weight, strategy in choices:
        if roll < weight:
            return draw(strategy)
        roll -= weight
    raise AssertionError("unreachable")


def pick_from(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A strategy drawing from ``choices`` in proportion to their weights."""
    return st.composite(lambda draw: pick(draw, *choices))()


#: Text with any code point; one in five may hold lone surrogates, which can only travel as
#: JSON escapes or as bytes that are not UTF-8 (and so fail the whole body).
any_text = pick_from(
    (4, st.text(max_size=12)),
    (1, st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)),
)
#: What a header can carry through WSGI: printable Latin-1.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    | st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
    max_size=40,
)
edge_ints = st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**400]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
id_like = pick_from(
    (4, st.sampled_from([1, 2, 3, 4, 999, "1", "2", "alpha", "beta", str(DEVICE), "1,2"])),
    (1, st.sampled_from([" 1", "+1", "1_000", "\uff11", "0x10", "1e3", 1.0, True, None, ""])),
    (1, st.sampled_from([[1], [[1]], str(DEVICE).upper(), 2**31, 2**63, -1, 0])),
    (1, scalars),
)
ids_like = pick_from(
    (1, id_like),
    (3, st.lists(id_like, max_size=5)),
    (1, st.lists(id_like.map(str), min_size=1, max_size=5).map(",".join)),
)
amounts = st.sampled_from(
    [1, 0, "12.50", "-0.01", "1e5", "1E-100", "9" * 70, "1e101", 12.345, "NaN", "", "x", True]
)
datetimes = st.sampled_from(
    ["2024-05-01T10:30:00Z", "2024-02-30T00:00:00", "0001-01-01T00:00:00+23:59", "2024-05-01"]
    + ["9999-12-31T23:59:59.999999-00:00", "2024-05-01 10:30", "2024-05-01T24:00:00", "", 0]
)
#: The user's values: often the declared params with plausible values, else anything.
user_params = pick_from(
    (
        3,
        st.fixed_dictionaries(
            {},
            optional={
                "note": any_text,
                "user": id_like,
                "amount": amounts,
                "at": datetimes,
                "count": id_like,
            },
        ),
    ),
    (1, st.dictionaries(st.sampled_from(PARAM_NAMES) | any_text, json_values, max_size=5)),
)


@st.composite
def execute_params(draw: st.DrawFn) -> dict[str, Any]:
    """``params`` of an ``execute_action``: mostly an action with its own collection."""
    if pick(draw, (4, st.just(True)), (1, st.just(False))):
        name: Any = draw(st.sampled_from(sorted(ACTIONS)))
        model: Any = ACTIONS[name]
    else:
        name = pick(draw, (2, st.sampled_from(sorted(ACTIONS))), (1, any_text), (1, json_values))
        model = pick(draw, (2, st.sampled_from(WIRE_NAMES)), (1, any_text), (1, json_values))
    params: dict[str, Any] = {"name": name}
    if model is not None:
        params["model"] = model
    optional: dict[str, tuple[int, st.SearchStrategy[Any]]] = {
        "id": (1, id_like),
        "ids": (2, ids_like),
        "inverseIds": (1, pick_from((4, st.booleans()), (1, scalars))),
        "params": (
            2,
            pick_from((4, user_params), (1, user_params.map(json.dumps)), (1, json_values)),
        ),
    }
    for key, (weight, values) in optional.items():
        if pick(draw, (weight, st.just(True)), (1, st.just(False))):
            params[key] = draw(values)
    if name == "import_orders" and pick(draw, (3, st.just(True)), (1, st.just(False))):
        # Both required params at once, so the ForeignKey and decimal paths are reached.
        form = {"user": id_like, "amount": amounts}
        params["params"] = draw(st.fixed_dictionaries(form, optional={"at": datetimes}))
    return params


@st.composite
def envelope(draw: st.DrawFn) -> dict[str, Any]:
    """A message: mostly ``execute_action`` with params as an object or a JSON string."""
    name = pick(draw, (6, st.just("execute_action")), (1, st.sampled_from(MESSAGE_NAMES)))
    message: dict[str, Any] = {"name": pick(draw, (8, st.just(name)), (1, json_values))}
    params = pick_from(
        (6, execute_params()), (1, execute_params().map(json.dumps)), (1, json_values)
    )
    if pick(draw, (8, st.just(True)), (1, st.just(False))):
        message["params"] = draw(params)
    return message


envelopes = envelope()


@st.composite
def encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    """``values`` as JSON bytes; lone surrogates and ``NaN`` make some of them invalid."""
    value = draw(values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A JSON envelope with a few bytes replaced, cut or inserted."""
    data = bytearray(draw(encoded(envelopes)))
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, min(len(data), start + 4)))
    data[start:end] = draw(st.binary(max_size=4))
    return bytes(data)


def jwt_like(header: Any, payload: Any, signature: bytes) -> str:
    def part(value: Any) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join([part(header), part(payload), part(signature)])


fake_jwts = st.builds(
    jwt_like,
    st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "none", "HS256", "ES256"])}),
    st.fixed_dictionaries(
        {}, optional={"projects": json_values, "exp": scalars, "user": json_values}
    ),
    st.binary(max_size=32),
)
credential_values = st.sampled_from([TOKEN, TOKEN + "x", TOKEN.upper(), "a.b.c"]) | fake_jwts
credentials = st.builds(
    "{} {}".format,
    st.sampled_from(["Token", "Bearer", "JWT", "ProjectToken", "Basic", "bearer", "TOKEN"])
    | header_text,
    credential_values | header_text,
)
authorizations = (
    st.none()
    | st.lists(credentials, min_size=1, max_size=3).map(", ".join)
    | header_text
    | credentials
)
content_types = (
    st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "Application/JSON"]
        + ["application/json; charset=latin-1", "text/plain", "text/json"]
        + ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
    )
    | st.none()
    | header_text
)
origins = (
    st.none()
    | st.sampled_from(["https://app.jetadmin.io", "null", "https://evil.example", "*"])
    | header_text
)
callers = st.none() | st.sampled_from(["clerk", "reader", "nobody"]) | header_text


@st.composite
def header_sets(draw: st.DrawFn, deep: bool) -> dict[str, str | None]:
    """Request headers. ``deep`` mostly sends the shared token and JSON, to reach the handlers;
    otherwise half the requests still pass the front door, so bodies get parsed too."""
    good = f"{draw(st.sampled_from(['Token', 'Bearer']))} {TOKEN}"
    odds = (8, 2) if deep else (1, 1)
    return {
        "Authorization": pick(draw, (odds[0], st.just(good)), (odds[1], authorizations)),
        "Content-Type": pick(
            draw, (odds[0], st.just("application/json")), (odds[1], content_types)
        ),
        "Origin": draw(origins),
        CALLER_HEADER: draw(callers),
    }


deep_requests = st.tuples(encoded(envelopes), header_sets(deep=True), st.booleans())
wild_requests = st.tuples(
    encoded(json_values)
    | encoded(envelopes)
    | damaged()
    | st.binary(max_size=200)
    | any_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    header_sets(deep=False),
    st.booleans(),
)


# The property


def send(client: FlaskClient, data: bytes, headers: dict[str, str | None], chunked: bool) -> Any:
    """POST ``data``; ``chunked`` leaves out the Content-Length, as a chunked upload does."""
    sent = {key: value for key, value in headers.items() if value is not None}
    content_type = sent.pop("Content-Type", None)
    if chunked:
        return client.post(
            URL,
            input_stream=io.BytesIO(data),
            content_type=content_type,
            headers={**sent, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    return client.post(URL, data=data, content_type=content_type, headers=sent)


def check_answer(response: TestResponse) -> None:
    """The one error shape on refusals; ``result: false`` on every 200 of a failing action."""
    body = response.get_json(silent=True)
    if response.status_code == 200:
        assert body is not None
        if isinstance(body, dict):
            assert body["result"] is False, body
        return
    assert set(body) == {"result", "errors", "detail"}, body
    assert body["result"] is False
    [message] = body["errors"]["non_field_errors"]
    assert isinstance(message, str) and message
    assert body["detail"] == message


def record_figures(app: Flask, test: str, figures: dict[str, Any]) -> None:
    """Merge this run's figures into the artifact, keyed by database and test."""
    with app.app_context():
        dialect = db.engine.dialect.name
    FIGURES.parent.mkdir(exist_ok=True)
    recorded = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    recorded[f"{dialect}/{test}"] = figures
    FIGURES.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def run_property(
    app: Flask,
    flex: FlexActions,
    client: FlaskClient,
    requests: st.SearchStrategy[tuple[bytes, dict[str, str | None], bool]],
    test: str,
) -> None:
    seed(app)
    runs: Counter[str] = Counter()
    register(flex, runs)
    seeded = table_rows(app)
    statuses: Counter[int] = Counter()
    figures: dict[str, Any] = {"cases": 0, "5xx": 0, "writes": 0}

    @PROPERTY_SETTINGS
    @given(requests)
    def never_5xx_and_never_writes(request: tuple[bytes, dict[str, str | None], bool]) -> None:
        data, headers, chunked = request
        response = send(client, data, headers, chunked)
        figures["cases"] += 1
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures["5xx"] += 1
        written = table_rows(app) != seeded
        if written:
            figures["writes"] += 1
        assert response.status_code < 500, response.get_data(as_text=True)
        assert not written, "a request left rows behind"
        check_answer(response)

    try:
        never_5xx_and_never_writes()
    finally:
        figures["statuses"] = {str(code): count for code, count in sorted(statuses.items())}
        figures["handler_runs"] = dict(sorted(runs.items()))
        record_figures(app, test, figures)
    assert figures["cases"] >= 500


def test_envelopes_never_5xx_and_never_write(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    """Messages shaped like the protocol, mostly with the shared token: the deep paths."""
    run_property(app, flex, client, deep_requests, "envelopes")


def test_wild_requests_never_5xx_and_never_write(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    """Arbitrary bytes, JSON values and headers: the front door."""
    run_property(app, flex, client, wild_requests, "wild")
