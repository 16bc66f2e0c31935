"""The Celery worker of the deployment app: ``celery -A tests.deployment.worker worker``.

Built at import exactly like ``examples/shop/worker.py``: the Flask app is created (and
``db.create_all()`` runs) in the worker's main process, then Celery forks its pool.
"""

from __future__ import annotations

from tests.deployment.app import create_app

# Not named ``app``: the celery command would take that for the Celery app.
flask_app = create_app()
celery = flask_app.extensions["celery"]
