"""Housekeeping: stale jobs failed, expired jobs and Idempotency-Keys deleted, now and then.

Nothing here needs a scheduler: each process sweeps at most once per
``FLEXACTIONS_SWEEP_INTERVAL``, when a Celery worker starts a job or a request queues a job or
reserves an Idempotency-Key. A status read settles its own job at once. For a deployment
whose traffic is too sparse for that, ``flask flexactions sweep`` (cron) or the Celery task
``flask_flexactions.sweep`` (Celery beat) sweep on demand.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from flask import current_app

from .outages import is_unavailable

if TYPE_CHECKING:
    from ..extension import AppState


class Housekeeping:
    """Runs :meth:`run` at most once per ``interval`` seconds in this process."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self._due = 0.0
        self._lock = threading.Lock()

    def run_if_due(self, state: AppState) -> None:
        """Sweep if the interval has passed since the last sweep; failures are logged."""
        now = time.monotonic()
        if now < self._due or not self._lock.acquire(blocking=False):
            return
        try:
            if now < self._due:
                return
            self._due = now + self.interval
            self.run(state)
        except Exception as error:
            if is_unavailable(error):
                current_app.logger.warning("Flex Actions housekeeping: database unavailable")
            else:
                current_app.logger.exception("Flex Actions housekeeping failed")
        finally:
            self._lock.release()

    def run(self, state: AppState) -> dict[str, int]:
        """Fail stale jobs, delete expired jobs and keys now; returns how many of each."""
        counts: dict[str, int] = {}
        if state.jobs is not None:
            counts.update(state.jobs.sweep())
        if state.idempotency is not None:
            counts["expired_keys"] = state.idempotency.delete_expired()
        return counts
