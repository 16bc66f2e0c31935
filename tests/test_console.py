"""The debug console's files and switch, and the get_related_options lookup message."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_flexactions import FlexActions
from flask_flexactions.doors.console import CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.conftest import Messages
from tests.models import Account, Device, Order, Tag, User, db

CONSOLE = "/flex/console/"


# The console's files and the switch


@pytest.mark.parametrize(
    ("debug", "setting", "served"),
    [
        (False, None, False),
        (True, None, True),
        (True, False, False),
        (False, True, True),
    ],
)
def test_console_follows_debug_unless_configured(
    flex: FlexActions, tmp_path: Path, debug: bool, setting: bool | None, served: bool
) -> None:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'c.db'}",
        FLEXACTIONS_TOKEN="t",
        FLEXACTIONS_CONSOLE=setting,
    )
    app.debug = debug
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    client = app.test_client()
    for path in (CONSOLE, CONSOLE + "console.js", CONSOLE + "console.css"):
        assert client.get(path).status_code == (200 if served else 404), path


def test_a_console_setting_that_is_not_a_bool_fails_in_init_app(
    flex: FlexActions, tmp_path: Path
) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FLEXACTIONS_CONSOLE="yes")
    db.init_app(app)
    with pytest.raises(ValueError, match="FLEXACTIONS_CONSOLE must be True, False or None"):
        flex.init_app(app, db=db)


@pytest.fixture
def config() -> dict[str, Any]:
    return {"FLEXACTIONS_CONSOLE": True}


def test_console_page_is_served_with_a_strict_policy(client: FlaskClient) -> None:
    response = client.get(CONSOLE)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    # Every script is a file of the package: no inline code, nothing from another host.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="console.js">']
    assert "http://" not in page and "https://" not in page
    assert client.get(CONSOLE + "console.js").mimetype == "text/javascript"
    assert client.get(CONSOLE + "console.css").mimetype == "text/css"


def test_the_policy_admits_the_html_frames_stylesheet_by_its_hash(client: FlaskClient) -> None:
    """The one inline style the page's policy admits is frame.css, which the script copies
    into the sandboxed frame of an HTML answer; it learns the hash from Content-Digest."""
    response = client.get(CONSOLE + "frame.css")
    assert response.mimetype == "text/css"
    digest = base64.b64encode(hashlib.sha256(response.data).digest()).decode()
    assert response.headers["Content-Digest"] == f"sha-256=:{digest}:"
    assert f"style-src 'self' 'sha256-{digest}';" in CONTENT_SECURITY_POLICY
    assert "url(" not in response.get_data(as_text=True)  # the frame loads nothing


def test_console_without_the_slash_redirects_to_the_page(client: FlaskClient) -> None:
    response = client.get("/flex/console")
    assert response.status_code == 308
    assert response.headers["Location"].endswith(CONSOLE)


@pytest.mark.parametrize("path", ["missing.js", "../views.py", "%2e%2e/views.py"])
def test_only_the_console_files_are_served(client: FlaskClient, path: str) -> None:
    assert client.get(CONSOLE + path).status_code == 404


def test_the_console_files_ship_in_the_package() -> None:
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == [
        "console.css",
        "console.js",
        "frame.css",
        "index.html",
    ]
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"doors/console/*"' in pyproject


# get_related_options


@pytest.fixture
def related(flex: FlexActions) -> None:
    """An action whose ForeignKey params point to users, accounts (by wire name), tags and
    devices; orders are pointed to by no ForeignKey."""

    @flex.action(
        Order,
        params=[
            {"name": "user", "field": "ForeignKey", "params": {"related_model": {"model": User}}},
            {
                "name": "account",
                "field": "ForeignKey",
                "params": {"related_model": {"model": "shop;account"}},
            },
            {"name": "tag", "field": "ForeignKey", "params": {"related_model": {"model": Tag}}},
            {"name": "device", "field": "ForeignKey", "params": {"related_model": Device}},
        ],
    )
    def link(model: Any, params: dict[str, Any]) -> None:
        """Not run by these tests."""


@pytest.fixture
def rows(app: Flask, related: None) -> dict[str, Any]:
    device = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with app.app_context():
        names = ["Ada", "Grace", "Alan", "Adele", "100% Ada", "Barbara"]
        db.session.add_all(User(id=i, name=name) for i, name in enumerate(names, start=1))
        db.session.add_all(Account(id=i, balance=0) for i in (7, 8))
        db.session.add_all([Tag(code="vip", label="Very important"), Tag(code="new", label="")])
        db.session.add(Device(id=device, name="Phone"))
        db.session.commit()
    return {"device": device}


def lookup(messages: Messages, **params: Any) -> Any:
    response = messages.post({"name": "get_related_options", "params": params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def test_lookup_searches_the_label_column_case_insensitively(
    messages: Messages, rows: dict[str, Any]
) -> None:
    assert lookup(messages, model="users", search="ada") == {
        "results": [
            {"id": 1, "label": "Ada"},
            {"id": 5, "label": "100% Ada"},
        ],
        "has_more": False,
    }


def test_lookup_pages_in_primary_key_order(messages: Messages, rows: dict[str, Any]) -> None:
    first = lookup(messages, model="users", limit=2)
    second = lookup(messages, model="users", limit=2, page=2)
    last = lookup(messages, model="users", limit=2, page=3)
    assert [r["id"] for r in first["results"]] == [1, 2] and first["has_more"] is True
    assert [r["id"] for r in second["results"]] == [3, 4] and second["has_more"] is True
    assert [r["id"] for r in last["results"]] == [5, 6] and last["has_more"] is False
    assert lookup(messages, model="users", page=9) == {"results": [], "has_more": False}


def test_lookup_matches_an_id_and_takes_wildcards_literally(
    messages: Messages, rows: dict[str, Any]
) -> None:
    assert lookup(messages, model="users", search="3")["results"] == [{"id": 3, "label": "Alan"}]
    assert lookup(messages, model="users", search="%")["results"] == [
        {"id": 5, "label": "100% Ada"}
    ]
    assert lookup(messages, model="users", search="_")["results"] == []


def test_lookup_labels_default_to_the_primary_key(messages: Messages, rows: dict[str, Any]) -> None:
    assert lookup(messages, model="shop;account")["results"] == [
        {"id": 7, "label": "7"},
        {"id": 8, "label": "8"},
    ]
    device = str(rows["device"])
    assert lookup(messages, model="devices", search=device.upper())["results"] == [
        {"id": device, "label": device}
    ]
    assert lookup(messages, model="tags", search="important")["results"] == [
        {"id": "vip", "label": "Very important"}
    ]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "get_related_options needs params.model"),
        ({"model": "orders"}, 404, "No ForeignKey param points to a model named 'orders'."),
        ({"model": "nope"}, 404, "No ForeignKey param points to a model named 'nope'."),
        ({"model": "users", "search": 3}, 400, "params.search must be a string"),
        ({"model": "users", "search": "x" * 201}, 400, "params.search must be a string"),
        ({"model": "users", "page": 0}, 400, "params.page must be a positive integer."),
        ({"model": "users", "page": True}, 400, "params.page must be a positive integer."),
        ({"model": "users", "page": 10**7}, 400, "params.page must be at most 1000000."),
        ({"model": "users", "limit": "5"}, 400, "params.limit must be a positive integer."),
        ({"model": "users", "limit": 101}, 400, "params.limit must be at most 100."),
    ],
)
def test_lookup_refuses_bad_params(
    messages: Messages, related: None, params: dict[str, Any], status: int, message: str
) -> None:
    response = messages.post({"name": "get_related_options", "params": params})
    assert response.status_code == status
    assert response.json["result"] is False
    assert response.json["errors"]["non_field_errors"][0].startswith(message)


def test_lookup_needs_the_credential(messages: Messages, related: None) -> None:
    body = {"name": "get_related_options", "params": {"model": "users"}}
    assert messages.post(body, headers={}).status_code == 401
    assert messages.post(body, headers={"Authorization": "Token wrong"}).status_code == 401


def test_a_label_that_names_no_column_is_a_developer_error(
    messages: Messages, related: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(User, "__flexactions_label__", "nickname")
    with pytest.raises(ValueError, match=r"User.__flexactions_label__ must name one of its column"):
        messages.post({"name": "get_related_options", "params": {"model": "users"}})
