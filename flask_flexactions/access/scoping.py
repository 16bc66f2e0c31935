"""Row scoping: hooks that narrow which rows of a model a caller may act on."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..caller import Caller
from ..declare.hooks import Scope, ScopeHook
from ..declare.models import Collection

#: How many sets of scoped statements are kept per app before the cache starts anew.
SCOPE_CACHE_SIZE = 1024


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


class ScopedRows:
    """The statements that select rows of one model a caller may touch, built once each.

    ``base`` is ``select(model)`` narrowed by the scope hooks; ``by_id`` adds ``pk = :id``
    and ``by_ids`` adds ``pk IN :ids`` (expanding).
    """

    def __init__(self, collection: Collection, hooks: Iterable[ScopeHook], caller: Caller) -> None:
        self.collection = collection
        self.base = apply_scopes(sa.select(collection.model), hooks, caller)

    @functools.cached_property
    def by_id(self) -> sa.Select[Any]:
        """The scoped ``SELECT ... WHERE pk = :id``."""
        return self.base.where(self.collection.pk_attribute == sa.bindparam("id"))

    @functools.cached_property
    def by_ids(self) -> sa.Select[Any]:
        """The scoped ``SELECT ... WHERE pk IN :ids``."""
        return self.base.where(
            self.collection.pk_attribute.in_(sa.bindparam("ids", expanding=True))
        )


class ScopeCache:
    """Scoped statements reused across requests for hooks that declare a ``cache_key``."""

    def __init__(self, size: int = SCOPE_CACHE_SIZE) -> None:
        self.size = size
        self._built: dict[Any, ScopedRows] = {}

    def rows(
        self, collection: Collection, hooks: tuple[ScopeHook, ...], caller: Caller
    ) -> ScopedRows:
        """The scoped statements for ``caller``: built now, or reused when every hook
        declares a cache key and another caller with the same keys had them built."""
        key = _cache_key(collection, hooks, caller)
        if key is None:
            return ScopedRows(collection, hooks, caller)
        scoped = self._built.get(key)
        if scoped is None:
            if len(self._built) >= self.size:
                self._built.clear()
            scoped = self._built[key] = ScopedRows(collection, hooks, caller)
        return scoped


def _cache_key(collection: Collection, hooks: tuple[ScopeHook, ...], caller: Caller) -> Any:
    keys = [hook.cache_key if isinstance(hook, Scope) else None for hook in hooks]
    if not all(keys):
        return None
    key = (collection.model, hooks, tuple(make(caller) for make in keys if make is not None))
    try:
        hash(key)
    except TypeError:
        return None  # an unhashable key value: build per request, as without a key
    return key
