"""The messages that list, show and decide approval requests (extensions of the protocol)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import g
from werkzeug.wrappers import Response as BaseResponse

from ..caller import CALLER_KEY, Caller
from ..errors import NotFound, ProtocolError
from ..run import deciding
from ..run.approval_gate import checked_text

if TYPE_CHECKING:
    from .state import AppState

#: ``list_approvals``: how many requests of each list by default, and at most.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_ID = re.compile(r"[0-9a-f]{32}\Z")


def _caller() -> Caller:
    caller = g.get(CALLER_KEY)
    return caller if isinstance(caller, Caller) else Caller()


def _approval_id(params: dict[str, Any]) -> str:
    """``params.id``: a 400 unless it is a string; a 404 unless it looks like an id."""
    value = params.get("id")
    if not isinstance(value, str) or not value:
        raise ProtocolError("This message needs params.id, the approval request's id (a string).")
    if not _ID.match(value):
        raise NotFound(f"Unknown approval request {value[:64]!r}.")
    return value


def _comment(params: dict[str, Any]) -> str | None:
    value = params.get("comment")
    if value is not None and not isinstance(value, str):
        raise ProtocolError("params.comment must be a string.")
    try:
        return checked_text(value, "comment")
    except ValueError as error:
        raise ProtocolError(str(error)) from None


def list_approvals(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``list_approvals``: the pending requests the caller may decide (``to_decide``,
    oldest first) and the caller's own requests (``mine``, newest first); ``params.limit``
    bounds each list (default 50, at most 200)."""
    limit = params.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ProtocolError(f"params.limit must be an integer from 1 to {MAX_LIMIT}.")
    return deciding.list_approvals(state, _caller(), limit)


def get_approval(state: AppState, params: dict[str, Any]) -> BaseResponse:
    """Answer ``get_approval``: one request (``params.id``) with the preview of its run computed
    now; with ``params.download: true``, the file its run answered (for its requester)."""
    download = params.get("download")
    if download is not None and not isinstance(download, bool):
        raise ProtocolError("params.download must be true or false.")
    return deciding.get_approval(state, _caller(), _approval_id(params), download is True)


def _decision(verdict: str, door: str = "messages") -> Any:
    def answer(state: AppState, params: dict[str, Any]) -> BaseResponse:
        approval_id = _approval_id(params)
        comment = _comment(params)
        return deciding.decide(state, _caller(), approval_id, verdict, comment, door)

    return answer


#: ``approve_action``: approve a request (``params.id``, ``params.comment``); the last
#: approval needed runs the action and answers with its outcome.
approve_action = _decision("approved")
#: ``reject_action``: reject a request (``params.id``, ``params.comment``); nothing runs.
reject_action = _decision("rejected")
#: ``withdraw_approval``: the requester withdraws their pending request; nothing runs.
withdraw_approval = _decision("withdrawn")

#: The decisions taken through the routes, by the last part of their path (see
#: ``doors.routes``), recorded with the door ``route``.
ROUTE_DECISIONS = {
    "approve": _decision("approved", "route"),
    "reject": _decision("rejected", "route"),
    "withdraw": _decision("withdrawn", "route"),
}

#: The messages of approvals, by name (see ``doors.messages.MESSAGES``).
APPROVAL_MESSAGES = {
    "list_approvals": list_approvals,
    "get_approval": get_approval,
    "approve_action": approve_action,
    "reject_action": reject_action,
    "withdraw_approval": withdraw_approval,
}
