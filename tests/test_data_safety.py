"""Data safety: per-record bulk runs, lock declarations, Idempotency-Key and the audit log."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Request, current_app, send_file
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_flexactions import ActionError, Caller, FlexActions
from flask_flexactions.run.audit import AuditRecord
from flask_flexactions.run.idempotency import IDEMPOTENCY_TABLE, idempotency_table
from tests.conftest import AUTH, URL
from tests.models import Tag, User, db
from tests.test_fault_injection import ON_POSTGRESQL

SECRET = "hunter2-very-secret"
FLAGS_MESSAGE = "atomic, lock and background must be True or False"


@pytest.fixture
def users(app: Flask) -> None:
    with app.app_context():
        db.session.add_all(User(id=i, name=f"user{i}") for i in range(1, 6))
        db.session.commit()


def names(app: Flask) -> dict[int, str]:
    with app.app_context():
        return {user.id: user.name for user in db.session.scalars(sa.select(User))}


def execute(
    client: FlaskClient, headers: dict[str, str] | None = None, **params: Any
) -> TestResponse:
    return client.post(
        URL, json={"name": "execute_action", "params": params}, headers={**AUTH, **(headers or {})}
    )


# atomic=False


@pytest.fixture
def rename_each(flex: FlexActions, users: None) -> list[int]:
    calls: list[int] = []

    @flex.action(User, bulk=True, atomic=False)
    def rename(rows: list[User], params: dict[str, Any]) -> Any:
        (user,) = rows
        calls.append(user.id)
        user.name = f"renamed{user.id}"
        if user.id == 2:
            raise ActionError("User 2 is protected.")
        if user.id == 3:
            return False
        if user.id == 4:
            raise RuntimeError("boom")
        return f"done {user.id}"

    return calls


def test_per_record_outcomes(app: Flask, client: FlaskClient, rename_each: list[int]) -> None:
    response = execute(client, name="rename", model="users", ids=[5, 1, 2, 3, 4])
    assert response.status_code == 200
    assert response.get_json() == {
        "result": False,
        "message": "2 of 5 records done, 3 failed.",
        "errors": {"non_field_errors": ["Failed on the ids 2, 3, 4."]},
        "records": [
            {"id": 5, "result": True, "message": "done 5"},
            {"id": 1, "result": True, "message": "done 1"},
            {"id": 2, "result": False, "errors": {"non_field_errors": ["User 2 is protected."]}},
            {
                "id": 3,
                "result": False,
                "errors": {"non_field_errors": ["The action refused this record."]},
            },
            {
                "id": 4,
                "result": False,
                "errors": {
                    "non_field_errors": [
                        "The action failed on this record; the error has been logged."
                    ]
                },
            },
        ],
    }
    assert rename_each == [5, 1, 2, 3, 4]
    # Exactly the records reported as done are committed.
    assert names(app) == {1: "renamed1", 2: "user2", 3: "user3", 4: "user4", 5: "renamed5"}


def test_per_record_all_done(app: Flask, client: FlaskClient, rename_each: list[int]) -> None:
    response = execute(client, name="rename", model="users", ids="1,5")
    body = response.get_json()
    assert body["result"] is True and body["message"] == "2 of 2 records done, 0 failed."
    assert "errors" not in body
    assert names(app)[1] == "renamed1" and names(app)[5] == "renamed5"


def test_per_record_refuses_files(
    app: Flask, flex: FlexActions, client: FlaskClient, users: None
) -> None:
    @flex.action(User, bulk=True, atomic=False)
    def export(rows: list[User], params: dict[str, Any]) -> Any:
        rows[0].name = "x"
        return send_file(io.BytesIO(b"x"), download_name="x.txt")

    body = execute(client, name="export", model="users", ids=[1]).get_json()
    assert body["records"][0]["result"] is False
    assert names(app)[1] == "user1"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"atomic": False}, ValueError, "use it with bulk=True"),
        ({"atomic": False, "for_instance": True}, ValueError, "use it with bulk=True"),
        (
            {"atomic": 0, "bulk": True},
            TypeError,
            "atomic, lock and background must be True or False",
        ),
        ({"lock": "yes"}, TypeError, "atomic, lock and background must be True or False"),
    ],
)
def test_declaration_checks(
    flex: FlexActions, kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        flex.register_action(lambda rows, params: None, User, name="x", **kwargs)


def test_lock_runs_on_every_database(
    app: Flask, flex: FlexActions, client: FlaskClient, users: None
) -> None:
    @flex.action(
        User,
        bulk=True,
        lock=True,
        params=[
            {"name": "peer", "field": "ForeignKey", "params": {"related_model": {"model": User}}}
        ],
    )
    def pair(rows: list[User], params: dict[str, Any]) -> str:
        for user in rows:
            user.name = f"peer of {params['peer'].id}"
        return "ok"

    response = execute(client, name="pair", model="users", ids=[3, 1], params={"peer": 5})
    assert response.get_json() == {"result": True, "message": "ok"}
    assert names(app)[3] == "peer of 5"


# Idempotency-Key


@pytest.fixture
def counted(flex: FlexActions, users: None) -> list[str]:
    calls: list[str] = []

    @flex.action(User, for_instance=True, params=[{"name": "name", "field": "CharField"}])
    def rename(user: User, params: dict[str, Any]) -> str:
        calls.append(params.get("name", ""))
        if params.get("name") == "refuse":
            raise ActionError(errors={"name": ["Not that one."]})
        if params.get("name") == "crash":
            raise RuntimeError("boom")
        user.name = params["name"]
        return f"renamed to {user.name}"

    return calls


KEY = {"Idempotency-Key": "3f6c1b7e-5d1a-4c55-9d7f-0d5f1f1f9a01"}


def test_the_same_key_replays_the_first_answer(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert first.get_json() == {"result": True, "message": "renamed to ann"}
    assert "Idempotent-Replayed" not in first.headers
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == 1).values(name="changed since"))
        db.session.commit()
    second = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert second.status_code == 200 and second.data == first.data
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert counted == ["ann"] and names(app)[1] == "changed since"


def test_request_id_param_works_like_the_header(client: FlaskClient, counted: list[str]) -> None:
    for _ in range(3):
        response = execute(
            client, name="rename", model="users", id=1, params={"name": "bo"}, request_id="abc-1"
        )
        assert response.get_json()["result"] is True
    assert counted == ["bo"]


def test_another_payload_with_the_same_key_is_422(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    response = execute(client, KEY, name="rename", model="users", id=1, params={"name": "eve"})
    assert response.status_code == 422
    assert "different request" in response.get_json()["errors"]["non_field_errors"][0]
    assert counted == ["ann"] and names(app)[1] == "ann"


def test_a_duplicate_sent_while_the_first_runs_never_runs(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    """A duplicate from another worker thread while the first run's transaction is open:
    PostgreSQL answers it 409 at once; on SQLite it waits for the database's write lock,
    then replays the first run's answer. Either way the handler runs once."""
    store = app.extensions["flexactions"].idempotency
    real_complete_in = store.complete_in
    duplicates: list[Any] = []

    def send_duplicate() -> None:
        duplicates.append(
            execute(
                app.test_client(), KEY, name="rename", model="users", id=1, params={"name": "ann"}
            )
        )

    def duplicate_arrives(session: Any, reservation: Any, response: Any) -> None:
        thread = threading.Thread(target=send_duplicate)
        thread.start()
        if ON_POSTGRESQL:
            thread.join(timeout=30)
            assert duplicates[0].status_code == 409  # while the first run is still open
        threads.append(thread)
        real_complete_in(session, reservation, response)

    threads: list[threading.Thread] = []
    store.complete_in = duplicate_arrives
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    threads[0].join(timeout=30)
    assert first.get_json()["result"] is True
    (duplicate,) = duplicates
    if ON_POSTGRESQL:
        assert duplicate.status_code == 409
        assert "still running" in duplicate.get_json()["errors"]["non_field_errors"][0]
    else:
        assert duplicate.status_code == 200 and duplicate.data == first.data
        assert duplicate.headers["Idempotent-Replayed"] == "true"
    assert counted == ["ann"]


@pytest.mark.skipif(not ON_POSTGRESQL, reason="needs PostgreSQL: set FLEXACTIONS_TEST_DATABASE_URL")
def test_another_key_runs_while_a_first_key_is_held(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    """Each key has its own advisory lock: a request with another key, on another row, runs
    at once while the first run's transaction is open (SQLite has one writer at a time)."""
    store = app.extensions["flexactions"].idempotency
    real_complete_in = store.complete_in
    others: list[Any] = []

    def send_other() -> None:
        headers = {"Idempotency-Key": "another-key"}
        others.append(
            execute(
                app.test_client(),
                headers,
                name="rename",
                model="users",
                id=2,
                params={"name": "bo"},
            )
        )

    def other_arrives(session: Any, reservation: Any, response: Any) -> None:
        store.complete_in = real_complete_in
        thread = threading.Thread(target=send_other)
        thread.start()
        thread.join(timeout=30)
        real_complete_in(session, reservation, response)

    store.complete_in = other_arrives
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert first.get_json()["result"] is True
    (other,) = others
    assert other.status_code == 200 and other.get_json()["result"] is True
    assert sorted(counted) == ["ann", "bo"] and names(app)[2] == "bo"


def test_failed_answers_are_replayed_too(client: FlaskClient, counted: list[str]) -> None:
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": "refuse"})
    second = execute(client, KEY, name="rename", model="users", id=1, params={"name": "refuse"})
    assert first.get_json()["result"] is False and second.data == first.data
    assert counted == ["refuse"]


def stored_keys(app: Flask) -> int:
    with app.app_context():
        table = sa.table(IDEMPOTENCY_TABLE)
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(table)))


def test_a_crash_releases_the_key(app: Flask, client: FlaskClient, counted: list[str]) -> None:
    """A 500 may pass on retry: no answer is kept, the retry runs, and the key is free even
    for another payload."""
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": "crash"})
    again = execute(client, KEY, name="rename", model="users", id=1, params={"name": "crash"})
    assert first.status_code == again.status_code == 500
    assert "Idempotent-Replayed" not in again.headers
    assert counted == ["crash", "crash"] and stored_keys(app) == 0
    other = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert other.get_json() == {"result": True, "message": "renamed to ann"}
    assert counted == ["crash", "crash", "ann"] and names(app)[1] == "ann"


def test_invalid_params_are_answered_once_then_replayed(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    """Invalid params never reach the handler; their answer (``result: false``) is stored like
    any other, so a repeat is replayed and another payload under the key is 422."""
    first = execute(client, KEY, name="rename", model="users", id=1, params={"name": 7})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert first.get_json() == {"result": False, "errors": {"name": ["Not a valid string."]}}
    again = execute(client, KEY, name="rename", model="users", id=1, params={"name": 7})
    assert again.status_code == 200 and again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    other = execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert other.status_code == 422
    assert counted == [] and stored_keys(app) == 1 and names(app)[1] == "user1"


def test_a_replay_keeps_the_status_and_headers_of_the_answer(
    flex: FlexActions, client: FlaskClient, users: None
) -> None:
    """Every other replay test answers 200: this answer is a 201 with its own headers."""
    calls: list[int] = []

    @flex.action(User, for_instance=True)
    def create_report(user: User, params: dict[str, Any]) -> Any:
        calls.append(user.id)
        return current_app.response_class(
            f"report of {user.name}",
            status=201,
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=report.csv", "X-Other": "1"},
        )

    first = execute(client, KEY, name="create_report", model="users", id=2)
    assert first.status_code == 201 and first.data == b"report of user2"
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(2):
        again = execute(client, KEY, name="create_report", model="users", id=2)
        assert again.status_code == 201 and again.data == first.data
        assert again.headers["Idempotent-Replayed"] == "true"
        for header in ("Content-Type", "Content-Disposition"):
            assert again.headers[header] == first.headers[header]
        assert again.headers["Content-Type"].startswith("text/csv")
        # Only the headers that describe the body are stored.
        assert "X-Other" not in again.headers
    assert calls == [2]


REORDERED = (
    '{"name":"execute_action","params":{"name":"tag","model":"users","ids":[3,1],'
    '"params":{"label":"x","extra":{"a":1,"b":[1,2]},"note":"n"}}}',
    '{"params":{"params":{"note":"n","extra":{"b":[1,2],"a":1},"label":"x"},'
    '"ids":"3,1","model":"users","name":"tag"},"name":"execute_action"}',
)


def test_a_payload_resent_with_its_keys_in_another_order_is_replayed(
    flex: FlexActions, client: FlaskClient, users: None
) -> None:
    """Retry libraries rebuild JSON from a hash map: the keys may come in any order (and
    the ids as a string), and it is still the same request."""
    calls: list[dict[str, Any]] = []

    @flex.action(
        User,
        bulk=True,
        params=[
            {"name": "label", "field": "CharField"},
            {"name": "note", "field": "CharField"},
            {"name": "extra", "field": "JSONField"},
        ],
    )
    def tag(rows: list[User], params: dict[str, Any]) -> str:
        calls.append(params)
        return f"tagged {len(rows)}"

    answers = [
        client.post(URL, data=text, content_type="application/json", headers={**AUTH, **KEY})
        for text in REORDERED
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[1].get_data(as_text=True)
    assert answers[1].data == answers[0].data
    assert answers[0].get_json() == {"result": True, "message": "tagged 2"}
    assert "Idempotent-Replayed" not in answers[0].headers
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert calls == [{"label": "x", "note": "n", "extra": {"a": 1, "b": [1, 2]}}]


def test_protocol_errors_release_the_key(
    app: Flask, client: FlaskClient, counted: list[str]
) -> None:
    assert execute(client, KEY, name="rename", model="users", id="x").status_code == 400
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(sa.table(IDEMPOTENCY_TABLE)))
            == 0
        )


def test_keys_are_private_to_caller_and_action(
    app: Flask, flex: FlexActions, client: FlaskClient, counted: list[str]
) -> None:
    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        user = request.headers.get("X-User")
        return Caller(id=user, superuser=True) if user else None

    for user in ("ann", "bob"):
        headers = {**KEY, "Authorization": "", "X-User": user}
        response = execute(
            client, headers, name="rename", model="users", id=1, params={"name": user}
        )
        assert response.get_json()["result"] is True
    assert counted == ["ann", "bob"]


def test_keys_expire(app: Flask, client: FlaskClient, counted: list[str]) -> None:
    execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    with app.app_context():
        table = app.extensions["flexactions"].idempotency.table
        past = dt.datetime(2000, 1, 1)
        db.session.execute(table.update().values(expires_at=past))
        db.session.commit()
    execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert counted == ["ann", "ann"]


def test_keys_are_stamped_in_utc_whatever_the_local_zone(
    app: Flask, client: FlaskClient, counted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Naive UTC, as the expiry sweep compares them: a server in another zone must not keep
    its keys five hours longer or shorter."""
    try:
        with monkeypatch.context() as patch:
            patch.setenv("TZ", "Etc/GMT-5")  # POSIX sign: five hours east of UTC
            time.tzset()
            execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    finally:
        time.tzset()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with app.app_context():
        table = app.extensions["flexactions"].idempotency.table
        created = db.session.execute(sa.select(table.c.created_at)).scalar_one()
    assert abs(created - now) < dt.timedelta(minutes=5)


def test_expired_keys_are_deleted_in_batches(app: Flask) -> None:
    """Each sweep deletes at most ``limit`` keys, so one sweep never holds a long lock."""
    store = app.extensions["flexactions"].idempotency
    past = dt.datetime(2000, 1, 1)
    rows = [
        {
            "id": f"{n:064x}",
            "fingerprint": "f",
            "state": "done",
            "created_at": past,
            "expires_at": past,
        }
        for n in range(1001)
    ]
    with app.app_context():
        db.session.execute(store.table.insert(), rows)
        db.session.commit()
        assert store.delete_expired() == 1000
        assert store.delete_expired(limit=5) == 1
    assert stored_keys(app) == 0


def test_file_answers_are_replayed_byte_for_byte(
    flex: FlexActions, client: FlaskClient, users: None
) -> None:
    calls: list[int] = []

    @flex.action(User, bulk=True)
    def export(rows: list[User], params: dict[str, Any]) -> Any:
        calls.append(len(rows))
        data = ",".join(user.name for user in rows).encode()
        return send_file(io.BytesIO(data), as_attachment=True, download_name="users é.csv")

    first = execute(client, KEY, name="export", model="users", ids=[2, 1])
    second = execute(client, KEY, name="export", model="users", ids=[2, 1])
    assert first.data == second.data == b"user2,user1"
    assert second.headers["Content-Disposition"] == first.headers["Content-Disposition"]
    assert calls == [2]


@pytest.mark.parametrize(
    ("key", "request_id"),
    [("", None), ("a b", None), ("x" * 256, None), ("é", None), (None, 5), ("a", "b")],
    ids=["empty", "space", "too-long", "non-ascii", "not-a-string", "header-and-param-differ"],
)
def test_malformed_keys_are_400(
    client: FlaskClient, counted: list[str], key: str | None, request_id: Any
) -> None:
    headers = {} if key is None else {"Idempotency-Key": key}
    extra = {} if request_id is None else {"request_id": request_id}
    response = execute(
        client, headers, name="rename", model="users", id=1, params={"name": "z"}, **extra
    )
    assert response.status_code == 400
    assert counted == []


@pytest.mark.parametrize("config", [{"FLEXACTIONS_IDEMPOTENCY": False}])
def test_idempotency_can_be_off(client: FlaskClient, counted: list[str]) -> None:
    for _ in range(2):
        execute(client, KEY, name="rename", model="users", id=1, params={"name": "ann"})
    assert counted == ["ann", "ann"]


# The audit log


@pytest.fixture
def audited(flex: FlexActions, users: None) -> None:
    @flex.authenticator
    def by_header(request: Request) -> Caller | None:
        if request.headers.get("X-User") == "ro":
            return Caller(id="ro", read_only=True)
        return None

    @flex.action(
        User,
        for_instance=True,
        params=[
            {"name": "password", "field": "CharField", "required": True, "secret": True},
            {"name": "mode", "field": "CharField"},
        ],
    )
    def set_password(user: User, params: dict[str, Any]) -> str:
        user.name = "changed"
        if params.get("mode") == "refuse":
            raise ActionError(errors={"password": [f"Too weak: {params['password']}"]})
        if params.get("mode") == "crash":
            raise RuntimeError(params["password"])
        return "ok"


# One attempt of every kind: (headers, params, outcome, status).
ATTEMPTS: list[tuple[dict[str, str], dict[str, Any], str, int]] = [
    ({}, {"id": 1, "params": {"password": SECRET}}, "ran", 200),
    ({}, {"id": 1, "params": {"password": SECRET, "mode": "refuse"}}, "failed", 200),
    ({}, {"id": 1, "params": {"password": SECRET, "mode": "crash"}}, "failed", 500),
    ({}, {"id": 99, "params": {"password": SECRET}}, "invalid", 200),
    ({}, {"id": 1, "params": {"mode": "no password"}}, "invalid", 200),
    ({}, {"id": "not-an-id", "params": {"password": SECRET}}, "invalid", 400),
    (
        {"Authorization": "", "X-User": "ro"},
        {"id": 1, "params": {"password": SECRET}},
        "refused",
        403,
    ),
]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_AUDIT": "table"}])
def test_every_attempt_is_recorded_once_without_secrets(
    app: Flask, flex: FlexActions, client: FlaskClient, audited: None
) -> None:
    rounds = 3
    for _ in range(rounds):
        for headers, params, _, status in ATTEMPTS:
            response = execute(client, headers, name="set_password", model="users", **params)
            assert response.status_code == status
    with app.app_context():
        records = flex.audit_records(limit=1000)
    assert len(records) == rounds * len(ATTEMPTS)
    expected = [(outcome, status) for _, _, outcome, status in ATTEMPTS] * rounds
    assert [(r.outcome, r.status) for r in reversed(records)] == expected
    for record in records:
        assert SECRET not in json.dumps(record.__dict__, default=str)
        assert record.action == "set_password" and record.model == "users"
        assert record.duration_ms >= 0
    ran = records[-1]
    assert ran.caller_scheme == "token" and ran.target == {"ids": ["1"]}
    assert ran.params == {"password": "[redacted]"}
    assert records[-2].errors == {"password": ["[redacted]"]}
    assert records[0].caller_id == "ro"
    # The failed and refused attempts rolled back; the audit records stayed.
    assert names(app)[1] == "changed"


@pytest.mark.parametrize("config", [{"FLEXACTIONS_AUDIT": "table"}])
def test_a_committed_run_writes_its_record_in_its_own_transaction(
    app: Flask, flex: FlexActions, client: FlaskClient, audited: None
) -> None:
    """One COMMIT for the run and its record; a run that rolled back keeps its record too."""
    commits: list[int] = []

    def count(connection: Any) -> None:
        commits.append(1)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "commit", count)
    try:
        ran = execute(client, name="set_password", model="users", id=1, params={"password": "x"})
        assert ran.get_json() == {"result": True, "message": "ok"}
        assert len(commits) == 1
        refused = {"password": "x", "mode": "refuse"}
        execute(client, name="set_password", model="users", id=1, params=refused)
        assert len(commits) == 2  # rolled back, then the record on a connection of its own
    finally:
        sa.event.remove(engine, "commit", count)
    with app.app_context():
        outcomes = [record.outcome for record in flex.audit_records()]
    assert outcomes == ["failed", "ran"]


@pytest.mark.parametrize("config", [{"FLEXACTIONS_AUDIT": "table"}])
def test_a_commit_that_fails_still_leaves_one_record(
    app: Flask, flex: FlexActions, client: FlaskClient, audited: None, monkeypatch: Any
) -> None:
    """The record written inside the transaction is lost with it; the attempt is then
    recorded on a connection of its own, once, with the answer the client got."""
    from tests.test_outages import DriverError

    def lost_connection(*args: Any, **kwargs: Any) -> None:
        raise sa.exc.OperationalError("COMMIT", {}, DriverError("08006"))

    with app.app_context():
        monkeypatch.setattr(type(db.session()), "commit", lost_connection)
        response = execute(
            client, name="set_password", model="users", id=1, params={"password": "x"}
        )
        monkeypatch.undo()
    assert response.status_code == 503
    with app.app_context():
        records = flex.audit_records()
    assert [(record.outcome, record.status) for record in records] == [("failed", 503)]
    assert names(app)[1] == "user1"


@pytest.mark.parametrize("config", [{"FLEXACTIONS_AUDIT": "table"}])
def test_audit_read_api_filters(
    app: Flask, flex: FlexActions, client: FlaskClient, audited: None
) -> None:
    for headers, params, _, _ in ATTEMPTS:
        execute(client, headers, name="set_password", model="users", **params)
    execute(client, name="nope", model="users")
    with app.app_context():
        assert len(flex.audit_records(outcome="invalid")) == 4
        assert [r.action for r in flex.audit_records(action="nope")] == ["nope"]
        assert len(flex.audit_records(caller_id="ro")) == 1
        assert len(flex.audit_records(limit=2)) == 2
        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        assert flex.audit_records(since=future.replace(tzinfo=None)) == []


def test_large_selections_are_counted_and_hashed(app: Flask, flex: FlexActions) -> None:
    records: list[AuditRecord] = []

    class Sink:
        def write(self, record: AuditRecord) -> None:
            records.append(record)

    other = Flask(__name__)
    other.config.update(
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        FLEXACTIONS_TOKEN=AUTH["Authorization"].split()[1],
        FLEXACTIONS_AUDIT=Sink(),
    )
    db.init_app(other)
    extension = FlexActions(other, db=db)
    other.register_blueprint(extension.blueprint, url_prefix="/flex")
    extension.register_action(lambda rows, params: None, User, name="noop", bulk=True)
    execute(other.test_client(), name="noop", model="users", ids=list(range(1, 202)))
    with other.app_context():
        db.engine.dispose()
    (record,) = records
    assert record.target is not None and record.target["count"] == 201
    assert len(record.target["sha256"]) == 64 and "ids" not in record.target


@pytest.mark.parametrize("config", [{"FLEXACTIONS_AUDIT": "logging"}])
def test_logging_sink(client: FlaskClient, audited: None, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="flask_flexactions.audit"):
        execute(client, name="set_password", model="users", id=1, params={"password": SECRET})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "flask_flexactions.audit"]
    assert json.loads(line)["outcome"] == "ran" and SECRET not in line


def test_a_failing_sink_does_not_change_the_answer(
    app: Flask, flex: FlexActions, users: None, caplog: Any
) -> None:
    class Broken:
        def write(self, record: AuditRecord) -> None:
            raise OSError("disk full")

    app.extensions["flexactions"].audit = Broken()

    @flex.action()
    def ping(params: dict[str, Any]) -> str:
        return "pong"

    response = execute(app.test_client(), name="ping")
    assert response.get_json() == {"result": True, "message": "pong"}
    assert "Writing the Flex Actions audit record failed" in caplog.text


def test_reading_the_log_needs_the_table_sink(app: Flask, flex: FlexActions) -> None:
    with app.app_context(), pytest.raises(RuntimeError, match='FLEXACTIONS_AUDIT = "table"'):
        flex.audit_records()


@pytest.mark.parametrize("setting", ["file", 3])
def test_bad_audit_setting(app: Flask, setting: Any) -> None:
    other = Flask(__name__)
    other.config.update(
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"], FLEXACTIONS_AUDIT=setting
    )
    with pytest.raises(ValueError, match="FLEXACTIONS_AUDIT must be"):
        FlexActions(other, db=db)


def test_secret_must_be_a_bool(flex: FlexActions) -> None:
    with pytest.raises(TypeError, match="'secret' must be True or False"):
        flex.register_action(
            lambda params: None, name="x", params=[{"name": "p", "field": "CharField", "secret": 1}]
        )


class Person:
    """What a custom authenticator may return instead of a Caller: the app's own user."""

    def __init__(self, id: int | None) -> None:
        self.id = id


def test_keys_of_user_objects_are_private_and_anonymous_callers_cannot_send_one(
    app: Flask, flex: FlexActions, client: FlaskClient, counted: list[str]
) -> None:
    @flex.authenticator
    def by_header(request: Request) -> Person | None:
        user = request.headers.get("X-User")
        return Person(None if user == "nobody" else int(user)) if user else None

    for user in ("1", "2"):
        headers = {**KEY, "Authorization": "", "X-User": user}
        response = execute(
            client, headers, name="rename", model="users", id=1, params={"name": user}
        )
        assert response.get_json()["result"] is True
        assert "Idempotent-Replayed" not in response.headers
    assert counted == ["1", "2"]
    headers = {**KEY, "Authorization": "", "X-User": "nobody"}
    response = execute(client, headers, name="rename", model="users", id=1, params={"name": "x"})
    assert response.status_code == 400
    assert "Caller(id=...)" in response.get_json()["errors"]["non_field_errors"][0]
    assert counted == ["1", "2"] and names(app)[1] == "2"


def test_a_failed_dry_run_releases_its_key(
    app: Flask, flex: FlexActions, client: FlaskClient, users: None
) -> None:
    def preview(rows: list[User], params: dict[str, Any]) -> str:
        if any(user.name == "blocked" for user in rows):
            raise ActionError("Some users are already blocked.")
        return f"Would block {len(rows)}"

    @flex.action(User, bulk=True, preview=preview)
    def block(rows: list[User], params: dict[str, Any]) -> str:
        for user in rows:
            user.name = "blocked"
        return "blocked"

    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == 2).values(name="blocked"))
        db.session.commit()
    dry = execute(client, KEY, name="block", model="users", ids=[1, 2], dry_run=True)
    assert dry.get_json()["result"] is False
    real = execute(client, KEY, name="block", model="users", ids=[1, 2])
    assert real.status_code == 200 and real.get_json() == {"result": True, "message": "blocked"}
    assert names(app)[1] == "blocked"


def test_lock_covers_foreign_keys_loaded_under_another_attribute(
    app: Flask, flex: FlexActions, client: FlaskClient, users: None
) -> None:
    from marshmallow import Schema

    from flask_flexactions.declare.fields import ForeignKey

    class PairParams(Schema):
        first = ForeignKey(User, required=True)
        second = ForeignKey(User, required=True, attribute="other")

    @flex.action(lock=True, params=PairParams)
    def pair(params: dict[str, Any]) -> str:
        return f"{params['first'].id}+{params['other'].id}"

    locked: list[Any] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if "FOR UPDATE" in statement:
            locked.extend(parameters.values() if isinstance(parameters, dict) else parameters or ())

    with app.app_context():
        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", listener)
        try:
            response = execute(client, name="pair", params={"first": 4, "second": 2})
        finally:
            sa.event.remove(engine, "before_cursor_execute", listener)
        dialect = engine.dialect.name
    assert response.get_json() == {"result": True, "message": "4+2"}
    # SQLite has no row locks; PostgreSQL locks both rows.
    assert sorted(locked) == ([2, 4] if dialect == "postgresql" else [])


def test_a_caller_id_that_is_not_valid_unicode_still_owns_its_key(
    flex: FlexActions, client: FlaskClient, counted: list[str]
) -> None:
    """A custom authenticator may name its caller with any string, even one holding a lone
    surrogate (a JWT claim may decode to one): the key's row id must still be computed."""

    @flex.authenticator
    def odd(request: Request) -> Caller:
        return Caller(id=request.headers["X-User"].replace("?", "\ud800"), superuser=True)

    for user, name in (("a?", "ann"), ("a?", "ann"), ("b?", "bob")):
        headers = {**KEY, "Authorization": "", "X-User": user}
        response = execute(
            client, headers, name="rename", model="users", id=1, params={"name": name}
        )
        assert response.get_json() == {"result": True, "message": f"renamed to {name}"}
    assert counted == ["ann", "bob"]


def test_the_same_key_for_other_text_ids_is_422(
    app: Flask, flex: FlexActions, client: FlaskClient
) -> None:
    """The fingerprint holds the ids themselves: another selection of string keys under the
    same key is another request."""
    calls: list[list[str]] = []

    @flex.action(Tag, bulk=True)
    def relabel(rows: list[Tag], params: dict[str, Any]) -> str:
        calls.append([tag.code for tag in rows])
        return "relabelled"

    with app.app_context():
        db.session.add_all([Tag(code="alpha", label="A"), Tag(code="beta", label="B")])
        db.session.commit()
    first = execute(client, KEY, name="relabel", model="tags", ids=["alpha"])
    assert first.get_json() == {"result": True, "message": "relabelled"}
    other = execute(client, KEY, name="relabel", model="tags", ids=["beta"])
    assert other.status_code == 422
    again = execute(client, KEY, name="relabel", model="tags", ids="alpha")
    assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data
    assert calls == [["alpha"]]


def test_the_idempotency_table_keeps_its_schema() -> None:
    """Apps create the table with their own migrations: its columns are a contract."""
    table = idempotency_table(sa.MetaData())
    assert table.name == IDEMPOTENCY_TABLE == "flexactions_idempotency"
    columns = {
        column.name: (type(column.type).__name__, getattr(column.type, "length", None))
        for column in table.columns
    }
    assert columns == {
        "id": ("String", 64),
        "fingerprint": ("String", 64),
        "state": ("String", 8),
        "status": ("Integer", None),
        "headers": ("JSON", None),
        "body": ("LargeBinary", None),
        "created_at": ("DateTime", None),
        "expires_at": ("DateTime", None),
    }
    assert [column.name for column in table.primary_key] == ["id"]
    assert {column.name for column in table.columns if not column.nullable} == {
        "id",
        "fingerprint",
        "state",
        "created_at",
        "expires_at",
    }
    assert [[column.name for column in index.columns] for index in table.indexes] == [
        ["expires_at"]
    ]
