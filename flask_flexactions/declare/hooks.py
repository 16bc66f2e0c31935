"""The callables an action may declare beside its handler: who may run it (``permission=``),
which rows it may touch (``scope=``) and what a dry run previews (``preview=``).

They are checked here when the action is declared; :mod:`..access` and :mod:`..run` call them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..caller import Caller

#: What ``permission=`` accepts: a role or permission name, or
#: ``callable(caller, action, model) -> bool`` with the :class:`~.actions.Action` and the
#: model class (None for a common action).
Permission = str | Callable[[Caller, Any, Any], bool]

#: A scope hook: ``hook(statement, caller) -> statement``, e.g.
#: ``lambda stmt, caller: stmt.where(Order.shop_id == caller.user.shop_id)``. ``statement`` is a
#: ``select(Model)``; the hook returns it narrowed (typically with ``.where``).
ScopeHook = Callable[[sa.Select[Any], Caller], sa.Select[Any]]

#: What ``preview=`` accepts: called with the handler's arguments, returns a summary or None.
Preview = Callable[..., "str | None"]


@dataclass(frozen=True)
class Scope:
    """A scope hook, with what its result depends on.

    ``cache_key(caller)`` returns a hashable value such that two callers with the same value
    get the same narrowed statement from ``hook`` (for a hook that filters by role:
    ``lambda caller: caller.roles``; by the caller's shop: ``lambda caller:
    caller.user.shop_id``). The extension then builds the scoped statements once per value
    instead of once per request. Without ``cache_key`` the hook runs at every request.
    """

    hook: ScopeHook
    cache_key: Callable[[Caller], Hashable] | None = None

    def __call__(self, statement: sa.Select[Any], caller: Caller) -> sa.Select[Any]:
        return self.hook(statement, caller)


def check_permission(permission: Any, action_name: str) -> Permission | None:
    """``permission`` if it is a valid declaration, else a ``TypeError`` naming the fix."""
    if permission is None or callable(permission):
        return permission  # type: ignore[no-any-return]
    if isinstance(permission, str) and permission:
        return permission
    raise TypeError(
        f"Action {action_name!r}: permission must be a role name such as 'finance' or a "
        f"callable (caller, action, model) -> bool, got {permission!r}."
    )


def check_scope(hook: Any, owner: str, cache_key: Any = None) -> Scope | None:
    """``hook`` as a :class:`Scope` (None stays None), else a ``TypeError`` naming the fix."""
    if cache_key is not None and not callable(cache_key):
        raise TypeError(f"{owner}: cache_key must be a callable of the caller, got {cache_key!r}.")
    if hook is None:
        return None
    if isinstance(hook, Scope):
        if cache_key is not None:
            raise TypeError(f"{owner}: give cache_key once, in Scope(...) or beside it.")
        return hook
    if callable(hook):
        return Scope(hook, cache_key)
    raise TypeError(
        f"{owner}: scope must be a callable (statement, caller) -> statement, got {hook!r}."
    )


def check_preview(preview: Any, action_name: str) -> Preview | None:
    """``preview`` if it is None or callable, else a ``TypeError`` naming the fix."""
    if preview is None or callable(preview):
        return preview  # type: ignore[no-any-return]
    raise TypeError(
        f"Action {action_name!r}: preview must be a function taking the handler's arguments "
        f"and returning a summary text or None, got {preview!r}."
    )
