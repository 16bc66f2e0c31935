"""The ``get_action_list`` answer for each caller, built once per set of permissions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Hashable
from typing import Any

from ..caller import Caller
from ..declare.actions import Action, ActionRegistry
from .permissions import may_run

#: Distinct role sets whose answers are kept; past this the cache starts over.
CACHE_SIZE = 256


def _encode(entry: Any) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode()


class ActionListing:
    """Serialises the registered actions once and filters them per caller.

    Answers depend only on the caller's read-only flag, superuser flag and the roles that some
    action asks for, so they are cached by those, unless a callable permission makes every
    caller a case of its own. Any registration invalidates everything.
    """

    def __init__(self, registry: ActionRegistry) -> None:
        self.registry = registry
        self._version = -1
        self._fragments: list[tuple[Action, bytes]] = []
        self._everything = b"[]"
        self._role_names: frozenset[str] = frozenset()
        self._any_permission = False
        self._any_callable = False
        self._by_roles: dict[tuple[bool, frozenset[str]], bytes] = {}

    def body(self, caller: Caller) -> bytes:
        """The JSON array of the actions ``caller`` may run."""
        if self._version != self.registry.version:
            self._rebuild()
        if caller.read_only:
            return b"[]"
        if not self._any_permission:
            return self._everything
        if self._any_callable:
            return self._build(caller)
        key = (caller.superuser, caller.roles & self._role_names)
        body = self._by_roles.get(key)
        if body is None:
            if len(self._by_roles) >= CACHE_SIZE:
                self._by_roles.clear()
            body = self._by_roles[key] = self._build(caller)
        return body

    def audience(self, caller: Caller) -> Hashable | None:
        """What decides which actions ``caller`` may run: callers of the same audience may run
        the same actions, so other doors can cache what they build per audience. None when a
        callable permission makes every caller a case of its own."""
        if self._version != self.registry.version:
            self._rebuild()
        if caller.read_only:
            return ("read-only",)
        if not self._any_permission:
            return ("everyone",)
        if self._any_callable:
            return None
        return ("roles", caller.superuser, caller.roles & self._role_names)

    def _rebuild(self) -> None:
        version = self.registry.version
        actions = list(self.registry)
        self._fragments = [(action, _encode(action.wire())) for action in actions]
        self._everything = b"[" + b",".join(part for _, part in self._fragments) + b"]"
        permissions = [action.permission for action in actions if action.permission is not None]
        self._role_names = frozenset(p for p in permissions if isinstance(p, str))
        self._any_permission = bool(permissions)
        self._any_callable = any(not isinstance(p, str) for p in permissions)
        self._by_roles = {}
        self._version = version

    def _build(self, caller: Caller) -> bytes:
        parts = []
        for action, fragment in self._fragments:
            if action.permission is None:
                parts.append(fragment)
            elif not action.collections:
                if may_run(caller, action, None):
                    parts.append(fragment)
            else:
                allowed = tuple(c for c in action.collections if may_run(caller, action, c.model))
                if len(allowed) == len(action.collections):
                    parts.append(fragment)
                elif allowed:
                    parts.append(_encode(dataclasses.replace(action, collections=allowed).wire()))
        return b"[" + b",".join(parts) + b"]"
