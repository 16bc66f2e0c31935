"""The shop's Celery worker: ``celery -A examples.shop.worker worker``.

Needs ``FLEXACTIONS_CELERY_BROKER_URL`` (e.g. ``redis://127.0.0.1:6379/0``) in the environment
of both the web app and the worker.
"""

from __future__ import annotations

from . import create_app

# Not named ``app``: the celery command would take that for the Celery app.
flask_app = create_app()
celery = flask_app.extensions["celery"]
