"""The code the guides include from ``docs/examples/``, run: each answer a page quotes is one
these tests check."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_flexactions.testing import FlexClient
from tests.docsamples import (
    EXAMPLES,
    GENERATED,
    HOW_TO_REGENERATE,
    REGENERATE,
    Entry,
    clean,
    clean_env,
    masked,
    render_transcript,
)

# The examples the guides include


def load_example(name: str) -> ModuleType:
    """Import docs/examples/<name>.py once, under a name of its own."""
    module_name = f"docs_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'example.db'}"


@contextlib.contextmanager
def serving(app: Flask, db: Any, *rows: Any) -> Iterator[FlexClient]:
    """The example's tables with ``rows``, and a client sending the app's token; the
    engine is disposed afterwards."""
    with app.app_context():
        db.create_all()
        db.session.add_all(rows)
        db.session.commit()
    try:
        yield FlexClient(app.test_client())
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_actions_example(database_url: str) -> None:
    example = load_example("actions")
    app = example.create_app(database_url)
    account = example.Account
    rows = [account(id=1, name="Operating", balance=100), account(id=2, name="Savings")]
    with serving(app, example.db, *rows) as client:
        listed = {action["name"]: action for action in client.action_list()}
        assert listed["ping"]["common_action"] == {}
        assert listed["count_accounts"]["model_action"] == {
            "model": "shop;account",
            "for_instance": False,
            "bulk": False,
        }
        assert listed["freeze"]["model_action"]["bulk"] is True
        assert listed["freeze"]["label"] == "Freeze"
        reason = {p["name"]: p for p in listed["transfer"]["params"]}["reason"]
        assert reason["params"]["options"][0] == {
            "value": "payroll",
            "name": "Payroll",
            "color": "blue",
        }
        deposit = {p["name"]: p for p in listed["deposit"]["params"]}
        assert deposit["account"]["field"] == "ForeignKey"
        assert deposit["amount"]["field"] == "DecimalField"
        assert deposit["value_date"]["label"] == "Value date"
        assert deposit["note"]["field"] == "TextField"

        model = "shop;account"
        assert client.execute("ping").json == {"result": True, "message": "pong"}
        assert client.execute("count_accounts", model).json["message"] == "2 accounts"
        moved = client.execute(
            "transfer", model, params={"account_from": 1, "account_to": 2, "amount": "30"}
        )
        assert moved.json == {"result": True, "message": "Moved 30 from Operating to Savings."}
        too_much = client.execute(
            "transfer", model, params={"account_from": 2, "account_to": 1, "amount": "31"}
        )
        assert too_much.json["errors"] == {"amount": ["Savings holds 30.00."]}
        assert client.execute("close", model, id=2).json["errors"] == {
            "non_field_errors": ["Savings still holds 30.00."]
        }
        assert client.execute("freeze", model, ids=[2, 1]).json["message"] == "Froze 2 accounts."
        deposit_answer = client.execute(
            "deposit", model, params={"account": 2, "amount": "70", "value_date": "2025-03-01"}
        )
        assert deposit_answer.json == {"result": True, "message": "Deposited 70 on Savings."}
        assert client.execute("balances", model).json == {
            "result": True,
            "message": "170.00 in total",
            "html": "<b>170.00</b> in total",
        }
        export = client.execute("export", model, ids=[2, 1])
        assert export.headers["Content-Disposition"] == 'attachment; filename="accounts.csv"'
        assert export.data == b"2,Savings,100.00\n1,Operating,70.00\n"
        assert client.execute("close", model, id=2).json["result"] is False


def test_security_example(database_url: str) -> None:
    example = load_example("security")
    app = example.create_app(database_url)
    user, order = example.User, example.Order

    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    rows = [
        user(
            id=1, email="sam@example.com", api_key_sha256=key("sam"), roles="support", region="eu"
        ),
        user(id=2, email="lee@example.com", api_key_sha256=key("lee"), region="us"),
        order(id=1, region="eu"),
        order(id=2, region="us"),
    ]
    with serving(app, example.db, *rows) as client:
        client.authorization = ""
        sam, lee = {"X-Api-Key": "sam"}, {"X-Api-Key": "lee"}
        refunded = client.execute("refund", "orders", id=1, headers=sam)
        assert refunded.json == {"result": True, "message": "Refunded order #1."}
        with app.app_context():
            assert example.db.session.get(order, 1).refunded_by == "1"
        # Outside the caller's region, a row answers as a row that does not exist.
        assert client.execute("refund", "orders", id=2, headers=sam).json["errors"] == {
            "non_field_errors": ["No record of orders has the id 2."]
        }
        assert client.execute("export_vat_report", "orders", headers=sam).status_code == 200
        listed = client.message("get_action_list", headers=lee).json
        assert listed == []
        assert client.execute("refund", "orders", id=2, headers=lee).status_code == 403
        assert (
            client.execute("refund", "orders", id=1, headers={"X-Api-Key": "x"}).status_code == 401
        )
        assert client.execute("refund", "orders", id=1).status_code == 401
        client.authorization = "Token change-me"  # the shared token: a superuser
        assert client.execute("refund", "orders", id=2).json["result"] is True

        preflight = app.test_client().options(
            "/flex/messages/",
            headers={
                "Origin": "https://admin.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://admin.example.com"
        assert preflight.headers["Access-Control-Allow-Headers"] == (
            "Authorization, Content-Type, Idempotency-Key, X-Api-Key"
        )
        elsewhere = app.test_client().options(
            "/flex/messages/", headers={"Origin": "https://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in elsewhere.headers


def test_security_example_behind_jet_admin(database_url: str) -> None:
    from tests.jet import FakeJetAdmin, KeyPair

    example = load_example("security")
    keys = KeyPair()
    with FakeJetAdmin().running() as jet:
        app = example.create_app(
            database_url,
            jet_admin=True,
            FLEXACTIONS_JET_PUBLIC_KEY=keys.public_pem,
            FLEXACTIONS_JET_API_URL=jet.url,
        )
        with serving(app, example.db, example.Order(id=1, region="us")) as client:
            team = keys.token(projects={"my-shop": {"group": {"name": "support"}}})
            client.authorization = f"JWT {team}"
            assert [action["name"] for action in client.action_list()] == ["refund"]
            # No user of the app's own: the scope hook lets it see no row.
            assert client.execute("refund", "orders", id=1).json["result"] is False
            owner = keys.token(projects={"my-shop": {"owner": True}})
            client.authorization = f"JWT {owner}"
            assert client.execute("refund", "orders", id=1).json["result"] is True
            client.authorization = "Token a-user-token"  # checked with project_auth
            assert [action["name"] for action in client.action_list()] == ["refund"]
            assert jet.requests[-1]["project_token"] == "<your project token>"


def test_data_safety_example(database_url: str) -> None:
    example = load_example("data_safety")
    app = example.create_app(database_url)
    order, account = example.Order, example.Account
    rows = [
        order(id=5),
        order(id=7, disputed=True),
        order(id=9),
        account(id=1, balance=Decimal("50.00")),
        account(id=2, balance=Decimal("0.00")),
        example.User(id=1),
    ]
    with serving(app, example.db, *rows) as client:
        closed = client.execute("close", "orders", ids=[5, 7, 9])
        assert closed.json == {
            "result": False,
            "message": "2 of 3 records done, 1 failed.",
            "errors": {"non_field_errors": ["Failed on the ids 7."]},
            "records": [
                {"id": 5, "result": True, "message": "closed"},
                {
                    "id": 7,
                    "result": False,
                    "errors": {"non_field_errors": ["Disputed orders stay open."]},
                },
                {"id": 9, "result": True, "message": "closed"},
            ],
        }
        with app.app_context():
            states = example.db.session.execute(
                sa.select(order.id, order.status).order_by(order.id)
            ).all()
            assert [tuple(row) for row in states] == [(5, "closed"), (7, "open"), (9, "closed")]
        moved = client.execute(
            "move_money", "accounts", params={"source": 1, "target": 2, "amount": "20"}
        )
        assert moved.json == {"result": True}
        assert client.execute(
            "move_money", "accounts", params={"source": 2, "target": 1, "amount": "21"}
        ).json["errors"] == {"amount": ["Insufficient funds."]}

        secret = {"password": "correct horse battery"}
        assert client.execute("set_password", "users", id=1, params=secret).json["result"]
        with app.app_context():
            (record,) = example.flex.audit_records(action="set_password")
        assert record.params == {"password": "[redacted]"} and record.outcome == "ran"

        first = client.execute("close", "orders", ids=[9], headers={"Idempotency-Key": "k1"})
        again = client.execute("close", "orders", ids=[9], headers={"Idempotency-Key": "k1"})
        assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data
        other = client.execute("close", "orders", ids=[5], headers={"Idempotency-Key": "k1"})
        assert other.status_code == 422 and "detail" in other.json


def test_background_example(database_url: str) -> None:
    example = load_example("background")
    app = example.create_app(broker="memory://", SQLALCHEMY_DATABASE_URI=database_url)
    celery = app.extensions["celery"]
    celery.conf.task_always_eager = True  # the worker's part, run in this process
    assert {"flask_flexactions.run_job", "flask_flexactions.sweep"} <= set(celery.tasks)
    assert celery.conf.beat_schedule["flexactions-sweep"]["task"] == "flask_flexactions.sweep"
    order = example.Order
    rows = [order(id=1, total=10), order(id=2, total=5)]
    with serving(app, example.db, *rows) as client:
        queued = client.execute("refund_all", "orders", ids=[1, 2]).json
        job = queued["job"]["id"]
        assert queued == {
            "result": True,
            "message": "Queued refund_all on 2 records.",
            "job": {"id": job, "state": "queued"},
        }
        status = client.message("get_action_status", {"job": job}).json["job"]
        assert status["state"] == "succeeded"
        assert status["progress"] == {"done": 2, "total": 2, "status": "order 2"}
        assert status["answer"] == {"result": True, "message": "Refunded 2 orders."}
        again = client.execute("refund_all", "orders", ids=[2]).json["job"]["id"]
        failed = client.message("get_action_status", {"job": again}).json["job"]
        assert failed["state"] == "failed"
        assert failed["answer"]["errors"] == {"non_field_errors": ["Order #2 is already refunded."]}
        every = client.execute("archive", "orders", inverse_ids=True).json
        assert every["message"] == "Queued Archive in batches of 1000 records."
        archived = client.message("get_action_status", {"job": every["job"]["id"]}).json["job"]
        assert archived["state"] == "succeeded"
        assert archived["answer"] == {
            "result": True,
            "message": "Ran Archive on 2 records in 1 batch.",
        }
        assert {"flask_flexactions.plan_batches", "flask_flexactions.run_batch"} <= set(
            celery.tasks
        )


class ChatWebhook:
    """A local HTTP server standing in for a chat's incoming webhook: it keeps the texts."""

    def __init__(self) -> None:
        texts = self.texts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                length = int(self.headers["Content-Length"])
                texts.append(json.loads(self.rfile.read(length))["text"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/flex"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ChatWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_approvals_example(database_url: str) -> None:
    example = load_example("approvals")
    with ChatWebhook() as chat:
        app = example.create_app(SQLALCHEMY_DATABASE_URI=database_url, CHAT_WEBHOOK_URL=chat.url)
        rows = [example.Order(id=1, total=Decimal("5000.00")), example.Order(id=2, total=50)]
        with serving(app, example.db, *rows):
            alice, bob, carol = (
                FlexClient(app.test_client(), f"Bearer {who}-token")
                for who in ("alice", "bob", "carol")
            )
            small = alice.execute("refund", "orders", id=2, params={"amount": "20"})
            assert small.json == {"result": True, "message": "Refunded 20 of order #2."}
            no_reason = alice.execute("refund", "orders", id=1, params={"amount": "1500"})
            assert no_reason.json == {
                "result": False,
                "errors": {"reason": ["Give a reason for this request: the approvers read it."]},
            }
            message = {
                "name": "refund",
                "model": "orders",
                "id": 1,
                "reason": "Parcel lost by the carrier",
                "params": {"amount": "1500"},
            }
            asked = alice.message("execute_action", message).json
            approval_id = asked["approval"]["id"]
            assert asked == {
                "result": True,
                "message": (
                    f"refund on 1 record awaits approval (request {approval_id}); nothing ran yet."
                ),
                "approval": {
                    "id": approval_id,
                    "state": "pending",
                    "expires_at": asked["approval"]["expires_at"],
                },
            }
            waiting = carol.message("list_approvals").json["to_decide"]
            assert [a["id"] for a in waiting] == [approval_id]
            shown = carol.message("get_approval", {"id": approval_id}).json["approval"]
            assert shown["preview"]["message"] == "Would refund 1500 of order #1."
            own = alice.message("approve_action", {"id": approval_id})
            assert own.status_code == 403
            assert own.json["detail"] == "You made this request: someone else must approve it."
            done = bob.message(
                "approve_action", {"id": approval_id, "comment": "Carrier confirmed"}
            )
            assert done.json["result"] is True
            assert done.json["message"] == "Refunded 1500 of order #1."
            assert done.json["approval"]["state"] == "ran"
            with app.app_context():
                trail = [
                    (r.outcome, r.caller_id, r.approval)
                    for r in reversed(example.flex.audit_records(approval=approval_id))
                ]
                order = example.db.session.get(example.Order, 1)
                assert order.refunded == Decimal("1500")
            approved_by = [{"id": "bob", "name": "Bob", "scheme": "custom"}]
            assert trail == [
                ("requested", "alice", {"id": approval_id, "reason": "Parcel lost by the carrier"}),
                ("refused", "alice", {"id": approval_id, "verdict": "approved"}),
                (
                    "approved",
                    "bob",
                    {"id": approval_id, "comment": "Carrier confirmed", "approvals": "1/1"},
                ),
                ("ran", "alice", {"id": approval_id, "approved_by": approved_by}),
            ]
    assert chat.texts == [
        "Alice asks to run refund on 1 record(s): Parcel lost by the carrier. "
        f"Decide with: flask flexactions approvals show {approval_id}",
        "Bob approved refund on 1 record(s).",
        "refund on 1 record(s) ran: Refunded 1500 of order #1.",
    ]


def test_dynamic_params_example(database_url: str) -> None:
    example = load_example("dynamic_params")
    app = example.create_app(database_url)
    user, order = example.User, example.Order
    rows = [
        user(id=1, email="ada@example.com", name="Ada Lovelace"),
        user(id=2, email="grace@example.com", name="Grace Hopper"),
        user(id=3, email="alan@example.com", name="Alan Turing", is_blocked=True),
        order(id=1, user_id=1),
    ]
    with serving(app, example.db, *rows) as client:
        listed = {action["name"]: action for action in client.action_list()}
        params = {p["name"]: p for p in listed["reassign_order"]["params"]}
        assert params["new_owner"]["params"] == {"options": [], "dynamic": True}
        assert params["priority"]["params"]["options"][1] == {
            "value": 2,
            "name": "High",
            "color": "red",
        }
        documented = {"model": "orders", "field": "new_owner", "form": {}}
        assert client.message("get_field_options", documented).json == [
            {"value": 1, "name": "ada@example.com"},
            {"value": 2, "name": "grace@example.com"},
        ]
        chosen = {
            "action": "reassign_order",
            "model": "orders",
            "field": "new_owner",
            "id": 1,
            "form": {"priority": 2},
            "search": "GRA",
            "page": 1,
            "limit": 50,
        }
        assert client.message("get_field_options", chosen).json == [
            {"value": 2, "name": "grace@example.com"}
        ]
        priority = {"model": "orders", "field": "priority", "form": {}}
        assert client.message("get_field_options", priority).json[0]["color"] == "green"
        blocked = client.execute("reassign_order", "orders", id=1, params={"new_owner": 3})
        assert blocked.json["errors"] == {"new_owner": ["Not one of the allowed options."]}
        moved = client.execute("reassign_order", "orders", id=1, params={"new_owner": 2})
        assert moved.json["message"] == "Order #1 now belongs to user 2."
        assigned = client.execute("assign_orders", "orders", ids=[1], params={"owner": 1})
        assert assigned.json["message"] == "Assigned 1 orders."

        defaults = client.message(
            "get_action_params", {"name": "rename_user", "model": "users", "id": 2}
        )
        assert defaults.json[0] == {
            "name": "name",
            "field": "CharField",
            "required": False,
            "params": {},
            "default": "Grace Hopper",
            "default_from_record": True,
        }
        assert defaults.json[1]["default"] is True
        renamed = client.execute("rename_user", "users", id=2)
        assert renamed.json["message"] == "grace@example.com is now called Grace Hopper (notified)."

        dry = client.message(
            "execute_action",
            {"name": "block_users", "model": "users", "ids": [1, 3], "dry_run": True},
        )
        assert dry.json == {
            "result": True,
            "dry_run": True,
            "count": 2,
            "message": "Would block 1 users (1 already blocked).",
        }


def test_the_testing_guide_runs_as_written(tmp_path: Path) -> None:
    """The testing guide's conftest.py and test_app.py, beside the Quickstart saved as app.py,
    pass with a plain ``pytest`` in that folder."""
    shutil.copyfile(EXAMPLES / "quickstart.py", tmp_path / "app.py")
    for name in ("conftest.py", "test_app.py"):
        shutil.copyfile(EXAMPLES / "testing" / name, tmp_path / name)
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    path = GENERATED / "testing-pytest.txt"
    printed = render_transcript([Entry("pytest -q", clean(ran.stdout))])
    if REGENERATE:
        path.write_text(printed)
    assert masked(path.read_text()) == masked(printed), (
        f"docs/_generated/testing-pytest.txt is not what pytest printed: {HOW_TO_REGENERATE}"
    )


def test_deployment_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The deployment guide's engine settings reach the engine (and, on PostgreSQL, the
    server's statement and lock timeouts)."""
    url = os.environ.get("FLEXACTIONS_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'd.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    example = load_example("deployment")
    app = example.create_app()
    with app.app_context():
        engine = example.db.engine
        try:
            assert engine.pool._pre_ping is True and engine.pool._timeout == 5
            if engine.dialect.name == "postgresql":
                with engine.connect() as connection:
                    show = connection.exec_driver_sql
                    assert show("SHOW statement_timeout").scalar() == "10s"
                    assert show("SHOW lock_timeout").scalar() == "5s"
        finally:
            engine.dispose()


def test_mcp_agent_example(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_flexactions.doors.tools import ActionTools

    example = load_example("mcp_agent")
    app = example.create_app(database_url)
    user = example.User
    monkeypatch.setenv("AGENT_KEY", "k3y")
    rows = [user(id=1, email="a@example.com", password_hash="x"), user(id=2, email="b@x.io")]
    with serving(app, example.db, *rows):
        agent = ActionTools(app, "Bearer k3y")
        tools = agent.list()
        assert [tool.name for tool in tools] == ["users__block_users"]
        assert tools[0].annotations["idempotentHint"] is True
        answer = agent.call("users__block_users", {"ids": [1, 2]})
        assert answer.text == "Blocked 2 users."
        assert agent.call("users__clear_password", {"id": 1}).is_error
        assert ActionTools(app, "Bearer wrong").call("users__block_users", {"ids": [1]}).is_error
        monkeypatch.delenv("AGENT_KEY")
        # Without AGENT_KEY set, no Bearer credential is accepted, not even an empty one.
        assert ActionTools(app, "Bearer ").call("users__block_users", {"ids": [1]}).is_error
        with app.app_context():
            assert example.db.session.get(user, 1).password_hash == "x"
            (record,) = example.flex.audit_records()
            assert (record.door, record.caller_id) == ("mcp", "agent")
