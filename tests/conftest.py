"""Fixtures: an app with the extension on SQLite or FLEXACTIONS_TEST_DATABASE_URL, and a caller."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions
from tests.models import db

pytest_plugins = ["pytester"]

#: schemathesis 4 needs Python 3.11; the package itself runs on 3.10.
collect_ignore = ["test_schemathesis.py"] if sys.version_info < (3, 11) else []

TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
URL = "/flex/messages/"


def database_url(tmp_path: Path) -> str:
    """PostgreSQL when the environment names one, else a fresh SQLite file."""
    return os.environ.get("FLEXACTIONS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def flex() -> FlexActions:
    return FlexActions()


@pytest.fixture
def config() -> dict[str, Any]:
    """Extra app config; override in a test module to change the extension's settings."""
    return {}


@pytest.fixture
def app(flex: FlexActions, config: dict[str, Any], tmp_path: Path) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path),
        FLEXACTIONS_TOKEN=TOKEN,
    )
    app.config.update(config)
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


class Messages:
    """Sends messages to the Messages URL the way the admin UI does."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, body: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> TestResponse:
        """POST ``body`` as JSON with the test token, unless ``headers`` replaces them."""
        return self.client.post(
            URL, json=body, headers=AUTH if headers is None else headers, **kwargs
        )

    def action_list(self) -> list[dict[str, Any]]:
        response = self.post({"name": "get_action_list"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def execute(self, action: str, model: str | None = None, **params: Any) -> TestResponse:
        """``execute_action`` of ``action``; keyword arguments go into the message's params."""
        message: dict[str, Any] = {"name": action, **params}
        if model is not None:
            message["model"] = model
        return self.post({"name": "execute_action", "params": message})


@pytest.fixture
def messages(client: FlaskClient) -> Messages:
    return Messages(client)
