"""An approval request as read back, and what it shows: its summary, its audit records and
the answer of its run."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..caller import Caller
from ..declare.approval import ApprovalRequest, Decision
from ..errors import NON_FIELD_ERRORS
from .audit import REDACTED, AuditRecord, redact_params, summarize_target
from .leases import utcnow

if TYPE_CHECKING:
    from ..declare.actions import Action

#: A request's states: ``pending`` until decided, ``approved`` while its run goes on; the
#: others are final.
STATES = ("pending", "approved", "rejected", "withdrawn", "expired", "ran", "failed")
FINAL_STATES = frozenset(STATES[2:])
#: How many ids a summary lists; ``count`` always tells the whole selection.
IDS_SHOWN = 100


def iso(moment: dt.datetime) -> str:
    """A stored (naive UTC) time as ISO 8601 with ``Z``."""
    return moment.isoformat() + "Z"


def now() -> dt.datetime:
    """The current UTC time, naive, to the microsecond (which SQLite and PostgreSQL give back
    exactly, so a signature over it still matches)."""
    return utcnow()


def person(caller: Caller) -> dict[str, Any]:
    """What a decision keeps of a caller: ``id``, ``name`` and ``scheme``."""
    return {"id": caller.id, "name": caller.name, "scheme": caller.scheme}


@dataclass(frozen=True)
class Stored:
    """One approval request read back, its signature checked."""

    id: str
    action: str
    model: str | None
    state: str
    version: int
    created_at: dt.datetime
    expires_at: dt.datetime
    requester: Caller
    #: The selection's wire ids, or None for a collection or common action.
    ids: list[Any] | None
    values: dict[str, Any]
    #: The names of the secret params, whose values are sealed apart (or forgotten).
    sealed_names: list[str]
    sealed: str | None
    reason: str | None
    door: str
    #: Each ``{"by": {"id", "name", "scheme"}, "verdict", "comment", "at", "sig"}``.
    decisions: list[dict[str, Any]]
    #: The signature (of the request, or of one decision) does not match: it was altered.
    tampered: bool
    answer: dict[str, Any] | None = None
    digest: str = ""
    row: Any = field(default=None, repr=False, compare=False)

    @property
    def approved_by(self) -> list[dict[str, Any]]:
        """The approvers so far, as decisions keep them."""
        return [d["by"] for d in self.decisions if d.get("verdict") == "approved"]

    @property
    def redacted_values(self) -> dict[str, Any]:
        """The values, secret ones shown as ``[redacted]``."""
        return {**self.values, **dict.fromkeys(self.sealed_names, REDACTED)}

    def owned_by(self, caller: Caller) -> bool:
        """Whether ``caller`` is the requester (same id and way of authenticating)."""
        return (
            caller.id is not None
            and caller.id == self.requester.id
            and caller.scheme == self.requester.scheme
        )

    def decided_by(self, caller: Caller) -> bool:
        """Whether ``caller`` (by id) decided this request already."""
        return caller.id is not None and any(d["by"].get("id") == caller.id for d in self.decisions)

    def as_request(self) -> ApprovalRequest:
        """The request as an approver's ``check`` receives it."""
        decisions = []
        for d in self.decisions:
            try:
                at = dt.datetime.fromisoformat(str(d.get("at", "")).rstrip("Z"))
            except ValueError:
                continue
            by = d["by"]
            approver = Caller(id=by.get("id"), name=by.get("name"), scheme=str(by.get("scheme")))
            decisions.append(Decision(approver, str(d.get("verdict")), d.get("comment"), at))
        return ApprovalRequest(
            id=self.id,
            action=self.action,
            model=self.model,
            ids=tuple(self.ids or ()),
            values=MappingProxyType(self.redacted_values),
            requester=self.requester,
            reason=self.reason,
            created_at=self.created_at,
            expires_at=self.expires_at,
            state=self.state,
            decisions=tuple(decisions),
        )


def summary(stored: Stored, action: Action | None) -> dict[str, Any]:
    """The request as ``get_approval`` and the signals show it (``action``: the action
    registered under its name, for its label and approvers, if it still is)."""
    approval = action.approval if action is not None else None
    ids = stored.ids
    data: dict[str, Any] = {
        "id": stored.id,
        "state": stored.state,
        "action": stored.action,
        "label": (action.label if action is not None else None) or stored.action,
        "model": stored.model,
        "count": len(ids) if ids is not None else None,
        "ids": ids[:IDS_SHOWN] if ids is not None else None,
        "params": stored.redacted_values,
        "reason": stored.reason,
        "requested_by": {"id": stored.requester.id, "name": stored.requester.name},
        "created_at": iso(stored.created_at),
        "expires_at": iso(stored.expires_at),
        "approvals": {
            "needed": approval.approvers if approval is not None else None,
            "given": len(stored.approved_by),
        },
        "decisions": [
            {
                "by": {"id": d["by"].get("id"), "name": d["by"].get("name")},
                "verdict": d.get("verdict"),
                "comment": d.get("comment"),
                "at": d.get("at"),
            }
            for d in stored.decisions
        ],
    }
    if stored.tampered and stored.state not in FINAL_STATES:
        data["tampered"] = True
    if stored.answer is not None:
        data["answer"] = stored.answer
    return data


def audit_record(
    stored: Stored,
    caller: Caller | None,
    outcome: str,
    status: int,
    door: str | None,
    *,
    approval: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    started: float | None = None,
) -> AuditRecord:
    """The audit record of a step of ``stored`` that is not a run: a decision, a refused
    one, an expiry (no caller)."""
    elapsed = 0.0 if started is None else (time.perf_counter() - started) * 1000
    return AuditRecord(
        time=dt.datetime.now(dt.timezone.utc),
        caller_id=caller.id if caller else None,
        caller_name=caller.name if caller else None,
        caller_scheme=caller.scheme if caller else None,
        action=stored.action,
        model=stored.model,
        door=door,
        target=summarize_target(stored.ids, False) if stored.ids is not None else None,
        params=redact_params(stored.redacted_values, frozenset()),
        outcome=outcome,
        status=status,
        errors=errors,
        duration_ms=round(elapsed, 3),
        approval={"id": stored.id, **(approval or {})},
    )


def answered_a_file(headers: Mapping[str, str]) -> bool:
    """Whether an answer with these headers is a file rather than JSON."""
    content_type = headers.get("Content-Type", "")
    return "Content-Disposition" in headers or not content_type.startswith("application/json")


def stored_answer(row: Any) -> dict[str, Any] | None:
    """The answer kept in ``row`` as JSON, or a description of the file it was."""
    if row.answer_body is None:
        return None
    headers = row.answer_headers or {}
    if answered_a_file(headers):
        return {
            "result": True,
            "file": {
                "name": headers.get("Content-Disposition"),
                "content_type": headers.get("Content-Type"),
                "size": len(row.answer_body),
            },
        }
    try:
        answer = json.loads(row.answer_body)
    except ValueError:
        return {"result": False}
    return answer if isinstance(answer, dict) else {"result": False}


def error_answer(message: str) -> BaseResponse:
    """An answer carrying one error message, as a failed request keeps it."""
    body = json.dumps({"result": False, "errors": {NON_FIELD_ERRORS: [message]}})
    return current_app.response_class(body, mimetype="application/json")


def errors_of(response: BaseResponse) -> dict[str, list[str]] | None:
    """The ``errors`` of a JSON answer, if it has any."""
    answer = response.get_json(silent=True) if hasattr(response, "get_json") else None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return errors if isinstance(errors, dict) else None
