"""The example shop as a WSGI app for gunicorn, on ``$FLEXACTIONS_BENCH_DATABASE_URL``."""

from __future__ import annotations

import os

from examples.shop import create_app

app = create_app({"SQLALCHEMY_DATABASE_URI": os.environ["FLEXACTIONS_BENCH_DATABASE_URL"]})
