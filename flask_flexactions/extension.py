"""The FlexActions extension object: declarations, ``init_app`` and the blueprint."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app

from .access.auth import Authenticator
from .caller import Caller
from .config import load_settings
from .declare.actions import Action, ActionRegistry, ParamsDeclaration, make_action
from .declare.approval import Approval
from .declare.hooks import Permission, Preview, ScopeHook, check_scope
from .declare.models import mapper_of
from .doors.cli import flexactions_cli
from .doors.state import AppState
from .run.audit import AuditRecord, TableAuditSink
from .run.forksafe import guard_engine

EXTENSION_KEY = "flexactions"

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Authenticator)
S = TypeVar("S", bound=ScopeHook)


class FlexActions:
    """Flex Actions for a Flask + SQLAlchemy app.

    Register actions with :meth:`action`, initialise with :meth:`init_app` (or pass ``app``), and
    register :attr:`blueprint`, which serves the Messages URL at ``<url_prefix>/messages/``.

    :param app: initialise on this app right away.
    :param db: the ``flask_sqlalchemy.SQLAlchemy`` instance whose session runs the actions.
    :param authenticator: a custom authenticator, as registered by :meth:`authenticator`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.registry = ActionRegistry()
        #: Per-model scope hooks, by model class (see :meth:`scope`).
        self.scopes: dict[type[Any], ScopeHook] = {}
        self._db = db
        self._authenticator = authenticator
        self._blueprint: Blueprint | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, db: Any = None, celery: Any = None) -> None:
        """Read the ``FLEXACTIONS_*`` config and attach the extension's state to ``app``.

        :param db: the ``SQLAlchemy`` instance; defaults to the one given to the constructor,
            then to the one registered on the app by Flask-SQLAlchemy.
        :param celery: the app's ``celery.Celery``, to run ``background=True`` actions on;
            the extension registers its task there.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "FlexActions is already initialised on this app; call init_app once per app."
            )
        db = db or self._db or app.extensions.get("sqlalchemy")
        if db is None:
            raise RuntimeError(
                "FlexActions needs the app's Flask-SQLAlchemy instance: call "
                "db.init_app(app) first, or pass it with flex.init_app(app, db=db)."
            )
        state = AppState(
            db,
            self.registry,
            self.scopes,
            load_settings(app),
            lambda: self._authenticator,
            celery,
        )
        state.check_registrations()
        _guard_engines(app, db)
        app.extensions[EXTENSION_KEY] = state
        app.cli.add_command(flexactions_cli)

    def action(
        self,
        model: type[Any] | Sequence[type[Any]] | None = None,
        *,
        name: str | None = None,
        for_instance: bool = False,
        bulk: bool = False,
        params: ParamsDeclaration = None,
        label: str | None = None,
        description: str | None = None,
        permission: Permission | None = None,
        scope: ScopeHook | None = None,
        atomic: bool = True,
        lock: bool = False,
        background: bool = False,
        preview: Preview | None = None,
        batch_size: int | None = None,
        approval: Approval | str | None = None,
        destructive: bool | None = None,
        idempotent: bool | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as an action and return it unchanged.

        :param model: a model class, a list of them (the action is offered on each), or None
            for a common action.
        :param name: the action's name; defaults to the function's name.
        :param for_instance: the action runs on records and receives the loaded row(s).
        :param bulk: one request carries many ids; implies ``for_instance``.
        :param params: the input form: a list of param dicts or a marshmallow Schema subclass.
        :param label: a display name for the admin UI.
        :param description: a longer text for the admin UI.
        :param permission: who may see and run it: a role name the caller must hold, or a
            callable ``(caller, action, model) -> bool``. None lets every caller.
        :param scope: a hook ``(statement, caller) -> statement`` narrowing the records a record
            or bulk action may select, on top of the model's own :meth:`scope`.
        :param atomic: False runs a bulk action record by record, each in a SAVEPOINT, and
            answers with the outcome of each id; True (the default) is all or nothing.
        :param lock: lock the selected rows and ForeignKey params' rows with ``SELECT ... FOR
            UPDATE`` in primary key order before the handler runs (no-op on SQLite).
        :param background: queue the run on Celery and answer at once with a job id; see
            ``get_action_status``. Needs ``init_app(app, celery=...)`` or
            ``FLEXACTIONS_BACKGROUND_INLINE``.
        :param preview: called with the handler's arguments by a dry run (``"dry_run": true``)
            instead of the handler; returns a summary text or None.
        :param batch_size: run a background bulk action's selection in batches of this many
            rows, read in primary key order, each batch in a transaction of its own and
            spread over the Celery workers; the handler gets one batch's rows at a time.
        :param approval: other people must approve a request before it runs: a role name
            (one approver holding it, never the requester) or an
            :class:`~flask_flexactions.Approval`. ``execute_action`` then stores the request
            and answers that it awaits approval; see :doc:`/approvals`.
        :param destructive: a hint for AI agents (MCP's ``destructiveHint``): True when a run
            may delete or overwrite data, False when it only adds. None says nothing.
        :param idempotent: a hint for AI agents (MCP's ``idempotentHint``): True when running
            it again with the same input changes nothing more. None says nothing.
        """

        def decorator(handler: F) -> F:
            self.register_action(
                handler,
                model,
                name=name,
                for_instance=for_instance,
                bulk=bulk,
                params=params,
                label=label,
                description=description,
                permission=permission,
                scope=scope,
                atomic=atomic,
                lock=lock,
                background=background,
                preview=preview,
                batch_size=batch_size,
                approval=approval,
                destructive=destructive,
                idempotent=idempotent,
            )
            return handler

        return decorator

    def register_action(
        self,
        handler: Callable[..., Any],
        model: type[Any] | Sequence[type[Any]] | None = None,
        *,
        name: str | None = None,
        for_instance: bool = False,
        bulk: bool = False,
        params: ParamsDeclaration = None,
        label: str | None = None,
        description: str | None = None,
        permission: Permission | None = None,
        scope: ScopeHook | None = None,
        atomic: bool = True,
        lock: bool = False,
        background: bool = False,
        preview: Preview | None = None,
        batch_size: int | None = None,
        approval: Approval | str | None = None,
        destructive: bool | None = None,
        idempotent: bool | None = None,
    ) -> Action:
        """Register ``handler`` as an action; the plain twin of :meth:`action`.

        Declaration mistakes raise ``TypeError`` or ``ValueError`` here, naming the fix.
        """
        action = make_action(
            handler,
            model,
            name=name,
            for_instance=for_instance,
            bulk=bulk,
            params=params,
            label=label,
            description=description,
            permission=permission,
            scope=scope,
            atomic=atomic,
            lock=lock,
            background=background,
            preview=preview,
            batch_size=batch_size,
            approval=approval,
            destructive=destructive,
            idempotent=idempotent,
        )
        self.registry.add(action)
        return action

    def scope(
        self, model: type[Any], *, cache_key: Callable[[Caller], Hashable] | None = None
    ) -> Callable[[S], S]:
        """Register the decorated ``hook(statement, caller) -> statement`` as the scope of
        ``model`` and return it unchanged.

        Every record, bulk and ``inverseIds`` selection of ``model`` and every ForeignKey param
        pointing to it loads rows through the hook; rows outside it are treated exactly like
        rows that do not exist.

        :param cache_key: what the hook's result depends on, as a hashable value of the
            caller (e.g. ``lambda caller: caller.roles``): the scoped statements are then
            built once per value instead of once per request. See :class:`~.Scope`.
        """

        def decorator(hook: S) -> S:
            self.register_scope(model, hook, cache_key=cache_key)
            return hook

        return decorator

    def register_scope(
        self,
        model: type[Any],
        hook: ScopeHook,
        *,
        cache_key: Callable[[Caller], Hashable] | None = None,
    ) -> None:
        """Register ``hook`` as the scope of ``model``; the plain twin of :meth:`scope`."""
        mapper_of(model)
        scope = check_scope(hook, f"The scope of {model.__name__}", cache_key)
        if scope is None:
            raise TypeError(f"The scope of {model.__name__} must be a callable, not None.")
        if model in self.scopes:
            raise ValueError(
                f"{model.__name__} already has a scope hook; combine both conditions in one."
            )
        self.scopes[model] = scope

    def authenticator(self, function: A) -> A:
        """Register ``function(request)`` as the custom authenticator and return it unchanged.

        It returns a :class:`~flask_flexactions.Caller` (or any truthy value, kept as
        ``Caller(user=value)`` with no roles) to accept the request, or a falsy one to refuse
        it with 401. Jet Admin credentials and the shared ``FLEXACTIONS_TOKEN`` are tried
        first.
        """
        self._authenticator = function
        return function

    @property
    def custom_authenticator(self) -> Authenticator | None:
        """The callable registered with :meth:`authenticator`, if any."""
        return self._authenticator

    def audit_records(self, **filters: Any) -> list[AuditRecord]:
        """The audit log of the current app, newest first; needs ``FLEXACTIONS_AUDIT="table"``.

        Filters: ``action``, ``caller_id``, ``outcome``, ``since`` (a datetime), ``approval``
        (an approval request's id: its whole trail), ``limit`` (100 by default). Call it
        inside an app context.
        """
        state: AppState = current_app.extensions[EXTENSION_KEY]
        if not isinstance(state.audit, TableAuditSink):
            raise RuntimeError(
                'The audit log is read from its table: set FLEXACTIONS_AUDIT = "table" (the '
                "logging sink writes to the flask_flexactions.audit logger instead)."
            )
        return state.audit.records(**filters)

    @property
    def blueprint(self) -> Blueprint:
        """The blueprint serving the Messages URL; register it with a ``url_prefix``."""
        if self._blueprint is None:
            from .doors.messages import create_blueprint

            self._blueprint = create_blueprint()
        return self._blueprint


def _guard_engines(app: Flask, db: Any) -> None:
    """Make every engine of ``db`` on ``app`` fork-safe (see :mod:`.forksafe`)."""
    with app.app_context():
        try:
            engines = db.engines
        except RuntimeError as error:
            raise RuntimeError(
                "FlexActions needs the app's Flask-SQLAlchemy instance initialised first: call "
                "db.init_app(app) before flex.init_app(app, db=db)."
            ) from error
        for engine in engines.values():
            guard_engine(engine)
