"""An app with background actions, shared by the tests and the Celery worker they start.

The worker imports this module (``celery -A tests.background_app:celery worker``) and finds
its database in ``FLEXACTIONS_BG_DATABASE_URL`` and its queue in ``FLEXACTIONS_BG_QUEUE``.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

from celery import Celery, Task
from flask import Flask, send_file

from flask_flexactions import ActionError, FlexActions, report_progress
from tests.models import Tag, User, db

TOKEN = "background-token"
BROKER = os.environ.get("FLEXACTIONS_BG_BROKER", "redis://127.0.0.1:6379/15")

flex = FlexActions()


@flex.action(
    User,
    bulk=True,
    background=True,
    params=[
        {"name": "pause", "field": "FloatField"},
        {"name": "fail", "field": "BooleanField"},
    ],
)
def rename_all(users: list[User], params: dict[str, Any]) -> str:
    """Rename every user, reporting progress; ``pause`` waits after each record."""
    for done, user in enumerate(users, start=1):
        user.name = f"renamed {user.id}"
        db.session.flush()
        report_progress(done, len(users), f"user {user.id}")
        time.sleep(params.get("pause", 0))
    if params.get("fail"):
        raise ActionError("Refused after writing: everything rolls back.")
    return f"{len(users)} renamed"


#: Where the worker notes which process starts which batch (``pid first-id`` lines).
BATCH_LOG = os.environ.get("FLEXACTIONS_BG_BATCH_LOG")


@flex.action(
    User,
    bulk=True,
    background=True,
    batch_size=3,
    params=[{"name": "pause", "field": "FloatField"}],
)
def stamp_in_batches(users: list[User], params: dict[str, Any]) -> str:
    """Stamp each user of a batch once: a tag per user, so a stamp made twice would fail
    on its primary key, and a line in the batch log per batch started."""
    if BATCH_LOG and users:
        with open(BATCH_LOG, "a") as log:
            log.write(f"{os.getpid()} {users[0].id}\n")
    for user in users:
        user.name = f"stamped {user.id}"
        db.session.add(Tag(code=f"stamp-{user.id}", label="stamp"))
        db.session.flush()
        time.sleep(params.get("pause", 0))
    return f"{len(users)} stamped"


@flex.action(User, bulk=True, background=True)
def export_names(users: list[User], params: dict[str, Any]) -> Any:
    """A file answer built with ``send_file``, which needs a request context in the worker."""
    data = "\n".join(user.name for user in users).encode()
    return send_file(io.BytesIO(data), as_attachment=True, download_name="names.txt")


def create_app(database_url: str, *, inline: bool = False, celery: Celery | None = None) -> Flask:
    """The Flask app, initialised with ``celery`` (or inline background runs)."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_BACKGROUND_INLINE=inline,
    )
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app


def create_celery(queue: str) -> Celery:
    """A Celery app whose tasks run inside the Flask app's context (the Flask docs' pattern)."""
    celery = Celery("flexactions-tests", broker=BROKER)
    celery.conf.update(
        task_default_queue=queue,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return celery


def _worker_app() -> Celery:
    queue = os.environ.get("FLEXACTIONS_BG_QUEUE", "flexactions-tests")
    celery = create_celery(queue)
    apps: list[Flask] = []

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with apps[0].app_context():
                return self.run(*args, **kwargs)

    celery.Task = FlaskTask
    apps.append(create_app(os.environ["FLEXACTIONS_BG_DATABASE_URL"], celery=celery))
    return celery


celery = _worker_app() if os.environ.get("FLEXACTIONS_BG_WORKER") else None
