"""Per-action permissions: which caller may see and run which action on which collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app

from ..caller import Caller

if TYPE_CHECKING:
    from ..declare.actions import Action


def may_run(caller: Caller, action: Action, model: type[Any] | None) -> bool:
    """Whether ``caller`` may see and run ``action`` on ``model``.

    Read-only callers may run nothing. A callable permission that raises counts as a refusal
    (and is logged): a broken check must not open the action to everyone.
    """
    if caller.read_only:
        return False
    permission = action.permission
    if permission is None:
        return True
    if isinstance(permission, str):
        return caller.has_role(permission)
    try:
        return bool(permission(caller, action, model))
    except Exception:
        current_app.logger.exception(
            "The permission check of the Flex action %r raised; access refused", action.name
        )
        return False
