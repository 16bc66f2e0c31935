"""The shop's Celery worker: ``celery -A examples.shop.worker worker``.

Needs ``FLEXACTIONS_CELERY_BROKER_URL`` (e.g. ``redis://127.0.0.1:6379/0``) in the environment
of both the web app and the worker.
"""

from __future__ import annotations

from . import create_app

app = create_app()
celery = app.extensions["celery"]
