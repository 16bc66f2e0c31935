"""One ``execute_action`` request, parsed once where it comes in, whatever the door.

Every door (the Messages URL, the route of an action, an MCP tool, a job's worker) reads its
own wire format and hands the pieces to :func:`read_request`, which checks them in one order
(the action exists, the caller may run it, then the values, the selection, the flags) and
returns an :class:`ExecuteRequest`. Nothing past this point reads a request's raw dict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..access.permissions import may_run
from ..caller import Caller
from ..declare.actions import Action
from ..declare.models import Collection
from ..errors import PermissionDenied, ProtocolError
from .audit import Attempt, redact_params, summarize_target
from .batches import Batch
from .idempotency import check_key
from .selection import Selection, parse_selection, selection_in_values, wire_ids

if TYPE_CHECKING:
    from .runtime import Runtime

#: The doors a request can come through, as the audit log records them.
DOORS = frozenset({"messages", "route", "mcp"})


@dataclass
class ExecuteRequest:
    """A request to run one action, checked and typed.

    ``values`` are the input values as sent (the action's params schema converts them inside
    the run's transaction, where ForeignKey rows can be loaded); everything else is final.
    Treat it as read-only: derive another with ``dataclasses.replace``. (It is not a frozen
    dataclass because every request builds one, and a frozen one costs a microsecond more.)
    """

    action: Action
    caller: Caller
    #: The collection the request named; None for a common action.
    collection: Collection | None
    #: The records a record or bulk action runs on; None for the other kinds.
    selection: Selection | None
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    dry_run: bool = False
    #: The Idempotency-Key, if one was sent.
    key: str | None = None
    #: Where the request came in (see :data:`DOORS`).
    door: str = "messages"
    #: The one batch of a batched job this run is for (see :mod:`.batches`).
    batch: Batch | None = None
    #: The requester's reason, for an action that needs approval (checked when it does).
    reason: str | None = None
    #: The id of the approved request this run carries out (see :mod:`.approvals`); None for
    #: a request from a door, which an action that needs approval diverts into a request.
    approval: str | None = None

    @property
    def model(self) -> str | None:
        """The collection's wire name, or None for a common action."""
        return self.collection.name if self.collection is not None else None

    def fingerprint(self) -> str:
        """A digest of what the request asks for: the same payload sent again (with its keys
        in any order, its ids as a list or a string) has the same digest."""
        payload = {
            "action": self.action.name,
            "model": self.model,
            "selection": self.selection.wire() if self.selection is not None else None,
            "values": dict(self.values),
            "dry_run": self.dry_run,
        }
        text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def read_request(
    runtime: Runtime,
    attempt: Attempt,
    *,
    action: Any,
    model: Any,
    values: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    id: Any = None,
    ids: Any = None,
    inverse: Any = None,
    dry_run: Any = None,
    key: str | None = None,
    door: str = "messages",
    ids_in_values: bool = False,
    reason: Any = None,
) -> ExecuteRequest:
    """Check one request's pieces and build it; ``attempt`` learns each as it is known, so a
    refused request is audited with what it asked.

    :param action: the action's name.
    :param model: the collection's wire name, or None.
    :param values: the input values, or a function that reads them (called once the caller
        is known to be allowed, so a stranger learns nothing of what the form checks).
    :param id: the record's key as sent.
    :param ids: the records' keys as sent: an array, a comma-separated string or a number.
    :param inverse: ``inverseIds``: every row except ``ids``.
    :param dry_run: the dry-run flag.
    :param key: an Idempotency-Key (ignored when ``FLEXACTIONS_IDEMPOTENCY`` is off).
    :param door: where the request came in.
    :param ids_in_values: take ``ids`` and ``inverseIds`` from ``values`` when the request
        does not send them itself and the action declares no param of that name (an older
        variant of the Jet Admin protocol).
    :param reason: why the requester asks, for an action that needs approval: a string.
    """
    if not isinstance(action, str) or not action:
        raise ProtocolError("execute_action needs params.name, the action's name.")
    if model is not None and not isinstance(model, str):
        raise ProtocolError("params.model must be the collection's name, a string.")
    attempt.action, attempt.model, attempt.door = action, model, door
    found = runtime.registry.find(model or None, action)
    attempt.secret = found.params.secret_names
    collection = found.collection(model) if model and found.collections else None
    caller = attempt.caller or Caller()
    check_may_run(caller, found, collection)
    values = dict(values() if callable(values) else values)
    if ids_in_values and found.for_instance:
        ids, inverse = selection_in_values(values, found.params.names, ids, inverse)
    if runtime.audit is not None:
        attempt.params = redact_params(values, attempt.secret)
        if found.for_instance:
            attempt.target = _target(id, ids, inverse)
    selection = None
    if found.for_instance and collection is not None:
        settings = runtime.settings
        selection = parse_selection(
            wire_ids(id, ids),
            inverse,
            found,
            collection,
            runtime.wide_integer_ids,
            settings.max_ids,
        )
    if dry_run is not None and not isinstance(dry_run, bool):
        raise ProtocolError("dry_run must be true or false.")
    if reason is not None and not isinstance(reason, str):
        raise ProtocolError("reason must be a string.")
    return ExecuteRequest(
        action=found,
        caller=caller,
        collection=collection,
        selection=selection,
        values=MappingProxyType(values),
        dry_run=dry_run is True,
        key=check_key(key) if runtime.idempotency is not None else None,
        door=door,
        reason=reason,
    )


def _target(id: Any, ids: Any, inverse: Any) -> dict[str, Any]:
    """The selection as sent, for the audit log (it never raises, whatever was sent)."""
    if isinstance(ids, str):
        sent: list[Any] = ids.split(",") if ids else []
    elif isinstance(ids, list):
        sent = list(ids)
    else:
        sent = [] if ids is None else [ids]
    if id is not None:
        sent.insert(0, id)
    return summarize_target(sent, inverse is True)


def check_may_run(caller: Caller, action: Action, collection: Collection | None) -> None:
    """Refuse (403) before anything else is read when the caller may not run ``action``."""
    if may_run(caller, action, collection.model if collection is not None else None):
        return
    if caller.read_only:
        raise PermissionDenied("Read-only users may not run actions.")
    raise PermissionDenied(f"You may not run the action {action.name!r}.")
