"""Flask signals sent at each step of an approval request, for notifications.

Each is sent with the app as the sender and ``approval``, the request's summary (the dict
``get_approval`` answers with, without its preview): ``id``, ``state``, ``action``,
``model``, ``count``, ``ids``, ``params`` (secret ones redacted), ``reason``,
``requested_by``, ``decisions``, ``approvals`` (``needed`` and ``given``), ``created_at``,
``expires_at``, and once it ran, ``answer``. Receivers run in the request, after its
transaction committed; one that raises is logged and changes nothing. Keep them fast (hand
slow work to a queue)::

    from flask_flexactions.signals import approval_requested

    @approval_requested.connect
    def tell_approvers(app, approval, **extra):
        ...
"""

from __future__ import annotations

from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app

_signals = Namespace()

#: A request to run an action was stored and awaits approval.
approval_requested = _signals.signal("flexactions-approval-requested")
#: A request was approved (by one approver of several, or the last), rejected, withdrawn by
#: its requester, or expired; ``approval["state"]`` says which, and ``decision`` (a dict:
#: ``verdict``, ``by``, ``comment``, ``at``; None for an expiry) what happened.
approval_decided = _signals.signal("flexactions-approval-decided")
#: An approved request ran: ``approval["state"]`` is ``ran`` or ``failed``, and
#: ``approval["answer"]`` is the run's answer.
approval_ran = _signals.signal("flexactions-approval-ran")


def notify(signal: NamedSignal, approval: dict[str, Any], **extra: Any) -> None:
    """Send ``signal`` for the current app; a receiver that raises is logged, not raised."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        signal.send(app, approval=approval, **extra)
    except Exception:
        app.logger.exception("A receiver of the Flex Actions signal %r failed", signal.name)
