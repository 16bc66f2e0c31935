"""The Celery tasks of background actions: running a job, and sweeping stale ones.

``init_app(app, celery=...)`` registers them on the app's Celery. A database outage while
the worker starts a job, or records how its run ended, is retried by Celery with a backoff.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context, has_request_context

from .batched import plan_job, run_batch, run_batched_inline
from .job_run import run_job
from .jobs import RetryLater

if TYPE_CHECKING:
    from .jobs import JobStore
    from .runtime import Runtime

#: The Celery task that runs a job, and the one that sweeps stale jobs and expired keys.
TASK_NAME = "flask_flexactions.run_job"
SWEEP_TASK_NAME = "flask_flexactions.sweep"
#: The Celery tasks of a batched job: planning it, and running one of its batches.
PLAN_TASK_NAME = "flask_flexactions.plan_batches"
BATCH_TASK_NAME = "flask_flexactions.run_batch"
#: Celery retries of a job whose bookkeeping met a database outage, and their longest wait.
DATABASE_RETRIES = 20
MAX_BACKOFF = 60


def register_tasks(celery: Any, jobs: JobStore) -> None:
    """Register the tasks on ``celery`` and hand ``jobs`` the ones it queues.

    Job and batch tasks are acknowledged late and rejected when their worker is lost, so the
    work of a killed worker process is delivered again: a job is then failed (never run
    twice), a batch whose transaction died runs again (one that committed is skipped).
    """
    options = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}
    celery.task(name=SWEEP_TASK_NAME, ignore_result=True)(sweep_task)
    jobs.task = celery.task(name=TASK_NAME, ignore_result=True, **options)(run_job_task)
    jobs.plan_task = celery.task(name=PLAN_TASK_NAME, ignore_result=True, **options)(
        plan_batches_task
    )
    jobs.batch_task = celery.task(name=BATCH_TASK_NAME, ignore_result=True, **options)(
        run_batch_task
    )


def run_inline(runtime: Runtime, job_id: str, batched: bool) -> None:
    """Run a job in this process instead of on Celery (``FLEXACTIONS_BACKGROUND_INLINE``)."""
    if batched:
        run_batched_inline(runtime, job_id)
    else:
        run_job(runtime, job_id)


def _runtime() -> Runtime:
    if not has_app_context():
        raise RuntimeError(
            "flask_flexactions jobs need the Flask app context in the worker: give your Celery "
            "app a Task class that pushes app.app_context() (see the Flask docs, 'Background "
            "Tasks with Celery')."
        )
    runtime: Runtime = current_app.extensions["flexactions"]
    return runtime


@contextlib.contextmanager
def _in_a_request() -> Iterator[None]:
    """A test request context of the app: a handler builds its answer in the worker as in a
    request, with request-bound helpers such as ``send_file`` and ``url_for``."""
    if has_request_context():
        yield
        return
    with current_app.test_request_context():
        yield


def run_job_task(task: Any, job_id: str, outcome: dict[str, Any] | None = None) -> None:
    """The Celery task: run the job (or, on a retry, record how its run ended) inside the app
    context the app's Celery Task pushes. A database outage retries it with a backoff."""
    runtime = _runtime()
    runtime.housekeeping.run_if_due()
    try:
        if outcome is None:
            with _in_a_request():
                run_job(runtime, job_id)
        elif runtime.jobs is not None:
            runtime.jobs.record(job_id, outcome)
    except RetryLater as later:
        raise _retry(task, job_id, later) from later


def plan_batches_task(task: Any, job_id: str) -> None:
    """The Celery task that plans a batched job and hands its batches to the workers."""
    runtime = _runtime()
    runtime.housekeeping.run_if_due()
    try:
        seqs = plan_job(runtime, job_id)
    except RetryLater as later:
        raise _retry(task, job_id, later) from later
    if runtime.jobs is not None:
        runtime.jobs.dispatch_batches(job_id, seqs)


def run_batch_task(task: Any, job_id: str, seq: int) -> None:
    """The Celery task that runs one batch of a batched job."""
    runtime = _runtime()
    try:
        with _in_a_request():
            run_batch(runtime, job_id, seq)
    except RetryLater as later:
        raise task.retry(
            args=(job_id, seq),
            countdown=min(2**task.request.retries, MAX_BACKOFF),
            max_retries=DATABASE_RETRIES,
        ) from later


def _retry(task: Any, job_id: str, later: RetryLater) -> Any:
    return task.retry(
        args=(job_id,),
        kwargs={"outcome": later.outcome} if later.outcome is not None else {},
        countdown=min(2**task.request.retries, MAX_BACKOFF),
        max_retries=DATABASE_RETRIES,
    )


def sweep_task() -> dict[str, int]:
    """The Celery task that sweeps stale jobs and expired keys now (for Celery beat)."""
    return _runtime().housekeeping.run()
