"""Row scoping: hooks that narrow which rows of a model a caller may act on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from ..caller import Caller
from ..declare.hooks import ScopeHook


def apply_scopes(
    statement: sa.Select[Any], hooks: Iterable[ScopeHook | None], caller: Caller
) -> sa.Select[Any]:
    """``statement`` narrowed by every hook in turn; a hook must return a ``Select``."""
    for hook in hooks:
        if hook is None:
            continue
        narrowed = hook(statement, caller)
        if not isinstance(narrowed, sa.Select):
            raise TypeError(
                f"The scope hook {getattr(hook, '__name__', hook)!r} returned "
                f"{type(narrowed).__name__}; it must return the statement it was given, "
                "narrowed with .where(...)."
            )
        statement = narrowed
    return statement


#: Narrows a ``select(Model)`` for the current caller; what row loading takes.
Restriction = Callable[[sa.Select[Any]], sa.Select[Any]]
