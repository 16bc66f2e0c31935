"""Job leases: a running job proves its worker alive by renewing a lease from a thread.

A worker that dies without a word (``kill -9`` of the whole Celery worker, a lost machine)
stops renewing; once the lease has run out, the job is failed by the next sweep or status
read instead of staying ``running`` for ever. The renewal runs beside the handler, on a
connection of its own, so a handler that never reports progress keeps its lease too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger("flask_flexactions.jobs")

#: This machine's name, stored with a running job beside the worker's process id.
HOST = socket.gethostname()[:255]


def utcnow() -> dt.datetime:
    """The current UTC time, naive (as SQLite stores it)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_gone(row: Any, now: dt.datetime) -> bool:
    """Whether the worker that started the running job ``row`` is gone: its lease ran out,
    or it ran on this machine and its process no longer exists."""
    if row.lease_until is None or row.lease_until < now:
        return True
    return bool(row.worker_host == HOST and row.worker_pid and not process_alive(row.worker_pid))


@contextlib.contextmanager
def no_wait(connection: sa.Connection) -> Iterator[None]:
    """On SQLite, fail at once instead of waiting for a lock a run holds."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    connection.exec_driver_sql("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")


class LeaseKeeper:
    """Renews the lease of one running job every third of ``seconds`` until stopped."""

    def __init__(self, engine: sa.Engine, table: sa.Table, job_id: str, seconds: int) -> None:
        self.engine = engine
        self.table = table
        self.job_id = job_id
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"flexactions-lease-{job_id}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds)

    def _renew(self) -> None:
        table = self.table
        while not self._stop.wait(self.seconds / 3):
            until = utcnow() + dt.timedelta(seconds=self.seconds)
            try:
                with self.engine.connect() as connection, no_wait(connection):
                    connection.execute(
                        table.update()
                        .where(table.c.id == self.job_id, table.c.state == "running")
                        .values(lease_until=until)
                    )
                    connection.commit()
            except Exception as error:
                # The next beat tries again; a lease that runs out fails the job, which the
                # run then learns when it tries to finish.
                logger.warning("Renewing the lease of job %s failed: %s", self.job_id, error)
