"""The app the deployment tests serve with gunicorn and whose jobs a real Celery worker runs.

``create_app()`` reads everything from the environment, so that
``gunicorn 'tests.deployment.app:create_app()'`` and ``celery -A tests.deployment.worker``
build the same app as the test process does with explicit overrides:

- ``FLEXACTIONS_DEPLOY_DATABASE_URL``: the database (the tests point it at their TCP proxy);
- ``FLEXACTIONS_DEPLOY_TOKEN``: the shared token;
- ``FLEXACTIONS_DEPLOY_CONFIG``: a JSON object merged into ``app.config`` (``FLEXACTIONS_*``
  overrides, ``SECRET_KEY``);
- ``FLEXACTIONS_DEPLOY_ENGINE_OPTIONS``: a JSON object, the ``SQLALCHEMY_ENGINE_OPTIONS``
  (``pool_pre_ping``, ``connect_args``, ``pool_timeout``...);
- ``FLEXACTIONS_DEPLOY_BROKER`` and ``FLEXACTIONS_DEPLOY_QUEUE``: Celery's broker and queue;
- ``FLEXACTIONS_DEPLOY_STATE_DIR``: where handlers leave their pid, progress and runs for
  the test to read (nothing is written when it is unset).

It has its own ``SQLAlchemy`` object and models, so the other tests' tables are never
touched. Like the example shop, ``create_app`` runs ``db.create_all()``: with ``--preload`` and
in the Celery worker that opens a connection before the fork.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import Celery, Task
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_flexactions import FlexActions, report_progress

ENV_DATABASE_URL = "FLEXACTIONS_DEPLOY_DATABASE_URL"
ENV_TOKEN = "FLEXACTIONS_DEPLOY_TOKEN"
ENV_CONFIG = "FLEXACTIONS_DEPLOY_CONFIG"
ENV_ENGINE_OPTIONS = "FLEXACTIONS_DEPLOY_ENGINE_OPTIONS"
ENV_BROKER = "FLEXACTIONS_DEPLOY_BROKER"
ENV_QUEUE = "FLEXACTIONS_DEPLOY_QUEUE"
ENV_STATE_DIR = "FLEXACTIONS_DEPLOY_STATE_DIR"

#: The longest a ``credit`` waits for its hold file, so that a forgotten file never hangs.
HOLD_LIMIT = 60.0


class Base(DeclarativeBase):
    """Declarative base of the deployment tests' models."""


db = SQLAlchemy(model_class=Base)


class Item(db.Model):  # type: ignore[name-defined,misc]
    """The rows bulk actions rename; wire name ``items``."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(120))


class Ledger(db.Model):  # type: ignore[name-defined,misc]
    """One row per committed ``credit`` run, so duplicate runs can be counted."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int]
    amount: Mapped[int]
    tag: Mapped[str] = mapped_column(sa.String(120))


flex = FlexActions()


def _state_dir() -> Path | None:
    folder = os.environ.get(ENV_STATE_DIR)
    return Path(folder) if folder else None


def mark(action: str, done: int) -> None:
    """Leave ``"<pid> <done>"`` in ``<state dir>/<action>.progress`` (replaced atomically)."""
    folder = _state_dir()
    if folder is None:
        return
    temporary = folder / f"{action}.progress.{os.getpid()}"
    temporary.write_text(f"{os.getpid()} {done}\n")
    os.replace(temporary, folder / f"{action}.progress")


def record_run(action: str) -> None:
    """Append ``"<action> <pid>"`` to ``<state dir>/runs.log``: one line per handler call,
    written outside the database so that rolled-back and killed runs count too."""
    folder = _state_dir()
    if folder is None:
        return
    with (folder / "runs.log").open("a") as runs:
        runs.write(f"{action} {os.getpid()}\n")


def backend_pid() -> int:
    return int(db.session.scalar(sa.text("SELECT pg_backend_pid()")))


PAUSE = {"name": "pause", "field": "FloatField"}
PREFIX = {"name": "prefix", "field": "CharField"}


@flex.action(name="whoami")
def whoami(params: dict[str, Any]) -> str:
    """The worker process and the PostgreSQL backend that served this request."""
    return f"{os.getpid()} {backend_pid()}"


@flex.action(Item, bulk=True, params=[PAUSE, PREFIX])
def slow_rename(items: list[Item], params: dict[str, Any]) -> str:
    """Rename the items one at a time, flushing each and pausing between them."""
    record_run("slow_rename")
    mark("slow_rename", 0)
    for done, item in enumerate(items, start=1):
        item.name = f"{params.get('prefix') or 'renamed'} {item.id}"
        db.session.flush()
        mark("slow_rename", done)
        time.sleep(params.get("pause") or 0)
    return f"{len(items)} renamed"


@flex.action(
    Item,
    for_instance=True,
    params=[
        {"name": "amount", "field": "IntegerField", "required": True},
        {"name": "tag", "field": "CharField", "required": True},
        {"name": "hold", "field": "CharField"},
    ],
)
def credit(item: Item, params: dict[str, Any]) -> str:
    """Add a ledger row, then wait while the file named by ``hold`` exists."""
    record_run("credit")
    db.session.add(Ledger(item_id=item.id, amount=params["amount"], tag=params["tag"]))
    db.session.flush()
    mark("credit", 1)
    hold = params.get("hold")
    deadline = time.monotonic() + HOLD_LIMIT
    while hold and os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"Credited {params['amount']}."


@flex.action(Item, bulk=True, background=True, params=[PAUSE, PREFIX])
def bg_rename(items: list[Item], params: dict[str, Any]) -> str:
    """The background twin of ``slow_rename``, reporting progress."""
    record_run("bg_rename")
    mark("bg_rename", 0)
    for done, item in enumerate(items, start=1):
        item.name = f"{params.get('prefix') or 'renamed'} {item.id}"
        db.session.flush()
        mark("bg_rename", done)
        report_progress(done, len(items), f"item {item.id}")
        time.sleep(params.get("pause") or 0)
    return f"{len(items)} renamed"


@flex.action(Item, bulk=True, background=True, batch_size=3, params=[PAUSE])
def bg_stamp(items: list[Item], params: dict[str, Any]) -> str:
    """A batched job: one ledger row per item of the batch, so an item stamped twice shows;
    one line in the runs log per batch started, and its progress for the test to kill."""
    record_run("bg_stamp")
    for done, item in enumerate(items, start=1):
        db.session.add(Ledger(item_id=item.id, amount=1, tag="stamp"))
        db.session.flush()
        mark("bg_stamp", done)
        time.sleep(params.get("pause") or 0)
    return f"{len(items)} stamped"


@flex.action(name="bg_whoami", background=True)
def bg_whoami(params: dict[str, Any]) -> str:
    """A quick job: the pool process and the PostgreSQL backend that ran it."""
    record_run("bg_whoami")
    return f"{os.getpid()} {backend_pid()}"


@flex.action(
    name="bg_secret",
    background=True,
    params=[{"name": "api_key", "field": "CharField", "required": True, "secret": True}],
)
def bg_secret(params: dict[str, Any]) -> str:
    """A job with a secret param; answers a digest of it, so the test sees it arrived."""
    record_run("bg_secret")
    digest = hashlib.sha256(params["api_key"].encode()).hexdigest()
    return f"api_key sha256 {digest}"


def _json_env(name: str) -> dict[str, Any]:
    raw = os.environ.get(name)
    value = json.loads(raw) if raw else {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must hold a JSON object.")
    return value


def _celery(app: Flask, broker: str, queue: str) -> Celery:
    """A Celery app whose tasks run inside ``app``'s context (Flask's Celery pattern)."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, broker=broker, task_cls=FlaskTask)
    celery.conf.update(
        task_default_queue=queue,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.extensions["celery"] = celery
    return celery


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app, configured from the environment; ``config`` overrides it (the test process)."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get(ENV_DATABASE_URL),
        FLEXACTIONS_TOKEN=os.environ.get(ENV_TOKEN),
        SQLALCHEMY_ENGINE_OPTIONS=_json_env(ENV_ENGINE_OPTIONS),
        FLEXACTIONS_DEPLOY_BROKER=os.environ.get(ENV_BROKER, "redis://127.0.0.1:6379/14"),
        FLEXACTIONS_DEPLOY_QUEUE=os.environ.get(ENV_QUEUE, "flexactions-deploy"),
    )
    app.config.update(_json_env(ENV_CONFIG))
    app.config.update(config or {})
    celery = _celery(
        app, app.config["FLEXACTIONS_DEPLOY_BROKER"], app.config["FLEXACTIONS_DEPLOY_QUEUE"]
    )
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    with app.app_context():
        db.create_all()
    return app
