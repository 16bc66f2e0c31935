"""The progress of a running background job: what its handler reports, and its cancel."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import sqlalchemy as sa
from flask import g

from ..errors import FlexActionsError
from .leases import no_wait

#: Where the running job is kept in ``flask.g`` for :func:`report_progress`.
JOB_KEY = "flexactions_job"
#: Seconds between two progress writes (the last one is always written).
PROGRESS_INTERVAL = 0.2
#: The answer of a job that was cancelled.
CANCELLED = "Cancelled; nothing was committed."


class JobCancelled(FlexActionsError):
    """Raised by :func:`report_progress` when the job was asked to stop; do not catch it."""


def report_progress(done: int, total: int | None = None, status: str | None = None) -> None:
    """Report how far a background action is: ``done`` of ``total``, and a short text.

    Outside a background job it does nothing, so one handler serves both ways. Writes are
    throttled; when the job was asked to stop it raises :class:`JobCancelled`, which rolls the
    run back.
    """
    job: RunningJob | None = g.get(JOB_KEY)
    if job is None:
        return
    job.report(done, total, status)


def latest_progress() -> dict[str, Any]:
    """The last progress the running job reported (columns of the jobs table), if any."""
    job: RunningJob | None = g.get(JOB_KEY)
    return dict(job.latest) if job is not None else {}


@dataclasses.dataclass
class RunningJob:
    """The job this process runs: where its progress goes (its row in ``table``)."""

    engine: sa.Engine
    table: sa.Table
    id: str
    last_write: float = 0.0
    #: The last progress reported, written with the answer even if SQLite skipped it.
    latest: dict[str, Any] = dataclasses.field(default_factory=dict)

    def report(self, done: int, total: int | None, status: str | None) -> None:
        """Keep the progress; write it (throttled) and check for a cancel request."""
        self.latest.update(done=int(done), total=total)
        if status is not None:
            self.latest["status_text"] = str(status)[:255]
        now = time.monotonic()
        if now - self.last_write < PROGRESS_INTERVAL and (total is None or done < total):
            return
        self.last_write = now
        values = dict(self.latest)
        table = self.table
        if isinstance(self.engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool)):
            # One shared connection (in-memory SQLite): a second one would end the run's own
            # transaction. The progress is stored with the answer instead.
            return
        with self.engine.connect() as connection:
            try:
                with no_wait(connection):
                    connection.execute(table.update().where(table.c.id == self.id).values(**values))
                    connection.commit()
            except sa.exc.OperationalError:
                # SQLite while this run holds the write lock: progress is best effort there.
                connection.rollback()
            cancel = connection.execute(
                sa.select(table.c.cancel_requested).where(table.c.id == self.id)
            ).scalar()
        if cancel:
            raise JobCancelled(CANCELLED)
