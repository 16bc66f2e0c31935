"""Authentication (fail closed) and CORS headers on every answer of the Messages URL."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Request, abort, send_file
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions, PermissionDenied
from flask_flexactions.access.auth import NOT_CONFIGURED, Credential, parse_authorization
from flask_flexactions.access.cors import add_answer_headers
from tests.conftest import AUTH, TOKEN, URL, database_url
from tests.models import User, db

JET = "https://app.jetadmin.io"
INVALID = "Missing or invalid credentials in the Authorization header."
PING = {"name": "execute_action", "params": {"name": "ping"}}
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSE = "Content-Disposition, Content-Type"


def error_body(message: str) -> dict[str, Any]:
    """The body of an error status: one message, repeated as ``detail``."""
    return {"result": False, "errors": {"non_field_errors": [message]}, "detail": message}


@pytest.fixture
def calls(flex: FlexActions) -> list[str]:
    """A common action ``ping`` that records its calls and answers "pong"."""
    recorded: list[str] = []

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        recorded.append("ping")
        return "pong"

    return recorded


def post(client: FlaskClient, headers: dict[str, str], body: Any = PING) -> TestResponse:
    return client.post(URL, json=body, headers=headers)


def assert_unauthorized(response: TestResponse, message: str = INVALID) -> None:
    assert response.status_code == 401
    assert response.get_json() == error_body(message)
    assert response.headers["WWW-Authenticate"] == 'Token realm="flexactions"'


# The shared token


REFUSED = [
    (None, "no-header"),
    ("", "empty"),
    ("   ", "blank"),
    ("Token", "scheme-only"),
    ("Token ", "scheme-and-space"),
    (TOKEN, "value-without-scheme"),
    ("Token wrong", "wrong-token"),
    (f"Token {TOKEN[:-1]}", "token-prefix"),
    (f"Token {TOKEN}x", "token-with-suffix"),
    (f"Token {TOKEN.upper()}", "token-other-case"),
    (f"Token {TOKEN} extra", "token-then-word"),
    (f"Token x{TOKEN}", "token-with-prefix"),
    (f"Basic {TOKEN}", "basic-scheme"),
    ("Basic dXNlcjpzM2NyZXQtdGVzdC10b2tlbg==", "basic-credentials"),
    (f"JWT {TOKEN}", "jwt-scheme"),
    (f"ProjectToken {TOKEN}", "project-token-scheme"),
    (f"Tokens {TOKEN}", "scheme-typo"),
    (f"Token{TOKEN}", "no-space"),
    (f"Token={TOKEN}", "equals-sign"),
    (f"Token wrong, Basic {TOKEN}", "several-none-right"),
    (f"Token ;{TOKEN}", "token-in-params-position"),
    (f"Token a;token={TOKEN}", "token-as-a-param"),
]


@pytest.mark.parametrize("authorization", [a for a, _ in REFUSED], ids=[i for _, i in REFUSED])
def test_refused_credentials_are_401_and_nothing_runs(
    client: FlaskClient, calls: list[str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthorized(post(client, headers))
    assert calls == []


ACCEPTED = [
    (f"Token {TOKEN}", "token"),
    (f"Bearer {TOKEN}", "bearer"),
    (f"token {TOKEN}", "token-lower-case"),
    (f"TOKEN {TOKEN}", "token-upper-case"),
    (f"BEARER {TOKEN}", "bearer-upper-case"),
    (f"bEaReR {TOKEN}", "bearer-mixed-case"),
    (f"Token   {TOKEN}", "several-spaces-before"),
    (f"Token {TOKEN}   ", "spaces-after"),
    (f"   Token {TOKEN}", "spaces-before-scheme"),
    (f"JWT abc.def.ghi, Token {TOKEN}", "second-of-two"),
    (f"Token {TOKEN}, JWT abc.def.ghi", "first-of-two"),
    (f"Token wrong, Bearer {TOKEN}", "wrong-then-right"),
    (f"Basic xyz,Token {TOKEN},JWT e", "no-spaces-after-commas"),
    (f"Token {TOKEN};project=shop", "one-param"),
    (f"Token {TOKEN} ; project=shop ; user=1", "params-with-spaces"),
    (f"JWT a.b.c;project=x, Token {TOKEN};user=2", "params-on-each-entry"),
    (f"Token {TOKEN};", "empty-params"),
    (f"Basic x, Token {TOKEN}", "after-another-scheme"),
    (f"Token {TOKEN}, Token wrong", "right-then-wrong"),
    (f"Bearer {TOKEN}, Token wrong, Bearer x", "right-then-two-wrong"),
    (f"Token {TOKEN};sig=YWJj==;x=a=b", "equals-signs-in-params"),
    (f"Token, , Bearer ;x=1, Token {TOKEN}", "entries-without-a-value-first"),
]


@pytest.mark.parametrize("authorization", [a for a, _ in ACCEPTED], ids=[i for _, i in ACCEPTED])
def test_accepted_credentials(client: FlaskClient, calls: list[str], authorization: str) -> None:
    response = post(client, {"Authorization": authorization})
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": "pong"}
    assert calls == ["ping"]


@pytest.mark.parametrize(
    ("header", "credentials"),
    [
        ("Token abc", [Credential("token", "abc", {})]),
        (
            "Basic x, Token abc",
            [Credential("basic", "x", {}), Credential("token", "abc", {})],
        ),
        (
            "Token abc;sig=YWJj==; env = prod ;flag",
            [Credential("token", "abc", {"sig": "YWJj==", "env": "prod", "flag": ""})],
        ),
        ("ProjectToken t;q=a=b=c", [Credential("projecttoken", "t", {"q": "a=b=c"})]),
        (" , Token ,JWT a.b.c", [Credential("jwt", "a.b.c", {})]),
    ],
    ids=["one", "two-entries", "params", "equals-in-a-value", "empty-entries-skipped"],
)
def test_parse_authorization(header: str, credentials: list[Credential]) -> None:
    """A parameter's value is everything after its first ``=`` (base64 ends in ``=``)."""
    assert parse_authorization(header) == credentials


def test_get_action_list_needs_credentials_too(client: FlaskClient, calls: list[str]) -> None:
    assert_unauthorized(post(client, {}, {"name": "get_action_list"}))
    assert post(client, AUTH, {"name": "get_action_list"}).status_code == 200


def test_auth_is_checked_before_anything_else(client: FlaskClient, calls: list[str]) -> None:
    response = client.post(URL, data=b"not json", content_type="text/plain")
    assert_unauthorized(response)
    response = client.post(URL, data=b"{", content_type="application/json")
    assert_unauthorized(response)


@pytest.mark.parametrize(
    "config", [{"FLEXACTIONS_TOKEN": None}, {"FLEXACTIONS_TOKEN": ""}], ids=["none", "empty"]
)
@pytest.mark.parametrize(
    "authorization",
    [None, f"Token {TOKEN}", "Token ", "Token None", "Bearer"],
    ids=["no-header", "old-token", "empty-token", "none-token", "bare-bearer"],
)
def test_no_auth_configured_refuses_everything(
    client: FlaskClient, calls: list[str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = post(client, headers)
    assert_unauthorized(response, NOT_CONFIGURED)
    assert "FLEXACTIONS_TOKEN" in response.get_json()["errors"]["non_field_errors"][0]
    assert "@flex.authenticator" in response.get_json()["errors"]["non_field_errors"][0]
    assert calls == []


# A custom authenticator


def test_authenticator_accepts(app: Flask, flex: FlexActions, client: FlaskClient) -> None:
    seen: list[str | None] = []
    ran: list[str] = []

    @flex.authenticator
    def lookup(request: Request) -> Any:
        seen.append(request.headers.get("X-User"))
        return {"user": "alice"} if request.headers.get("X-User") == "alice" else None

    @flex.action()
    def whoami(params: dict[str, Any]) -> str:
        ran.append("whoami")
        return "ok"

    body = {"name": "execute_action", "params": {"name": "whoami"}}
    response = post(client, {"X-User": "alice"}, body)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": "ok"}
    assert seen == ["alice"] and ran == ["whoami"]


@pytest.mark.parametrize("refusal", [None, False, "", 0, [], {}], ids=repr)
def test_authenticator_refuses(flex: FlexActions, client: FlaskClient, refusal: Any) -> None:
    ran: list[str] = []

    @flex.authenticator
    def lookup(request: Request) -> Any:
        return refusal

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        ran.append("ping")

    assert_unauthorized(post(client, {"Authorization": "Token wrong"}))
    assert ran == []


def deny() -> None:
    raise PermissionDenied("Not for you.")


def abort_403() -> None:
    abort(403)


@pytest.mark.parametrize("raise_", [deny, abort_403], ids=["permission-denied", "abort-403"])
def test_authenticator_may_deny_with_403(
    flex: FlexActions, client: FlaskClient, raise_: Any
) -> None:
    ran: list[str] = []

    @flex.authenticator
    def lookup(request: Request) -> Any:
        raise_()

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        ran.append("ping")

    response = post(client, {})
    assert response.status_code == 403
    body = response.get_json()
    assert body["result"] is False and list(body["errors"]) == ["non_field_errors"]
    assert ran == []


def test_token_is_tried_before_the_authenticator(
    flex: FlexActions, client: FlaskClient, calls: list[str]
) -> None:
    consulted: list[str] = []

    @flex.authenticator
    def lookup(request: Request) -> Any:
        consulted.append("lookup")
        return "someone"

    assert post(client, AUTH).status_code == 200
    assert consulted == []
    # A wrong token falls through to the authenticator, which accepts.
    assert post(client, {"Authorization": "Token wrong"}).status_code == 200
    assert consulted == ["lookup"]
    assert calls == ["ping", "ping"]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_TOKEN": None}])
def test_authenticator_alone_without_a_token(
    flex: FlexActions, client: FlaskClient, calls: list[str]
) -> None:
    @flex.authenticator
    def lookup(request: Request) -> Any:
        return request.headers.get("Authorization") == "Session abc"

    assert post(client, {"Authorization": "Session abc"}).status_code == 200
    # The message is the plain refusal, not the "not configured" one.
    assert_unauthorized(post(client, {"Authorization": f"Token {TOKEN}"}))
    assert calls == ["ping"]


def test_authenticator_given_to_the_constructor(tmp_path: Path) -> None:
    flex = FlexActions(db=db, authenticator=lambda request: request.headers.get("X-Key") == "k")
    ran: list[str] = []

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        ran.append("ping")

    app = Flask(__name__)
    app.config.update(TESTING=True, SQLALCHEMY_DATABASE_URI=database_url(tmp_path))
    db.init_app(app)
    flex.init_app(app)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    client = app.test_client()
    assert post(client, {"X-Key": "k"}).get_json() == {"result": True}
    assert_unauthorized(post(client, {"X-Key": "nope"}))
    assert ran == ["ping"]
    with app.app_context():
        db.engine.dispose()


# Preflight


@pytest.mark.parametrize("url", ["/flex/messages/", "/flex/messages"])
@pytest.mark.parametrize(
    "config", [{}, {"FLEXACTIONS_TOKEN": None}], ids=["token", "no-auth-configured"]
)
def test_preflight_is_204_without_credentials_and_runs_nothing(
    flex: FlexActions, client: FlaskClient, calls: list[str], url: str
) -> None:
    consulted: list[str] = []

    @flex.authenticator
    def lookup(request: Request) -> Any:
        consulted.append("lookup")
        return None

    response = client.options(
        url,
        headers={
            "Origin": JET,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        json=PING,
    )
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == JET
    assert response.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in response.headers.getlist("Vary")
    assert "WWW-Authenticate" not in response.headers
    assert calls == [] and consulted == []


@pytest.mark.parametrize("config", [{"FLEXACTIONS_CORS_MAX_AGE": 60}])
def test_preflight_max_age_follows_the_config(client: FlaskClient) -> None:
    response = client.options(URL, headers={"Origin": JET})
    assert response.status_code == 204
    assert response.headers["Access-Control-Max-Age"] == "60"


def test_max_age_is_only_on_preflights(client: FlaskClient, calls: list[str]) -> None:
    response = post(client, {**AUTH, "Origin": JET})
    assert "Access-Control-Max-Age" not in response.headers


# CORS headers on every kind of answer


def assert_cors(response: TestResponse, origin: str | None) -> None:
    if origin is None:
        assert "Access-Control-Allow-Origin" not in response.headers
    else:
        assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers.getlist("Access-Control-Allow-Origin") in ([], [origin])
    assert "Origin" in [v.strip() for h in response.headers.getlist("Vary") for v in h.split(",")]
    assert response.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
    assert response.headers["Access-Control-Expose-Headers"] == EXPOSE


@pytest.fixture
def every_answer(app: Flask, flex: FlexActions) -> None:
    """Actions answering 200, 403, 404, 500 and a file."""
    with app.app_context():
        db.session.add(User(id=1, name="a"))
        db.session.commit()

    @flex.action()
    def ok(params: dict[str, Any]) -> str:
        return "ok"

    @flex.action()
    def crash(params: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    @flex.action()
    def forbidden(params: dict[str, Any]) -> None:
        abort(403)

    @flex.action()
    def failing(params: dict[str, Any]) -> bool:
        return False

    @flex.action()
    def download(params: dict[str, Any]) -> Any:
        return send_file(
            io.BytesIO(b"a,b\n"), mimetype="text/csv", as_attachment=True, download_name="x.csv"
        )


def run(name: str) -> dict[str, Any]:
    return {"name": "execute_action", "params": {"name": name}}


ANSWERS = [
    (AUTH, "application/json", run("ok"), 200, "success"),
    (AUTH, "application/json", run("failing"), 200, "result-false"),
    ({}, "application/json", run("ok"), 401, "unauthorized"),
    (AUTH, "application/json", {"name": "nope"}, 400, "bad-request"),
    (AUTH, "application/json", run("forbidden"), 403, "forbidden"),
    (AUTH, "application/json", run("missing"), 404, "not-found"),
    (AUTH, "text/plain", run("ok"), 415, "unsupported-media-type"),
    (AUTH, "application/json", run("crash"), 500, "server-error"),
    (AUTH, "application/json", run("download"), 200, "file"),
]


@pytest.mark.parametrize(
    ("headers", "content_type", "body", "status"),
    [(h, c, b, s) for h, c, b, s, _ in ANSWERS],
    ids=[i for *_, i in ANSWERS],
)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(JET, JET), ("https://evil.example", None), (None, None)],
    ids=["allowed-origin", "other-origin", "no-origin"],
)
def test_cors_headers_on_every_answer(
    every_answer: None,
    client: FlaskClient,
    headers: dict[str, str],
    content_type: str,
    body: Any,
    status: int,
    origin: str | None,
    allowed: str | None,
) -> None:
    sent = dict(headers) if origin is None else {**headers, "Origin": origin}
    response = client.post(URL, data=json.dumps(body), content_type=content_type, headers=sent)
    assert response.status_code == status
    assert_cors(response, allowed)


def test_cors_on_body_too_large(client: FlaskClient, calls: list[str]) -> None:
    response = client.post(
        URL,
        data=b" " * (1024 * 1024 + 1),
        content_type="application/json",
        headers={**AUTH, "Origin": JET},
    )
    assert response.status_code == 413
    assert_cors(response, JET)


@pytest.mark.parametrize(
    "origin",
    [
        "https://APP.jetadmin.io",
        "http://app.jetadmin.io",
        "https://app.jetadmin.io.evil.example",
        "https://app.jetadmin.io/",
        "null",
        "*",
    ],
)
def test_near_miss_origins_are_not_allowed(
    client: FlaskClient, calls: list[str], origin: str
) -> None:
    response = post(client, {**AUTH, "Origin": origin})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("config", [{"FLEXACTIONS_CORS_ORIGINS": ["*"]}])
@pytest.mark.parametrize("origin", [JET, "https://anything.example", "null"])
def test_any_origin(client: FlaskClient, calls: list[str], origin: str) -> None:
    response = post(client, {**AUTH, "Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response = client.options(URL, headers={"Origin": origin})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response = post(client, {"Origin": origin})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_any_origin_without_an_origin_header(client: FlaskClient, calls: list[str]) -> None:
    response = post(client, AUTH)
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "config",
    [
        {"FLEXACTIONS_CORS_ORIGINS": ["https://a.example", "https://b.example"]},
        {"FLEXACTIONS_CORS_ORIGINS": ("https://a.example", "https://b.example")},
        {"FLEXACTIONS_CORS_ORIGINS": "https://a.example, https://b.example"},
        {"FLEXACTIONS_CORS_ORIGINS": " https://a.example ,https://b.example,, "},
    ],
    ids=["list", "tuple", "comma-string", "comma-string-with-blanks"],
)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example", "https://a.example"),
        ("https://b.example", "https://b.example"),
        (JET, None),
        ("https://a.example, https://b.example", None),
    ],
    ids=["first", "second", "default-no-longer-allowed", "the-whole-string"],
)
def test_configured_origins(
    client: FlaskClient, calls: list[str], origin: str, allowed: str | None
) -> None:
    response = post(client, {**AUTH, "Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == allowed


@pytest.mark.parametrize("config", [{"FLEXACTIONS_CORS_ORIGINS": []}])
def test_no_origins_allowed(client: FlaskClient, calls: list[str]) -> None:
    response = post(client, {**AUTH, "Origin": JET})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "config",
    [
        {"FLEXACTIONS_CORS_ALLOW_HEADERS": ["X-Project", "X-User"]},
        {"FLEXACTIONS_CORS_ALLOW_HEADERS": "X-Project, X-User"},
        {"FLEXACTIONS_CORS_ALLOW_HEADERS": "X-Project,X-User,"},
    ],
    ids=["list", "comma-string", "comma-string-trailing-comma"],
)
def test_extra_allowed_headers(client: FlaskClient, calls: list[str]) -> None:
    expected = "Authorization, Content-Type, Idempotency-Key, X-Project, X-User"
    response = client.options(URL, headers={"Origin": JET})
    assert response.headers["Access-Control-Allow-Headers"] == expected
    response = post(client, {**AUTH, "Origin": JET})
    assert response.headers["Access-Control-Allow-Headers"] == expected
    response = post(client, {"Origin": JET})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Headers"] == expected


def test_cors_is_only_on_the_blueprint(app: Flask, client: FlaskClient) -> None:
    @app.route("/elsewhere")
    def elsewhere() -> str:
        return "x"

    response = client.get("/elsewhere", headers={"Origin": JET})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


class _OtherList(list[tuple[str, str]]):
    """Pairs kept in something other than a plain list, as another werkzeug might."""


@pytest.mark.parametrize("kept_in", [list, _OtherList], ids=["werkzeug-list", "other"])
def test_answer_headers_are_added_whatever_keeps_the_pairs(kept_in: type) -> None:
    headers = Headers([("Content-Type", "text/csv"), ("Access-Control-Allow-Origin", "*")])
    headers._list = kept_in(headers._list)  # type: ignore[attr-defined]
    add_answer_headers(headers, (("X-Content-Type-Options", "nosniff"), ("Vary", "Origin")))
    assert list(headers.items()) == [
        ("Content-Type", "text/csv"),
        ("X-Content-Type-Options", "nosniff"),
        ("Vary", "Origin"),
    ]
