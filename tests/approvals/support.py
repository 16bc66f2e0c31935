"""An app with actions that need approval, the people who call it, and a fake receiver of the
approval signals, shared by the approval tests."""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import ApprovalRequest, AuditRecord, Caller, FlexActions
from flask_flexactions.run.approvals import APPROVALS_TABLE
from tests.conftest import AUTH, URL
from tests.models import Order, db

SECRET = "approvals-test-secret-key-0123456789abcdef"

#: Who may call, by the name sent as ``Authorization: Bearer <name>``.
PEOPLE = {
    "alice": Caller(id="alice", name="Alice", roles=frozenset({"clerk"})),
    "bob": Caller(id="bob", name="Bob", roles=frozenset({"lead"})),
    "carol": Caller(id="carol", name="Carol", roles=frozenset({"lead"})),
    "erin": Caller(id="erin", name="Erin", roles=frozenset({"lead"})),
    "dave": Caller(id="dave", name="Dave", roles=frozenset({"clerk"})),
    "root": Caller(id="root", name="Root", superuser=True),
    "anonymous": Caller(name="nobody in particular"),
    "viewer": Caller(id="viewer", roles=frozenset({"lead"}), read_only=True),
    # Alice again, signed in another way, with the role that approves.
    "alice-sso": Caller(id="alice", name="Alice", roles=frozenset({"lead"}), scheme="jwt"),
}


@dataclass
class Ran:
    """What the handlers were called with."""

    calls: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def lead_for_level(approver: Caller, request: ApprovalRequest) -> bool:
    """Only carol approves level x; anybody with an id approves the rest."""
    return approver.id == "carol" or request.values.get("level") != "x"


class Api:
    """Messages sent as one of :data:`PEOPLE` (``Bearer <name>``) or with the shared token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def send(self, who: str, name: str, params: Any = None, **kwargs: Any) -> TestResponse:
        headers = AUTH if who == "token" else {"Authorization": f"Bearer {who}"}
        body: dict[str, Any] = {"name": name}
        if params is not None:
            body["params"] = params
        return self.client.post(
            URL, json=body, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
        )

    def execute(
        self, who: str, action: str, model: str | None = None, **params: Any
    ) -> TestResponse:
        message: dict[str, Any] = {"name": action, **params}
        if model is not None:
            message["model"] = model
        return self.send(who, "execute_action", message)

    def request_refund(self, who: str = "alice", amount: Any = "250.00", order: int = 1) -> str:
        """Ask for a refund that needs approval; returns the request's id."""
        response = self.execute(
            who,
            "refund",
            "orders",
            id=order,
            reason="Damaged in transit",
            params={"amount": amount},
        )
        body = response.get_json()
        assert response.status_code == 200 and body["approval"]["state"] == "pending", body
        return str(body["approval"]["id"])

    def request(self, who: str, action: str, model: str | None = None, **params: Any) -> str:
        response = self.execute(who, action, model, **params)
        body = response.get_json()
        assert response.status_code == 200 and "approval" in body, body
        return str(body["approval"]["id"])

    def approve(self, who: str, approval_id: Any, comment: str | None = None) -> TestResponse:
        params: dict[str, Any] = {"id": approval_id}
        if comment is not None:
            params["comment"] = comment
        return self.send(who, "approve_action", params)

    def reject(self, who: str, approval_id: Any, comment: str | None = None) -> TestResponse:
        params: dict[str, Any] = {"id": approval_id}
        if comment is not None:
            params["comment"] = comment
        return self.send(who, "reject_action", params)

    def withdraw(self, who: str, approval_id: Any) -> TestResponse:
        return self.send(who, "withdraw_approval", {"id": approval_id})

    def show(self, who: str, approval_id: Any) -> TestResponse:
        return self.send(who, "get_approval", {"id": approval_id})

    def state(self, approval_id: str) -> str:
        body = self.show("root", approval_id).get_json()
        return str(body["approval"]["state"])


@dataclass
class Signals:
    """What the approval signals sent: (signal name, state, the summary, extra arguments)."""

    sent: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    def steps(self, approval_id: str | None = None) -> list[tuple[str, str]]:
        return [
            (name.removeprefix("flexactions-approval-"), state)
            for name, state, summary, _ in self.sent
            if approval_id is None or summary["id"] == approval_id
        ]


def trail(flex: FlexActions, app: Flask, approval_id: str) -> list[tuple[str, str | None]]:
    """The audit trail of one request, oldest first: (outcome, caller id)."""
    with app.app_context():
        records = flex.audit_records(approval=approval_id)
    return [(r.outcome, r.caller_id) for r in reversed(records)]


def records(flex: FlexActions, app: Flask, approval_id: str) -> list[AuditRecord]:
    with app.app_context():
        return list(reversed(flex.audit_records(approval=approval_id)))


def approval_rows(app: Flask) -> list[Any]:
    with app.app_context():
        table = db.metadata.tables[APPROVALS_TABLE]
        return list(db.session.execute(sa.select(table).order_by(table.c.created_at)))


def refunded(app: Flask, order: int = 1) -> decimal.Decimal:
    with app.app_context():
        row = db.session.get(Order, order)
        assert row is not None
        return decimal.Decimal(row.refunded or 0)
