"""Actions as frozen values, and the registry that names them per collection."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from ..errors import NotFound
from .approval import Approval, check_approval
from .defaults import check_defaults
from .hooks import Permission, Preview, ScopeHook, check_permission, check_preview, check_scope
from .models import Collection
from .params import ParamSpec, build_params

#: What ``params=`` accepts: the list-of-dicts format or a marshmallow Schema subclass.
ParamsDeclaration = Iterable[Mapping[str, Any]] | type[Schema] | None


class ActionKind(str, enum.Enum):
    """How an action is called, from its declaration."""

    COMMON = "common"
    COLLECTION = "collection"
    RECORD = "record"
    BULK = "bulk"


@dataclass(frozen=True)
class Action:
    """One registered action: its handler, where it is offered and the form it asks for."""

    name: str
    handler: Callable[..., Any]
    collections: tuple[Collection, ...]
    for_instance: bool
    bulk: bool
    params: ParamSpec
    label: str | None = None
    description: str | None = None
    #: Whether ``model`` was given as a list, so ``get_action_list`` shows a list.
    model_list: bool = False
    #: Who may see and run the action: a role name or a callable; None lets every caller.
    permission: Permission | None = None
    #: Narrows the rows a record or bulk action may select, after the model's own scope.
    scope: ScopeHook | None = None
    #: False runs a bulk action record by record, each in a SAVEPOINT, answering per id.
    atomic: bool = True
    #: Lock the selected rows and ForeignKey rows with ``SELECT ... FOR UPDATE`` first.
    lock: bool = False
    #: Queue the run as a background job (Celery) instead of running it in the request.
    background: bool = False
    #: Called instead of the handler, with the same arguments, by a dry run.
    preview: Preview | None = None
    #: A background bulk action run in batches of this many rows, each in a transaction of
    #: its own, spread over the Celery workers (see ``run/batches.py``); None runs it whole.
    batch_size: int | None = None
    #: Other people must approve a request before it runs (see :class:`~.approval.Approval`).
    approval: Approval | None = None
    #: Hints for AI agents (MCP tool annotations); None when the declaration says nothing.
    destructive: bool | None = None
    idempotent: bool | None = None

    @property
    def kind(self) -> ActionKind:
        """Common, collection, record or bulk."""
        if not self.collections:
            return ActionKind.COMMON
        if self.bulk:
            return ActionKind.BULK
        return ActionKind.RECORD if self.for_instance else ActionKind.COLLECTION

    def collection(self, name: str) -> Collection:
        """The collection named ``name`` among those the action is offered on."""
        for collection in self.collections:
            if collection.name == name:
                return collection
        raise NotFound(f"The action {self.name!r} is not offered on the collection {name!r}.")

    def wire(self) -> dict[str, Any]:
        """The action's entry in the ``get_action_list`` answer."""
        entry: dict[str, Any] = {"name": self.name}
        if self.collections:
            names = [collection.name for collection in self.collections]
            entry["model_action"] = {
                "model": names if self.model_list else names[0],
                "for_instance": self.for_instance,
                "bulk": self.bulk,
            }
        else:
            entry["common_action"] = {}
        entry["params"] = list(self.params.wire)
        if self.label:
            entry["label"] = entry["verbose_name"] = str(self.label)
        if self.description:
            entry["description"] = str(self.description)
        # Extensions, for clients such as the console: a dry run answers a declared preview,
        # and a run answers a job to follow.
        if self.preview is not None:
            entry["preview"] = True
        if self.background:
            entry["background"] = True
        if self.approval is not None:
            entry["approval"] = self.approval.wire()
        return entry


def make_action(
    handler: Callable[..., Any],
    model: type[Any] | Sequence[type[Any]] | None = None,
    *,
    name: str | None = None,
    for_instance: bool = False,
    bulk: bool = False,
    params: ParamsDeclaration = None,
    label: str | None = None,
    description: str | None = None,
    permission: Any = None,
    scope: Any = None,
    atomic: bool = True,
    lock: bool = False,
    background: bool = False,
    preview: Any = None,
    batch_size: int | None = None,
    approval: Any = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
) -> Action:
    """Check a declaration and build its :class:`Action`, or raise naming the fix."""
    if not callable(handler):
        raise TypeError(f"An action handler must be callable, got {handler!r}.")
    action_name = name if name is not None else getattr(handler, "__name__", None)
    if not isinstance(action_name, str) or not action_name:
        raise ValueError("An action needs a name: pass name='...' for handlers without __name__.")
    for_instance = for_instance or bulk
    model_list = isinstance(model, (list, tuple))
    models: Sequence[type[Any]] = model if model_list else ([model] if model else [])  # type: ignore[assignment,list-item]
    if model_list and not models:
        raise ValueError(f"Action {action_name!r}: the list of models is empty.")
    collections = tuple(Collection.of(m) for m in models)
    seen: set[str] = set()
    for collection in collections:
        if collection.name in seen:
            raise ValueError(
                f"Action {action_name!r} lists the collection {collection.name!r} twice."
            )
        seen.add(collection.name)
        if for_instance and collection.id_problem:
            raise ValueError(
                f"Action {action_name!r}: ids cannot address {collection.model.__name__} rows: "
                f"{collection.id_problem}; record and bulk actions need a single-column "
                "integer, text or UUID key. Use for_instance=False and take the keys as params."
            )
    if for_instance and not collections:
        raise ValueError(
            f"Action {action_name!r}: for_instance/bulk need a model; pass the model class as "
            "the first argument, e.g. @flex.action(User, bulk=True)."
        )
    if not all(isinstance(flag, bool) for flag in (atomic, lock, background)):
        raise TypeError(
            f"Action {action_name!r}: atomic, lock and background must be True or False."
        )
    if not atomic and not bulk:
        raise ValueError(
            f"Action {action_name!r}: atomic=False runs a bulk action record by record; "
            "use it with bulk=True."
        )
    _check_batches(action_name, batch_size, bulk, background, atomic, preview, approval)
    if not all(hint is None or isinstance(hint, bool) for hint in (destructive, idempotent)):
        raise TypeError(
            f"Action {action_name!r}: destructive and idempotent must be True, False or None."
        )
    if scope is not None and not for_instance:
        raise ValueError(
            f"Action {action_name!r}: scope narrows the records a record or bulk action "
            "selects; use it with for_instance=True or bulk=True."
        )
    action = Action(
        name=action_name,
        handler=handler,
        collections=collections,
        for_instance=for_instance,
        bulk=bulk,
        params=build_params(params, action_name),
        label=label,
        description=description,
        model_list=model_list,
        permission=check_permission(permission, action_name),
        scope=check_scope(scope, f"Action {action_name!r}"),
        atomic=atomic,
        lock=lock,
        background=background,
        preview=check_preview(preview, action_name),
        batch_size=batch_size,
        approval=check_approval(approval, action_name),
        destructive=destructive,
        idempotent=idempotent,
    )
    check_defaults(action_name, action.params.schema.load_fields, for_instance and not bulk)
    if action.approval is not None and "reason" in action.params.names:
        # The requester's reason is answered as errors["reason"], where the param's would go.
        raise ValueError(
            f"Action {action_name!r}: an action that needs approval takes the requester's "
            '"reason" itself; rename the param "reason", e.g. to "note".'
        )
    try:
        json.dumps(action.wire())
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Action {action_name!r} cannot be listed as JSON ({error}): give label, "
            "description and field params as strings, numbers, lists or dicts."
        ) from None
    return action


#: The largest ``batch_size``: one batch's rows are loaded together in one worker.
MAX_BATCH_SIZE = 100_000


def _check_batches(
    action_name: str,
    batch_size: Any,
    bulk: bool,
    background: bool,
    atomic: bool,
    preview: Any,
    approval: Any,
) -> None:
    """Refuse, naming the fix, a ``batch_size`` that could not work as declared."""
    if batch_size is None:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"Action {action_name!r}: batch_size must be a whole number of rows.")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(
            f"Action {action_name!r}: batch_size must be from 1 to {MAX_BATCH_SIZE}, "
            f"got {batch_size}."
        )
    if not (bulk and background):
        raise ValueError(
            f"Action {action_name!r}: batch_size runs a bulk action's selection in batches on "
            "Celery workers; declare it with bulk=True and background=True."
        )
    if not atomic:
        raise ValueError(
            f"Action {action_name!r}: each batch is all or nothing already; batch_size "
            "cannot be combined with atomic=False."
        )
    if preview is not None:
        raise ValueError(
            f"Action {action_name!r}: a preview gets every selected row, which a batched "
            "action never loads at once; drop preview= (a dry run still checks the params)."
        )
    if approval is not None:
        raise ValueError(
            f"Action {action_name!r}: an approval freezes the ids a request selects, which a "
            "batched action never loads; declare approval= on an action without batch_size."
        )


class ActionRegistry:
    """The actions of one :class:`~flask_flexactions.FlexActions`, keyed by collection and name.

    ``version`` grows with every registration, so per-app caches know when to rebuild.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str | None, str], Action] = {}
        self._actions: list[Action] = []
        self.version = 0

    def add(self, action: Action) -> None:
        """Register ``action``; the same name twice on one collection is a ``ValueError``."""
        keys: list[tuple[str | None, str]] = [(c.name, action.name) for c in action.collections]
        keys = keys or [(None, action.name)]
        for key in keys:
            if key in self._by_key:
                where = f"the collection {key[0]!r}" if key[0] else "the common actions"
                raise ValueError(
                    f"An action named {action.name!r} is already registered on {where}; "
                    "give one of them another name with name='...'."
                )
        for key in keys:
            self._by_key[key] = action
        self._actions.append(action)
        self.version += 1

    def find(self, model: str | None, name: str) -> Action:
        """The action ``name`` on the collection ``model`` (None: a common action)."""
        action = self._by_key.get((model, name))
        if action is not None:
            return action
        if model is not None and not any(key[0] == model for key in self._by_key):
            raise NotFound(f"Unknown model {model!r}: no action is registered on it.")
        where = f"on the model {model!r}" if model else "among the common actions"
        raise NotFound(f"Unknown action {name!r} {where}.")

    def on(self, model: str | None) -> list[Action]:
        """The actions offered on the collection ``model`` (None: the common actions), in the
        order they were registered; :class:`NotFound` for a collection with no action."""
        actions = [action for key, action in self._by_key.items() if key[0] == model]
        if model is not None and not actions:
            raise NotFound(f"Unknown model {model[:64]!r}: no action is registered on it.")
        return actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions)

    def __len__(self) -> int:
        return len(self._actions)
