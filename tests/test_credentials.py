"""Jet Admin credentials: JWT verified offline, Token/ProjectToken through a fake project_auth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import Caller, FlexActions, current_caller
from flask_flexactions.access.jet_jwt import load_public_key
from flask_flexactions.config import JET_ADMIN_PUBLIC_KEY
from tests.conftest import AUTH, URL, database_url
from tests.jet import (
    PROJECT,
    FakeJetAdmin,
    KeyPair,
    closed_port_url,
    hs256_token,
    unsigned_token,
    user_claims,
)
from tests.models import User, db

LEEWAY = 30
TIMEOUT = 0.5
TOUCH = {"name": "execute_action", "params": {"name": "touch"}}


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="module")
def other_keys() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="module")
def running_jet() -> Iterator[FakeJetAdmin]:
    with FakeJetAdmin().running() as fake:
        yield fake


@pytest.fixture
def jet(running_jet: FakeJetAdmin) -> FakeJetAdmin:
    running_jet.mode = "yes"
    running_jet.answer = {"result": True, "user": 7, "roles": ["support"]}
    running_jet.requests.clear()
    running_jet.paths.clear()
    return running_jet


@pytest.fixture
def config(keys: KeyPair, jet: FakeJetAdmin) -> dict[str, Any]:
    return {
        "FLEXACTIONS_JET_PROJECT": PROJECT,
        "FLEXACTIONS_JET_PUBLIC_KEY": keys.public_pem,
        "FLEXACTIONS_JET_JWT_LEEWAY": LEEWAY,
        "FLEXACTIONS_JET_PROJECT_TOKEN": "project-token-of-this-app",
        "FLEXACTIONS_JET_API_URL": jet.url,
        "FLEXACTIONS_JET_AUTH_TIMEOUT": TIMEOUT,
    }


@pytest.fixture
def seen(flex: FlexActions) -> list[Caller]:
    """A common action ``touch`` that writes a row and records ``current_caller``."""
    callers: list[Caller] = []

    @flex.action()
    def touch(params: dict[str, Any]) -> str:
        callers.append(current_caller._get_current_object())  # type: ignore[attr-defined]
        db.session.add(User(name="touched"))
        return f"hello {current_caller.id}"

    return callers


def post(client: FlaskClient, authorization: str | None) -> TestResponse:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.post(URL, json=TOUCH, headers=headers)


def user_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User)) or 0


def expired(seconds_ago: int) -> dict[str, Any]:
    return {"exp": int(time.time()) - seconds_ago}


def tampered_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    return f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}"


def tampered_payload(keys: KeyPair) -> str:
    head, _, signature = keys.token().split(".")
    forged = keys.token(user=1, projects={PROJECT: {"owner": True}}).split(".")[1]
    return f"{head}.{forged}.{signature}"


# Each bad credential: how to build the header, and the status it must get.
BAD_CREDENTIALS: list[tuple[str, Any, str, int]] = [
    ("missing", lambda k, o: None, "yes", 401),
    ("wrong-scheme", lambda k, o: "Basic dXNlcjpwYXNz", "yes", 401),
    ("empty-jwt", lambda k, o: "JWT ", "yes", 401),
    ("garbage-jwt", lambda k, o: "JWT not-a.jwt.at-all", "yes", 401),
    ("expired-past-leeway", lambda k, o: "JWT " + k.token(expired(LEEWAY + 60)), "yes", 401),
    ("no-exp", lambda k, o: "JWT " + k.token(exp=None), "yes", 401),
    ("wrong-project", lambda k, o: "JWT " + k.token(projects={"other": {}}), "yes", 401),
    ("projects-missing", lambda k, o: "JWT " + k.token(projects=None), "yes", 401),
    ("alg-none", lambda k, o: "JWT " + unsigned_token(user_claims(), {"alg": "none"}), "yes", 401),
    (
        "hs256-with-public-key",
        lambda k, o: "JWT " + hs256_token(user_claims(), k.public_pem),
        "yes",
        401,
    ),
    ("tampered-signature", lambda k, o: "JWT " + tampered_signature(k.token()), "yes", 401),
    ("tampered-payload", lambda k, o: "JWT " + tampered_payload(k), "yes", 401),
    ("signed-by-another-key", lambda k, o: "JWT " + o.token(), "yes", 401),
    ("wrong-shared-token", lambda k, o: "Bearer not-the-token", "yes", 401),
    # What a command-line argument of undecodable bytes becomes (the CLI's and MCP's --auth).
    ("shared-token-with-a-lone-surrogate", lambda k, o: "Bearer \udcff", "yes", 401),
    ("project-auth-says-no", lambda k, o: "Token user-token", "no", 401),
    ("project-auth-forbids", lambda k, o: "ProjectToken p-token", "forbid", 401),
    ("project-auth-times-out", lambda k, o: "Token user-token", "slow", 503),
    ("project-auth-fails", lambda k, o: "Token user-token", "error", 503),
    ("project-auth-garbage", lambda k, o: "Token user-token", "garbage", 503),
    (
        "read-only-user",
        lambda k, o: "JWT " + k.token(projects={PROJECT: {"read_only": True}}),
        "yes",
        403,
    ),
]


@pytest.mark.parametrize(
    ("build", "mode", "status"),
    [case[1:] for case in BAD_CREDENTIALS],
    ids=[case[0] for case in BAD_CREDENTIALS],
)
def test_bad_credentials_run_nothing(
    app: Flask,
    client: FlaskClient,
    keys: KeyPair,
    other_keys: KeyPair,
    jet: FakeJetAdmin,
    seen: list[Caller],
    build: Any,
    mode: str,
    status: int,
) -> None:
    jet.mode = mode
    jet.delay = TIMEOUT * 4
    response = post(client, build(keys, other_keys))
    assert response.status_code == status
    body = response.get_json()
    assert body["result"] is False and list(body["errors"]) == ["non_field_errors"]
    assert seen == [] and user_count(app) == 0


def fresh_app(tmp_path: Path, **config: Any) -> tuple[Flask, list[str]]:
    """An app of its own (settings are read once in init_app) whose ``touch`` records runs."""
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url(tmp_path), **config)
    db.init_app(app)
    flex = FlexActions(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    ran: list[str] = []
    flex.register_action(lambda params: ran.append("touch"), name="touch")
    return app, ran


def test_project_auth_down(tmp_path: Path, config: dict[str, Any]) -> None:
    app, ran = fresh_app(tmp_path, **{**config, "FLEXACTIONS_JET_API_URL": closed_port_url()})
    response = post(app.test_client(), "Token user-token")
    assert response.status_code == 503
    assert "Jet Admin" in response.get_json()["errors"]["non_field_errors"][0]
    assert ran == []


def test_expired_within_leeway_is_accepted(
    client: FlaskClient, keys: KeyPair, seen: list[Caller]
) -> None:
    response = post(client, "JWT " + keys.token(expired(LEEWAY - 20)))
    assert response.status_code == 200
    assert len(seen) == 1


def test_jwt_caller(client: FlaskClient, keys: KeyPair, seen: list[Caller]) -> None:
    entry = {"group": {"name": "Sales"}, "roles": ["finance", 3], "owner": False}
    response = post(client, "JWT " + keys.token(projects={PROJECT: entry}))
    assert response.get_json() == {"result": True, "message": "hello 42"}
    (caller,) = seen
    assert caller.id == "42" and caller.name == "ann@example.com"
    assert caller.roles == {"Sales", "finance"}
    assert caller.scheme == "jwt" and not caller.superuser and not caller.read_only
    assert caller.claims["projects"] == {PROJECT: entry}


@pytest.mark.parametrize("flag", ["owner", "super_group"])
def test_jet_owner_is_superuser(
    client: FlaskClient, keys: KeyPair, seen: list[Caller], flag: str
) -> None:
    assert post(client, "JWT " + keys.token(projects={PROJECT: {flag: True}})).status_code == 200
    assert seen[0].superuser


def test_projects_claim_as_a_list(client: FlaskClient, keys: KeyPair, seen: list[Caller]) -> None:
    assert post(client, "JWT " + keys.token(projects=["x", PROJECT])).status_code == 200
    assert seen[0].roles == frozenset()


def test_jwt_scheme_is_case_insensitive_and_may_sit_among_other_entries(
    client: FlaskClient, keys: KeyPair, seen: list[Caller]
) -> None:
    header = f"ProjectToken abc;env=prod, jwt {keys.token()};user=1"
    assert post(client, header).status_code == 200
    assert seen[0].scheme == "jwt"


def test_an_invalid_jwt_is_not_rescued_by_the_shared_token(
    client: FlaskClient, keys: KeyPair, seen: list[Caller]
) -> None:
    header = f"JWT {tampered_signature(keys.token())}, {AUTH['Authorization']}"
    assert post(client, header).status_code == 401
    assert seen == []


def test_shared_token_caller_is_a_superuser(client: FlaskClient, seen: list[Caller]) -> None:
    assert post(client, AUTH["Authorization"]).status_code == 200
    assert seen[0].scheme == "token" and seen[0].superuser


def test_project_auth_accepts_and_sends_the_form(
    client: FlaskClient, jet: FakeJetAdmin, seen: list[Caller]
) -> None:
    response = post(client, "Token user-token;environment=prod;token=forged")
    assert response.status_code == 200
    assert jet.paths == ["/api/project_auth/"]
    assert jet.requests == [
        {"environment": "prod", "token": "user-token", "project_token": "project-token-of-this-app"}
    ]
    (caller,) = seen
    assert caller.scheme == "project_auth" and caller.id == "7" and caller.roles == {"support"}


def test_project_auth_forwards_parameter_values_holding_equals_signs(
    client: FlaskClient, jet: FakeJetAdmin, seen: list[Caller]
) -> None:
    """A value is everything after the first ``=``: a base64 signature keeps its padding."""
    response = post(client, "Token user-token;sig=YWJjZA==;q=a=b")
    assert response.status_code == 200
    assert jet.requests == [
        {
            "sig": "YWJjZA==",
            "q": "a=b",
            "token": "user-token",
            "project_token": "project-token-of-this-app",
        }
    ]
    assert len(seen) == 1


def test_project_auth_answers_are_cached(
    client: FlaskClient, jet: FakeJetAdmin, seen: list[Caller]
) -> None:
    for _ in range(3):
        assert post(client, "Token cached-token").status_code == 200
    assert len(jet.requests) == 1 and len(seen) == 3
    # A refusal is never cached: the next try asks again.
    jet.mode = "no"
    assert post(client, "Token refused-token").status_code == 401
    assert post(client, "Token refused-token").status_code == 401
    assert len(jet.requests) == 3


@pytest.mark.parametrize("cache_seconds", [0])
def test_project_auth_cache_can_be_off(
    app: Flask, client: FlaskClient, jet: FakeJetAdmin, seen: list[Caller], cache_seconds: int
) -> None:
    state = app.extensions["flexactions"]
    state.authenticate.project_auth.cache_seconds = cache_seconds
    for _ in range(2):
        assert post(client, "Token t").status_code == 200
    assert len(jet.requests) == 2


def test_project_auth_cache_expires(app: Flask, jet: FakeJetAdmin, seen: list[Caller]) -> None:
    now = [1000.0]
    project_auth = app.extensions["flexactions"].authenticate.project_auth
    project_auth._clock = lambda: now[0]
    client = app.test_client()
    assert post(client, "Token t").status_code == 200
    now[0] += project_auth.cache_seconds - 1
    assert post(client, "Token t").status_code == 200
    assert len(jet.requests) == 1
    now[0] += 2
    assert post(client, "Token t").status_code == 200
    assert len(jet.requests) == 2


def test_read_only_project_auth_user_gets_an_empty_list(
    client: FlaskClient, jet: FakeJetAdmin, seen: list[Caller]
) -> None:
    jet.answer = {"result": True, "read_only": True}
    response = client.post(
        URL, json={"name": "get_action_list"}, headers={"Authorization": "Token ro"}
    )
    assert response.status_code == 200 and response.get_json() == []


# Configuration


def test_the_default_public_key_is_jet_admins_rsa_key() -> None:
    key = load_public_key(JET_ADMIN_PUBLIC_KEY)
    assert key.key_size == 4096


def test_a_token_of_another_key_fails_against_the_default_key(
    tmp_path: Path, keys: KeyPair
) -> None:
    app, ran = fresh_app(tmp_path, FLEXACTIONS_JET_PROJECT=PROJECT)
    assert post(app.test_client(), "JWT " + keys.token()).status_code == 401
    assert ran == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("FLEXACTIONS_JET_PUBLIC_KEY", "not a key", "PEM"),
        ("FLEXACTIONS_JET_PUBLIC_KEY", 42, "PEM"),
        ("FLEXACTIONS_JET_API_URL", "ftp://x", "http(s) URL"),
        ("FLEXACTIONS_JET_AUTH_TIMEOUT", 0, "seconds"),
        ("FLEXACTIONS_JET_AUTH_TIMEOUT", "5", "seconds"),
        ("FLEXACTIONS_JET_JWT_LEEWAY", -1, "integer >= 0"),
        ("FLEXACTIONS_JET_AUTH_CACHE_SECONDS", 1.5, "integer >= 0"),
        ("FLEXACTIONS_JET_PROJECT", 7, "project name"),
        ("FLEXACTIONS_JET_PROJECT_TOKEN", b"x", "a token"),
        ("FLEXACTIONS_MAX_IDS", 0, "integer >= 1"),
    ],
)
def test_bad_configuration_fails_in_init_app(
    tmp_path: Path, key: str, value: Any, message: str
) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url(tmp_path))
    app.config.update({"FLEXACTIONS_JET_PROJECT": PROJECT, key: value})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FlexActions(app, db=db)


def test_an_ec_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="RSA"):
        load_public_key(pem)
