"""Deployment tests: the extension under real gunicorn and Celery processes, on PostgreSQL
behind a TCP proxy that plays outages and hangs.

Run them with ``pytest tests/deployment`` after ``pip install -e ".[test,pg]"``. They need
PostgreSQL on 127.0.0.1:5432 (user ``postgres``, trust auth), where they create and drop a
database of their own, and Redis on 127.0.0.1:6379 for the Celery tests (database 14, or
``FLEXACTIONS_DEPLOY_REDIS_DB``; one random queue per test). What they measured goes to
``test-artifacts/deployment-figures.json``.
"""
