"""Housekeeping: stale jobs and approval requests settled, expired rows deleted, now and then.

Nothing here needs a scheduler: each process sweeps at most once per
``FLEXACTIONS_SWEEP_INTERVAL``, when a Celery worker starts a job or a request queues a job or
reserves an Idempotency-Key. A status read settles its own job at once. For a deployment
whose traffic is too sparse for that, ``flask flexactions sweep`` (cron) or the Celery task
``flask_flexactions.sweep`` (Celery beat) sweep on demand.
"""

from __future__ import annotations

import threading
import time

from flask import current_app

from .approvals import ApprovalStore
from .idempotency import IdempotencyStore
from .jobs import JobStore
from .outages import is_unavailable


class Housekeeping:
    """Sweeps ``jobs`` and ``keys``, and does it at most once per ``interval`` seconds in this
    process when asked with :meth:`run_if_due`."""

    def __init__(
        self,
        interval: int,
        jobs: JobStore | None,
        keys: IdempotencyStore | None,
        approvals: ApprovalStore | None = None,
    ) -> None:
        self.interval = interval
        self.jobs = jobs
        self.keys = keys
        self.approvals = approvals
        self._due = 0.0
        self._lock = threading.Lock()

    def run_if_due(self) -> None:
        """Sweep if the interval has passed since the last sweep; failures are logged."""
        now = time.monotonic()
        if now < self._due or not self._lock.acquire(blocking=False):
            return
        try:
            if now < self._due:
                return
            self._due = now + self.interval
            self.run()
        except Exception as error:
            if is_unavailable(error):
                current_app.logger.warning("Flex Actions housekeeping: database unavailable")
            else:
                current_app.logger.exception("Flex Actions housekeeping failed")
        finally:
            self._lock.release()

    def run(self) -> dict[str, int]:
        """Fail stale jobs, delete expired jobs and keys, expire approval requests now;
        returns how many of each."""
        counts: dict[str, int] = {}
        if self.jobs is not None:
            counts.update(self.jobs.sweep())
        if self.keys is not None:
            counts["expired_keys"] = self.keys.delete_expired()
        if self.approvals is not None and self.approvals.in_use:
            counts.update(self.approvals.sweep())
        return counts
