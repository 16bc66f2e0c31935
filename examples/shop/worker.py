"""The shop's Celery worker: ``celery -A examples.shop.worker worker``.

Needs ``FLEXACTIONS_CELERY_BROKER_URL`` (e.g. ``redis://127.0.0.1:6379/0``) in the environment
of both the web app and the worker, and the same ``DATABASE_URL`` (and ``SECRET_KEY``, if an
action has secret params).

This is the pattern to copy: build the Flask app once at import, in the worker's main
process, and hand Celery the app's Celery object. Celery's prefork pool then forks its
processes from this one; flask_flexactions makes every engine it uses fork-safe, so each pool
process opens database connections of its own (nothing to add here).
"""

from __future__ import annotations

from . import create_app

# Not named ``app``: the celery command would take that for the Celery app.
flask_app = create_app()
celery = flask_app.extensions["celery"]
