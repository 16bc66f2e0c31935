"""The audit log: one record per execute attempt, written outside the action's transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import sqlalchemy as sa

from ..caller import Caller
from ..errors import ErrorDict

#: The table of :class:`TableAuditSink`, added to the app's SQLAlchemy metadata.
AUDIT_TABLE = "flexactions_audit"
#: Selections up to this many ids are stored as a list; larger ones as a count and a hash.
IDS_KEPT = 100
#: Params whose JSON is longer than this are stored as a size and a hash.
PARAMS_KEPT = 8 * 1024
#: What a secret param's value is replaced with.
REDACTED = "[redacted]"

#: ``ran``: the handler ran and its work was committed (for ``atomic=False``: every record).
#: ``failed``: the handler ran and refused, raised or crashed; rolled back (``atomic=False``:
#: some records failed). ``invalid``: a protocol error, invalid params or missing rows; the
#: handler never ran. ``refused``: the caller may not run it (403). ``replayed``: an
#: ``Idempotency-Key`` answered from the first run's stored answer. ``queued``: a background
#: job was queued (its run in the worker is a record of its own). ``dry_run``: a dry run
#: answered from the preview; the handler never ran and nothing was written. For actions that
#: need approval (see :attr:`AuditRecord.approval`): ``requested`` (stored, awaiting approval;
#: nothing ran), ``approved`` and ``rejected`` (an approver's decision), ``withdrawn`` (by its
#: requester), ``expired`` (no caller: undecided in time).
OUTCOMES = (
    "ran",
    "failed",
    "invalid",
    "refused",
    "replayed",
    "queued",
    "dry_run",
    "requested",
    "approved",
    "rejected",
    "withdrawn",
    "expired",
)


@dataclass(frozen=True)
class AuditRecord:
    """One execute attempt."""

    time: dt.datetime
    caller_id: str | None
    caller_name: str | None
    caller_scheme: str | None
    action: str | None
    model: str | None
    #: Where the request came in: ``messages`` (the Messages URL), ``route`` (the action's
    #: own route), ``mcp`` (an MCP tool); a background job's run keeps its request's door.
    door: str | None
    #: ``{"ids": [...]}`` or ``{"count": n, "sha256": ...}``, with ``"inverse": true`` for
    #: ``inverseIds``; None for collection and common actions.
    target: dict[str, Any] | None
    #: The params as sent, secret ones replaced by ``[redacted]``.
    params: dict[str, Any] | None
    outcome: str
    status: int
    errors: ErrorDict | None
    duration_ms: float
    #: For an action that needs approval, the request this record is about: ``{"id": ...}``
    #: plus ``reason`` (requested), ``comment`` (a decision) or ``approved_by`` (the run of an
    #: approved request, recorded as its requester's: a list of ``{"id", "name", "scheme"}``).
    approval: dict[str, Any] | None = None


@dataclass
class Attempt:
    """What an execute attempt has revealed so far; filled in while it runs."""

    caller: Caller | None
    started: float = field(default_factory=time.perf_counter)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    action: str | None = None
    model: str | None = None
    door: str | None = None
    target: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    secret: frozenset[str] = frozenset()
    handler_called: bool = False
    outcome: str = "invalid"
    errors: ErrorDict | None = None
    #: The record was written already, inside the run's committed transaction.
    written: bool = False
    #: See :attr:`AuditRecord.approval`.
    approval: dict[str, Any] | None = None

    def record(self, status: int) -> AuditRecord:
        """The finished record, with errors of secret params redacted."""
        errors = None
        if self.errors is not None:
            errors = {k: [REDACTED] if k in self.secret else v for k, v in self.errors.items()}
        caller = self.caller
        return AuditRecord(
            time=self.at,
            caller_id=caller.id if caller else None,
            caller_name=caller.name if caller else None,
            caller_scheme=caller.scheme if caller else None,
            action=self.action,
            model=self.model,
            door=self.door,
            target=self.target,
            params=self.params,
            outcome=self.outcome,
            status=status,
            errors=errors,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
            approval=self.approval,
        )


#: The names of :class:`AuditRecord`'s fields, in order.
RECORD_FIELDS = tuple(item.name for item in fields(AuditRecord))


def record_values(record: AuditRecord) -> dict[str, Any]:
    """``record``'s fields by name. Unlike ``dataclasses.asdict`` it deep-copies nothing: a
    sink only reads the values, and the copies were paid on every audited request."""
    return {name: getattr(record, name) for name in RECORD_FIELDS}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def summarize_target(raw_ids: list[Any], inverse: bool) -> dict[str, Any]:
    """The ids of a selection as the audit log keeps them."""
    ids = [str(value) for value in raw_ids]
    summary: dict[str, Any]
    if len(ids) <= IDS_KEPT:
        summary = {"ids": ids}
    else:
        summary = {"count": len(ids), "sha256": _digest(",".join(ids))}
    if inverse:
        summary["inverse"] = True
    return summary


def redact_params(values: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    """``values`` with secret params replaced; too long a result becomes a size and a hash."""
    redacted = {key: REDACTED if key in secret else value for key, value in values.items()}
    text = json.dumps(redacted, default=str, sort_keys=True)
    if len(text) > PARAMS_KEPT:
        return {"size": len(text), "sha256": _digest(text)}
    return json.loads(text)  # type: ignore[no-any-return]


class AuditSink(Protocol):
    """Where audit records go: anything with ``write(record)``."""

    def write(self, record: AuditRecord) -> None:
        """Store one record; raising is logged and does not change the answer."""


class LoggingAuditSink:
    """Writes each record as one JSON line to the ``flask_flexactions.audit`` logger (INFO)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("flask_flexactions.audit")

    def write(self, record: AuditRecord) -> None:
        """Log ``record`` as JSON."""
        self.logger.info(json.dumps(record_values(record), default=str, sort_keys=True))


def audit_table(metadata: sa.MetaData) -> sa.Table:
    """The audit table in ``metadata``, defined on first use (``db.create_all`` creates it)."""
    existing = metadata.tables.get(AUDIT_TABLE)
    if existing is not None:
        return existing
    return sa.Table(
        AUDIT_TABLE,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("caller_id", sa.String(255)),
        sa.Column("caller_name", sa.String(255)),
        sa.Column("caller_scheme", sa.String(32)),
        sa.Column("action", sa.String(255), index=True),
        sa.Column("model", sa.String(255)),
        sa.Column("door", sa.String(16)),
        sa.Column("target", sa.JSON),
        sa.Column("params", sa.JSON),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("errors", sa.JSON),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("approval_id", sa.String(32), index=True),
        sa.Column("approval", sa.JSON),
    )


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def _row(record: AuditRecord) -> dict[str, Any]:
    row = record_values(record)
    for key in ("caller_id", "caller_name", "action", "model"):
        row[key] = _clip(row[key], 255)
    row["caller_scheme"] = _clip(row["caller_scheme"], 32)
    row["door"] = _clip(row["door"], 16)
    approval_id = (record.approval or {}).get("id")
    row["approval_id"] = _clip(approval_id, 32) if isinstance(approval_id, str) else None
    return row


class TableAuditSink:
    """Stores records in the ``flexactions_audit`` table, each in a transaction of its own."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.table = audit_table(db.metadata)
        self._insert = self.table.insert()

    def write(self, record: AuditRecord) -> None:
        """Insert ``record`` on a connection of its own, so a rolled-back action keeps it."""
        with self.db.engine.begin() as connection:
            connection.execute(self._insert, _row(record))

    def write_in(self, session: Any, record: AuditRecord) -> None:
        """Insert ``record`` inside the action's own transaction, which is about to commit:
        it commits with the run's work, without a connection of its own."""
        # On the transaction's connection: the ORM's execute (autoflush, bind lookup, ORM
        # compile state) costs more than the INSERT itself and adds nothing to a Core insert.
        session.connection().execute(self._insert, _row(record))

    def records(
        self,
        *,
        action: str | None = None,
        caller_id: str | None = None,
        outcome: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
        approval: str | None = None,
    ) -> list[AuditRecord]:
        """The newest records first, filtered by the arguments given (``approval``: the id of
        an approval request, for its whole trail)."""
        table = self.table
        statement = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        for column, value in (
            (table.c.action, action),
            (table.c.caller_id, caller_id),
            (table.c.outcome, outcome),
            (table.c.approval_id, approval),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if since is not None:
            statement = statement.where(table.c.time >= since)
        with self.db.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        names = AuditRecord.__dataclass_fields__
        return [AuditRecord(**{key: row[key] for key in names}) for row in rows]


def make_sink(setting: Any, db: Any) -> AuditSink | None:
    """The sink ``FLEXACTIONS_AUDIT`` names: None, ``"table"``, ``"logging"`` or a sink."""
    if setting is None or setting is False:
        return None
    if setting == "table":
        return TableAuditSink(db)
    if setting == "logging":
        return LoggingAuditSink()
    if callable(getattr(setting, "write", None)):
        return setting  # type: ignore[no-any-return]
    raise ValueError(
        "FLEXACTIONS_AUDIT must be None, 'table', 'logging' or an object with a "
        f"write(record) method, got {setting!r}."
    )
