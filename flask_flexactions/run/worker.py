"""The Celery tasks of background actions: running a job, and sweeping stale ones.

``init_app(app, celery=...)`` registers them on the app's Celery. A database outage while
the worker starts a job, or records how its run ended, is retried by Celery with a backoff.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context

from .core import run_job
from .jobs import RetryLater

if TYPE_CHECKING:
    from .runtime import Runtime

#: The Celery task that runs a job, and the one that sweeps stale jobs and expired keys.
TASK_NAME = "flask_flexactions.run_job"
SWEEP_TASK_NAME = "flask_flexactions.sweep"
#: Celery retries of a job whose bookkeeping met a database outage, and their longest wait.
DATABASE_RETRIES = 20
MAX_BACKOFF = 60


def register_tasks(celery: Any) -> Any:
    """Register the tasks on ``celery``; returns the one that runs a job.

    It is acknowledged late and rejected when its worker is lost, so the job of a killed
    worker process is delivered again (and failed then, never run twice).
    """
    celery.task(name=SWEEP_TASK_NAME, ignore_result=True)(sweep_task)
    return celery.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
    )(run_job_task)


def _runtime() -> Runtime:
    if not has_app_context():
        raise RuntimeError(
            "flask_flexactions jobs need the Flask app context in the worker: give your Celery "
            "app a Task class that pushes app.app_context() (see the Flask docs, 'Background "
            "Tasks with Celery')."
        )
    runtime: Runtime = current_app.extensions["flexactions"]
    return runtime


def run_job_task(task: Any, job_id: str, outcome: dict[str, Any] | None = None) -> None:
    """The Celery task: run the job (or, on a retry, record how its run ended) inside the app
    context the app's Celery Task pushes. A database outage retries it with a backoff."""
    runtime = _runtime()
    runtime.housekeeping.run_if_due()
    try:
        if outcome is None:
            run_job(runtime, job_id)
        elif runtime.jobs is not None:
            runtime.jobs.record(job_id, outcome)
    except RetryLater as later:
        retries = task.request.retries
        raise task.retry(
            args=(job_id,),
            kwargs={"outcome": later.outcome},
            countdown=min(2**retries, MAX_BACKOFF),
            max_retries=DATABASE_RETRIES,
        ) from later


def sweep_task() -> dict[str, int]:
    """The Celery task that sweeps stale jobs and expired keys now (for Celery beat)."""
    return _runtime().housekeeping.run()
