"""Background actions: inline runs, and a real Celery worker on the local Redis server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, send_file
from flask.testing import FlaskClient

from flask_flexactions import FlexActions
from flask_flexactions.run.job_run import run_job
from flask_flexactions.run.jobs import WORKER_LOST
from flask_flexactions.run.progress import CANCELLED
from tests import background_app
from tests.background_app import TOKEN, create_app, create_celery
from tests.conftest import database_url
from tests.models import Device, Tag, User, db

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"Authorization": f"Token {TOKEN}"}
DEADLINE = 60.0


def send(client: FlaskClient, name: str, params: dict[str, Any]) -> Any:
    return client.post("/flex/messages/", json={"name": name, "params": params}, headers=HEADERS)


def queue_rename(client: FlaskClient, ids: list[int], **values: Any) -> str:
    response = send(
        client,
        "execute_action",
        {"name": "rename_all", "model": "users", "ids": ids, "params": values},
    )
    body = response.get_json()
    assert response.status_code == 200, body
    if client.application.extensions["flexactions"].jobs.inline:
        # The job ran in the request: the answer tells how it ended.
        assert body["job"]["state"] in ("succeeded", "failed")
        assert body["result"] is (body["job"]["state"] == "succeeded"), body
    else:
        assert body["result"] is True and body["job"]["state"] == "queued", body
    return str(body["job"]["id"])


def status(client: FlaskClient, job: str) -> dict[str, Any]:
    response = send(client, "get_action_status", {"job": job})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["job"]  # type: ignore[no-any-return]


def wait_for(client: FlaskClient, job: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        current = status(client, job)
        if done(current):
            return current
        time.sleep(0.05)
    raise AssertionError(f"job {job} never got there: {status(client, job)}")


def user_names(app: Flask) -> dict[int, str]:
    with app.app_context():
        return {user.id: user.name for user in db.session.scalars(sa.select(User))}


def reset(app: Flask, count: int = 5) -> None:
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.session.add_all(User(id=i, name=f"user {i}") for i in range(1, count + 1))
        db.session.commit()


def inline_app(flex: FlexActions, tmp_path: Path, users: int = 5, **config: Any) -> Flask:
    """An app serving ``flex`` with inline background runs and ``users`` fresh users."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url(tmp_path),
        FLEXACTIONS_BACKGROUND_INLINE=True,
        **config,
    )
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    reset(app, users)
    return app


# Inline runs (FLEXACTIONS_BACKGROUND_INLINE): the same jobs, no worker


@pytest.fixture
def inline(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(database_url(tmp_path), inline=True)
    reset(app)
    yield app
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_inline_job_succeeds_with_progress(inline: Flask) -> None:
    client = inline.test_client()
    job = queue_rename(client, [3, 1])
    current = status(client, job)
    assert current["state"] == "succeeded"
    assert current["progress"] == {"done": 2, "total": 2, "status": "user 1"}
    assert current["answer"] == {"result": True, "message": "2 renamed"}
    assert user_names(inline)[3] == "renamed 3"


def test_inline_failure_rolls_back(inline: Flask) -> None:
    client = inline.test_client()
    job = queue_rename(client, [1, 2], fail=True)
    current = status(client, job)
    assert current["state"] == "failed"
    assert current["answer"]["errors"] == {
        "non_field_errors": ["Refused after writing: everything rolls back."]
    }
    assert user_names(inline) == {i: f"user {i}" for i in range(1, 6)}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"ids": [1, 99]}, "non_field_errors"), ({"ids": [1], "params": {"pause": "x"}}, "pause")],
)
def test_invalid_runs_are_refused_before_queueing(
    inline: Flask, params: dict[str, Any], field: str
) -> None:
    body = send(
        inline.test_client(), "execute_action", {"name": "rename_all", "model": "users", **params}
    )
    assert body.get_json()["result"] is False and field in body.get_json()["errors"]
    with inline.app_context():
        table = inline.extensions["flexactions"].jobs.table
        assert db.session.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def test_status_of_unknown_or_foreign_jobs_is_404(inline: Flask) -> None:
    client = inline.test_client()
    for job in ("nope", uuid.uuid4().hex, "x" * 500):
        response = send(client, "get_action_status", {"job": job})
        assert response.status_code == 404
    assert send(client, "cancel_action", {"job": "nope"}).status_code == 404
    for bad in (None, 3, ["a"], ""):
        assert send(client, "get_action_status", {"job": bad}).status_code == 400


def test_jobs_are_private_to_their_caller(inline: Flask) -> None:
    job = queue_rename(inline.test_client(), [1])
    state = inline.extensions["flexactions"]
    from flask_flexactions import Caller

    with inline.app_context(), pytest.raises(Exception, match="Unknown job"):
        state.jobs.status(job, Caller(id="someone-else"), download=False)


def test_a_replayed_key_gives_the_same_job(inline: Flask) -> None:
    client = inline.test_client()
    body = {
        "name": "execute_action",
        "params": {"name": "rename_all", "model": "users", "ids": [1]},
    }
    headers = {**HEADERS, "Idempotency-Key": "one-job-only"}
    first = client.post("/flex/messages/", json=body, headers=headers).get_json()
    second = client.post("/flex/messages/", json=body, headers=headers).get_json()
    assert first["job"]["id"] == second["job"]["id"]


def test_cancel_a_finished_job_changes_nothing(inline: Flask) -> None:
    client = inline.test_client()
    job = queue_rename(client, [1])
    response = send(client, "cancel_action", {"job": job})
    assert response.status_code == 200 and response.get_json()["job"]["state"] == "succeeded"


def test_file_answers_are_kept_for_download(tmp_path: Path) -> None:
    flex = FlexActions()

    @flex.action(User, bulk=True, background=True)
    def export(users: list[User], params: dict[str, Any]) -> Any:
        data = "\n".join(user.name for user in users).encode()
        return send_file(
            __import__("io").BytesIO(data), as_attachment=True, download_name="users.txt"
        )

    app = inline_app(flex, tmp_path, 2, FLEXACTIONS_TOKEN=TOKEN)
    client = app.test_client()
    body = send(client, "execute_action", {"name": "export", "model": "users", "ids": [2, 1]})
    job = body.get_json()["job"]["id"]
    current = status(client, job)
    assert current["state"] == "succeeded" and current["file"]["size"] == len(b"user 2\nuser 1")
    download = send(client, "get_action_status", {"job": job, "download": True})
    assert download.data == b"user 2\nuser 1"
    assert download.headers["Content-Disposition"] == 'attachment; filename="users.txt"'
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_a_job_on_uuid_keys_keeps_its_selection(tmp_path: Path) -> None:
    """The job stores its selection as JSON: a UUID key is kept as its text and parsed back."""
    flex = FlexActions()
    ran: list[list[str]] = []

    @flex.action(Device, bulk=True, background=True)
    def rename_devices(devices: list[Device], params: dict[str, Any]) -> str:
        ran.append([device.name for device in devices])
        return f"{len(devices)} renamed"

    app = inline_app(flex, tmp_path, 0, FLEXACTIONS_TOKEN=TOKEN)
    ids = [uuid.UUID(int=2), uuid.UUID(int=1)]
    with app.app_context():
        db.session.add_all(Device(id=key, name=f"device {key.int}") for key in ids)
        db.session.commit()
    client = app.test_client()
    params = {"name": "rename_devices", "model": "devices", "ids": [str(key) for key in ids]}
    body = send(client, "execute_action", params).get_json()
    assert body["job"]["state"] == "succeeded", body
    assert ran == [["device 2", "device 1"]]
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_background_actions_need_celery_or_inline(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url(tmp_path), FLEXACTIONS_TOKEN=TOKEN)
    db.init_app(app)
    with pytest.raises(ValueError, match="FLEXACTIONS_BACKGROUND_INLINE"):
        background_app.flex.init_app(app, db=db)


def test_status_without_jobs_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/flex/messages/",
        json={"name": "get_action_status", "params": {"job": "x"}},
        headers={"Authorization": "Token s3cret-test-token"},
    )
    assert response.status_code == 400


# A real Celery worker on Redis


def redis_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    if not redis_is_up():
        pytest.skip("needs the Redis server on 127.0.0.1:6379 for a real Celery worker")
    url = database_url(tmp_path_factory.mktemp("background"))
    queue = f"flexactions-test-{uuid.uuid4().hex[:8]}"
    celery = create_celery(queue)
    app = create_app(url, celery=celery)
    reset(app)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    batch_log = log.parent / "batches.log"
    app.config["TEST_BATCH_LOG"] = str(batch_log)  # where the worker notes its batches
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLEXACTIONS_BG_WORKER": "1",
        "FLEXACTIONS_BG_DATABASE_URL": url,
        "FLEXACTIONS_BG_QUEUE": queue,
        "FLEXACTIONS_BG_BATCH_LOG": str(batch_log),
    }
    command = [sys.executable, "-m", "celery", "-A", "tests.background_app:celery", "worker"]
    command += ["-P", "prefork", "-c", "1", "-Q", queue, "--loglevel=INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + DEADLINE
        while not celery.control.ping(timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start:\n" + log.read_text())
        yield app, url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        with app.app_context():
            db.drop_all()
            db.engine.dispose()
        celery.close()


@pytest.fixture
def worker_app(worker: tuple[Flask, str]) -> Flask:
    app, _ = worker
    reset(app)
    return app


def is_postgres(app: Flask) -> bool:
    with app.app_context():
        return bool(db.engine.dialect.name == "postgresql")


def test_worker_runs_a_job_with_progress(worker_app: Flask) -> None:
    client = worker_app.test_client()
    job = queue_rename(client, [1, 2, 3, 4], pause=0.3)
    seen: list[int] = []
    final = wait_for(
        client, job, lambda j: seen.append(j["progress"]["done"]) or j["state"] == "succeeded"
    )
    assert final["answer"] == {"result": True, "message": "4 renamed"}
    assert final["progress"]["done"] == 4
    assert user_names(worker_app) == {i: f"renamed {i}" if i < 5 else "user 5" for i in range(1, 6)}
    if is_postgres(worker_app):
        # Progress is written beside the run's transaction; SQLite's write lock makes it
        # best effort there.
        assert any(0 < done < 4 for done in seen), seen


def test_worker_failure_rolls_back(worker_app: Flask) -> None:
    client = worker_app.test_client()
    job = queue_rename(client, [1, 2], fail=True)
    final = wait_for(client, job, lambda j: j["state"] in ("succeeded", "failed"))
    assert final["state"] == "failed"
    assert "rolls back" in final["answer"]["errors"]["non_field_errors"][0]
    assert user_names(worker_app) == {i: f"user {i}" for i in range(1, 6)}


def test_cancel_a_queued_and_a_running_job(worker_app: Flask) -> None:
    if not is_postgres(worker_app):
        pytest.skip("SQLite locks the whole database while a job writes: cancel needs PostgreSQL")
    client = worker_app.test_client()
    running = queue_rename(client, [1, 2, 3, 4, 5], pause=0.5)
    waiting = queue_rename(client, [5])
    wait_for(client, running, lambda j: j["progress"]["done"] >= 1)
    assert send(client, "cancel_action", {"job": waiting}).get_json()["job"]["state"] == "cancelled"
    answer = send(client, "cancel_action", {"job": running}).get_json()["job"]
    assert answer["cancel_requested"] is True
    final = wait_for(client, running, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert final["state"] == "cancelled"
    assert final["answer"]["errors"]["non_field_errors"] == [CANCELLED]
    time.sleep(0.5)  # the worker picks the cancelled job up and must skip it
    assert status(client, waiting)["state"] == "cancelled"
    assert user_names(worker_app) == {i: f"user {i}" for i in range(1, 6)}


def test_a_killed_worker_fails_the_job_and_rolls_back(worker_app: Flask) -> None:
    client = worker_app.test_client()
    job = queue_rename(client, [1, 2, 3, 4, 5], pause=1.0)
    wait_for(client, job, lambda j: j["state"] == "running")
    time.sleep(0.5)  # the first record is written (not committed) by now
    with worker_app.app_context():
        table = worker_app.extensions["flexactions"].jobs.table
        pid = db.session.scalar(sa.select(table.c.worker_pid).where(table.c.id == job))
    assert pid
    os.kill(pid, signal.SIGKILL)
    final = wait_for(client, job, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert final["state"] == "failed"
    assert final["answer"]["errors"]["non_field_errors"] == [WORKER_LOST]
    assert user_names(worker_app) == {i: f"user {i}" for i in range(1, 6)}


def test_worker_status_of_an_unknown_job(worker_app: Flask) -> None:
    response = send(worker_app.test_client(), "get_action_status", {"job": uuid.uuid4().hex})
    assert response.status_code == 404


def test_a_broker_that_is_down_fails_the_job_and_runs_nothing(tmp_path: Path) -> None:
    """Port 1 on 127.0.0.1 refuses connections: queueing fails, so the job is marked failed,
    the client gets a 503 that says to retry, and no record is touched."""
    celery = create_celery("flexactions-down")
    celery.conf.update(
        broker_url="redis://127.0.0.1:1/15",
        task_publish_retry=False,
        broker_connection_timeout=1,
        broker_connection_retry=False,
        broker_connection_max_retries=0,
    )
    app = create_app(database_url(tmp_path), celery=celery)
    reset(app)
    client = app.test_client()
    response = send(
        client, "execute_action", {"name": "rename_all", "model": "users", "ids": [1, 2]}
    )
    assert response.status_code == 503
    assert "broker" in response.get_json()["errors"]["non_field_errors"][0]
    # With an Idempotency-Key the retry queues again, never replays "Queued".
    keyed = {**HEADERS, "Idempotency-Key": "broker-down-1"}
    body = {
        "name": "execute_action",
        "params": {"name": "rename_all", "model": "users", "ids": [1]},
    }
    for _ in range(2):
        retry = client.post("/flex/messages/", json=body, headers=keyed)
        assert retry.status_code == 503 and "Idempotent-Replayed" not in retry.headers
    with app.app_context():
        table = app.extensions["flexactions"].jobs.table
        [job] = db.session.scalars(
            sa.select(table.c.id).order_by(table.c.created_at).limit(1)
        ).all()
    current = status(client, job)
    assert current["state"] == "failed"
    assert current["answer"]["errors"]["non_field_errors"] == [
        "The job could not be queued; nothing ran."
    ]
    assert user_names(app) == {i: f"user {i}" for i in range(1, 6)}
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_ids_sent_inside_the_values_reach_the_job(inline: Flask) -> None:
    """The older protocol variant puts ``ids`` inside ``params.params``; the job keeps them."""
    client = inline.test_client()
    response = send(
        client,
        "execute_action",
        {"name": "rename_all", "model": "users", "params": {"ids": [2, 4]}},
    )
    body = response.get_json()
    assert body["message"] == "2 renamed"  # inline: the job ran in the request
    current = status(client, body["job"]["id"])
    assert current["state"] == "succeeded" and current["answer"]["message"] == "2 renamed"
    assert user_names(inline)[4] == "renamed 4"


def test_finished_jobs_forget_their_request(inline: Flask) -> None:
    job = queue_rename(inline.test_client(), [1])
    with inline.app_context():
        table = inline.extensions["flexactions"].jobs.table
        stored = db.session.scalar(sa.select(table.c.request).where(table.c.id == job))
    assert stored == {}


class Person:
    def __init__(self, id: int | None) -> None:
        self.id = id


def test_jobs_keep_claims_and_anonymous_callers_cannot_queue(tmp_path: Path) -> None:
    from flask_flexactions import Caller, current_caller

    flex = FlexActions()
    seen: list[Any] = []

    @flex.action(User, for_instance=True, background=True)
    def whoami(user: User, params: dict[str, Any]) -> str:
        seen.append((current_caller.id, dict(current_caller.claims), current_caller.user))
        return "ok"

    @flex.authenticator
    def by_header(request: Any) -> Any:
        user = request.headers.get("X-User")
        if user == "claims":
            return Caller(id="7", scheme="custom", claims={"region": "eu"})
        return Person(None if user == "nobody" else int(user)) if user else None

    app = inline_app(flex, tmp_path)
    client = app.test_client()

    def run(user: str) -> Any:
        return client.post(
            "/flex/messages/",
            json={
                "name": "execute_action",
                "params": {"name": "whoami", "model": "users", "id": 1},
            },
            headers={"X-User": user},
        )

    assert run("claims").get_json()["result"] is True
    assert seen == [("7", {"region": "eu"}, None)]
    job = run("3").get_json()["job"]["id"]
    assert seen[1][0] == "3"
    other = client.post(
        "/flex/messages/",
        json={"name": "get_action_status", "params": {"job": job}},
        headers={"X-User": "4"},
    )
    assert other.status_code == 404
    refused = run("nobody")
    assert refused.status_code == 400
    assert "Caller(id=...)" in refused.get_json()["errors"]["non_field_errors"][0]
    assert len(seen) == 2
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


@pytest.mark.parametrize("kind", ["text", "unnamed-pdf"])
def test_a_response_without_a_file_name_is_kept_as_a_file(tmp_path: Path, kind: str) -> None:
    import io

    flex = FlexActions()

    @flex.action(User, bulk=True, background=True)
    def report(users: list[User], params: dict[str, Any]) -> Any:
        if kind == "text":
            return app.response_class("plain report\n", mimetype="text/plain")
        return send_file(io.BytesIO(b"%PDF-1.4"), mimetype="application/pdf")

    app = inline_app(flex, tmp_path, FLEXACTIONS_TOKEN=TOKEN)
    client = app.test_client()
    job = send(client, "execute_action", {"name": "report", "model": "users", "ids": [1]})
    job_id = job.get_json()["job"]["id"]
    current = status(client, job_id)
    assert current["state"] == "succeeded" and "answer" not in current
    assert current["file"]["content_type"].startswith(
        "text/plain" if kind == "text" else "application/pdf"
    )
    download = send(client, "get_action_status", {"job": job_id, "download": True})
    assert download.status_code == 200
    assert download.data == (b"plain report\n" if kind == "text" else b"%PDF-1.4")
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def _redelivery_app(tmp_path: Path) -> tuple[Flask, str]:
    """An app on a memory broker and one queued rename_all job over 3 users (PostgreSQL)."""
    from celery import Celery

    from flask_flexactions.caller import Caller
    from flask_flexactions.run.selection import Selection

    app = create_app(database_url(tmp_path), celery=Celery("redeliver", broker="memory://"))
    if is_postgres(app) is False:
        pytest.skip("SQLite locks the whole database while a job writes: needs PostgreSQL")
    reset(app, 3)
    state = app.extensions["flexactions"]
    with app.app_context():
        action = state.registry.find("users", "rename_all")
        job = state.jobs.create_in(
            db.session,
            action,
            "users",
            Caller(superuser=True, scheme="token"),
            Selection(ids=(1, 2, 3)),
            {"pause": 0.4},
            "messages",
        )
        db.session.commit()
    return app, job


def _deliver(app: Flask, job: str) -> None:
    with app.app_context():
        run_job(app.extensions["flexactions"], job)


def test_a_redelivery_while_the_worker_lives_leaves_the_job_to_it(tmp_path: Path) -> None:
    """A second delivery of the task while the first run still holds its lease (the
    broker's visibility timeout ran out, its worker is alive) changes nothing: the first run
    finishes and the job runs once."""
    import threading

    app, job = _redelivery_app(tmp_path)
    first = threading.Thread(target=_deliver, args=(app, job))
    first.start()
    client = app.test_client()
    wait_for(client, job, lambda j: j["progress"]["done"] >= 1)
    _deliver(app, job)  # the redelivery
    assert status(client, job)["state"] == "running"
    first.join(timeout=DEADLINE)
    final = status(client, job)
    assert final["state"] == "succeeded" and final["answer"]["message"] == "3 renamed"
    assert user_names(app) == {i: f"renamed {i}" for i in range(1, 4)}
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_a_redelivery_after_the_worker_died_fails_the_job(tmp_path: Path) -> None:
    """The worker that started the job is gone (its process no longer exists): a second
    delivery fails the job at once, and a run that still finished rolls back."""
    import threading

    app, job = _redelivery_app(tmp_path)
    first = threading.Thread(target=_deliver, args=(app, job))
    first.start()
    client = app.test_client()
    wait_for(client, job, lambda j: j["progress"]["done"] >= 1)
    with subprocess.Popen(["true"]) as finished:
        finished.wait()  # its pid now names no process
    with app.app_context():
        table = app.extensions["flexactions"].jobs.table
        db.session.execute(table.update().where(table.c.id == job).values(worker_pid=finished.pid))
        db.session.commit()
    _deliver(app, job)  # the redelivery finds the job's worker gone
    assert status(client, job)["state"] == "failed"
    first.join(timeout=DEADLINE)
    final = status(client, job)
    assert final["state"] == "failed"
    assert final["answer"]["errors"]["non_field_errors"] == [WORKER_LOST]
    assert user_names(app) == {i: f"user {i}" for i in range(1, 4)}
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def test_a_batch_killed_mid_way_runs_again_and_every_row_once(worker: tuple[Flask, str]) -> None:
    """kill -9 of the pool process running a batch: that batch's transaction dies with it,
    Celery delivers it again, and the job ends with every user stamped exactly once."""
    app, _ = worker
    reset(app, 9)
    batch_log = Path(app.config["TEST_BATCH_LOG"])
    batch_log.unlink(missing_ok=True)
    client = app.test_client()
    response = send(
        client,
        "execute_action",
        {
            "name": "stamp_in_batches",
            "model": "users",
            "inverseIds": True,
            "params": {"pause": 0.3},
        },
    )
    job = response.get_json()["job"]["id"]
    deadline = time.monotonic() + DEADLINE
    while not batch_log.exists() or len(batch_log.read_text().split()) < 4:
        assert time.monotonic() < deadline, "the second batch never started"
        time.sleep(0.05)
    pid, first_id = (int(part) for part in batch_log.read_text().splitlines()[1].split())
    time.sleep(0.35)  # a user of this batch is flushed (not committed) by now
    os.kill(pid, signal.SIGKILL)
    final = wait_for(client, job, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert final["state"] == "succeeded", final
    assert final["progress"]["done"] == 9
    with app.app_context():
        codes = sorted(db.session.scalars(sa.select(Tag.code)))
    assert codes == sorted(f"stamp-{i}" for i in range(1, 10))
    started = [int(line.split()[1]) for line in batch_log.read_text().splitlines()]
    assert started.count(first_id) == 2  # the killed batch ran again, once


def test_a_worker_builds_a_file_answer_with_send_file(worker_app: Flask) -> None:
    client = worker_app.test_client()
    response = send(
        client, "execute_action", {"name": "export_names", "model": "users", "ids": [2, 1]}
    )
    job = response.get_json()["job"]["id"]
    final = wait_for(client, job, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    assert final["state"] == "succeeded", final
    download = send(client, "get_action_status", {"job": job, "download": True})
    assert download.data == b"user 2\nuser 1"
    assert download.headers["Content-Disposition"] == 'attachment; filename="names.txt"'
