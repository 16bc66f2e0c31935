"""Database outages: 503 with Retry-After and one wording; requests that need no database work."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_flexactions import FlexActions
from flask_flexactions.run.answers import DATABASE_UNAVAILABLE_MESSAGE, INTERNAL_ERROR_MESSAGE
from flask_flexactions.run.outages import is_unavailable
from tests.conftest import AUTH, TOKEN, URL
from tests.models import User, db

UNAVAILABLE = {
    "result": False,
    "errors": {"non_field_errors": [DATABASE_UNAVAILABLE_MESSAGE]},
    "detail": DATABASE_UNAVAILABLE_MESSAGE,
}


class DriverError(Exception):
    """A driver exception carrying a PostgreSQL SQLSTATE, as psycopg's do."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"driver says {sqlstate}")
        self.sqlstate = sqlstate


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (sa.exc.OperationalError("SELECT 1", {}, DriverError(None)), True),  # connection failed
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("57P01")), True),  # admin shutdown
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("57014")), True),  # statement_timeout
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("08006")), True),  # connection lost
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("53300")), True),  # too many clients
        (sa.exc.OperationalError("SELECT 1", {}, DriverError("55P03")), True),  # lock_timeout
        (sa.exc.ProgrammingError("SELECT 1", {}, DriverError("42P01")), False),  # no such table
        (sa.exc.IntegrityError("INSERT", {}, DriverError("23505")), False),  # unique violation
        (sa.exc.InterfaceError("SELECT 1", {}, DriverError(None)), True),  # connection closed
        (sa.exc.OperationalError("SELECT 1", {}, sqlite_error("database is locked", 5)), True),
        (sa.exc.OperationalError("SELECT 1", {}, sqlite_error("unable to open", 14)), True),
        (sa.exc.OperationalError("SELECT 1", {}, sqlite_error("no such table: x", 1)), False),
        (sa.exc.DBAPIError("SELECT 1", {}, ValueError("x"), connection_invalidated=True), True),
        (sa.exc.DBAPIError("SELECT 1", {}, ValueError("x")), False),
        (sa.exc.TimeoutError("QueuePool limit reached"), True),
        (sa.exc.DisconnectionError("gone"), True),
        (sa.exc.InvalidRequestError("a bug"), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_an_outage(error: BaseException, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable


def unreachable_urls() -> list[str]:
    """A SQLite file that cannot be opened, and PostgreSQL on a port nobody listens on."""
    urls = ["sqlite:////nonexistent-flexactions-dir/shop.db"]
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return urls
    return [*urls, "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"]


@pytest.fixture(params=unreachable_urls(), ids=["sqlite", "postgresql"][: len(unreachable_urls())])
def down(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """An app whose database is unreachable, with a record action, computed options and jobs."""
    flex = FlexActions()

    def owners(values: Any, model: Any, rows: Any, search: Any) -> list[dict[str, Any]]:
        return [
            {"value": user.id, "name": user.name} for user in db.session.scalars(sa.select(User))
        ]

    @flex.action(
        User,
        for_instance=True,
        params=[{"name": "owner", "field": "SelectField", "params": {"options": owners}}],
    )
    def rename(user: User, params: dict[str, Any]) -> str:
        return "renamed"

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    @flex.action(
        params=[
            {"name": "user", "field": "ForeignKey", "params": {"related_model": {"model": User}}}
        ]
    )
    def greet(params: dict[str, Any]) -> str:
        return f"hello {params['user'].name}"

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=request.param,
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_BACKGROUND_INLINE=True,
        FLEXACTIONS_RETRY_AFTER=17,
    )
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    yield app
    with app.app_context():
        db.engine.dispose()


def post(app: Flask, message: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    body = {"name": message, "params": params}
    return app.test_client().post(URL, json=body, headers={**AUTH, **(headers or {})})


@pytest.mark.parametrize(
    ("message", "params", "headers"),
    [
        ("execute_action", {"name": "rename", "model": "users", "id": 1}, {}),
        (
            "execute_action",
            {"name": "rename", "model": "users", "id": 1},
            {"Idempotency-Key": "k-1"},
        ),
        ("get_field_options", {"action": "rename", "model": "users", "field": "owner"}, {}),
        ("get_action_status", {"job": "0" * 32}, {}),
        ("get_related_options", {"model": "users"}, {}),
        ("execute_action", {"name": "greet", "params": {"user": 1}}, {}),
    ],
    ids=[
        "execute",
        "execute-with-key",
        "field-options",
        "job-status",
        "related-options",
        "foreign-key-param",
    ],
)
def test_a_database_that_is_down_is_503_with_retry_after(
    down: Flask,
    message: str,
    params: dict[str, Any],
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        response = post(down, message, headers, **params)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "17"
    assert response.get_json() == UNAVAILABLE
    # One line in the log, without a traceback: an outage is not a bug.
    outage_lines = [r for r in caplog.records if "database is unavailable" in r.getMessage()]
    assert len(outage_lines) == 1 and outage_lines[0].exc_info is None


def test_what_needs_no_database_still_answers(down: Flask) -> None:
    listing = post(down, "get_action_list")
    assert listing.status_code == 200
    assert {action["name"] for action in listing.get_json()} == {"rename", "ping", "greet"}
    ping = post(down, "execute_action", name="ping")
    assert ping.get_json() == {"result": True, "message": "pong"}


def test_an_error_in_sql_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    flex = FlexActions()

    @flex.action()
    def broken(params: dict[str, Any]) -> str:
        db.session.execute(sa.text("SELECT * FROM flexactions_no_such_table"))
        return "never"

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'ok.db'}", FLEXACTIONS_TOKEN=TOKEN
    )
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    response = post(app, "execute_action", name="broken")
    assert response.status_code == 500
    assert response.get_json()["errors"] == {"non_field_errors": [INTERNAL_ERROR_MESSAGE]}
    assert "Retry-After" not in response.headers
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "per-record"])
def test_an_outage_during_a_run_is_503_and_rolls_everything_back(
    app: Flask, flex: FlexActions, atomic: bool
) -> None:
    with app.app_context():
        db.session.add_all(User(id=i, name=f"user{i}") for i in range(1, 4))
        db.session.commit()

    @flex.action(User, bulk=True, atomic=atomic)
    def rename_all(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.name = "renamed"
            db.session.flush()
            if user.id == 2:
                raise sa.exc.OperationalError("UPDATE users", {}, DriverError("57P01"))
        return "done"

    response = post(app, "execute_action", name="rename_all", model="users", ids=[1, 2, 3])
    assert response.status_code == 503 and response.get_json() == UNAVAILABLE
    assert response.headers["Retry-After"] == "5"
    with app.app_context():
        assert set(db.session.scalars(sa.select(User.name))) == {"user1", "user2", "user3"}


def test_a_key_answered_503_is_free_for_the_retry(app: Flask, flex: FlexActions) -> None:
    """The database went away mid-run: the reservation rolled back with the run, so the
    retry with the same Idempotency-Key runs (it is neither a 409 nor a replay of the 503)."""
    with app.app_context():
        db.session.add(User(id=1, name="user1"))
        db.session.commit()
    runs: list[int] = []

    @flex.action(User, for_instance=True)
    def touch(user: User, params: dict[str, Any]) -> str:
        runs.append(user.id)
        user.name = f"touched {len(runs)}"
        db.session.flush()
        if len(runs) == 1:
            raise sa.exc.OperationalError("UPDATE users", {}, DriverError("08006"))
        return "touched"

    key = {"Idempotency-Key": "retry-after-outage"}
    first = post(app, "execute_action", key, name="touch", model="users", id=1)
    assert first.status_code == 503
    second = post(app, "execute_action", key, name="touch", model="users", id=1)
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    third = post(app, "execute_action", key, name="touch", model="users", id=1)
    assert third.data == second.data and third.headers["Idempotent-Replayed"] == "true"
    assert runs == [1, 1]
    with app.app_context():
        assert db.session.get(User, 1).name == "touched 2"
