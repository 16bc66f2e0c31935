"""What the extension keeps per app, in ``app.extensions["flexactions"]``: the run layer's
services, and what the doors add to them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..access.auth import Authentication, Authenticator
from ..access.listing import ActionListing
from ..config import Settings
from ..declare.actions import ActionRegistry
from ..declare.hooks import ScopeHook
from ..run.approvals import ApprovalStore
from ..run.audit import make_sink
from ..run.housekeeping import Housekeeping
from ..run.idempotency import IdempotencyStore
from ..run.jobs import JobStore
from ..run.runtime import Runtime
from ..run.sealing import SecretBox
from ..run.worker import register_tasks, run_inline
from .openapi import OpenAPIDocuments
from .routes import RouteTable


class AppState(Runtime):
    """The per-app state: a :class:`~..run.runtime.Runtime` (database, actions, settings,
    stores), the authentication of requests, the cached action listings and OpenAPI documents,
    and the table of the actions' routes.

    :param authenticator: returns the custom authenticator registered on the extension, if
        any (read at each request, so one registered after ``init_app`` counts).
    """

    def __init__(
        self,
        db: Any,
        registry: ActionRegistry,
        scopes: dict[type[Any], ScopeHook],
        settings: Settings,
        authenticator: Callable[[], Authenticator | None],
        celery: Any = None,
    ) -> None:
        idempotency = (
            IdempotencyStore(db, settings.idempotency_ttl) if settings.idempotency else None
        )
        jobs = None
        if celery is not None or settings.background_inline:
            jobs = JobStore(
                db,
                inline=settings.background_inline,
                ttl=settings.job_ttl,
                lease=settings.job_lease,
                queue_timeout=settings.job_queue_timeout,
                secrets=SecretBox(settings.secret_key) if settings.secret_key else None,
            )
            if celery is not None:
                register_tasks(celery, jobs)
        audit = make_sink(settings.audit, db)
        approvals = ApprovalStore(
            db,
            ttl=settings.approval_ttl,
            secret=settings.secret_key,
            audit=audit,
            registry=registry,
        )
        super().__init__(
            db,
            registry,
            scopes,
            settings,
            audit=audit,
            idempotency=idempotency,
            jobs=jobs,
            housekeeping=Housekeeping(settings.sweep_interval, jobs, idempotency, approvals),
            approvals=approvals,
        )
        if jobs is not None and jobs.inline:
            self.run_inline = functools.partial(run_inline, self)
        self.authenticate = Authentication(settings, authenticator)
        self.listing = ActionListing(registry)
        self.openapi = OpenAPIDocuments(self, self.listing, self.authenticate)
        self.routes = RouteTable(registry)
