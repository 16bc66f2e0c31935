"""Fixtures of the deployment tests: a PostgreSQL database of their own for the session, and
per test a TCP proxy in front of it, gunicorn and Celery launchers and a control app.

These tests create their own database (``flexactions_deploy_<hex>``) whatever the other tests
use, so they run in CI's first pass only: with ``FLEXACTIONS_TEST_DATABASE_URL`` set (CI's
PostgreSQL pass) they are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.deployment.harness import (
    AUTH,
    BROKER,
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    TOKEN,
    URL,
    CeleryWorker,
    Gunicorn,
    Process,
    base_env,
    connect,
    create_database,
    drop_database,
    forget_queue,
    pg_url,
    port_open,
    query,
    terminate_backends,
)
from tests.deployment.proxy import Proxy

ITEMS = 10
#: Shared by every process of the session, in case the package keys anything on it.
SECRET_KEY = uuid.uuid4().hex


def _skip_reason() -> str | None:
    if os.environ.get("FLEXACTIONS_TEST_DATABASE_URL"):
        return (
            "deployment tests run in the SQLite pass only: they create a PostgreSQL database "
            "of their own whatever FLEXACTIONS_TEST_DATABASE_URL names"
        )
    if not port_open(PG_HOST, PG_PORT):
        return f"needs PostgreSQL on {PG_HOST}:{PG_PORT}"
    for module in ("gunicorn", "psycopg", "celery"):
        if importlib.util.find_spec(module) is None:
            return f"needs {module} (pip install -e '.[test,pg]')"
    return None


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A fresh PostgreSQL database with the deployment app's tables, dropped at the end."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"flexactions_deploy_{uuid.uuid4().hex[:12]}"
    create_database(name)
    try:
        from tests.deployment.app import create_app, db

        # Created once here: four gunicorn workers racing on CREATE TABLE would test
        # PostgreSQL's catalog, not the extension.
        app = create_app(_control_config(name, "flexactions-deploy-setup"))
        with app.app_context():
            db.engine.dispose()
        app.extensions["celery"].close()
        yield name
    finally:
        drop_database(name)


def _control_config(database: str, queue: str, **config: Any) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": pg_url(database),
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "FLEXACTIONS_TOKEN": TOKEN,
        "FLEXACTIONS_DEPLOY_BROKER": BROKER,
        "FLEXACTIONS_DEPLOY_QUEUE": queue,
        "SECRET_KEY": SECRET_KEY,
        **config,
    }


class Control:
    """The app in the test process, on the database directly (never through the proxy)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()

    def send(self, name: str, params: dict[str, Any], **headers: str) -> TestResponse:
        return self.client.post(
            URL, json={"name": name, "params": params}, headers={**AUTH, **headers}
        )

    def queue(self, action: str, model: str | None = None, **params: Any) -> str:
        """Queue a background action; its job id."""
        message: dict[str, Any] = {"name": action, **params}
        if model is not None:
            message["model"] = model
        response = self.send("execute_action", message)
        body = response.get_json()
        assert response.status_code == 200 and body["result"] is True, body
        return str(body["job"]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.send("get_action_status", {"job": job_id})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["job"]  # type: ignore[no-any-return]

    def state(self, job_id: str) -> str:
        return str(self.job(job_id)["state"])


@dataclass
class Deployment:
    """What one test runs: its proxy, processes, control apps and files."""

    database: str
    proxy: Proxy
    state_dir: Path
    log_dir: Path
    queue: str = field(default_factory=lambda: f"flexactions-deploy-{uuid.uuid4().hex[:10]}")
    processes: list[Process] = field(default_factory=list)
    controls: list[Control] = field(default_factory=list)

    @property
    def proxied_url(self) -> str:
        return pg_url(self.database, self.proxy.port)

    def env(
        self, config: dict[str, Any] | None = None, engine_options: dict[str, Any] | None = None
    ) -> dict[str, str]:
        return base_env(
            self.proxied_url,
            self.state_dir,
            self.queue,
            {"SECRET_KEY": SECRET_KEY, **(config or {})},
            engine_options,
        )

    def gunicorn(
        self,
        *,
        config: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
        app: str = "tests.deployment.app:create_app()",
        env: dict[str, str] | None = None,
        ready: bool = True,
        **options: Any,
    ) -> Gunicorn:
        """Start gunicorn on the proxied database and wait until it answers."""
        server = Gunicorn(env or self.env(config, engine_options), self.log_dir, app=app, **options)
        self.processes.append(server)
        if ready:
            server.wait_ready()
        return server

    def worker(
        self,
        control: Control,
        *,
        config: dict[str, Any] | None = None,
        engine_options: dict[str, Any] | None = None,
        concurrency: int = 2,
    ) -> CeleryWorker:
        """Start a Celery prefork worker on the proxied database and wait for its ping."""
        if not port_open(REDIS_HOST, REDIS_PORT):
            pytest.skip(f"needs Redis on {REDIS_HOST}:{REDIS_PORT} for a real Celery worker")
        worker = CeleryWorker(
            self.env(config, engine_options), self.log_dir, self.queue, concurrency
        )
        self.processes.append(worker)
        worker.wait_ready(control.app.extensions["celery"])
        return worker

    def control(self, config: dict[str, Any] | None = None) -> Control:
        """The app in the test process, with the same config as the processes."""
        if not port_open(REDIS_HOST, REDIS_PORT):
            pytest.skip(f"needs Redis on {REDIS_HOST}:{REDIS_PORT} for background jobs")
        from tests.deployment.app import create_app

        control = Control(create_app(_control_config(self.database, self.queue, **(config or {}))))
        self.controls.append(control)
        return control

    def names(self) -> dict[int, str]:
        return {row[0]: row[1] for row in query(self.database, "SELECT id, name FROM items")}

    def changed(self) -> int:
        """Items whose name is no longer the seeded one (committed changes only)."""
        return sum(name != f"item {i}" for i, name in self.names().items())

    def ledger(self, tag: str) -> int:
        rows = query(self.database, "SELECT count(*) FROM ledger WHERE tag = %s", tag)
        return int(rows[0][0])

    def close(self) -> None:
        from tests.deployment.app import db

        errors: list[BaseException] = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # every process must still be stopped
                errors.append(error)
        for control in self.controls:
            with control.app.app_context():
                db.session.remove()
                db.engine.dispose()
            control.app.extensions["celery"].close()
        self.proxy.close()
        forget_queue(self.queue)
        if errors:
            raise errors[0]


def reset(database: str, items: int = ITEMS) -> None:
    """Seeded items, an empty ledger and no jobs or keys; leftover sessions are ended first."""
    terminate_backends(database)
    with connect(database) as connection:
        connection.execute("SET lock_timeout = '5s'")
        connection.execute(
            "TRUNCATE items, ledger, flexactions_jobs, flexactions_job_batches, "
            "flexactions_idempotency RESTART IDENTITY"
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO items (id, name) VALUES (%s, %s)",
                [(i, f"item {i}") for i in range(1, items + 1)],
            )


@pytest.fixture
def deployment(database: str, tmp_path: Path) -> Iterator[Deployment]:
    reset(database)
    state_dir = tmp_path / "state"
    log_dir = tmp_path / "logs"
    state_dir.mkdir()
    log_dir.mkdir()
    deployed = Deployment(database, Proxy(), state_dir, log_dir)
    try:
        yield deployed
    finally:
        deployed.close()
