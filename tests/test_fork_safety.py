"""Fork safety: a forked process never uses a database connection its parent opened."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_flexactions import FlexActions
from flask_flexactions.run.forksafe import PID_KEY
from tests.conftest import AUTH, URL
from tests.models import db


@pytest.fixture
def whoami(flex: FlexActions) -> None:
    @flex.action()
    def whoami(params: dict[str, Any]) -> str:
        """The process, the process that opened this connection, and its database session."""
        connection = db.session.connection()
        backend = "sqlite"
        if connection.dialect.name == "postgresql":
            backend = str(connection.execute(sa.text("select pg_backend_pid()")).scalar())
        return f"{os.getpid()} {connection.info.get(PID_KEY)} {backend}"


def ask(client: FlaskClient) -> tuple[int, str, str]:
    """This process's pid, the pid that opened the connection used, and its backend."""
    response = client.post(
        URL, json={"name": "execute_action", "params": {"name": "whoami"}}, headers=AUTH
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    pid, opener, backend = response.get_json()["message"].split()
    return int(pid), opener, backend


def _ask_in_child(app: Flask, results: Any) -> None:
    try:
        results.send(ask(app.test_client()))
    except BaseException as error:  # reported to the parent, which fails the test
        results.send(repr(error))
    finally:
        results.close()


def test_a_forked_child_opens_its_own_connection(app: Flask, whoami: None) -> None:
    parent = ask(app.test_client())  # the pool now holds a connection of this process
    assert parent[1] == str(os.getpid())
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_ask_in_child, args=(app, sending))
    child.start()
    sending.close()
    try:
        answer = receiving.recv() if receiving.poll(30) else "no answer within 30 s"
    finally:
        receiving.close()
        child.join(30)
    assert isinstance(answer, tuple), answer
    pid, opener, backend = answer
    if backend != "sqlite":
        assert backend != parent[2], "the child used its parent's database session"
    assert pid == child.pid and opener == str(child.pid)
    # The child never closed or used the parent's connection: it still serves the parent.
    assert ask(app.test_client()) == parent


def test_a_pooled_connection_of_another_process_is_replaced_not_closed(
    app: Flask, whoami: None
) -> None:
    """A fork that bypasses os.fork's hooks: the checkout guard still refuses the connection."""
    first = ask(app.test_client())
    with app.app_context():
        engine = db.engine
        with engine.connect() as connection:
            inherited = connection.connection.dbapi_connection
            connection.info[PID_KEY] = -1  # as if another process had opened it
    second = ask(app.test_client())
    if first[2] != "sqlite":
        assert second[2] != first[2]
        assert inherited is not None and not inherited.closed
    assert second[1] == str(os.getpid())
    assert inherited is not None
    inherited.close()


def test_guarding_twice_adds_no_second_listener(app: Flask) -> None:
    from flask_flexactions.run.forksafe import _refuse_foreign_connection, guard_engine

    with app.app_context():
        engine = db.engine
        guard_engine(engine)
        assert sa.event.contains(engine, "checkout", _refuse_foreign_connection)
        engine.pool.dispatch.checkout  # noqa: B018 - the listeners, once each
        assert len(engine.pool.dispatch.checkout) == 1
