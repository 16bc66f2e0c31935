"""Running one background job in the worker (or in the request, inline): claiming it,
keeping its lease alive, and recording how it ended."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, g
from werkzeug.wrappers import Response as BaseResponse

from ..caller import CALLER_KEY
from ..errors import ProtocolError
from .answers import INTERNAL_ERROR_MESSAGE, message_error
from .audit import Attempt
from .core import transact, write_audit
from .jobs import DATABASE_LOST, JobStore, caller_from_json
from .leases import LeaseKeeper
from .outages import is_unavailable
from .progress import JOB_KEY, RunningJob
from .request import ExecuteRequest, read_request
from .sealing import SealBroken

if TYPE_CHECKING:
    from .runtime import Runtime


def run_job(runtime: Runtime, job_id: str) -> None:
    """Run a queued background job once, in the worker (or in the request, inline): claim
    it, keep its lease alive while it runs, and record how it ended.

    A database outage while claiming the job or recording its end raises
    :class:`~.jobs.RetryLater`, which the Celery task retries.
    """
    jobs = runtime.jobs
    if jobs is None:
        raise RuntimeError("A background job ran with no job store.")
    row = jobs.claim(job_id)
    if row is None:
        return
    setattr(g, CALLER_KEY, caller_from_json(row.caller))
    engine = runtime.db.engine
    setattr(g, JOB_KEY, RunningJob(engine, jobs.table, job_id))
    try:
        if isinstance(engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool)):
            _run_claimed(runtime, jobs, row)  # one shared connection: no lease thread
        else:
            with LeaseKeeper(engine, jobs.table, job_id, jobs.lease):
                _run_claimed(runtime, jobs, row)
    finally:
        g.pop(JOB_KEY, None)


def _run_claimed(runtime: Runtime, jobs: JobStore, row: Any) -> None:
    """Run the claimed job ``row``: its stored request read again, checked and run in one
    transaction as from its door, its answer stored on the job."""
    stored = row.request
    attempt = Attempt(caller=g.get(CALLER_KEY), door=stored.get("door"))
    status = 500
    #: How a run that did not commit ended: the job's final state and its answer.
    ended: tuple[str, BaseResponse] | None = None
    try:
        request = read_stored_request(runtime, jobs, row, attempt)

        def finish_in(response: BaseResponse, arguments: tuple[Any, ...]) -> None:
            jobs.finish_in(runtime.db.session, row.id, response)

        ran = transact(runtime, request, attempt, None, finish_in)
        status = ran.response.status_code
        if ran.unavailable:
            ended = ("failed", message_error(DATABASE_LOST, 200))
        elif not ran.committed:
            ended = ("cancelled" if ran.cancelled else "failed", ran.response)
    except SealBroken as error:
        ended = ("failed", message_error(str(error), 200))
    except ProtocolError as error:
        status = error.status
        attempt.outcome = "refused" if status == 403 else "invalid"
        ended = ("failed", message_error(error.message, error.status))
    except Exception as error:
        if is_unavailable(error):
            ended = ("failed", message_error(DATABASE_LOST, 200))
        else:
            current_app.logger.exception("Flex background job %s failed", row.id)
            ended = ("failed", message_error(INTERNAL_ERROR_MESSAGE, 200))
    finally:
        if runtime.audit is not None and not attempt.written:
            write_audit(runtime.audit, attempt.record(status))
    if ended is not None:
        jobs.finish(row.id, *ended)


def read_stored_request(
    runtime: Runtime, jobs: JobStore, row: Any, attempt: Attempt
) -> ExecuteRequest:
    """A job's stored request, read again as the door read it (its caller may still run it)."""
    stored = row.request
    selection = stored.get("selection") or {}
    return read_request(
        runtime,
        attempt,
        action=row.action,
        model=row.model,
        values=jobs.request_values(row),
        ids=selection.get("ids"),
        inverse=selection.get("inverseIds"),
        door=stored.get("door") or "messages",
    )
