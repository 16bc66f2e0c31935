"""Four-eyes approvals as declared on an action (``approval=``), and the request an approver
decides on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..caller import Caller

#: Most distinct approvers one request may need.
MAX_APPROVERS = 20
#: Longest ``expires`` (seconds) an action may give its requests: a year.
MAX_EXPIRES = 366 * 24 * 3600


@dataclass(frozen=True)
class Decision:
    """One approver's verdict on a request: ``"approved"`` or ``"rejected"``."""

    #: Who decided, as far as the request keeps them: ``id``, ``name`` and ``scheme``.
    approver: Caller
    verdict: str
    comment: str | None
    at: dt.datetime


@dataclass(frozen=True)
class ApprovalRequest:
    """A stored request to run an action that needs approval, as an approver's ``check``
    receives it.

    ``values`` are the input values the requester sent (secret params replaced by
    ``"[redacted]"``), not converted: a ``DecimalField`` amount may be a string or a number.
    """

    id: str
    action: str
    #: The collection's wire name; None for a common action.
    model: str | None
    #: The frozen selection: the primary keys of the records, in the order they were loaded.
    ids: tuple[Any, ...]
    values: Mapping[str, Any]
    #: The requester as the request keeps them (no ``user`` object).
    requester: Caller
    reason: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    #: ``pending``, ``approved``, ``rejected``, ``withdrawn``, ``expired``, ``ran`` or ``failed``.
    state: str
    decisions: tuple[Decision, ...] = ()


#: What ``Approval(check=...)`` accepts: ``check(approver, request) -> bool``.
ApproverCheck = Callable[[Caller, ApprovalRequest], bool]
#: What ``Approval(when=...)`` accepts: ``when(params, rows_or_model) -> bool`` with the validated
#: params and the loaded record (record action), list of records (bulk), model class
#: (collection action) or None (common action).
ApprovalCondition = Callable[[Mapping[str, Any], Any], bool]


@dataclass(frozen=True)
class Approval:
    """An action's need for approval by other people before it runs ("four eyes").

    ``execute_action`` on such an action validates everything as for a run, then stores the
    request and answers that it awaits approval; it runs, once, when ``approvers`` distinct
    callers other than the requester approved it.

    :param role: the role an approver must hold at decision time (superusers hold all).
    :param check: ``check(approver, request) -> bool``, deciding who may approve; with
        ``role``, an approver must pass both.
    :param approvers: how many distinct approvers are needed.
    :param when: ``when(params, rows_or_model) -> bool``: approval is needed only when it
        returns true (e.g. ``lambda params, order: params["amount"] > 1000``); None: always.
    :param reason: the requester must give a reason (``execute_action``'s top-level
        ``reason``).
    :param expires: seconds a request waits for its decisions; default
        ``FLEXACTIONS_APPROVAL_TTL``.
    """

    role: str | None = None
    check: ApproverCheck | None = None
    approvers: int = 1
    when: ApprovalCondition | None = None
    reason: bool = False
    expires: int | None = None

    def wire(self) -> dict[str, Any]:
        """What ``get_action_list`` tells of the approval an action needs."""
        return {
            "approvers": self.approvers,
            "reason": self.reason,
            "conditional": self.when is not None,
        }


def check_approval(approval: Any, action_name: str) -> Approval | None:
    """``approval=`` as an :class:`Approval` (a role name becomes ``Approval(role=name)``),
    or a ``TypeError``/``ValueError`` naming the fix."""
    where = f"Action {action_name!r}"
    if approval is None:
        return None
    if isinstance(approval, str):
        if not approval:
            raise ValueError(f"{where}: approval needs a role name, e.g. approval='finance'.")
        return Approval(role=approval)
    if not isinstance(approval, Approval):
        raise TypeError(
            f"{where}: approval must be a role name such as 'finance' or "
            f"flask_flexactions.Approval(role=..., approvers=..., when=...), got {approval!r}."
        )
    if approval.role is not None and (not isinstance(approval.role, str) or not approval.role):
        raise TypeError(f"{where}: Approval(role=...) must be a role name, got {approval.role!r}.")
    if approval.check is not None and not callable(approval.check):
        raise TypeError(
            f"{where}: Approval(check=...) must be a function (approver, request) -> bool, "
            f"got {approval.check!r}."
        )
    if approval.role is None and approval.check is None:
        raise ValueError(
            f"{where}: say who may approve: Approval(role='finance') or "
            "Approval(check=lambda approver, request: ...)."
        )
    count = approval.approvers
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{where}: Approval(approvers=...) must be an integer, got {count!r}.")
    if not 1 <= count <= MAX_APPROVERS:
        raise ValueError(
            f"{where}: Approval(approvers=...) must be between 1 and {MAX_APPROVERS}, got {count}."
        )
    if approval.when is not None and not callable(approval.when):
        raise TypeError(
            f"{where}: Approval(when=...) must be a function (params, rows_or_model) -> bool, "
            f"got {approval.when!r}."
        )
    if not isinstance(approval.reason, bool):
        raise TypeError(f"{where}: Approval(reason=...) must be True or False.")
    expires = approval.expires
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise TypeError(
                f"{where}: Approval(expires=...) must be seconds as an integer, got {expires!r}."
            )
        if not 60 <= expires <= MAX_EXPIRES:
            raise ValueError(
                f"{where}: Approval(expires=...) must be between 60 seconds and a year, "
                f"got {expires}."
            )
    return approval
