"""The shop's tables and demo data, created once however many processes start together.

``gunicorn -w 4`` builds the app in every worker at the same moment; without a lock each one
creates the tables and seeds, and all but one fail on a duplicate. One process at a time runs
the setup here: a PostgreSQL advisory lock, or a lock file beside a SQLite database.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy

from .seed import seed_if_empty

#: The advisory lock's key: any number the app uses for nothing else.
SETUP_LOCK = 720_150


def create_tables_and_seed(db: SQLAlchemy) -> None:
    """Create the missing tables and add the demo data to an empty database (app context)."""
    with _one_process_at_a_time(db.engine):
        db.create_all()
        seed_if_empty(db.session)


@contextlib.contextmanager
def _one_process_at_a_time(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_lock(SETUP_LOCK)))
            try:
                yield
            finally:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(SETUP_LOCK)))
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with Path(database + ".setup-lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
