"""The core's hook for actions that need approval.

A request from a door is diverted where a background action is queued: its records are loaded
and its params validated (a dry run answered from the preview) as for a run, then, instead of
the handler, the request is stored frozen in the run's own transaction and answered "awaits
approval". The run of an approved request (``ExecuteRequest.approval``) is never diverted; it
marks the request ``ran`` in its own transaction, so it runs at most once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..caller import is_anonymous
from ..declare.actions import ActionKind
from ..declare.approval import Approval
from ..errors import ActionError, ProtocolError
from ..signals import approval_requested, notify
from .approval_records import Stored, iso, summary
from .audit import Attempt
from .request import ExecuteRequest

if TYPE_CHECKING:
    from .runtime import Runtime

#: What the core calls instead of the handler (see ``core._run``).
Invoke = Callable[[tuple[Any, ...]], Any]

#: The Idempotency-Key of the run of approved request ``<id>``: ``approval:<id>``.
KEY_PREFIX = "approval:"
#: Longest reason or comment, in characters.
MAX_TEXT = 2000

ANONYMOUS_REQUESTER = (
    "An action that needs approval needs a caller with an id, so that approvers can be told "
    "apart from the requester: return Caller(id=...) (or a user object with an id attribute) "
    "from your authenticator."
)
REASON_MISSING = "Give a reason for this request: the approvers read it."


def approval_key(approval_id: str) -> str:
    """The Idempotency-Key the run of an approved request is reserved under."""
    return KEY_PREFIX + approval_id


def checked_text(text: str | None, what: str) -> str | None:
    """``text`` stripped (None when empty), or a ``ValueError`` saying what is wrong."""
    if text is None:
        return None
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"The {what} is longer than {MAX_TEXT} characters.")
    if "\x00" in text:
        raise ValueError(f"The {what} cannot hold a NUL character.")
    return text or None


class ApprovalGate:
    """Diverts one request of an action that needs approval, or settles the run of an
    approved one; built by the core for each such request (see :func:`gate`)."""

    def __init__(self, runtime: Runtime, request: ExecuteRequest, attempt: Attempt) -> None:
        self.runtime = runtime
        self.request = request
        self.attempt = attempt
        #: The request stored by this run, once it was diverted.
        self.requested: Stored | None = None

    def wrap(self, fallback: Invoke | None) -> Invoke | None:
        """What the core calls instead of the handler: the diversion, which falls back to
        ``fallback`` (queueing a job) or, returning None, to the handler when the action's
        ``when`` says no approval is needed."""
        if self.request.approval is not None:
            return fallback  # the run of an approved request

        def divert(arguments: tuple[Any, ...]) -> Any:
            answer = self.divert(arguments)
            if answer is None and fallback is not None:
                return fallback(arguments)
            return answer

        return divert

    def divert(self, arguments: tuple[Any, ...]) -> dict[str, Any] | None:
        """Store the request and answer that it awaits approval; None when the action's
        ``when`` says this one needs none."""
        request = self.request
        action = request.action
        approval = action.approval
        assert approval is not None
        if request.key is not None and request.key.startswith(KEY_PREFIX):
            raise ProtocolError(
                f"Idempotency-Keys starting with {KEY_PREFIX!r} are reserved for the runs of "
                "approved requests; send another key."
            )
        if not _needed(approval, arguments, action.name):
            return None
        if is_anonymous(request.caller):
            raise ProtocolError(ANONYMOUS_REQUESTER, status=400)
        try:
            reason = checked_text(request.reason, "reason")
        except ValueError as error:
            raise ActionError(errors={"reason": [str(error)]}) from None
        if approval.reason and reason is None:
            raise ActionError(errors={"reason": [REASON_MISSING]})
        ids = self._frozen_ids(arguments)
        store = self.runtime.approvals
        if store is None:  # the app state always has one
            raise RuntimeError("An action needs approval but the app has no approval store.")
        stored = store.create_in(
            self.runtime.db.session,
            action,
            model=request.model,
            requester=request.caller,
            ids=ids,
            values=request.values,
            reason=reason,
            door=request.door,
            expires=approval.expires,
        )
        self.requested = stored
        self.attempt.approval = {"id": stored.id, "reason": reason}
        title = action.label or action.name
        what = f" on {len(ids)} record{'' if len(ids) == 1 else 's'}" if ids is not None else ""
        return {
            "result": True,
            "message": f"{title}{what} awaits approval (request {stored.id}); nothing ran yet.",
            "approval": {
                "id": stored.id,
                "state": "pending",
                "expires_at": iso(stored.expires_at),
            },
        }

    def _frozen_ids(self, arguments: tuple[Any, ...]) -> list[Any] | None:
        """The primary keys of the loaded records, in order (an ``inverseIds`` selection
        resolved), as wire ids; None for collection and common actions."""
        request = self.request
        kind = request.action.kind
        if kind not in (ActionKind.RECORD, ActionKind.BULK) or request.collection is None:
            return None
        rows = arguments[0] if kind is ActionKind.BULK else [arguments[0]]
        key = request.collection.pk_attribute.key
        ids = [_wire_id(getattr(row, key)) for row in rows]
        limit = self.runtime.settings.max_ids
        if len(ids) > limit:
            raise ActionError(
                f"This selection holds {len(ids)} records; a request for approval may hold "
                f"at most {limit} (FLEXACTIONS_MAX_IDS). Select fewer records."
            )
        return ids

    def before_commit(self, session: Any, response: BaseResponse) -> None:
        """Inside the run's transaction: the run of an approved request marks it ``ran``."""
        approval_id = self.request.approval
        store = self.runtime.approvals
        if approval_id is not None and store is not None and not self.request.dry_run:
            store.settle_in(session, approval_id, response)

    def announce(self) -> None:
        """After the commit of a diverted request: its audit outcome and its signal."""
        stored = self.requested
        store = self.runtime.approvals
        if stored is None or store is None:
            return
        self.attempt.outcome = "requested"
        notify(approval_requested, summary(stored, self.request.action))


def gate(runtime: Runtime, request: ExecuteRequest, attempt: Attempt) -> ApprovalGate | None:
    """The gate of ``request``: None unless its action needs approval or it is the run of an
    approved request."""
    if request.action.approval is None and request.approval is None:
        return None
    return ApprovalGate(runtime, request, attempt)


def _needed(approval: Approval, arguments: tuple[Any, ...], name: str) -> bool:
    """Whether this run needs approval: ``when`` of the validated params and the records (or
    the model); one that raises counts as yes (and is logged)."""
    if approval.when is None:
        return True
    subject = arguments[0] if len(arguments) > 1 else None
    try:
        return bool(approval.when(arguments[-1], subject))
    except (ActionError, ProtocolError):
        raise
    except Exception:
        current_app.logger.exception(
            "The approval condition of the Flex action %r raised; approval is needed", name
        )
        return True


def _wire_id(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)
