"""Jobs always end: leases, queue timeouts, the sweep, retries after outages, sealed secrets."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from flask import Flask

from flask_flexactions import ActionError, FlexActions
from flask_flexactions.run.job_run import run_job
from flask_flexactions.run.jobs import DATABASE_LOST, NEVER_STARTED, WORKER_LOST, RetryLater
from flask_flexactions.run.leases import HOST, utcnow
from flask_flexactions.run.worker import run_job_task
from tests.background_app import TOKEN
from tests.conftest import database_url
from tests.models import User, db
from tests.test_background import DEADLINE, reset, send, status, user_names, wait_for
from tests.test_fault_injection import ON_POSTGRESQL
from tests.test_outages import DriverError

HEADERS = {"Authorization": f"Token {TOKEN}"}
SECRET = "hunter2-do-not-store"


def make_flex(ran: list[Any]) -> FlexActions:
    """Actions that record their runs in ``ran``: a slow rename and a secret setter."""
    flex = FlexActions()

    @flex.action(
        User,
        bulk=True,
        background=True,
        params=[
            {"name": "pause", "field": "FloatField"},
            {"name": "refuse", "field": "BooleanField"},
            {"name": "lose_database", "field": "BooleanField"},
        ],
    )
    def rename_all(users: list[User], params: dict[str, Any]) -> str:
        ran.append([user.id for user in users])
        for user in users:
            user.name = f"renamed {user.id}"
            db.session.flush()
            if params.get("lose_database"):
                outage()
            threading.Event().wait(params.get("pause", 0))
        if params.get("refuse"):
            raise ActionError("Refused after writing.")
        return f"{len(users)} renamed"

    @flex.action(
        User,
        for_instance=True,
        background=True,
        params=[{"name": "api_key", "field": "CharField", "required": True, "secret": True}],
    )
    def set_key(user: User, params: dict[str, Any]) -> str:
        ran.append(params["api_key"])
        return "key set"

    return flex


def build(flex: FlexActions, tmp_path: Path, celery: Celery | None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path),
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_BACKGROUND_INLINE=celery is None,
        SECRET_KEY="a long random test secret",
        **config,
    )
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    reset(app)
    return app


@pytest.fixture
def ran() -> list[Any]:
    return []


@pytest.fixture
def stuck(ran: list[Any], tmp_path: Path) -> Iterator[Flask]:
    """Jobs stay queued: the broker is in memory and no worker reads it."""
    app = build(make_flex(ran), tmp_path, Celery("stuck", broker="memory://"))
    yield app
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def queue(app: Flask, name: str = "rename_all", **params: Any) -> str:
    params.setdefault("ids", [1, 2])
    response = send(app.test_client(), "execute_action", {"name": name, "model": "users", **params})
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["job"]["id"])


def jobs_of(app: Flask) -> Any:
    return app.extensions["flexactions"].jobs


def set_job(app: Flask, job: str, **values: Any) -> None:
    with app.app_context():
        table = jobs_of(app).table
        db.session.execute(table.update().where(table.c.id == job).values(**values))
        db.session.commit()


def run_in_worker(app: Flask, job: str) -> None:
    with app.app_context():
        run_job(app.extensions["flexactions"], job)


# Leases: a running job whose worker is gone ends failed


def test_a_running_job_whose_lease_ran_out_is_failed_when_read(stuck: Flask) -> None:
    job = queue(stuck)
    past = utcnow() - dt.timedelta(seconds=1)
    set_job(stuck, job, state="running", worker_host="elsewhere", worker_pid=1, lease_until=past)
    current = status(stuck.test_client(), job)
    assert current["state"] == "failed"
    assert current["answer"]["errors"]["non_field_errors"] == [WORKER_LOST]


def test_a_running_job_with_a_live_lease_stays_running(stuck: Flask, ran: list[Any]) -> None:
    job = queue(stuck)
    later = utcnow() + dt.timedelta(seconds=60)
    set_job(stuck, job, state="running", worker_host="elsewhere", worker_pid=1, lease_until=later)
    assert status(stuck.test_client(), job)["state"] == "running"
    run_in_worker(stuck, job)  # a redelivery: the worker elsewhere may still be running it
    assert status(stuck.test_client(), job)["state"] == "running" and ran == []


def test_a_job_of_a_dead_local_process_is_failed_at_once(stuck: Flask) -> None:
    import subprocess

    with subprocess.Popen(["true"]) as finished:
        finished.wait()
    job = queue(stuck)
    later = utcnow() + dt.timedelta(seconds=60)
    set_job(
        stuck, job, state="running", worker_host=HOST, worker_pid=finished.pid, lease_until=later
    )
    assert status(stuck.test_client(), job)["state"] == "failed"


def test_the_lease_is_renewed_while_the_job_runs(ran: list[Any], tmp_path: Path) -> None:
    """A 3 s lease and a run of about 5 s: read while it runs, the job is still running."""
    if not ON_POSTGRESQL:
        pytest.skip("SQLite locks the whole database while a job writes: needs PostgreSQL")
    app = build(
        make_flex(ran), tmp_path, Celery("lease", broker="memory://"), FLEXACTIONS_JOB_LEASE=3
    )
    job = queue(app, ids=[1, 2, 3, 4, 5], params={"pause": 1.0})
    worker = threading.Thread(target=run_in_worker, args=(app, job))
    worker.start()
    client = app.test_client()
    wait_for(client, job, lambda j: j["state"] == "running")
    threading.Event().wait(4.0)  # past the first lease
    assert status(client, job)["state"] == "running"
    worker.join(timeout=DEADLINE)
    assert status(client, job)["state"] == "succeeded"
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


# Queue timeout: a job no worker started ends failed, and never runs


def test_a_job_no_worker_started_in_time_is_failed_and_never_runs(
    stuck: Flask, ran: list[Any]
) -> None:
    job = queue(stuck)
    set_job(stuck, job, created_at=utcnow() - dt.timedelta(hours=2))  # timeout: one hour
    current = status(stuck.test_client(), job)
    assert current["state"] == "failed"
    assert current["answer"]["errors"]["non_field_errors"] == [NEVER_STARTED]
    run_in_worker(stuck, job)  # a worker that comes late
    assert ran == [] and user_names(stuck)[1] == "user 1"


# The sweep


def test_the_sweep_fails_stale_jobs_and_deletes_expired_rows(stuck: Flask) -> None:
    lost, waiting, old, fresh = (queue(stuck) for _ in range(4))
    now = utcnow()
    set_job(
        stuck, lost, state="running", worker_host="x", lease_until=now - dt.timedelta(seconds=1)
    )
    set_job(stuck, waiting, created_at=now - dt.timedelta(hours=2))
    set_job(stuck, old, state="succeeded", expires_at=now - dt.timedelta(seconds=1))
    keyed = {**HEADERS, "Idempotency-Key": "sweep-me"}
    body = {
        "name": "execute_action",
        "params": {"name": "rename_all", "model": "users", "ids": [3]},
    }
    assert stuck.test_client().post("/flex/messages/", json=body, headers=keyed).status_code == 200
    with stuck.app_context():
        keys = stuck.extensions["flexactions"].idempotency.table
        db.session.execute(keys.update().values(expires_at=now - dt.timedelta(seconds=1)))
        db.session.commit()
    result = stuck.test_cli_runner().invoke(args=["flexactions", "sweep"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "1 running jobs whose worker is gone, failed",
        "1 queued jobs no worker started, failed",
        "1 expired jobs deleted",
        "1 expired Idempotency-Keys deleted",
    ]
    client = stuck.test_client()
    assert status(client, lost)["state"] == "failed"
    assert status(client, waiting)["state"] == "failed"
    assert send(client, "get_action_status", {"job": old}).status_code == 404
    assert status(client, fresh)["state"] == "queued"
    with stuck.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(keys)) == 0


def test_requests_sweep_at_most_once_per_interval(stuck: Flask, monkeypatch: Any) -> None:
    state = stuck.extensions["flexactions"]
    sweeps: list[int] = []
    real = state.housekeeping.run
    monkeypatch.setattr(state.housekeeping, "run", lambda: sweeps.append(1) or real())
    for _ in range(3):
        queue(stuck)
    assert sweeps == [1]


# Outages: the Celery task retries, the job still ends


class FakeTask:
    """The bound Celery task: records the retry asked, as Celery's ``task.retry`` would."""

    class request:  # noqa: N801 - Celery's attribute name
        retries = 2

    def __init__(self) -> None:
        self.retried: list[dict[str, Any]] = []

    def retry(self, **options: Any) -> Exception:
        self.retried.append(options)
        return RuntimeError("retry")


def outage(*args: Any, **kwargs: Any) -> None:
    raise sa.exc.OperationalError("UPDATE flexactions_jobs", {}, DriverError("57P01"))


def test_an_outage_when_a_job_starts_is_retried_with_backoff(
    stuck: Flask, ran: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queue(stuck)
    monkeypatch.setattr(jobs_of(stuck), "_claim", outage)
    task = FakeTask()
    with stuck.app_context(), pytest.raises(RuntimeError, match="retry"):
        run_job_task(task, job)
    [retry] = task.retried
    assert retry["args"] == (job,) and retry["kwargs"] == {}  # start the job again
    assert retry["countdown"] == 4 and retry["max_retries"] > 10
    monkeypatch.undo()
    with stuck.app_context():
        run_job_task(task, job, **retry["kwargs"])  # the retry, the database back
    assert status(stuck.test_client(), job)["state"] == "succeeded" and len(ran) == 1


def test_an_outage_while_recording_a_failure_is_retried_until_recorded(
    stuck: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = jobs_of(stuck)
    job = queue(stuck, params={"refuse": True})  # the handler refuses: the run rolls back
    real_finish = jobs._finish
    monkeypatch.setattr(jobs, "_finish", outage)
    task = FakeTask()
    with stuck.app_context(), pytest.raises(RuntimeError, match="retry"):
        run_job_task(task, job)
    [retry] = task.retried
    outcome = retry["kwargs"]["outcome"]
    refused = {"non_field_errors": ["Refused after writing."]}
    assert outcome["state"] == "failed" and json.loads(outcome["body"])["errors"] == refused
    assert status(stuck.test_client(), job)["state"] == "running"
    monkeypatch.setattr(jobs, "_finish", real_finish)
    with stuck.app_context():
        run_job_task(task, job, **retry["kwargs"])
    final = status(stuck.test_client(), job)
    assert final["state"] == "failed" and final["answer"]["errors"] == refused


def test_an_outage_during_the_run_fails_the_job_and_rolls_back(stuck: Flask) -> None:
    job = queue(stuck, ids=[1, 2, 3], params={"lose_database": True})
    run_in_worker(stuck, job)
    final = status(stuck.test_client(), job)
    assert final["state"] == "failed"
    assert final["answer"]["errors"]["non_field_errors"] == [DATABASE_LOST]
    assert user_names(stuck)[1] == "user 1"


def test_retry_later_carries_what_to_record() -> None:
    later = RetryLater("abc", {"state": "failed"})
    assert later.outcome == {"state": "failed"} and "abc" in str(later)


# Secret params are sealed while the job waits


def test_secret_params_never_sit_in_the_jobs_table_in_plain_text(
    stuck: Flask, ran: list[Any]
) -> None:
    job = queue(stuck, "set_key", id=1, ids=None, params={"api_key": SECRET})
    with stuck.app_context():
        table = jobs_of(stuck).table
        with db.engine.connect() as connection:
            raw = connection.execute(
                sa.select(sa.cast(table.c.request, sa.Text)).where(table.c.id == job)
            ).scalar()
    assert SECRET not in raw and "sealed" in raw
    run_in_worker(stuck, job)
    assert ran == [SECRET]
    assert status(stuck.test_client(), job)["state"] == "succeeded"


def test_a_changed_secret_key_fails_the_job_clearly(stuck: Flask, ran: list[Any]) -> None:
    from flask_flexactions.run.sealing import SecretBox

    job = queue(stuck, "set_key", id=1, ids=None, params={"api_key": SECRET})
    jobs_of(stuck).secrets = SecretBox("another key")
    run_in_worker(stuck, job)
    final = status(stuck.test_client(), job)
    assert final["state"] == "failed" and ran == []
    assert "FLEXACTIONS_SECRET_KEY" in final["answer"]["errors"]["non_field_errors"][0]


def test_background_secret_params_need_a_key(ran: list[Any], tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path), FLEXACTIONS_BACKGROUND_INLINE=True
    )
    db.init_app(app)
    with pytest.raises(ValueError, match="SECRET_KEY"):
        make_flex(ran).init_app(app, db=db)


def test_inline_jobs_answer_their_true_state_and_replay_it(ran: list[Any], tmp_path: Path) -> None:
    app = build(make_flex(ran), tmp_path, None)
    client = app.test_client()
    keyed = {**HEADERS, "Idempotency-Key": "inline-1"}
    body = {
        "name": "execute_action",
        "params": {"name": "rename_all", "model": "users", "ids": [2]},
    }
    first = client.post("/flex/messages/", json=body, headers=keyed)
    answer = first.get_json()
    assert answer["result"] is True and answer["message"] == "1 renamed"
    assert answer["job"]["state"] == "succeeded"
    again = client.post("/flex/messages/", json=body, headers=keyed)
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"
    assert ran == [[2]]
    with app.app_context():
        db.drop_all()
        db.engine.dispose()
