"""The execution core: a request from any door runs here, under the same guarantees.

A door reads its own wire format into one :class:`~.request.ExecuteRequest` (see
:func:`run_request`); the core checks who may run it, reserves its Idempotency-Key, resolves
its records and params, calls the handler (or queues a job) in one transaction, and writes
the attempt to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..caller import Caller, is_anonymous
from ..declare.actions import Action, ActionKind
from ..declare.fields import ForeignKey, loading_related
from ..errors import ActionError, ErrorDict, ProtocolError, validation_messages
from .answers import (
    error_response,
    json_response,
    message_error,
    success_answer,
    unavailable_response,
    unexpected_error_response,
)
from .approval_gate import gate
from .audit import Attempt, AuditRecord, AuditSink, TableAuditSink
from .batches import rows as batch_rows
from .downloads import secure_content_disposition
from .dry_run import dry_run
from .forms import complete_params
from .idempotency import IdempotencyStore, Reservation
from .jobs import RetryLater
from .locking import lock_rows, supports_row_locks
from .outages import is_unavailable
from .per_record import run_per_record
from .progress import JobCancelled
from .request import ExecuteRequest
from .selection import NO_RECORDS, load_rows

if TYPE_CHECKING:
    from .runtime import Runtime


#: Refusals for a caller who cannot be told apart from others (see ``is_anonymous``).
ANONYMOUS_KEY = (
    "An Idempotency-Key needs a caller with an id: return Caller(id=...) (or a user object "
    "with an id attribute) from your authenticator."
)
ANONYMOUS_JOB = (
    "A background action needs a caller with an id, so that only they see the job: return "
    "Caller(id=...) (or a user object with an id attribute) from your authenticator."
)

#: A door's reader: fills the attempt as it learns the request, returns the request.
Reader = Callable[[Attempt], ExecuteRequest]


def run_request(runtime: Runtime, caller: Caller | None, door: str, read: Reader) -> BaseResponse:
    """Read one request with the door's ``read`` and run it; the attempt goes to the audit
    log, whether it ran, failed or was refused while being read."""
    attempt = Attempt(caller=caller, door=door)
    status = 500
    try:
        response = execute(runtime, read(attempt), attempt)
        status = response.status_code
        return response
    except (ProtocolError, HTTPException) as error:
        status = error.status if isinstance(error, ProtocolError) else (error.code or 500)
        if attempt.handler_called:
            attempt.outcome = "failed"
        else:
            attempt.outcome = "refused" if status == 403 else "invalid"
        raise
    finally:
        if runtime.audit is not None and not attempt.written:
            write_audit(runtime.audit, attempt.record(status))


def execute(runtime: Runtime, request: ExecuteRequest, attempt: Attempt) -> BaseResponse:
    """Run ``request``: its answer, or the stored answer of its Idempotency-Key."""
    caller = request.caller
    if request.action.background and is_anonymous(caller):
        raise ProtocolError(ANONYMOUS_JOB, status=400)
    reservation = None
    store = runtime.idempotency
    if request.key is not None and store is not None:
        if is_anonymous(caller):
            raise ProtocolError(ANONYMOUS_KEY, status=400)
        scope = f"{caller.scheme}:{caller.id}|{request.model}|{request.action.name}"
        reserved = store.reserve_in(runtime.db.session, scope, request.key, request.fingerprint())
        if isinstance(reserved, BaseResponse):
            attempt.outcome = "replayed"
            return reserved
        reservation = reserved
    return _run(runtime, request, attempt, reservation)


def _run(
    runtime: Runtime,
    request: ExecuteRequest,
    attempt: Attempt,
    reservation: Reservation | None,
) -> BaseResponse:
    """Run the action for a request (or queue it, for ``background=True``), storing the answer
    of an ``Idempotency-Key`` with it."""
    action = request.action
    session = runtime.db.session
    store = runtime.idempotency
    jobs = runtime.jobs
    queued: list[str] = []

    def enqueue(arguments: tuple[Any, ...]) -> dict[str, Any]:
        if jobs is None:  # check_registrations refuses such actions before any message
            raise RuntimeError("A background action ran with no job store.")
        job_id = jobs.create_in(
            session,
            action,
            request.model,
            request.caller,
            request.selection,
            request.values,
            request.door,
        )
        queued.append(job_id)
        if action.batch_size is not None:
            what = f" in batches of {action.batch_size} records"
        elif action.kind is ActionKind.BULK:
            what = f" on {len(arguments[0])} records"
        else:
            what = ""
        return {
            "result": True,
            "message": f"Queued {action.label or action.name}{what}.",
            "job": {"id": job_id, "state": "queued"},
        }

    # An action that needs approval is stored instead of run (see approval_gate.py).
    approval = gate(runtime, request, attempt)

    def store_answer(response: BaseResponse, arguments: tuple[Any, ...]) -> None:
        if reservation is not None and store is not None:
            store.complete_in(session, reservation, response)
        if approval is not None:
            approval.before_commit(session, response)

    invoke: Callable[[tuple[Any, ...]], Any] | None = enqueue if action.background else None
    if approval is not None:
        invoke = approval.wrap(invoke)
    # A reserved key's row is in the run's transaction: whatever rolls the run back (a
    # protocol error, a crash) frees the key with it.
    ran = transact(runtime, request, attempt, invoke, store_answer)
    if not ran.committed and not ran.release and reservation is not None and store is not None:
        try:
            store.remember(session, reservation, ran.response)
        except Exception:
            current_app.logger.exception("Storing the answer of an Idempotency-Key failed")
    if ran.committed and approval is not None:
        approval.announce()
    if ran.committed and queued and jobs is not None:
        attempt.outcome = "queued"
        if jobs.inline:
            return _run_inline(runtime, request, queued[0], ran.response, reservation)
        try:
            jobs.dispatch(queued[0], batched=action.batch_size is not None)
        except Exception:
            current_app.logger.exception("Queueing the Flex action %r failed", action.name)
            jobs.fail(queued[0], "The job could not be queued; nothing ran.")
            # The "Queued" answer was stored with the job: a retry must queue again.
            _forget(store, reservation)
            attempt.outcome = "failed"
            return unavailable_response(
                "The job could not be queued (is the broker up?); retry.",
                runtime.settings.retry_after,
            )
    if reservation is not None or queued or approval is not None:
        runtime.housekeeping.run_if_due()
    return ran.response


@dataclass
class Ran:
    """How a run ended: its answer, and whether its work committed."""

    response: BaseResponse
    committed: bool = False
    cancelled: bool = False
    #: Keep no answer for an Idempotency-Key: a retry may answer otherwise (a crash, a dry
    #: run).
    release: bool = False
    #: The database went away (the answer is a 503); nothing was committed.
    unavailable: bool = False


def transact(
    runtime: Runtime,
    request: ExecuteRequest,
    attempt: Attempt,
    invoke: Callable[[tuple[Any, ...]], Any] | None,
    before_commit: Callable[[BaseResponse, tuple[Any, ...]], None],
) -> Ran:
    """Resolve, lock, call the handler (or ``invoke``) and commit, all in one transaction.

    Failures that roll back become answers; protocol errors propagate after the rollback.
    ``before_commit(answer, arguments)`` may write inside the same transaction (the answer
    of an Idempotency-Key, a job's end, a batch's done mark).
    """
    action = request.action
    session = runtime.db.session
    try:
        with loading_related(runtime.related_rows(request.caller)):
            arguments = _resolve(runtime, request)
            complete_params(action, request.model, arguments, dict(request.values))
        if request.dry_run:
            return Ran(dry_run(session, action, arguments, attempt), release=True)
        # ``invoke`` queues a job or stores an approval request; None: run the handler.
        answer = invoke(arguments) if invoke is not None else None
        if answer is None and request.batch is not None and not arguments[0]:
            answer = {"result": True}  # every row of this batch is gone: nothing to call
        if answer is None:
            if action.lock and supports_row_locks(session):
                lock_rows(session, _lockable(action, arguments), runtime.settings.id_chunk_size)
            attempt.handler_called = True
            if action.atomic:
                answer = success_answer(action.handler(*arguments))
            else:
                key = (request.collection or action.collections[0]).pk_attribute.key
                answer = run_per_record(session, action.handler, arguments[0], arguments[1], key)
        if isinstance(answer, dict) and answer["result"] is False and action.atomic:
            raise _Refused(answer)
        if isinstance(answer, BaseResponse):
            response = answer
            secure_content_disposition(response.headers)
        else:
            response = json_response(answer)
        before_commit(response, arguments)
        attempt.outcome = "ran"
        if isinstance(answer, dict) and answer["result"] is False:
            attempt.outcome, attempt.errors = "failed", answer.get("errors")
        # A run that commits writes its audit record in its own transaction, unless it queued
        # a job (its outcome is known once the job is handed to the broker).
        audit = runtime.audit
        in_transaction = invoke is None and isinstance(audit, TableAuditSink)
        if isinstance(audit, TableAuditSink) and in_transaction:
            audit.write_in(session, attempt.record(response.status_code))
        session.commit()
        attempt.written = in_transaction
    except _Refused as refused:
        _rollback(session)
        attempt.outcome = "failed"
        return Ran(json_response(refused.answer))
    except (ActionError, ValidationError) as error:
        _rollback(session)
        if isinstance(error, ActionError):
            attempt.errors = error.errors
        else:
            attempt.errors = validation_messages(error.messages)
        attempt.outcome = "failed" if attempt.handler_called else "invalid"
        # A dry run never answers for the real run that follows, even when it fails.
        return Ran(error_response(attempt.errors), release=request.dry_run)
    except JobCancelled as cancelled:
        _rollback(session)
        attempt.outcome = "failed"
        return Ran(message_error(str(cancelled), 200), cancelled=True)
    except (ProtocolError, HTTPException):
        _rollback(session)
        raise
    except Exception as error:
        _rollback(session)
        attempt.outcome = "failed" if attempt.handler_called else "invalid"
        where = f"Flex action {action.name!r} on {request.model!r}"
        response = unexpected_error_response(error, where, runtime.settings.retry_after)
        return Ran(response, release=True, unavailable=is_unavailable(error))
    return Ran(response, committed=True)


class _Refused(Exception):
    """The handler returned False: roll back and send ``answer``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__()
        self.answer = answer


def _lockable(action: Action, arguments: tuple[Any, ...]) -> list[Any]:
    """The rows ``lock=True`` locks: the selected records and the ForeignKey params' rows."""
    rows: list[Any] = []
    if action.kind is ActionKind.BULK:
        rows.extend(arguments[0])
    elif action.kind is ActionKind.RECORD:
        rows.append(arguments[0])
    loaded = arguments[-1]
    for name, field in action.params.schema.load_fields.items():
        key = field.attribute or name
        if isinstance(field, ForeignKey) and loaded.get(key) is not None:
            rows.append(loaded[key])
    return rows


def _run_inline(
    runtime: Runtime,
    request: ExecuteRequest,
    job_id: str,
    queued: BaseResponse,
    reservation: Reservation | None,
) -> BaseResponse:
    """Run a job in the request (``FLEXACTIONS_BACKGROUND_INLINE``) and answer with its true
    state; a key's stored "Queued" answer is replaced by this one."""
    jobs = runtime.jobs
    assert jobs is not None and runtime.run_inline is not None
    try:
        runtime.run_inline(job_id, request.action.batch_size is not None)
    except RetryLater:
        # An inline run cannot be retried later: the job stays as it is until the sweep
        # fails it (its lease or its queue timeout runs out).
        current_app.logger.warning("Job %s met a database outage; left to the sweep", job_id)
    response = json_response(jobs.settled_answer(job_id, queued.get_json()))
    store = runtime.idempotency
    if reservation is not None and store is not None:
        try:
            store.complete(reservation, response)
        except Exception:
            current_app.logger.exception("Storing the answer of an Idempotency-Key failed")
    return response


def _forget(store: IdempotencyStore | None, reservation: Reservation | None) -> None:
    if store is None or reservation is None:
        return
    try:
        store.forget(reservation)
    except Exception:
        current_app.logger.exception("Freeing an Idempotency-Key failed")


def write_audit(sink: AuditSink, record: AuditRecord) -> None:
    try:
        sink.write(record)
    except Exception:
        current_app.logger.exception("Writing the Flex Actions audit record failed")


def _resolve(runtime: Runtime, request: ExecuteRequest) -> tuple[Any, ...]:
    """The handler's arguments; every failure is gathered into one ActionError."""
    action = request.action
    values = dict(request.values)
    kind = action.kind
    if kind is ActionKind.COMMON:
        return (action.params.load(values),)
    collection = request.collection
    if collection is None:  # the registry finds model actions by their collection only
        raise RuntimeError(f"The action {action.name!r} ran without its collection.")
    if kind is ActionKind.COLLECTION:
        return (collection.model, action.params.load(values))
    selection = request.selection
    if selection is None or selection.empty:
        raise ActionError(NO_RECORDS)
    errors: ErrorDict = {}
    rows: list[Any] = []
    try:
        scoped = runtime.restriction(collection, request.caller, action)
        session = runtime.db.session
        if request.batch is not None:
            rows = batch_rows(
                session, collection, selection, request.batch, scoped, runtime.wide_integer_ids
            )
        elif action.batch_size is None:
            rows = load_rows(session, collection, selection, runtime.settings.id_chunk_size, scoped)
            if not rows:
                raise ActionError("No records selected: the collection has no rows to act on.")
        # A batched action queued (or dry-run) in the request loads no row: its worker
        # plans and reads them a batch at a time.
    except ActionError as error:
        errors.update(error.errors)
    try:
        loaded = action.params.load(values)
    except ValidationError as error:
        for key, messages in validation_messages(error.messages).items():
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ActionError(errors=errors)
    return (rows if kind is ActionKind.BULK else rows[0], loaded)


def _rollback(session: Any) -> None:
    """Roll the session back; a failure here (a dead connection) is logged, not raised."""
    try:
        session.rollback()
    except Exception:
        current_app.logger.exception("Rolling back after a Flex action failed")
