"""Running a batched job (``batch_size=``): planning its batches, running one batch through
the core's transaction, and ending the job once its batches have.

On Celery, planning and each batch are tasks of their own (see :mod:`.worker`), so the
batches of one job spread over every worker; inline, the request runs them one after the
other. See :mod:`.batches` for what a job sees of rows inserted or deleted while it runs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, g
from werkzeug.wrappers import Response as BaseResponse

from ..access.scoping import ScopedRows
from ..caller import CALLER_KEY
from ..declare.models import Collection
from ..errors import NON_FIELD_ERRORS, ProtocolError
from .audit import Attempt
from .batches import Batch, plan, ranges_text
from .core import Ran, transact, write_audit
from .job_run import read_stored_request
from .jobs import JobStore, RetryLater, caller_from_json
from .leases import LeaseKeeper
from .outages import is_unavailable
from .sealing import SealBroken
from .selection import Selection

if TYPE_CHECKING:
    from .runtime import Runtime


def plan_job(runtime: Runtime, job_id: str) -> list[int]:
    """Plan a queued batched job: its key ranges stored, its records counted; returns the
    batches still to run (also when a redelivered plan finds the job planned already)."""
    jobs = _jobs(runtime)
    row = jobs.claim_batched(job_id)
    if row is None:
        return []
    if jobs.batches.planned(job_id):
        return jobs.batches.waiting(job_id)
    setattr(g, CALLER_KEY, caller_from_json(row.caller))
    session = runtime.db.session
    try:
        request = read_stored_request(runtime, jobs, row, Attempt(caller=g.get(CALLER_KEY)))
        collection = request.collection
        selection = request.selection
        batch_size = request.action.batch_size
        if collection is None or selection is None or batch_size is None:
            raise ProtocolError(f"The action {row.action!r} is not a batched bulk action.")
        scoped = runtime.restriction(collection, request.caller, request.action)
        planned = plan(session, collection, selection, batch_size, scoped)
        total = _count(session, collection, selection, scoped)
        seqs = jobs.batches.add_in(session, job_id, planned)
        jobs.plan_in(session, job_id, total)
        session.commit()
    except Exception as error:
        session.rollback()
        if is_unavailable(error):
            raise RetryLater(job_id) from error
        message = error.message if isinstance(error, ProtocolError) else str(error)
        if not isinstance(error, (ProtocolError, SealBroken)):
            current_app.logger.exception("Planning the batches of job %s failed", job_id)
            message = "The job's batches could not be planned; the error has been logged."
        jobs.end_batched(job_id, "failed", _refusal([message]), keep_request=False)
        return []
    if not seqs:
        end_job(runtime, job_id)
    return seqs


def run_batch(runtime: Runtime, job_id: str, seq: int) -> None:
    """Run batch ``seq`` of a batched job once: its rows read, the handler called and the
    batch marked done in one transaction. A batch that ran already, or whose job is ending,
    does nothing. A database outage raises :class:`~.jobs.RetryLater` (the batch stays
    pending and its task retries)."""
    jobs = _jobs(runtime)
    row = jobs.get(job_id)
    if row is None or row.state != "running":
        return
    if row.cancel_requested or jobs.batches.failed_any(job_id):
        end_job(runtime, job_id)  # stopping: no new batch starts
        return
    setattr(g, CALLER_KEY, caller_from_json(row.caller))
    attempt = Attempt(caller=g.get(CALLER_KEY), door=row.request.get("door"))
    session = runtime.db.session
    status, batch = 500, None
    try:
        batch = jobs.batches.claim_in(session, job_id, seq)
        if batch is None:
            session.rollback()
            return
        request = dataclasses.replace(read_stored_request(runtime, jobs, row, attempt), batch=batch)
        attempt.target = batch.target()
        with LeaseKeeper(runtime.db.engine, jobs.table, job_id, jobs.lease):
            ran = transact(runtime, request, attempt, None, _mark_done(runtime, jobs, batch))
        status = ran.response.status_code
        if ran.unavailable:
            raise RetryLater(job_id)
        if not ran.committed:
            jobs.batches.fail(batch, _first_error(ran))
    except (ProtocolError, SealBroken) as error:
        session.rollback()
        status = error.status if isinstance(error, ProtocolError) else 500
        if batch is not None:
            reason = error.message if isinstance(error, ProtocolError) else str(error)
            jobs.batches.fail(batch, reason)
    finally:
        if runtime.audit is not None and not attempt.written and batch is not None:
            write_audit(runtime.audit, attempt.record(status))
    end_job(runtime, job_id)


def end_job(runtime: Runtime, job_id: str) -> None:
    """End a batched job whose batches are over: all committed (succeeded), or the job is
    stopping (a batch failed, or a cancel was asked) and no batch runs any more."""
    jobs = _jobs(runtime)
    row = jobs.get(job_id)
    if row is None or row.state != "running":
        return
    tally = jobs.batches.tally(job_id)
    stopping = bool(row.cancel_requested or tally.failed)
    if tally.waiting and not stopping:
        return
    if stopping and tally.waiting:
        tally = jobs.batches.tally(job_id, count_running=True)
        if tally.running:
            return  # the last batch to end ends the job
    title = _title(runtime, row)
    if not stopping:
        answer: dict[str, Any] = {
            "result": True,
            "message": f"Ran {title} on {_plural(tally.records, 'record')} in "
            f"{_plural(len(tally.done), 'batch')}.",
        }
        jobs.end_batched(job_id, "succeeded", answer, keep_request=False)
        return
    committed = f"{_batches(tally.done)} ({_plural(tally.records, 'record')}) committed"
    not_run = f"{_batches(sorted([*tally.failed, *tally.waiting]))} did not"
    messages = [f"Batch {seq} failed: {error}" for seq, error in sorted(tally.errors.items())]
    if row.cancel_requested and not tally.failed:
        messages = [f"Cancelled: {committed}; {not_run} run."]
        state = "cancelled"
    else:
        messages.append(f"{committed.capitalize()}; {not_run}. retry_action runs the rest.")
        state = "failed"
    answer = _refusal(messages)
    answer["batches"] = {
        "committed": tally.done,
        "failed": tally.failed,
        "not_run": tally.waiting,
        "records": tally.records,
    }
    jobs.end_batched(job_id, state, answer, keep_request=True)


def run_batched_inline(runtime: Runtime, job_id: str) -> None:
    """Plan a batched job and run its batches one after the other, in this process."""
    for seq in plan_job(runtime, job_id):
        run_batch(runtime, job_id, seq)


def _jobs(runtime: Runtime) -> JobStore:
    if runtime.jobs is None:
        raise RuntimeError("A batched job ran with no job store.")
    return runtime.jobs


def _mark_done(runtime: Runtime, jobs: JobStore, batch: Batch) -> Any:
    def mark(response: BaseResponse, arguments: tuple[Any, ...]) -> None:
        count = len(arguments[0])
        jobs.batches.finish_in(runtime.db.session, batch, count)
        jobs.progress_in(runtime.db.session, batch.job_id, count)

    return mark


def _count(
    session: Any, collection: Collection, selection: Selection, scoped: ScopedRows | None
) -> int:
    """The number of records a job will run on: its ids, or the rows it selects now."""
    if not selection.inverse:
        return len(selection.ids)
    pk = collection.pk_attribute
    base = scoped.base if scoped is not None else sa.select(collection.model)
    if selection.ids:
        base = base.where(pk.not_in(selection.ids))
    return int(session.scalar(base.with_only_columns(sa.func.count(pk))) or 0)


def _title(runtime: Runtime, row: Any) -> str:
    try:
        action = runtime.registry.find(row.model or None, row.action)
    except ProtocolError:
        return str(row.action)
    return str(action.label or action.name)


def _first_error(ran: Ran) -> str:
    body = ran.response.get_json(silent=True) or {}
    errors = body.get("errors") or {}
    for messages in (errors.get(NON_FIELD_ERRORS), *errors.values()):
        if messages:
            return str(messages[0])
    return "The batch failed."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}{'es' if noun == 'batch' else 's'}"


def _batches(seqs: list[int]) -> str:
    """``batch 2`` or ``batches 1-3, 5`` (``no batch`` for none)."""
    if not seqs:
        return "no batch"
    return f"{'batch' if len(seqs) == 1 else 'batches'} {ranges_text(seqs)}"


def _refusal(messages: list[str]) -> dict[str, Any]:
    return {"result": False, "errors": {NON_FIELD_ERRORS: messages}}
