"""A small shop that offers Jet Admin Flex Actions on its users, orders and accounts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from .actions import flex
from .models import db
from .schema import create_tables_and_seed

__all__ = ["create_app", "load_or_create_token"]

#: Where the generated shared secret is kept, in the instance folder.
TOKEN_FILE = "flexactions-token.txt"


def load_or_create_token(instance_path: Path) -> str:
    """The shared secret kept in ``instance_path``, generated on first use."""
    path = instance_path / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    instance_path.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def celery_init_app(app: Flask, broker: str) -> Any:
    """A Celery app whose tasks run inside ``app``'s context (Flask's Celery pattern)."""
    from celery import Celery, Task

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, broker=broker, task_cls=FlaskTask)
    # One task at a time per pool process, so a long job never holds others back.
    celery.conf.worker_prefetch_multiplier = 1
    app.extensions["celery"] = celery
    return celery


def engine_options(database_url: str) -> dict[str, Any]:
    """The engine settings the deployment guide recommends: test a pooled connection before
    using it (a database that restarted), and on PostgreSQL bound how long connecting, one
    statement and one lock wait may take, so a database that hangs answers 503 in seconds
    instead of holding every worker until gunicorn kills it."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("postgresql"):
        options["connect_args"] = {
            "connect_timeout": 5,
            "options": "-c statement_timeout=10000 -c lock_timeout=5000",
        }
    return options


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the shop, create its tables and add the demo data on first start.

    :param config: overrides, e.g. ``SQLALCHEMY_DATABASE_URI`` and ``FLEXACTIONS_TOKEN``.
        The database otherwise comes from the ``DATABASE_URL`` environment variable, or is a
        SQLite file in the instance folder. The token otherwise comes from the
        ``FLEXACTIONS_TOKEN`` environment variable, or is generated once and kept in the
        instance folder.
    """
    # Keep the database and the token beside the example, wherever it is started from.
    app = Flask(__name__, instance_path=str(Path(__file__).parent / "instance"))
    app.config.update(
        # A relative SQLite path lives in the instance folder; Flask-SQLAlchemy creates it.
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL") or "sqlite:///shop.db",
        # Jet Admin calls the Messages URL from the user's browser, on this origin.
        FLEXACTIONS_CORS_ORIGINS=["https://app.jetadmin.io"],
        # The debug console at /flex/console/ is on by default only in debug mode; the example
        # serves it always, on 127.0.0.1, behind the same token as the Messages URL.
        FLEXACTIONS_CONSOLE=True,
    )
    # Connecting to Jet Admin: its project name turns on JWT, its project token turns on the
    # Token/ProjectToken check (see docs/security.md).
    for key in ("FLEXACTIONS_JET_PROJECT", "FLEXACTIONS_JET_PROJECT_TOKEN"):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.update(config or {})
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    )
    if not app.config.get("FLEXACTIONS_TOKEN"):
        app.config["FLEXACTIONS_TOKEN"] = os.environ.get(
            "FLEXACTIONS_TOKEN"
        ) or load_or_create_token(Path(app.instance_path))

    # Background actions run on Celery when a broker is named, e.g.
    # FLEXACTIONS_CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (then start the worker with
    # `celery -A examples.shop.worker worker`); otherwise they run inline, in the request.
    broker = app.config.get("FLEXACTIONS_CELERY_BROKER_URL") or os.environ.get(
        "FLEXACTIONS_CELERY_BROKER_URL"
    )
    celery = celery_init_app(app, broker) if broker else None
    app.config.setdefault("FLEXACTIONS_BACKGROUND_INLINE", celery is None)

    db.init_app(app)
    flex.init_app(app, db=db, celery=celery)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")

    with app.app_context():
        create_tables_and_seed(db)
    return app
