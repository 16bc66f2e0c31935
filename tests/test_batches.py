"""Batched bulk jobs (``batch_size=``): key ranges, one transaction per batch, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from flask import Flask

from flask_flexactions import ActionError, Caller, FlexActions
from flask_flexactions.run.batched import plan_job, run_batch
from tests.background_app import TOKEN
from tests.conftest import database_url
from tests.models import Tag, User, db
from tests.test_background import send, status

HEADERS = {"Authorization": f"Token {TOKEN}"}
USERS = 25


class Ledger:
    """What the handler saw: one list of ids per call, and a switch to fail on an id."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.fail_on: int | None = None


def make_flex(ledger: Ledger) -> FlexActions:
    flex = FlexActions()

    @flex.action(User, bulk=True, background=True, batch_size=10, label="Stamp")
    def stamp(users: list[User], params: dict[str, Any]) -> str:
        ledger.calls.append([user.id for user in users])
        for user in users:
            if user.id == ledger.fail_on:
                raise ActionError(f"User {user.id} cannot be stamped.")
            user.name = f"stamped {user.id}"
            db.session.add(Tag(code=f"stamp-{user.id}", label="stamp"))
        return f"{len(users)} stamped"

    @flex.scope(User)
    def not_blocked(statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        return statement.where(User.is_blocked.is_(False))

    return flex


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def fresh(app: Flask) -> None:
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add_all(User(id=i, name=f"user {i}") for i in range(1, USERS + 1))
        db.session.commit()


@pytest.fixture
def inline(ledger: Ledger, tmp_path: Path) -> Iterator[Flask]:
    app = _app(ledger, tmp_path, None)
    yield app
    _drop(app)


@pytest.fixture
def stuck(ledger: Ledger, tmp_path: Path) -> Iterator[Flask]:
    """Jobs wait on a memory broker no worker reads: the tests run their steps by hand."""
    app = _app(ledger, tmp_path, Celery("batches", broker="memory://"))
    yield app
    _drop(app)


def _app(ledger: Ledger, tmp_path: Path, celery: Celery | None) -> Flask:
    flex = make_flex(ledger)
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path),
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_BACKGROUND_INLINE=celery is None,
        FLEXACTIONS_AUDIT="table",
    )
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    fresh(app)
    return app


def _drop(app: Flask) -> None:
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def queue(app: Flask, **selection: Any) -> dict[str, Any]:
    response = send(
        app.test_client(), "execute_action", {"name": "stamp", "model": "users", **selection}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def names(app: Flask) -> dict[int, str]:
    with app.app_context():
        return {user.id: user.name for user in db.session.scalars(sa.select(User))}


def stamps(app: Flask) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(sa.select(Tag.code)))


def processed(ledger: Ledger) -> list[int]:
    return sorted(user_id for call in ledger.calls for user_id in call)


# Planning and running


def test_an_inverse_selection_runs_in_key_ranges_with_its_exclusions(
    inline: Flask, ledger: Ledger
) -> None:
    answer = queue(inline, inverseIds=True, ids=[10, 11, 20])
    assert answer["result"] is True and answer["job"]["state"] == "succeeded"
    assert answer["message"] == "Ran Stamp on 22 records in 3 batches."
    # Every 10th selected key ends a batch: the exclusions shift the boundaries.
    assert ledger.calls == [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 12],
        [13, 14, 15, 16, 17, 18, 19, 21, 22, 23],
        [24, 25],
    ]
    job = status(inline.test_client(), answer["job"]["id"])
    assert job["progress"] == {"done": 22, "total": 22, "status": None}
    assert len(stamps(inline)) == 22 and names(inline)[10] == "user 10"


def test_named_ids_run_in_sorted_chunks(inline: Flask, ledger: Ledger) -> None:
    answer = queue(inline, ids=[25, 3, 14, 1, 3, 99])
    assert answer["job"]["state"] == "succeeded"
    assert ledger.calls == [[1, 3, 14, 25]]  # 99 does not exist: skipped
    assert answer["message"] == "Ran Stamp on 4 records in 1 batch."


def test_the_scope_holds_in_every_batch(inline: Flask, ledger: Ledger) -> None:
    with inline.app_context():
        db.session.execute(sa.update(User).where(User.id.in_([2, 15])).values(is_blocked=True))
        db.session.commit()
    queue(inline, inverseIds=True)
    assert processed(ledger) == [i for i in range(1, USERS + 1) if i not in (2, 15)]


def test_queueing_reads_no_row_of_the_selection(stuck: Flask) -> None:
    """The request that queues a job over every row neither counts nor loads them."""
    seen: list[str] = []
    with stuck.app_context():
        engine = db.engine

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        answer = queue(stuck, inverseIds=True)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    assert answer["job"]["state"] == "queued"
    assert answer["message"] == "Queued Stamp in batches of 10 records."
    assert not [s for s in seen if "FROM users" in s], seen


def test_a_dry_run_answers_without_counting(inline: Flask, ledger: Ledger) -> None:
    answer = queue(inline, inverseIds=True, dry_run=True)
    assert answer == {
        "result": True,
        "dry_run": True,
        "count": None,
        "message": "Would run Stamp on the selected records, in batches of 10.",
    }
    assert ledger.calls == [] and stamps(inline) == []


# Failures, retries and cancel


def test_a_failed_batch_fails_the_job_and_a_retry_runs_only_the_rest(
    stuck: Flask, ledger: Ledger
) -> None:
    job = queue(stuck, inverseIds=True)["job"]["id"]
    ledger.fail_on = 15
    with stuck.app_context():
        state = stuck.extensions["flexactions"]
        seqs = plan_job(state, job)
        for seq in seqs:
            run_batch(state, job, seq)
    assert seqs == [1, 2, 3]
    failed = status(stuck.test_client(), job)
    assert failed["state"] == "failed"
    assert failed["answer"]["errors"]["non_field_errors"] == [
        "Batch 2 failed: User 15 cannot be stamped.",
        "Batch 1 (10 records) committed; batches 2-3 did not. retry_action runs the rest.",
    ]
    assert failed["answer"]["batches"] == {
        "committed": [1],
        "failed": [2],
        "not_run": [3],
        "records": 10,
    }
    assert len(stamps(stuck)) == 10 and names(stuck)[15] == "user 15"
    ledger.fail_on = None
    retried = send(stuck.test_client(), "retry_action", {"job": job}).get_json()
    assert retried["job"]["state"] == "running"
    with stuck.app_context():
        for seq in (2, 3):
            run_batch(state, job, seq)
        run_batch(state, job, 1)  # a batch that committed never runs twice
    final = status(stuck.test_client(), job)
    assert final["state"] == "succeeded" and final["progress"]["done"] == USERS
    assert len(stamps(stuck)) == USERS
    assert processed(ledger).count(15) == 2  # its first try was rolled back
    assert sorted(set(processed(ledger))) == list(range(1, USERS + 1))


def test_cancel_stops_after_the_current_batch(stuck: Flask, ledger: Ledger) -> None:
    job = queue(stuck, inverseIds=True)["job"]["id"]
    with stuck.app_context():
        state = stuck.extensions["flexactions"]
        plan_job(state, job)
        run_batch(state, job, 1)
    asked = send(stuck.test_client(), "cancel_action", {"job": job}).get_json()
    assert asked["job"]["cancel_requested"] is True
    with stuck.app_context():
        run_batch(state, job, 2)
        run_batch(state, job, 3)
    final = status(stuck.test_client(), job)
    assert final["state"] == "cancelled"
    assert final["answer"]["errors"]["non_field_errors"] == [
        "Cancelled: batch 1 (10 records) committed; batches 2-3 did not run."
    ]
    assert len(stamps(stuck)) == 10 and ledger.calls == [list(range(1, 11))]


def test_retry_is_only_for_a_batched_job_that_ended_badly(stuck: Flask) -> None:
    job = queue(stuck, inverseIds=True)["job"]["id"]
    response = send(stuck.test_client(), "retry_action", {"job": job})
    assert response.status_code == 409
    for bad in (None, 7, "", "no-such-job"):
        assert send(stuck.test_client(), "retry_action", {"job": bad}).status_code in (400, 404)


def test_rows_inserted_or_deleted_while_the_job_runs(stuck: Flask, ledger: Ledger) -> None:
    """Ranges are fixed when planned: a row deleted before its batch runs is skipped, one
    inserted into a range not run yet is processed, one past the last key is not."""
    with stuck.app_context():
        db.session.execute(sa.delete(User).where(User.id == 12))
        db.session.commit()
    job = queue(stuck, inverseIds=True)["job"]["id"]
    with stuck.app_context():
        state = stuck.extensions["flexactions"]
        seqs = plan_job(state, job)
        run_batch(state, job, seqs[0])
        db.session.execute(sa.delete(User).where(User.id == 15))
        db.session.add_all([User(id=12, name="back"), User(id=40, name="late")])
        db.session.commit()
        for seq in seqs[1:]:
            run_batch(state, job, seq)
    assert 15 not in processed(ledger) and 12 in processed(ledger)
    assert 40 not in processed(ledger)
    assert status(stuck.test_client(), job)["state"] == "succeeded"


def test_each_batch_has_its_audit_record(inline: Flask, ledger: Ledger) -> None:
    queue(inline, inverseIds=True)
    flex = inline.extensions["flexactions"]
    with inline.app_context():
        table = flex.audit.table
        rows = db.session.execute(sa.select(table.c.outcome, table.c.target)).all()
    outcomes = sorted(row.outcome for row in rows)
    assert outcomes == ["queued", "ran", "ran", "ran"]
    targets = [row.target for row in rows if row.outcome == "ran"]
    assert {"batch": 1, "after": None, "up_to": 10} in targets


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 10}, "bulk=True and background=True"),
        ({"batch_size": 10, "bulk": True}, "bulk=True and background=True"),
        ({"batch_size": 0, "bulk": True, "background": True}, "from 1 to"),
        ({"batch_size": True, "bulk": True, "background": True}, "whole number"),
        ({"batch_size": 5, "bulk": True, "background": True, "atomic": False}, "atomic"),
        (
            {"batch_size": 5, "bulk": True, "background": True, "preview": lambda u, p: "x"},
            "preview",
        ),
        ({"batch_size": 5, "bulk": True, "background": True, "approval": "lead"}, "approval"),
    ],
)
def test_declaration_mistakes(options: dict[str, Any], message: str) -> None:
    flex = FlexActions()
    with pytest.raises((TypeError, ValueError), match=message):
        flex.register_action(lambda users, params: None, User, name="x", **options)


def test_a_batched_job_whose_batches_stalled_fails_and_can_be_retried(
    stuck: Flask, ledger: Ledger
) -> None:
    """No batch started or committed for the whole lease: its workers are gone. The batches
    that committed stay; retry_action runs the rest."""
    import datetime as dt

    from flask_flexactions.run.jobs import BATCHES_STALLED
    from flask_flexactions.run.leases import utcnow

    job = queue(stuck, inverseIds=True)["job"]["id"]
    with stuck.app_context():
        state = stuck.extensions["flexactions"]
        plan_job(state, job)
        run_batch(state, job, 1)
        table = state.jobs.table
        past = utcnow() - dt.timedelta(seconds=1)
        db.session.execute(table.update().where(table.c.id == job).values(lease_until=past))
        db.session.commit()
    stalled = status(stuck.test_client(), job)
    assert stalled["state"] == "failed"
    assert stalled["answer"]["errors"]["non_field_errors"] == [BATCHES_STALLED]
    assert send(stuck.test_client(), "retry_action", {"job": job}).status_code == 200
    with stuck.app_context():
        for seq in (1, 2, 3):
            run_batch(state, job, seq)
    final = status(stuck.test_client(), job)
    assert final["state"] == "succeeded" and len(stamps(stuck)) == USERS
