"""The test helper: the ``flex_client`` fixture and :class:`FlexClient`, tested by using them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_flexactions import ActionError, FlexActions
from flask_flexactions.testing import FlexClient
from tests.models import User, db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def actions(flex: FlexActions, app: Flask) -> None:
    @flex.action(User, for_instance=True, params=[{"name": "name", "field": "CharField"}])
    def rename(user: User, params: dict[str, Any]) -> str:
        if params["name"] == "":
            raise ActionError(errors={"name": ["Give a name."]})
        user.name = params["name"]
        return f"Renamed to {user.name}"

    @flex.action(User, bulk=True)
    def block(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.is_blocked = True
        return ",".join(str(user.id) for user in users)

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    with app.app_context():
        db.session.add_all(User(id=i, name=f"user{i}") for i in (1, 2, 3))
        db.session.commit()


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("flexactions")
    assert 'flexactions = "pytest_flexactions"' in (ROOT / "pyproject.toml").read_text()


def test_execute_a_record_action(flex_client: FlexClient, app: Flask, actions: None) -> None:
    response = flex_client.execute("rename", model="users", id=2, params={"name": "Zoe"})
    assert response.json == {"result": True, "message": "Renamed to Zoe"}
    with app.app_context():
        assert db.session.get(User, 2).name == "Zoe"  # type: ignore[union-attr]


def test_execute_reports_field_errors(flex_client: FlexClient, actions: None) -> None:
    response = flex_client.execute("rename", model="users", id=2, params={"name": ""})
    assert response.json == {"result": False, "errors": {"name": ["Give a name."]}}


def test_execute_bulk_and_inverse(flex_client: FlexClient, actions: None) -> None:
    assert flex_client.execute("block", "users", ids=[3, 1]).json["message"] == "3,1"
    assert flex_client.execute("block", "users", ids="2", inverse_ids=True).json == {
        "result": True,
        "message": "1,3",
    }


def test_action_list_and_common_actions(flex_client: FlexClient, actions: None) -> None:
    assert [a["name"] for a in flex_client.action_list()] == ["rename", "block", "ping"]
    assert flex_client.execute("ping").json == {"result": True, "message": "pong"}


def test_the_client_sends_the_credential_it_is_given(
    flex_client: FlexClient, actions: None
) -> None:
    flex_client.authorization = "Token wrong"
    assert flex_client.execute("ping").status_code == 401
    with pytest.raises(AssertionError, match="get_action_list answered 401 UNAUTHORIZED"):
        flex_client.action_list()
    flex_client.authorization = ""
    assert flex_client.execute("ping").status_code == 401
    headers = {"Authorization": "Bearer s3cret-test-token"}
    assert flex_client.execute("ping", headers=headers).status_code == 200


def test_a_users_test_suite_uses_the_fixture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A separate pytest process, as in a user's project: the plugin comes from the entry point.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(
        """
        import pytest
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        from flask_flexactions import FlexActions

        db = SQLAlchemy()
        flex = FlexActions()

        class Item(db.Model):
            id = db.Column(db.Integer, primary_key=True)
            done = db.Column(db.Boolean, default=False)

        @flex.action(Item, for_instance=True)
        def finish(item, params):
            item.done = True
            return f"Item {item.id} done"

        @pytest.fixture
        def app():
            app = Flask(__name__)
            app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FLEXACTIONS_TOKEN="t")
            db.init_app(app)
            flex.init_app(app, db=db)
            app.register_blueprint(flex.blueprint, url_prefix="/admin/flex")
            with app.app_context():
                db.create_all()
                db.session.add(Item(id=7))
                db.session.commit()
                yield app
        """
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            def test_finish(flex_client):
                response = flex_client.execute("finish", model="item", id=7)
                assert response.json == {"result": True, "message": "Item 7 done"}
                assert flex_client.url == "/admin/flex/messages/"
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
