"""Running one action: resolve its records and params, call the handler in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..access.caller import CALLER_KEY, Caller, is_anonymous
from ..access.permissions import may_run
from ..declare.actions import Action, ActionKind
from ..declare.fields import ForeignKey
from ..doors.body import parse_object
from ..errors import ActionError, ErrorDict, PermissionDenied, ProtocolError, validation_messages
from .answers import (
    INTERNAL_ERROR_MESSAGE,
    error_response,
    json_response,
    message_error,
    success_answer,
    unavailable_response,
    unexpected_error_response,
)
from .audit import Attempt, AuditRecord, AuditSink, redact_params, summarize_target
from .downloads import secure_content_disposition
from .dry_run import dry_run, wants_dry_run
from .dynamic import complete_params
from .idempotency import IdempotencyStore, Reservation, fingerprint, idempotency_key
from .jobs import DATABASE_LOST, JobCancelled, JobStore
from .locking import lock_rows, supports_row_locks
from .outages import is_unavailable
from .per_record import run_per_record
from .sealing import SealBroken
from .selection import hoist_selection, load_rows, parse_selection

if TYPE_CHECKING:
    from ..extension import AppState


#: Refusals for a caller who cannot be told apart from others (see ``is_anonymous``).
ANONYMOUS_KEY = (
    "An Idempotency-Key needs a caller with an id: return Caller(id=...) (or a user object "
    "with an id attribute) from your authenticator."
)
ANONYMOUS_JOB = (
    "A background action needs a caller with an id, so that only they see the job: return "
    "Caller(id=...) (or a user object with an id attribute) from your authenticator."
)


def execute_action(state: AppState, request_params: dict[str, Any]) -> BaseResponse:
    """Answer an ``execute_action`` message (the request's ``params`` object), and write the
    attempt to the audit log when one is configured."""
    attempt = Attempt(caller=g.get(CALLER_KEY))
    status = 500
    try:
        response = _execute(state, request_params, attempt)
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
        if state.audit is not None:
            _write_audit(state.audit, attempt.record(status))


def _execute(state: AppState, request_params: dict[str, Any], attempt: Attempt) -> BaseResponse:
    name = request_params.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("execute_action needs params.name, the action's name.")
    model = request_params.get("model")
    if model is not None and not isinstance(model, str):
        raise ProtocolError("params.model must be the collection's name, a string.")
    attempt.action, attempt.model = name, model
    action = state.registry.find(model or None, name)
    attempt.secret = action.params.secret_names
    _check_permission(action, model)
    values = _user_values(request_params.get("params"), state.settings.max_depth)
    if action.for_instance:
        # Jobs and Idempotency-Key fingerprints keep the selection wherever it was sent.
        request_params = hoist_selection(request_params, values, action)
    if state.audit is not None:
        attempt.params = redact_params(values, attempt.secret)
        if action.for_instance:
            attempt.target = _target(request_params)
    caller = attempt.caller
    if action.background and is_anonymous(caller):
        raise ProtocolError(ANONYMOUS_JOB, status=400)
    reservation = None
    if state.idempotency is not None:
        key = idempotency_key(request, request_params)
        if key is not None:
            if caller is None or is_anonymous(caller):
                raise ProtocolError(ANONYMOUS_KEY, status=400)
            scope = f"{caller.scheme}:{caller.id}|{model}|{action.name}"
            reserved = state.idempotency.reserve_in(
                state.db.session, scope, key, fingerprint(request_params)
            )
            if isinstance(reserved, BaseResponse):
                attempt.outcome = "replayed"
                return reserved
            reservation = reserved
    return _run(state, action, model, request_params, values, attempt, reservation)


def _run(
    state: AppState,
    action: Action,
    model: str | None,
    request_params: dict[str, Any],
    values: dict[str, Any],
    attempt: Attempt,
    reservation: Reservation | None,
) -> BaseResponse:
    """Run the action for a request (or queue it, for ``background=True``), storing the answer
    of an ``Idempotency-Key`` with it."""
    session = state.db.session
    store = state.idempotency
    jobs = state.jobs
    queued: list[str] = []

    def enqueue(arguments: tuple[Any, ...]) -> dict[str, Any]:
        if jobs is None:  # check_registrations refuses such actions before any message
            raise RuntimeError("A background action ran with no job store.")
        job_id = jobs.create_in(
            session, action, model, request_params, values, attempt.caller or Caller()
        )
        queued.append(job_id)
        selected = len(arguments[0]) if action.kind is ActionKind.BULK else None
        what = f" on {selected} records" if selected is not None else ""
        return {
            "result": True,
            "message": f"Queued {action.label or action.name}{what}.",
            "job": {"id": job_id, "state": "queued"},
        }

    def store_answer(response: BaseResponse) -> None:
        if reservation is not None and store is not None:
            store.complete_in(session, reservation, response)

    invoke = enqueue if action.background else None
    # A reserved key's row is in the run's transaction: whatever rolls the run back (a
    # protocol error, a crash) frees the key with it.
    ran = _transact(state, action, model, request_params, values, attempt, invoke, store_answer)
    if not ran.committed and not ran.release and reservation is not None and store is not None:
        try:
            store.remember(session, reservation, ran.response)
        except Exception:
            current_app.logger.exception("Storing the answer of an Idempotency-Key failed")
    if ran.committed and queued and jobs is not None:
        attempt.outcome = "queued"
        try:
            jobs.dispatch(queued[0])
        except Exception:
            current_app.logger.exception("Queueing the Flex action %r failed", action.name)
            jobs.fail(queued[0], "The job could not be queued; nothing ran.")
            # The "Queued" answer was stored with the job: a retry must queue again.
            _forget(store, reservation)
            attempt.outcome = "failed"
            return unavailable_response(
                "The job could not be queued (is the broker up?); retry.",
                state.settings.retry_after,
            )
        if jobs.inline:
            response = json_response(jobs.settled_answer(queued[0], ran.response.get_json()))
            if reservation is not None and store is not None:
                _store_settled(store, reservation, response)
            return response
    if reservation is not None or queued:
        state.housekeeping.run_if_due(state)
    return ran.response


@dataclass
class _Ran:
    """How a run ended: its answer, and whether its work committed."""

    response: BaseResponse
    committed: bool = False
    cancelled: bool = False
    #: Keep no answer for an Idempotency-Key: a retry may answer otherwise (a crash, a dry
    #: run).
    release: bool = False
    #: The database went away (the answer is a 503); nothing was committed.
    unavailable: bool = False


def _transact(
    state: AppState,
    action: Action,
    model: str | None,
    request_params: dict[str, Any],
    values: dict[str, Any],
    attempt: Attempt,
    invoke: Callable[[tuple[Any, ...]], Any] | None,
    before_commit: Callable[[BaseResponse], None],
) -> _Ran:
    """Resolve, lock, call the handler (or ``invoke``) and commit, all in one transaction.

    Failures that roll back become answers; protocol errors propagate after the rollback.
    ``before_commit`` may write the answer inside the same transaction.
    """
    session = state.db.session
    rehearsal = False
    try:
        rehearsal = wants_dry_run(request_params)
        arguments = _resolve(state, action, model, request_params, values)
        complete_params(action, model, arguments, values)
        if rehearsal:
            return _Ran(dry_run(state, action, arguments, attempt), release=True)
        if invoke is not None:
            answer = invoke(arguments)
        else:
            if action.lock and supports_row_locks(session):
                lock_rows(session, _lockable(action, arguments), state.settings.id_chunk_size)
            attempt.handler_called = True
            if action.atomic:
                answer = success_answer(action.handler(*arguments))
            else:
                key = action.collection(model or "").pk_attribute.key
                answer = run_per_record(session, action.handler, arguments[0], arguments[1], key)
        if isinstance(answer, dict) and answer["result"] is False and action.atomic:
            raise _Refused(answer)
        if isinstance(answer, BaseResponse):
            response = answer
            secure_content_disposition(response.headers)
        else:
            response = json_response(answer)
        before_commit(response)
        session.commit()
    except _Refused as refused:
        _rollback(session)
        attempt.outcome = "failed"
        return _Ran(json_response(refused.answer))
    except (ActionError, ValidationError) as error:
        _rollback(session)
        if isinstance(error, ActionError):
            attempt.errors = error.errors
        else:
            attempt.errors = validation_messages(error.messages)
        attempt.outcome = "failed" if attempt.handler_called else "invalid"
        # A dry run never answers for the real run that follows, even when it fails.
        return _Ran(error_response(attempt.errors), release=rehearsal)
    except JobCancelled as cancelled:
        _rollback(session)
        attempt.outcome = "failed"
        return _Ran(message_error(str(cancelled), 200), cancelled=True)
    except (ProtocolError, HTTPException):
        _rollback(session)
        raise
    except Exception as error:
        _rollback(session)
        attempt.outcome = "failed" if attempt.handler_called else "invalid"
        response = unexpected_error_response(error, f"Flex action {action.name!r} on {model!r}")
        return _Ran(response, release=True, unavailable=is_unavailable(error))
    attempt.outcome = "ran"
    if isinstance(answer, dict) and answer["result"] is False:
        attempt.outcome, attempt.errors = "failed", answer.get("errors")
    return _Ran(response, committed=True)


def run_job(state: AppState, jobs: JobStore, row: Any) -> None:
    """Run a background job in the worker: the same resolution, checks and transaction as a
    request, its answer stored on the job. A database outage while recording a run that
    rolled back raises :class:`~.jobs.RetryLater`, which the task retries."""
    caller: Caller = g.get(CALLER_KEY)
    attempt = Attempt(caller=caller, action=row.action, model=row.model)
    status = 500
    #: How a run that did not commit ended: the job's final state and its answer.
    ended: tuple[str, BaseResponse] | None = None
    try:
        action = state.registry.find(row.model or None, row.action)
        attempt.secret = action.params.secret_names
        values = jobs.request_values(row)
        request_params = {**(row.request.get("selection") or {}), "name": row.action}
        if state.audit is not None:
            attempt.params = redact_params(values, attempt.secret)
            if action.for_instance:
                attempt.target = _target(request_params)
        _check_permission(action, row.model)

        def finish_in(response: BaseResponse) -> None:
            jobs.finish_in(state.db.session, row.id, response)

        ran = _transact(state, action, row.model, request_params, values, attempt, None, finish_in)
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
        if state.audit is not None:
            _write_audit(state.audit, attempt.record(status))
    if ended is not None:
        jobs.finish(row.id, *ended)


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


def _target(request_params: dict[str, Any]) -> dict[str, Any]:
    """The selection as sent (hoisted out of the values already), for the audit log (never
    raises)."""
    raw = request_params.get("ids")
    if isinstance(raw, str):
        ids: list[Any] = raw.split(",") if raw else []
    elif isinstance(raw, list):
        ids = list(raw)
    else:
        ids = [] if raw is None else [raw]
    if request_params.get("id") is not None:
        ids.insert(0, request_params["id"])
    inverse = request_params.get("inverseIds") is True
    return summarize_target(ids, inverse)


def _store_settled(
    store: IdempotencyStore, reservation: Reservation, response: BaseResponse
) -> None:
    """Replace the "Queued" answer kept for a key with the answer of the inline run."""
    try:
        store.complete(reservation, response)
    except Exception:
        current_app.logger.exception("Storing the answer of an Idempotency-Key failed")


def _forget(store: IdempotencyStore | None, reservation: Reservation | None) -> None:
    if store is None or reservation is None:
        return
    try:
        store.forget(reservation)
    except Exception:
        current_app.logger.exception("Freeing an Idempotency-Key failed")


def _write_audit(sink: AuditSink, record: AuditRecord) -> None:
    try:
        sink.write(record)
    except Exception:
        current_app.logger.exception("Writing the Flex Actions audit record failed")


def _check_permission(action: Action, model: str | None) -> None:
    """Refuse (403) before anything is parsed or loaded when the caller may not run it."""
    collection = action.collection(model) if model and action.collections else None
    caller = g.get(CALLER_KEY)
    if may_run(caller, action, collection.model if collection else None):
        return
    if caller.read_only:
        raise PermissionDenied("Read-only users may not run actions.")
    raise PermissionDenied(f"You may not run the action {action.name!r}.")


def _user_values(raw: Any, max_depth: int) -> dict[str, Any]:
    """A copy of the user's input values; ``params`` may be absent or a JSON-encoded object."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        return parse_object(raw, max_depth, "params.params")
    if not isinstance(raw, dict):
        raise ProtocolError("params.params must be an object of param names to values.")
    return dict(raw)


def _resolve(
    state: AppState,
    action: Action,
    model: str | None,
    request_params: dict[str, Any],
    values: dict[str, Any],
) -> tuple[Any, ...]:
    """The handler's arguments; every failure is gathered into one ActionError."""
    kind = action.kind
    if kind is ActionKind.COMMON:
        return (action.params.load(values),)
    collection = action.collection(model or "")
    if kind is ActionKind.COLLECTION:
        return (collection.model, action.params.load(values))
    settings = state.settings
    selection = parse_selection(
        request_params, values, action, collection, state.wide_integer_ids, settings.max_ids
    )
    errors: ErrorDict = {}
    rows: list[Any] = []
    try:
        restrict = state.restriction(collection, action)
        rows = load_rows(state.db.session, collection, selection, settings.id_chunk_size, restrict)
        if not rows:
            raise ActionError("No records selected: the collection has no rows to act on.")
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
