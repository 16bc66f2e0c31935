"""Deciding approval requests: who may see and decide one, the decisions, and the run of an
approved request, once, as its requester's, through the one core."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import current_app, g
from werkzeug.wrappers import Response as BaseResponse

from ..caller import CALLER_KEY, Caller
from ..declare.approval import Approval
from ..errors import NON_FIELD_ERRORS, NotFound, PermissionDenied, ProtocolError
from ..signals import approval_decided, approval_ran, notify
from .answers import INTERNAL_ERROR_MESSAGE, json_response
from .approval_gate import approval_key
from .approval_records import Stored, answered_a_file, audit_record, error_answer, summary
from .approvals import ApprovalStore
from .audit import Attempt
from .core import execute, run_request
from .outages import is_unavailable
from .request import ExecuteRequest, read_request
from .sealing import SealBroken

if TYPE_CHECKING:
    from ..declare.actions import Action
    from .runtime import Runtime

#: How many of the newest pending requests ``list_approvals`` looks through.
PENDING_WINDOW = 1000
#: Tries of a decision that met another one made at the same moment.
DECISION_TRIES = 5

UNKNOWN = "Unknown approval request {id!r}."
NEEDS_ID = (
    "Deciding an approval request needs a caller with an id (a person): the shared token and "
    "anonymous callers cannot approve, reject or withdraw."
)
#: How a request that is no longer pending ended, for the refusal of a decision.
_ENDED = {
    "approved": "was approved and is running",
    "rejected": "was rejected",
    "withdrawn": "was withdrawn",
    "expired": "expired",
    "ran": "has run",
    "failed": "failed",
}
TAMPERED = (
    "This request was altered in the database after it was made; it cannot be decided. "
    "Request the action again."
)


def _store(runtime: Runtime) -> ApprovalStore:
    if runtime.approvals is None:  # the app state always has one
        raise RuntimeError("This app has no approval store.")
    return runtime.approvals


def _action(runtime: Runtime, stored: Stored) -> Action | None:
    """The action the request is for, if it is still registered."""
    return _store(runtime).action_of(stored)


def passes(caller: Caller, approval: Approval, stored: Stored) -> bool:
    """Whether ``caller`` passes the approval's ``role`` and ``check`` now (a ``check`` that
    raises is a no, and is logged)."""
    if approval.role is not None and not caller.has_role(approval.role):
        return False
    if approval.check is None:
        return True
    try:
        return bool(approval.check(caller, stored.as_request()))
    except Exception:
        current_app.logger.exception(
            "The approver check of the Flex action %r raised; refused", stored.action
        )
        return False


def _same_person(caller: Caller, stored: Stored) -> bool:
    """Whether ``caller`` has the requester's id, however either authenticated: a person
    with two ways in is still one person."""
    return caller.id is not None and str(caller.id) == str(stored.requester.id)


def may_decide(caller: Caller, stored: Stored, action: Action | None) -> bool:
    """Whether ``caller`` may approve or reject ``stored`` now."""
    return (
        stored.state == "pending"
        and not stored.tampered
        and action is not None
        and action.approval is not None
        and caller.id is not None
        and not caller.read_only
        and not _same_person(caller, stored)
        and not stored.decided_by(caller)
        and passes(caller, action.approval, stored)
    )


def _may_see(caller: Caller, stored: Stored, action: Action | None) -> bool:
    if caller.superuser or stored.owned_by(caller) or stored.decided_by(caller):
        return True
    approval = action.approval if action is not None else None
    return approval is not None and caller.id is not None and passes(caller, approval, stored)


def _visible(runtime: Runtime, caller: Caller, approval_id: str) -> tuple[Stored, Action | None]:
    """The request, if ``caller`` may see it; any other id is a 404, as an unknown one."""
    stored = _store(runtime).get(approval_id)
    action = _action(runtime, stored) if stored is not None else None
    if stored is None or not _may_see(caller, stored, action):
        raise NotFound(UNKNOWN.format(id=approval_id[:64]))
    return stored, action


def _summary(
    runtime: Runtime, caller: Caller, stored: Stored, action: Action | None
) -> dict[str, Any]:
    data = summary(stored, action)
    data["can_decide"] = may_decide(caller, stored, action)
    data["can_withdraw"] = stored.state == "pending" and stored.owned_by(caller)
    return data


# Reading


def list_approvals(runtime: Runtime, caller: Caller, limit: int) -> BaseResponse:
    """``to_decide``: the pending requests ``caller`` may decide, oldest first; ``mine``: the
    caller's own requests, newest first."""
    store = _store(runtime)
    if not store.in_use:
        # No action needs approval, so nobody has a request to see: answered without reading
        # the table, which an app that never needed approvals may not have created (the
        # console asks this of every app, to tell whether to show its approvals panel).
        return json_response({"result": True, "to_decide": [], "mine": []})
    runtime.housekeeping.run_if_due()
    to_decide = []
    for stored in store.pending(PENDING_WINDOW):
        action = _action(runtime, stored)
        if may_decide(caller, stored, action):
            to_decide.append(_summary(runtime, caller, stored, action))
    to_decide = to_decide[-limit:][::-1]
    mine = [
        _summary(runtime, caller, s, _action(runtime, s)) for s in store.requested_by(caller, limit)
    ]
    return json_response({"result": True, "to_decide": to_decide, "mine": mine})


def get_approval(
    runtime: Runtime, caller: Caller, approval_id: str, download: bool
) -> BaseResponse:
    """One request, with the preview of its run computed now while it is pending; with
    ``download``, the file its run answered (for its requester)."""
    stored, action = _visible(runtime, caller, approval_id)
    if download:
        return _download(caller, stored)
    data = _summary(runtime, caller, stored, action)
    if stored.state == "pending" and not stored.tampered and action is not None:
        data["preview"] = _preview(runtime, stored)
    return json_response({"result": True, "approval": data})


def _download(caller: Caller, stored: Stored) -> BaseResponse:
    row = stored.row
    headers = (row.answer_headers or {}) if row is not None else {}
    if not stored.owned_by(caller):
        raise PermissionDenied("Only the requester may download the file of an approved run.")
    if stored.state != "ran" or row.answer_body is None or not answered_a_file(headers):
        raise ProtocolError("This request has no file to download.", status=409)
    return current_app.response_class(row.answer_body, status=row.answer_status, headers=headers)


def _preview(runtime: Runtime, stored: Stored) -> dict[str, Any]:
    """A dry run of the frozen request as its requester: the preview's summary, or why the
    run would fail now. Nothing is written, nothing is audited."""
    requester = stored.requester
    attempt = Attempt(caller=requester, door=stored.door)
    try:
        with _as_caller(requester):
            request = _frozen_request(runtime, stored, attempt, stored.door, dry_run=True)
            answer = execute(runtime, request, attempt).get_json(silent=True)
    except (ProtocolError, SealBroken) as error:
        return {"result": False, "errors": {NON_FIELD_ERRORS: [str(error)]}}
    return answer if isinstance(answer, dict) else {"result": False}


@contextlib.contextmanager
def _as_caller(caller: Caller) -> Iterator[None]:
    """``current_caller`` is ``caller`` inside: a run on their behalf sees its requester."""
    previous = g.get(CALLER_KEY)
    setattr(g, CALLER_KEY, caller)
    try:
        yield
    finally:
        setattr(g, CALLER_KEY, previous)


def _frozen_request(
    runtime: Runtime, stored: Stored, attempt: Attempt, door: str, *, dry_run: bool = False
) -> ExecuteRequest:
    """The stored request read again, as from a door, as its requester: permission, values
    and selection checked now."""
    request = read_request(
        runtime,
        attempt,
        action=stored.action,
        model=stored.model,
        values=lambda: _store(runtime).values_of(stored),
        ids=stored.ids,
        dry_run=dry_run,
        key=None if dry_run else approval_key(stored.id),
        door=door,
    )
    return dataclasses.replace(request, approval=stored.id)


# Deciding


def decide(
    runtime: Runtime,
    caller: Caller,
    approval_id: str,
    verdict: str,
    comment: str | None,
    door: str,
) -> BaseResponse:
    """Approve (``verdict="approved"``), reject or withdraw a request; the last approval
    needed runs it. Refusals are audited and raised (403, 404, 409)."""
    started = time.perf_counter()
    store = _store(runtime)
    stored, action = _visible(runtime, caller, approval_id)
    given = needed = 0
    for _ in range(DECISION_TRIES):
        try:
            _check(runtime, caller, stored, action, verdict)
        except ProtocolError as error:
            outcome = "refused" if error.status == 403 else "invalid"
            errors = {NON_FIELD_ERRORS: [error.message]}
            store.record(
                audit_record(
                    stored,
                    caller,
                    outcome,
                    error.status,
                    door,
                    errors=errors,
                    started=started,
                    approval={"verdict": verdict},
                )
            )
            raise
        state = {"approved": "approved", "rejected": "rejected"}.get(verdict, "withdrawn")
        if verdict == "approved":
            assert action is not None and action.approval is not None
            needed = action.approval.approvers
            given = len(stored.approved_by) + 1
            state = "approved" if given >= needed else "pending"
        if store.decide(stored, caller, verdict, comment, state):
            break
        fresh = store.get(stored.id)
        if fresh is None:
            raise NotFound(UNKNOWN.format(id=approval_id[:64]))
        stored = fresh
    else:
        raise ProtocolError("Other decisions keep landing on this request; retry.", status=409)
    details: dict[str, Any] = {"comment": comment}
    if verdict == "approved":
        details["approvals"] = f"{given}/{needed}"
    store.record(
        audit_record(stored, caller, verdict, 200, door, approval=details, started=started)
    )
    decided = store.get(stored.id)
    assert decided is not None
    entry = decided.decisions[-1] if decided.decisions else None
    notify(approval_decided, summary(decided, action), decision=entry)
    runtime.housekeeping.run_if_due()
    if decided.state == "approved":
        return _run_approved(runtime, caller, decided, action, door)
    message = {
        "approved": f"Approved ({given} of {needed}); it awaits {needed - given} more.",
        "rejected": "Rejected; nothing ran.",
    }.get(verdict, "Withdrawn; nothing ran.")
    answer = {
        "result": True,
        "message": message,
        "approval": _summary(runtime, caller, decided, action),
    }
    return json_response(answer)


def _check(
    runtime: Runtime, caller: Caller, stored: Stored, action: Action | None, verdict: str
) -> None:
    """Refuse a decision ``caller`` may not make on ``stored`` now."""
    if caller.id is None:
        raise PermissionDenied(NEEDS_ID)
    if caller.read_only:
        raise PermissionDenied("Read-only users may not decide approval requests.")
    if stored.state != "pending":
        raise ProtocolError(
            f"This request {_ENDED.get(stored.state, stored.state)}; it can no longer be decided.",
            status=409,
        )
    if stored.tampered:
        store = _store(runtime)
        if store.finish(stored.id, "failed", error_answer(TAMPERED), was="pending"):
            current_app.logger.error("Approval request %s was altered in the database", stored.id)
        raise ProtocolError(TAMPERED, status=409)
    if verdict == "withdrawn":
        if not stored.owned_by(caller):
            raise PermissionDenied("Only the requester may withdraw a request.")
        return
    if _same_person(caller, stored):
        if verdict == "approved":
            raise PermissionDenied("You made this request: someone else must approve it.")
        raise PermissionDenied("You made this request: withdraw it instead of rejecting it.")
    if action is None:
        raise ProtocolError(f"The action {stored.action!r} is no longer registered.", status=409)
    if action.approval is None:
        raise ProtocolError(
            f"The action {stored.action!r} no longer needs approval: request it again.",
            status=409,
        )
    if not passes(caller, action.approval, stored):
        role = action.approval.role
        needs = f"an approver with the role {role!r}" if role else "another approver"
        raise PermissionDenied(f"You may not decide this request: it needs {needs}.")
    if stored.decided_by(caller):
        raise ProtocolError(
            "You approved this request already; it needs another approver.", status=409
        )


def _run_approved(
    runtime: Runtime, approver: Caller, stored: Stored, action: Action | None, door: str
) -> BaseResponse:
    """Run the approved request once, as its requester, through the core (Idempotency-Key
    ``approval:<id>``), and keep how it ended on the request."""
    store = _store(runtime)
    approved_by = stored.approved_by

    def read(attempt: Attempt) -> ExecuteRequest:
        attempt.approval = {"id": stored.id, "approved_by": approved_by}
        return _frozen_request(runtime, stored, attempt, door)

    try:
        with _as_caller(stored.requester):
            response: BaseResponse = run_request(runtime, stored.requester, door, read)
    except (ProtocolError, SealBroken) as error:
        response = error_answer(str(error))
    except Exception as error:
        if not is_unavailable(error):
            current_app.logger.exception("The run of approval request %s failed", stored.id)
        response = error_answer(INTERNAL_ERROR_MESSAGE)
    ran = store.get(stored.id)
    if ran is not None and ran.state == "ran":
        # Its final answer: an inline job's outcome, or the broker refusing the job.
        state = "ran" if response.status_code < 400 else "failed"
        store.finish(stored.id, state, response, was="ran")
    else:
        store.finish(stored.id, "failed", _failed(response), was="approved")
    final = store.get(stored.id) or stored
    shown = summary(final, action)
    notify(approval_ran, shown)
    answer = dict(final.answer or {})
    payload: dict[str, Any] = {"result": final.state == "ran" and answer.get("result") is not False}
    for key in ("message", "html", "errors", "job", "records", "file"):
        if key in answer:
            payload[key] = answer[key]
    if final.state == "ran" and "message" not in payload:
        payload["message"] = "Approved; the action ran."
    shown["can_decide"] = False
    shown["can_withdraw"] = False
    payload["approval"] = shown
    return json_response(payload)


def _failed(response: BaseResponse) -> BaseResponse:
    """The answer a failed run leaves: the run's own errors (without the ``detail`` of an
    error status), or a generic one."""
    answer = response.get_json(silent=True)
    if isinstance(answer, dict) and isinstance(answer.get("errors"), dict):
        return json_response({"result": False, "errors": answer["errors"]})
    return error_answer(INTERNAL_ERROR_MESSAGE)
