"""What a run needs from its app: the database, the actions and row scopes, the settings, and
the stores of Idempotency-Keys, jobs and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..access.scoping import ScopeCache, ScopedRows
from ..caller import Caller
from ..config import Settings
from ..declare.actions import Action, ActionRegistry
from ..declare.fields import ForeignKey
from ..declare.hooks import ScopeHook
from ..declare.models import Collection
from .approvals import ApprovalStore
from .audit import AuditSink
from .housekeeping import Housekeeping
from .idempotency import IdempotencyStore
from .jobs import JobStore


class Runtime:
    """The per-app services of the run layer, built once in ``init_app``.

    :param db: the app's Flask-SQLAlchemy instance.
    :param registry: the registered actions.
    :param scopes: the per-model scope hooks, by model class.
    :param audit: where audit records go, if anywhere.
    :param idempotency: the store of Idempotency-Keys; None when they are off.
    :param jobs: the store of background jobs; None without Celery or inline runs.
    :param housekeeping: sweeps stale jobs and expired keys.
    :param approvals: the store of approval requests.
    """

    def __init__(
        self,
        db: Any,
        registry: ActionRegistry,
        scopes: dict[type[Any], ScopeHook],
        settings: Settings,
        *,
        audit: AuditSink | None,
        idempotency: IdempotencyStore | None,
        jobs: JobStore | None,
        housekeeping: Housekeeping,
        approvals: ApprovalStore | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.scopes = scopes
        self.settings = settings
        self.audit = audit
        self.idempotency = idempotency
        self.jobs = jobs
        self.housekeeping = housekeeping
        #: Runs a job in this process (``FLEXACTIONS_BACKGROUND_INLINE``): ``(job_id,
        #: batched)``; set by whoever composes the runtime (see :mod:`.worker`).
        self.run_inline: Callable[[str, bool], None] | None = None
        self.approvals = approvals
        self._scope_cache = ScopeCache()
        self._collections: dict[str, Collection | None] | None = None
        self._checked_version = -1
        self._wide_integer_ids: bool | None = None

    def restriction(
        self, collection: Collection, caller: Caller, action: Action | None = None
    ) -> ScopedRows | None:
        """The statements that select rows of ``collection`` that ``caller`` may touch: the
        model's scope hook, then ``action``'s; None when neither is set."""
        model_hook = self.scopes.get(collection.model)
        action_hook = action.scope if action is not None else None
        if model_hook is None and action_hook is None:
            return None
        hooks = tuple(hook for hook in (model_hook, action_hook) if hook is not None)
        return self._scope_cache.rows(collection, hooks, caller)

    def collection(self, name: str) -> Collection:
        """The model whose wire name is ``name`` among the models of ``db``."""
        if self._collections is None or name not in self._collections:
            self._collections = self._index_models()
        collection = self._collections.get(name)
        if collection is None:
            problem = "Several models have" if name in self._collections else "No model has"
            raise ValueError(
                f"{problem} the wire name {name!r}. Pass the model class instead of its name, "
                "import the model before init_app, or set __flexactions_name__ on the model."
            )
        return collection

    def related_rows(self, caller: Caller) -> RelatedRows:
        """What loads the rows of ForeignKey params for ``caller`` (see
        :func:`..declare.fields.loading_related`)."""
        return RelatedRows(self, caller)

    def related_collection(self, field: ForeignKey) -> Collection:
        """The collection a ForeignKey param points to in this app."""
        if field.related is not None:
            return field.related
        return ForeignKey.checked(self.collection(field.related_name))

    @property
    def wide_integer_ids(self) -> bool:
        """Whether integer keys are 64-bit whatever their declared type (true on SQLite)."""
        if self._wide_integer_ids is None:
            self._wide_integer_ids = self.db.engine.dialect.name == "sqlite"
        return self._wide_integer_ids

    def check_registrations(self) -> None:
        """Resolve the ForeignKey params of new registrations, so a wrong wire name fails
        in ``init_app`` or at the first message after the registration, not mid-action."""
        if self._checked_version == self.registry.version:
            return
        for action in self.registry:
            if action.background and self.jobs is None:
                raise ValueError(
                    f"Action {action.name!r} runs in the background, but no Celery app is "
                    "configured: pass it with flex.init_app(app, db=db, celery=celery_app), or "
                    "set FLEXACTIONS_BACKGROUND_INLINE = True to run such actions in the "
                    "request (development and tests)."
                )
            if (
                action.background
                and action.params.secret_names
                and self.settings.secret_key is None
            ):
                raise ValueError(
                    f"Action {action.name!r} runs in the background with secret params, which "
                    "its queued job keeps encrypted: set SECRET_KEY (or FLEXACTIONS_SECRET_KEY) "
                    "to a long random string, the same in the web app and its workers."
                )
            if action.approval is not None and self.settings.secret_key is None:
                raise ValueError(
                    f"Action {action.name!r} needs approval; its requests are signed (and their "
                    "secret params sealed) while they wait: set SECRET_KEY (or "
                    "FLEXACTIONS_SECRET_KEY) to a long random string."
                )
            for field in action.params.schema.load_fields.values():
                if isinstance(field, ForeignKey):
                    self.related_collection(field)
        self._checked_version = self.registry.version

    def _index_models(self) -> dict[str, Collection | None]:
        """Every model of ``db`` by wire name; None marks a name that several models share."""
        index: dict[str, Collection | None] = {}
        for mapper in self.db.Model.registry.mappers:
            collection = Collection.of(mapper.class_)
            index[collection.name] = None if collection.name in index else collection
        return index


class RelatedRows:
    """Loads ForeignKey rows for one caller, within the related model's row scope."""

    def __init__(self, runtime: Runtime, caller: Caller) -> None:
        self.runtime = runtime
        self.caller = caller

    @property
    def wide_integer_ids(self) -> bool:
        """See :attr:`Runtime.wide_integer_ids`."""
        return self.runtime.wide_integer_ids

    def collection_of(self, field: ForeignKey) -> Collection:
        """The collection ``field`` points to."""
        return self.runtime.related_collection(field)

    def row(self, collection: Collection, key: Any) -> Any:
        """The row of ``collection`` with primary key ``key`` within its scope, or None."""
        runtime = self.runtime
        scoped = runtime.restriction(collection, self.caller)
        if scoped is None:
            return runtime.db.session.get(collection.model, key)
        return runtime.db.session.scalars(scoped.by_id, {"id": key}).first()
