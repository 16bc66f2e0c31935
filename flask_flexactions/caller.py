"""Who sent a request: the caller every authenticator returns, and ``current_caller``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

from flask import g, has_request_context
from werkzeug.local import LocalProxy

#: Where the authenticated caller of the current Messages request is kept.
CALLER_KEY = "flexactions_caller"


@dataclass(frozen=True)
class Caller:
    """The authenticated sender of a Messages request.

    :param id: the user's id, when the credential names one (a Jet Admin user id, your own id).
    :param name: a display name or e-mail, when known.
    :param roles: role and permission names; an action's ``permission="name"`` needs one of them.
    :param superuser: passes every ``permission="name"`` check (the shared token, a Jet Admin
        owner or full-access team); a callable permission still decides for itself.
    :param read_only: may list and run nothing (a Jet Admin read-only user).
    :param scheme: how the caller authenticated: ``"token"``, ``"jwt"``, ``"project_auth"``
        or ``"custom"``.
    :param claims: the raw claims of the credential (a JWT payload, the ``project_auth``
        answer); empty for the shared token.
    :param user: whatever a custom authenticator returned, e.g. your own user row.
    """

    id: str | None = None
    name: str | None = None
    roles: frozenset[str] = frozenset()
    superuser: bool = False
    read_only: bool = False
    scheme: str = "custom"
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    user: Any = None

    def __post_init__(self) -> None:
        # An authenticator may pass one role as a str, or a set or list: a str must not grant
        # its substrings, and the action list needs a hashable frozenset.
        roles: Any = self.roles
        if not isinstance(roles, frozenset) or not all(isinstance(r, str) for r in roles):
            names = [roles] if isinstance(roles, str) else roles
            object.__setattr__(self, "roles", Caller.roles_of(names or ()))

    def has_role(self, name: str) -> bool:
        """Whether the caller holds the role or permission ``name`` (superusers hold all)."""
        return self.superuser or name in self.roles

    @staticmethod
    def roles_of(names: Iterable[Any]) -> frozenset[str]:
        """The string entries of ``names`` as a frozenset; other values are ignored."""
        return frozenset(name for name in names if isinstance(name, str) and name)


def caller_from(value: Any) -> Caller:
    """The :class:`Caller` for what a custom authenticator returned.

    A :class:`Caller` is taken as it is; any other truthy value becomes ``Caller(user=value)``
    with no roles, so it may run only the actions that need no permission, and with the value's
    ``id`` attribute (a user row's primary key) as its id when it has one.
    """
    if isinstance(value, Caller):
        return value
    user_id = getattr(value, "id", None)
    known = isinstance(user_id, (str, int)) and not isinstance(user_id, bool)
    return Caller(id=str(user_id) if known else None, scheme="custom", user=value)


def is_anonymous(caller: Caller | None) -> bool:
    """Whether ``caller`` cannot be told apart from other callers: no id, and not a superuser
    (the shared token is one identity). Such a caller cannot own an Idempotency-Key or a job."""
    return caller is None or (caller.id is None and not caller.superuser)


def _get_current_caller() -> Caller:
    if not has_request_context() or CALLER_KEY not in g:
        raise RuntimeError(
            "current_caller is only set while the Messages URL runs an action: read it inside "
            "an action handler, a permission callable or a scope hook."
        )
    return cast(Caller, g.get(CALLER_KEY))


#: The :class:`Caller` of the Messages request being handled, for use inside handlers.
current_caller: Caller = cast(Caller, LocalProxy(_get_current_caller))
