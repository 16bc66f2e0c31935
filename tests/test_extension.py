"""The FlexActions extension: initialisation, its database, configuration and several apps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import FlexActions
from tests.conftest import AUTH, TOKEN, URL, database_url
from tests.models import User, db

MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    """Build bare Flask apps (db initialised, tables created) and clean them up afterwards."""
    made: list[Flask] = []

    def make(name: str = "app", with_db: bool = True, **config: Any) -> Flask:
        app = Flask(name)
        app.config.update(TESTING=True, FLEXACTIONS_TOKEN=TOKEN)
        (tmp_path / name).mkdir(exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url(tmp_path / name)
        app.config.update(config)
        if with_db:
            db.init_app(app)
            with app.app_context():
                db.create_all()
            made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def serve(app: Flask, flex: FlexActions) -> Any:
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app.test_client()


def execute(client: Any, action: str, headers: dict[str, str] = AUTH, **params: Any) -> Any:
    body = {"name": "execute_action", "params": {"name": action, **params}}
    return client.post(URL, json=body, headers=headers)


def action_names(client: Any) -> list[str]:
    response = client.post(URL, json={"name": "get_action_list"}, headers=AUTH)
    assert response.status_code == 200
    return [action["name"] for action in response.get_json()]


# init_app


def test_init_app_twice_is_a_runtime_error(app: Flask, flex: FlexActions) -> None:
    with pytest.raises(RuntimeError, match="already initialised.*init_app once per app"):
        flex.init_app(app, db=db)
    with pytest.raises(RuntimeError, match="already initialised"):
        FlexActions().init_app(app, db=db)


def test_init_app_without_any_db_is_a_runtime_error(make_app: MakeApp) -> None:
    app = make_app(with_db=False)
    flex = FlexActions()
    with pytest.raises(RuntimeError, match=r"db\.init_app\(app\).*flex\.init_app\(app, db=db\)"):
        flex.init_app(app)
    assert "flexactions" not in app.extensions
    with pytest.raises(RuntimeError, match="Flask-SQLAlchemy"):
        FlexActions(app)


def test_db_defaults_to_the_one_registered_on_the_app(make_app: MakeApp) -> None:
    app = make_app()
    flex = FlexActions()
    flex.init_app(app)
    assert app.extensions["flexactions"].db is db
    assert app.extensions["sqlalchemy"] is db
    with app.app_context():
        db.session.add(User(id=1, name="ada"))
        db.session.commit()

    @flex.action(User, for_instance=True)
    def rename(user: User, params: dict[str, Any]) -> str:
        user.name = "grace"
        return "renamed"

    client = serve(app, flex)
    assert execute(client, "rename", model="users", id=1).get_json() == {
        "result": True,
        "message": "renamed",
    }
    with app.app_context():
        assert db.session.get(User, 1).name == "grace"


def test_constructor_form_with_app_and_db(make_app: MakeApp) -> None:
    app = make_app()
    flex = FlexActions(app, db=db)
    assert app.extensions["flexactions"].db is db

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    client = serve(app, flex)
    assert execute(client, "ping").get_json() == {"result": True, "message": "pong"}


def test_constructor_form_with_app_only(make_app: MakeApp) -> None:
    app = make_app()
    flex = FlexActions(app)
    assert app.extensions["flexactions"].db is db
    assert app.extensions["flexactions"].registry is flex.registry


def test_db_given_to_init_app_wins_over_the_constructor(make_app: MakeApp) -> None:
    other = SQLAlchemy()
    app = make_app()
    flex = FlexActions(db=other)
    flex.init_app(app, db=db)
    assert app.extensions["flexactions"].db is db
    app2 = make_app("app2", with_db=False)
    other.init_app(app2)
    flex.init_app(app2)
    assert app2.extensions["flexactions"].db is other


def test_blueprint_is_one_object(flex: FlexActions) -> None:
    assert flex.blueprint is flex.blueprint


# Configuration


INVALID_CONFIG = [
    ("FLEXACTIONS_MAX_BODY", 0),
    ("FLEXACTIONS_MAX_BODY", -1),
    ("FLEXACTIONS_MAX_BODY", "1000"),
    ("FLEXACTIONS_MAX_BODY", 1.5),
    ("FLEXACTIONS_MAX_BODY", 1000.0),
    ("FLEXACTIONS_MAX_BODY", True),
    ("FLEXACTIONS_MAX_BODY", None),
    ("FLEXACTIONS_MAX_DEPTH", 0),
    ("FLEXACTIONS_MAX_DEPTH", "64"),
    ("FLEXACTIONS_ID_CHUNK_SIZE", 0),
    ("FLEXACTIONS_ID_CHUNK_SIZE", -1000),
    ("FLEXACTIONS_CORS_MAX_AGE", 0),
    ("FLEXACTIONS_CORS_MAX_AGE", -1),
    ("FLEXACTIONS_TOKEN", 123),
    ("FLEXACTIONS_TOKEN", b"secret"),
    ("FLEXACTIONS_TOKEN", ["secret"]),
    ("FLEXACTIONS_TOKEN", True),
    # Sent in answer headers as they are: a line break would split the header.
    ("FLEXACTIONS_CORS_ORIGINS", ["https://a.example\r\nSet-Cookie: x=1"]),
    ("FLEXACTIONS_CORS_ALLOW_HEADERS", ["X-Api-Key\nX-Other"]),
]


@pytest.mark.parametrize(
    ("key", "value"), INVALID_CONFIG, ids=[f"{k[12:]}={v!r}" for k, v in INVALID_CONFIG]
)
def test_invalid_config_is_a_value_error(make_app: MakeApp, key: str, value: Any) -> None:
    app = make_app(**{key: value})
    with pytest.raises(ValueError, match=key):
        FlexActions().init_app(app, db=db)
    assert "flexactions" not in app.extensions


def test_defaults_are_written_to_the_app_config(make_app: MakeApp) -> None:
    app = make_app(FLEXACTIONS_MAX_DEPTH=10)
    FlexActions().init_app(app, db=db)
    assert app.config["FLEXACTIONS_MAX_BODY"] == 1024 * 1024
    assert app.config["FLEXACTIONS_ID_CHUNK_SIZE"] == 1000
    assert app.config["FLEXACTIONS_CORS_MAX_AGE"] == 600
    assert app.config["FLEXACTIONS_CORS_ORIGINS"] == ["https://app.jetadmin.io"]
    assert app.config["FLEXACTIONS_MAX_DEPTH"] == 10
    assert app.config["FLEXACTIONS_TOKEN"] == TOKEN


def test_config_is_read_once_at_init_app(make_app: MakeApp) -> None:
    app = make_app()
    flex = FlexActions(app, db=db)

    @flex.action()
    def ping(params: dict[str, Any]) -> None:
        pass

    client = serve(app, flex)
    app.config["FLEXACTIONS_TOKEN"] = "changed"
    assert execute(client, "ping").status_code == 200
    assert execute(client, "ping", headers={"Authorization": "Token changed"}).status_code == 401


# Blueprint without init_app


def test_blueprint_without_init_app_is_a_clear_error(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(TESTING=False)
    client = serve(app, FlexActions())
    caplog.set_level(logging.ERROR)
    response = client.post(URL, json={"name": "get_action_list"}, headers=AUTH)
    assert response.status_code == 500
    body = response.get_json()
    assert body["result"] is False and list(body["errors"]) == ["non_field_errors"]
    errors = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert len(errors) == 1
    assert "flex.init_app(app, db=db)" in str(errors[0].exc_info[1])
    assert "init_app" in caplog.text


def test_blueprint_without_init_app_raises_in_testing(make_app: MakeApp) -> None:
    app = make_app()
    client = serve(app, FlexActions())
    with pytest.raises(RuntimeError, match="extension is not initialised.*init_app"):
        client.post(URL, json={"name": "get_action_list"}, headers=AUTH)
    with pytest.raises(RuntimeError, match="init_app"):
        client.options(URL)


# Registration after use


def test_registration_after_the_first_listing_shows_up(make_app: MakeApp) -> None:
    app = make_app()
    flex = FlexActions(app, db=db)
    client = serve(app, flex)
    assert action_names(client) == []

    @flex.action()
    def first(params: dict[str, Any]) -> str:
        return "first"

    assert action_names(client) == ["first"]
    assert action_names(client) == ["first"]

    @flex.action(User, bulk=True)
    def second(users: list[User], params: dict[str, Any]) -> str:
        return f"{len(users)}"

    assert action_names(client) == ["first", "second"]
    with app.app_context():
        db.session.add(User(id=1, name="a"))
        db.session.commit()
    assert execute(client, "second", model="users", ids=[1]).get_json() == {
        "result": True,
        "message": "1",
    }


# One extension, two apps


def test_one_extension_on_two_apps(make_app: MakeApp) -> None:
    one = make_app("one", FLEXACTIONS_TOKEN="token-one", FLEXACTIONS_CORS_ORIGINS=["https://1.x"])
    two = make_app("two", FLEXACTIONS_TOKEN="token-two", FLEXACTIONS_CORS_ORIGINS=["https://2.x"])
    flex = FlexActions(db=db)
    flex.init_app(one)
    flex.init_app(two)
    assert one.extensions["flexactions"] is not two.extensions["flexactions"]
    with one.app_context():
        db.session.add(User(id=1, name="in-one"))
        db.session.commit()
    with two.app_context():
        db.session.merge(User(id=2, name="in-two"))
        db.session.commit()

    @flex.action(User, for_instance=True)
    def describe(user: User, params: dict[str, Any]) -> str:
        return f"{current_app.name}:{user.name}"

    client_one, client_two = serve(one, flex), serve(two, flex)
    auth_one = {"Authorization": "Token token-one", "Origin": "https://1.x"}
    auth_two = {"Authorization": "Token token-two", "Origin": "https://1.x"}

    response = execute(client_one, "describe", auth_one, model="users", id=1)
    assert response.get_json() == {"result": True, "message": "one:in-one"}
    assert response.headers["Access-Control-Allow-Origin"] == "https://1.x"
    response = execute(client_two, "describe", auth_two, model="users", id=2)
    assert response.get_json() == {"result": True, "message": "two:in-two"}
    assert "Access-Control-Allow-Origin" not in response.headers

    # Each app keeps its own token.
    assert execute(client_one, "describe", auth_two, model="users", id=1).status_code == 401
    assert execute(client_two, "describe", auth_one, model="users", id=2).status_code == 401

    # Each app reads its own database (they differ when the tests run on SQLite files).
    if str(one.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        response = execute(client_one, "describe", auth_one, model="users", id=2)
        assert response.get_json()["result"] is False

    # An action registered later is offered by both apps.
    @flex.action()
    def later(params: dict[str, Any]) -> str:
        return current_app.name

    for client, auth, name in ((client_one, auth_one, "one"), (client_two, auth_two, "two")):
        listed = client.post(URL, json={"name": "get_action_list"}, headers=auth).get_json()
        assert [action["name"] for action in listed] == ["describe", "later"]
        assert execute(client, "later", auth).get_json() == {"result": True, "message": name}
