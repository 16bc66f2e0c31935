"""Approvals through the route door: a reason in the action's body, the approval routes, and
their place in the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from werkzeug.test import TestResponse

from flask_flexactions import FlexActions
from tests.approvals.support import Api, Ran


def post(client: FlaskClient, who: str, path: str, body: Any = None) -> TestResponse:
    return client.post(f"/flex{path}", json=body, headers={"Authorization": f"Bearer {who}"})


def test_a_request_decided_through_the_routes_runs_once(
    app: Flask, flex: FlexActions, client: FlaskClient, api: Api, ran: Ran
) -> None:
    body = {"id": 1, "values": {"amount": "250.00"}, "reason": "Broken on arrival"}
    asked = post(client, "alice", "/actions/orders/refund", body).get_json()
    assert asked["result"] is True and asked["approval"]["state"] == "pending"
    approval = asked["approval"]["id"]
    listed = post(client, "bob", "/approvals").get_json()
    assert [item["id"] for item in listed["to_decide"]] == [approval]
    shown = post(client, "bob", f"/approvals/{approval}").get_json()
    assert shown["approval"]["reason"] == "Broken on arrival"
    decided = post(client, "bob", f"/approvals/{approval}/approve", {"comment": "ok"})
    assert decided.status_code == 200 and decided.get_json()["result"] is True
    again = post(client, "carol", f"/approvals/{approval}/approve", {"comment": "me too"})
    assert again.status_code == 409
    assert ran.names() == ["refund"]
    with app.app_context():
        doors = {record.outcome: record.door for record in flex.audit_records(approval=approval)}
    assert doors["requested"] == "route" and doors["approved"] == "route"


def test_the_reason_is_only_for_actions_that_need_approval(client: FlaskClient, ran: Ran) -> None:
    refused = post(client, "alice", "/actions/special", {"values": {}, "reason": "x"})
    assert refused.status_code == 200  # special needs approval too: a reason is fine
    plain = post(client, "alice", "/actions/users/purge", {"ids": [1], "reasons": "typo"})
    assert plain.status_code == 400 and "reasons" in plain.get_json()["detail"]
    missing = post(client, "alice", "/actions/orders/refund", {"id": 1, "values": {"amount": 500}})
    assert missing.get_json()["errors"]["reason"]


@pytest.mark.parametrize(
    ("who", "path", "body", "status"),
    [
        ("bob", "/approvals/0123456789abcdef0123456789abcdef/approve", {}, 404),
        ("bob", "/approvals/nope/approve", {}, 404),
        ("bob", "/approvals/0123456789abcdef0123456789abcdef/explode", {}, 404),
        ("bob", "/approvals", {"limit": 0}, 400),
        ("bob", "/approvals", {"limit": "ten"}, 400),
        ("bob", "/approvals", {"page": 2}, 400),
        ("bob", "/approvals/0123456789abcdef0123456789abcdef", {"comment": "x"}, 400),
        ("bob", "/approvals", [1, 2], 400),
        ("nobody", "/approvals", {}, 401),
    ],
)
def test_hostile_approval_routes_are_refused(
    client: FlaskClient, ran: Ran, who: str, path: str, body: Any, status: int
) -> None:
    response = post(client, who, path, body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["detail"]
    assert ran.calls == []


def test_other_methods_are_405(client: FlaskClient, ran: Ran) -> None:
    response = client.get("/flex/approvals", headers={"Authorization": "Bearer bob"})
    assert response.status_code == 405 and response.headers["Allow"] == "POST, OPTIONS"


def test_the_document_describes_the_reason_and_the_approval_routes(
    client: FlaskClient, ran: Ran
) -> None:
    document = client.get("/flex/openapi.json", headers={"Authorization": "Bearer bob"}).get_json()
    validate(document)
    refund = document["components"]["schemas"]["orders__refund_request"]
    assert "reason" in refund["properties"] and "reason" in refund["required"]
    assert {"/approvals", "/approvals/{id}", "/approvals/{id}/approve"} <= set(document["paths"])
