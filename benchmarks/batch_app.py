"""The batched-job benchmark's app and Celery, for the benchmark and the workers it starts.

The workers import this module (``celery -A benchmarks.batch_app:celery worker``) and find
their database in ``$FLEXACTIONS_BENCH_DATABASE_URL``, their broker in
``$FLEXACTIONS_BENCH_BROKER``, their queue in ``$FLEXACTIONS_BENCH_QUEUE`` and the batch size
in ``$FLEXACTIONS_BENCH_BATCH``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from flask import Flask

from flask_flexactions import FlexActions

from .common import TOKEN
from .models import Item, db

BATCH_SIZE = int(os.environ.get("FLEXACTIONS_BENCH_BATCH", "1000"))
BROKER = os.environ.get("FLEXACTIONS_BENCH_BROKER", "redis://127.0.0.1:6379/13")

flex = FlexActions()


@flex.action(Item, bulk=True, background=True, batch_size=BATCH_SIZE)
def flip(items: list[Item], params: dict[str, Any]) -> None:
    """Update one column of every row of the batch."""
    for item in items:
        item.flagged = not item.flagged


def create(url: str, queue: str) -> tuple[Flask, Celery]:
    """The app on ``url`` and its Celery on :data:`BROKER`, sending to ``queue``."""
    app = Flask("flexactions_bench_batches")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, FLEXACTIONS_TOKEN=TOKEN)
    if url.startswith("postgresql"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "connect_args": {"options": "-c synchronous_commit=off"}
        }

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery("flexactions-bench", broker=BROKER, task_cls=FlaskTask)
    celery.conf.update(
        task_default_queue=queue,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app, celery


def _worker_celery() -> Celery | None:
    if not os.environ.get("FLEXACTIONS_BENCH_WORKER"):
        return None
    _, celery = create(
        os.environ["FLEXACTIONS_BENCH_DATABASE_URL"], os.environ["FLEXACTIONS_BENCH_QUEUE"]
    )
    return celery


celery = _worker_celery()
