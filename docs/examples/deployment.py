"""The deployment guide's settings, on an app factory of its own."""

from __future__ import annotations

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_flexactions import FlexActions

db = SQLAlchemy()
flex = FlexActions()


def create_app() -> Flask:
    """The app, with the engine settings of the deployment guide."""
    app = Flask(__name__)
    database_url = os.environ.get("DATABASE_URL", "sqlite:///deploy.db")
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    app.config["FLEXACTIONS_TOKEN"] = os.environ.get("FLEXACTIONS_TOKEN", "change-me")
    # [engine-options]
    options = {
        # Test a pooled connection before using it: after a database restart every pooled
        # connection is dead, and each would otherwise cost one request a 503.
        "pool_pre_ping": True,
        # How long a request may wait for a free connection of the pool (default 30 s).
        "pool_timeout": 5,
    }
    if database_url.startswith("postgresql"):
        options["connect_args"] = {
            # Give up connecting after 5 s instead of waiting on the network.
            "connect_timeout": 5,
            # Server-side bounds: one statement, one lock wait. A database that hangs then
            # answers 503 in seconds instead of holding a worker until gunicorn kills it.
            "options": "-c statement_timeout=10000 -c lock_timeout=5000",
        }
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    # [/engine-options]
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    return app
