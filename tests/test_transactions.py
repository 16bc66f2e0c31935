"""One action, one transaction: committed when the handler returns, rolled back otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, abort
from flask.signals import got_request_exception
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from flask_flexactions import ActionError, FlexActions, PermissionDenied
from flask_flexactions.run.answers import INTERNAL_ERROR_MESSAGE
from tests.conftest import Messages
from tests.models import Tag, User, db

INTERNAL_ERROR = {
    "result": False,
    "errors": {"non_field_errors": [INTERNAL_ERROR_MESSAGE]},
    "detail": INTERNAL_ERROR_MESSAGE,
}
SECRET = "secret-detail-42"

Snapshot = tuple[list[tuple[int, str, bool]], list[tuple[str, str]]]


def seed(app: Flask) -> Snapshot:
    with app.app_context():
        db.session.add_all([User(id=1, name="user1"), User(id=2, name="user2")])
        db.session.add(Tag(code="alpha", label="A"))
        db.session.commit()
    return snapshot(app)


def snapshot(app: Flask) -> Snapshot:
    """The database as a brand-new session (not the request's) sees it."""
    with app.app_context(), Session(db.engine) as session:
        users = sorted((u.id, u.name, u.is_blocked) for u in session.scalars(sa.select(User)))
        tags = sorted((t.code, t.label) for t in session.scalars(sa.select(Tag)))
    return users, tags


AFTER_WRITES: Snapshot = (
    [(1, "changed", True), (2, "core", False), (50, "new", False)],
    [("alpha", "A"), ("t", "x")],
)


def write_everything(rows: list[User]) -> None:
    """ORM changes to loaded rows, a new row, a core UPDATE, flushed to the database."""
    for row in rows:
        row.name = "changed"
        row.is_blocked = True
    db.session.add(User(id=50, name="new"))
    db.session.add(Tag(code="t", label="x"))
    db.session.flush()
    db.session.execute(sa.update(User).where(User.id == 2).values(name="core"))


KINDS = ["common", "collection", "record", "bulk"]


def register(flex: FlexActions, kind: str, then: Callable[[], Any]) -> None:
    """Register ``act`` of ``kind``: it writes everything, then returns or raises via ``then``."""
    if kind == "common":

        @flex.action(name="act")
        def common(params: dict[str, Any]) -> Any:
            write_everything([db.session.get(User, 1)])
            return then()

    elif kind == "collection":

        @flex.action(User, name="act")
        def collection(model: type[User], params: dict[str, Any]) -> Any:
            write_everything([db.session.get(model, 1)])
            return then()

    elif kind == "record":

        @flex.action(User, name="act", for_instance=True)
        def record(user: User, params: dict[str, Any]) -> Any:
            write_everything([user])
            return then()

    else:

        @flex.action(User, name="act", bulk=True)
        def bulk(users: list[User], params: dict[str, Any]) -> Any:
            write_everything(users)
            return then()


def run(messages: Messages, kind: str) -> Any:
    if kind == "common":
        return messages.execute("act")
    if kind == "collection":
        return messages.execute("act", "users")
    if kind == "record":
        return messages.execute("act", "users", id=1)
    return messages.execute("act", "users", ids=[1])


# Commit


@pytest.mark.parametrize("kind", KINDS)
def test_commit_on_success(app: Flask, flex: FlexActions, messages: Messages, kind: str) -> None:
    seed(app)
    register(flex, kind, lambda: "done")
    response = run(messages, kind)
    assert response.status_code == 200
    assert response.get_json() == {"result": True, "message": "done"}
    assert snapshot(app) == AFTER_WRITES


# Rollback


def raise_(error: BaseException) -> Callable[[], Any]:
    def then() -> Any:
        raise error

    return then


def aborting(*args: Any) -> Callable[[], Any]:
    def then() -> Any:
        abort(*args)

    return then


FAILURES: list[tuple[str, Callable[[], Any], int, dict[str, Any]]] = [
    (
        "action-error",
        raise_(ActionError("User is inactive")),
        200,
        {"result": False, "errors": {"non_field_errors": ["User is inactive"]}},
    ),
    (
        "action-error-fields",
        raise_(ActionError("No", errors={"amount": ["Too much"]})),
        200,
        {"result": False, "errors": {"non_field_errors": ["No"], "amount": ["Too much"]}},
    ),
    (
        "validation-error-dict",
        raise_(ValidationError({"amount": ["Payment amount can't be negative"]})),
        200,
        {"result": False, "errors": {"amount": ["Payment amount can't be negative"]}},
    ),
    (
        "validation-error-str",
        raise_(ValidationError("Bad")),
        200,
        {"result": False, "errors": {"non_field_errors": ["Bad"]}},
    ),
    (
        "validation-error-list",
        raise_(ValidationError(["One", "Two"])),
        200,
        {"result": False, "errors": {"non_field_errors": ["One", "Two"]}},
    ),
    ("return-false", lambda: False, 200, {"result": False}),
    ("unexpected-exception", raise_(RuntimeError(SECRET)), 500, INTERNAL_ERROR),
    ("key-error", raise_(KeyError(SECRET)), 500, INTERNAL_ERROR),
    ("bad-return-type", lambda: {"result": True}, 500, INTERNAL_ERROR),
    (
        "abort-403",
        aborting(403, "Not your order."),
        403,
        {
            "result": False,
            "errors": {"non_field_errors": ["Not your order."]},
            "detail": "Not your order.",
        },
    ),
    (
        "permission-denied",
        raise_(PermissionDenied("Not allowed.")),
        403,
        {
            "result": False,
            "errors": {"non_field_errors": ["Not allowed."]},
            "detail": "Not allowed.",
        },
    ),
    (
        "abort-409",
        aborting(409, "Changed meanwhile."),
        409,
        {
            "result": False,
            "errors": {"non_field_errors": ["Changed meanwhile."]},
            "detail": "Changed meanwhile.",
        },
    ),
]


@pytest.mark.parametrize(
    ("then", "status", "body"),
    [(t, s, b) for _, t, s, b in FAILURES],
    ids=[i for i, *_ in FAILURES],
)
@pytest.mark.parametrize("kind", KINDS)
def test_rollback_when_the_action_fails(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    kind: str,
    then: Callable[[], Any],
    status: int,
    body: dict[str, Any],
) -> None:
    before = seed(app)
    register(flex, kind, then)
    response = run(messages, kind)
    assert response.status_code == status
    assert response.get_json() == body
    assert SECRET not in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_abort_403_without_description_uses_the_standard_text(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    before = seed(app)
    register(flex, "record", aborting(403))
    response = run(messages, "record")
    assert response.status_code == 403
    body = response.get_json()
    assert body["result"] is False and list(body["errors"]) == ["non_field_errors"]
    [message] = body["errors"]["non_field_errors"]
    assert "permission" in message.lower()
    assert snapshot(app) == before


def test_session_is_usable_after_a_failure(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    seed(app)
    register(flex, "record", raise_(RuntimeError(SECRET)))

    @flex.action(User, for_instance=True)
    def rename(user: User, params: dict[str, Any]) -> None:
        user.name = "renamed"

    assert run(messages, "record").status_code == 500
    assert messages.execute("rename", "users", id=2).get_json() == {"result": True}
    assert snapshot(app)[0] == [(1, "user1", False), (2, "renamed", False)]


# Unexpected exceptions: logged with traceback, signalled, answered generically


def test_unexpected_exception_is_logged_signalled_and_hidden(
    app: Flask, flex: FlexActions, messages: Messages, caplog: pytest.LogCaptureFixture
) -> None:
    before = seed(app)
    error = RuntimeError(SECRET)

    @flex.action(User, for_instance=True)
    def explode(user: User, params: dict[str, Any]) -> None:
        user.name = "changed"
        raise error

    received: list[tuple[Any, BaseException]] = []

    def receiver(sender: Any, exception: BaseException, **extra: Any) -> None:
        received.append((sender, exception))

    caplog.set_level(logging.ERROR)
    with got_request_exception.connected_to(receiver, app):
        response = messages.execute("explode", "users", id=1)
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    text = response.get_data(as_text=True)
    assert SECRET not in text and "RuntimeError" not in text and "Traceback" not in text
    assert snapshot(app) == before
    assert received == [(app, error)]
    [record] = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert record.levelno == logging.ERROR
    assert "explode" in record.getMessage()
    assert "Traceback" in caplog.text and f"RuntimeError: {SECRET}" in caplog.text


# A failing commit


def not_null(user: User) -> None:
    user.name = None  # type: ignore[assignment]


def duplicate_user(user: User) -> None:
    db.session.add(User(id=2, name="duplicate"))


def duplicate_tag(user: User) -> None:
    db.session.add(Tag(code="alpha", label="duplicate"))


@pytest.mark.parametrize(
    "violate", [not_null, duplicate_user, duplicate_tag], ids=["not-null", "unique-pk", "text-pk"]
)
def test_failing_commit_is_500_and_keeps_nothing(
    app: Flask,
    flex: FlexActions,
    messages: Messages,
    caplog: pytest.LogCaptureFixture,
    violate: Callable[[User], None],
) -> None:
    before = seed(app)
    returned: list[str] = []

    @flex.action(User, for_instance=True)
    def save(user: User, params: dict[str, Any]) -> str:
        db.session.add(User(id=60, name="kept?"))
        user.is_blocked = True
        violate(user)
        returned.append("save")
        return "saved"

    received: list[BaseException] = []

    def receiver(sender: Any, exception: BaseException, **extra: Any) -> None:
        received.append(exception)

    caplog.set_level(logging.ERROR)
    with got_request_exception.connected_to(receiver, app):
        response = messages.execute("save", "users", id=1)
    assert returned == ["save"]  # the handler returned: the commit is what failed
    assert response.status_code == 500
    assert response.get_json() == INTERNAL_ERROR
    text = response.get_data(as_text=True).lower()
    for leak in ("integrity", "unique", "null", "insert", "update", "users", "sql"):
        assert leak not in text
    assert snapshot(app) == before
    assert len(received) == 1 and isinstance(received[0], sa.exc.IntegrityError)
    assert any(
        isinstance(r.exc_info[1], sa.exc.IntegrityError) for r in caplog.records if r.exc_info
    )
    # The next request runs normally.
    flex.register_action(lambda user, params: "ok", User, name="ok", for_instance=True)
    assert messages.execute("ok", "users", id=1).get_json() == {"result": True, "message": "ok"}


def test_errors_found_before_the_handler_leave_the_database_alone(
    app: Flask, flex: FlexActions, messages: Messages
) -> None:
    before = seed(app)
    ran: list[str] = []

    @flex.action(User, bulk=True, params=[{"name": "n", "field": "IntegerField"}])
    def act(users: list[User], params: dict[str, Any]) -> None:
        ran.append("act")
        write_everything(users)

    assert messages.execute("act", "users", ids=[1, 99]).get_json()["result"] is False
    assert messages.execute("act", "users", ids=[1], params={"n": "x"}).get_json() == {
        "result": False,
        "errors": {"n": ["Not a valid integer."]},
    }
    assert ran == []
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("error", "errors"),
    [
        (ValidationError({"x": None, "y": 5}), {"y": ["5"]}),
        (ValidationError({"n": {"inner": ("a", "b")}}), {"n.inner": ["a", "b"]}),
        (ActionError(errors={"x": 5}), {"x": ["5"]}),  # type: ignore[dict-item]
    ],
    ids=["none-and-number", "nested-tuple", "action-error-number"],
)
def test_oddly_shaped_errors_from_a_handler_are_still_field_errors(
    app: Flask, flex: FlexActions, messages: Messages, error: Exception, errors: dict[str, Any]
) -> None:
    before = seed(app)

    @flex.action(User, bulk=True)
    def odd(rows: list[User], params: dict[str, Any]) -> None:
        write_everything(rows)
        raise error

    response = messages.execute("odd", "users", ids=[1, 2])

    assert response.status_code == 200
    assert response.get_json() == {"result": False, "errors": errors}
    assert snapshot(app) == before
