"""The FlexActions extension object and the per-app state it keeps in ``app.extensions``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Blueprint, Flask, Request

from .actions import Action, ActionRegistry, ParamsDeclaration, make_action
from .auth import Authenticator, authenticate
from .cli import flexactions_cli
from .config import Settings, load_settings
from .fields import ForeignKey
from .models import Collection

EXTENSION_KEY = "flexactions"

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound=Authenticator)


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
        self._db = db
        self._authenticator = authenticator
        self._blueprint: Blueprint | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, db: Any = None) -> None:
        """Read the ``FLEXACTIONS_*`` config and attach the extension's state to ``app``.

        :param db: the ``SQLAlchemy`` instance; defaults to the one given to the constructor,
            then to the one registered on the app by Flask-SQLAlchemy.
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
        state = AppState(self, db, load_settings(app))
        state.check_registrations()
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
        )
        self.registry.add(action)
        return action

    def authenticator(self, function: A) -> A:
        """Register ``function(request)`` as the custom authenticator and return it unchanged.

        It returns a truthy value (whatever identifies the caller) to accept the request, or a
        falsy one to refuse it with 401. The shared ``FLEXACTIONS_TOKEN`` is tried first.
        """
        self._authenticator = function
        return function

    @property
    def custom_authenticator(self) -> Authenticator | None:
        """The callable registered with :meth:`authenticator`, if any."""
        return self._authenticator

    @property
    def blueprint(self) -> Blueprint:
        """The blueprint serving the Messages URL; register it with a ``url_prefix``."""
        if self._blueprint is None:
            from .views import create_blueprint

            self._blueprint = create_blueprint()
        return self._blueprint


class AppState:
    """What the extension keeps per app: its settings, its database and derived caches."""

    def __init__(self, extension: FlexActions, db: Any, settings: Settings) -> None:
        self.extension = extension
        self.db = db
        self.settings = settings
        self._list_body: tuple[int, bytes] | None = None
        self._collections: dict[str, Collection | None] | None = None
        self._checked_version = -1
        self._wide_integer_ids: bool | None = None

    @property
    def registry(self) -> ActionRegistry:
        """The registry of the extension (shared by every app it is initialised on)."""
        return self.extension.registry

    def authenticate(self, request: Request) -> Any:
        """The caller of ``request``, or :class:`~flask_flexactions.errors.AuthenticationError`."""
        return authenticate(request, self.settings.token, self.extension.custom_authenticator)

    def action_list_body(self) -> bytes:
        """The ``get_action_list`` answer, built once per set of registered actions."""
        version = self.registry.version
        if self._list_body is None or self._list_body[0] != version:
            body = json.dumps([action.wire() for action in self.registry], separators=(",", ":"))
            self._list_body = (version, body.encode())
        return self._list_body[1]

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

    def load_related(self, collection: Collection, key: Any) -> Any:
        """The row of ``collection`` with primary key ``key``, or None."""
        return self.db.session.get(collection.model, key)

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
