"""Deployment tests: the extension under real gunicorn and Celery processes, on PostgreSQL
behind a TCP proxy that plays outages and hangs."""
