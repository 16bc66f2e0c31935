"""Approval requests at rest: stored frozen and signed, decided once, expired and swept.

A request is stored in the run's own transaction when an action that needs approval is
diverted (see :mod:`.approval_gate`); decisions append to it with a conditional ``UPDATE``
(its ``version``), so two approvers at once decide once; its run flips it from ``approved``
to ``ran`` inside the run's transaction, so it runs at most once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..caller import Caller
from ..errors import FlexActionsError, NotFound
from ..signals import approval_decided, approval_ran, notify
from .answers import answer_values
from .approval_records import (
    FINAL_STATES,
    Stored,
    audit_record,
    error_answer,
    errors_of,
    iso,
    now,
    person,
    stored_answer,
    summary,
)
from .audit import AuditRecord, AuditSink
from .frozen import Signer, dumps_exact, loads_exact
from .jobs import caller_from_json, caller_to_json
from .leases import utcnow
from .sealing import SecretBox

if TYPE_CHECKING:
    from ..declare.actions import Action, ActionRegistry

#: The table of approval requests, added to the app's SQLAlchemy metadata.
APPROVALS_TABLE = "flexactions_approvals"
#: An approved request whose run has not ended after this many seconds never will (its
#: process stopped): the sweep fails it. Its run, should it end after all, rolls back.
STALE_APPROVED = 3600
STALE_MESSAGE = "The run of this approved request never finished; nothing ran."


class ApprovalLost(FlexActionsError):
    """The run of an approved request found it no longer ``approved`` (the sweep failed it
    meanwhile); the run is rolled back."""

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"Approval request {approval_id} was settled elsewhere; rolled back.")


def approvals_table(metadata: sa.MetaData) -> sa.Table:
    """The table of approval requests in ``metadata``, defined on first use."""
    existing = metadata.tables.get(APPROVALS_TABLE)
    if existing is not None:
        return existing
    return sa.Table(
        APPROVALS_TABLE,
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255)),
        sa.Column("requester_id", sa.String(255), index=True),
        sa.Column("requester_scheme", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        # The request as JSON text (see frozen.py) and its signature; the secret params are
        # sealed beside it and forgotten once the request is final.
        sa.Column("frozen", sa.Text, nullable=False),
        sa.Column("sealed", sa.Text),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("decisions", sa.JSON, nullable=False),
        # Grows with every decision: the condition of the next one's UPDATE.
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False, index=True),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("answer_status", sa.Integer),
        sa.Column("answer_headers", sa.JSON),
        sa.Column("answer_body", sa.LargeBinary),
    )


class ApprovalStore:
    """Stores, decides and sweeps approval requests, kept in :data:`APPROVALS_TABLE`.

    :param ttl: default seconds a request waits for decisions; a final request is kept as
        long again.
    :param secret: signs requests and seals their secret params; None refuses to store any
        (``check_registrations`` refuses actions that need approval without it).
    :param audit: where the expiries found by a read or a sweep are recorded.
    :param registry: the registered actions, to tell a request's action (its label, its
        approvers) in the summaries signalled on expiry.
    """

    def __init__(
        self,
        db: Any,
        *,
        ttl: int,
        secret: str | bytes | None,
        audit: AuditSink | None,
        registry: ActionRegistry | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.ttl = ttl
        self.audit = audit
        self.signer = Signer(secret) if secret else None
        self.secrets = SecretBox(secret) if secret else None
        self.table = approvals_table(db.metadata)

    def _signer(self) -> Signer:
        if self.signer is None:  # check_registrations refuses such actions before any message
            raise RuntimeError("Approval requests need FLEXACTIONS_SECRET_KEY (or SECRET_KEY).")
        return self.signer

    # Requesting, in the run's transaction

    def create_in(
        self,
        session: Any,
        action: Action,
        *,
        model: str | None,
        requester: Caller,
        ids: Sequence[Any] | None,
        values: Mapping[str, Any],
        reason: str | None,
        door: str,
        expires: int | None,
    ) -> Stored:
        """Store a pending request inside the run's transaction and return it. ``values``
        are the raw values the schema accepted; secret ones are sealed."""
        signer = self._signer()
        approval_id = uuid.uuid4().hex
        created = now()
        expires_at = created + dt.timedelta(seconds=expires or self.ttl)
        secret = action.params.secret_names
        declared = action.params.names
        kept = {k: v for k, v in values.items() if k in declared and k not in secret}
        hidden = {k: v for k, v in values.items() if k in declared and k in secret}
        sealed = None
        if hidden:
            if self.secrets is None:
                raise RuntimeError("Approval requests need FLEXACTIONS_SECRET_KEY (or SECRET_KEY).")
            sealed = self.secrets.seal(hidden)
        frozen = {
            "v": 1,
            "id": approval_id,
            "action": action.name,
            "model": model,
            "requester": caller_to_json(requester),
            "ids": list(ids) if ids is not None else None,
            "values": kept,
            "sealed_names": sorted(hidden),
            "reason": reason,
            "door": door,
            "created_at": iso(created),
            "expires_at": iso(expires_at),
        }
        text = dumps_exact(frozen)
        digest = signer.sign(text, sealed or "")
        columns = _Row(
            id=approval_id,
            action=str(_clip(action.name, 255)),
            model=_clip(model, 255),
            requester_id=_clip(requester.id, 255),
            requester_scheme=str(_clip(requester.scheme, 32)),
            state="pending",
            frozen=text,
            sealed=sealed,
            digest=digest,
            decisions=[],
            version=0,
            created_at=created,
            expires_at=expires_at,
        )
        session.execute(self.table.insert().values(**dataclasses.asdict(columns)))
        return self._read(columns)

    # Reading

    def get(self, approval_id: str) -> Stored | None:
        """The request ``approval_id``, expired first if its time ran out; None if unknown."""
        rows = self._select(self.table.c.id == approval_id, limit=1)
        return self._fresh(rows[0]) if rows else None

    def _fresh(self, row: Any) -> Stored | None:
        """The request in ``row``, expired first if its time ran out."""
        stored = self._read(row)
        if stored.state != "pending" or stored.expires_at > utcnow():
            return stored
        self._expire(stored)
        again = self._select(self.table.c.id == stored.id, limit=1)
        return self._read(again[0]) if again else None

    def pending(self, limit: int) -> list[Stored]:
        """The newest ``limit`` pending requests that have not expired."""
        table = self.table
        rows = self._select(
            (table.c.state == "pending") & (table.c.expires_at > utcnow()),
            limit=limit,
            order=table.c.created_at.desc(),
        )
        return [self._read(row) for row in rows]

    def requested_by(self, caller: Caller, limit: int) -> list[Stored]:
        """The newest ``limit`` requests of ``caller``, whatever their state."""
        if caller.id is None:
            return []
        table = self.table
        condition = (table.c.requester_id == caller.id) & (
            table.c.requester_scheme == caller.scheme
        )
        rows = self._select(condition, limit=limit, order=table.c.created_at.desc())
        fresh = (self._fresh(row) for row in rows)
        return [stored for stored in fresh if stored is not None]

    def _select(self, condition: Any, *, limit: int, order: Any = None) -> list[Any]:
        statement = sa.select(self.table).where(condition).limit(limit)
        if order is not None:
            statement = statement.order_by(order, self.table.c.id)
        with self.db.engine.connect() as connection:
            return list(connection.execute(statement))

    def _read(self, row: Any) -> Stored:
        """The request in ``row``, with ``tampered`` set when a signature does not match or
        the columns disagree with the signed text."""
        signer = self._signer()
        try:
            frozen = loads_exact(row.frozen)
            if not isinstance(frozen, dict):
                raise ValueError("not an object")
        except ValueError:
            frozen = {}
        final = row.state in FINAL_STATES
        # A final request forgot its secret params, so its signature no longer covers them.
        signed = final or signer.verify(row.digest, row.frozen, row.sealed or "")
        decisions = list(row.decisions) if isinstance(row.decisions, list) else []
        well_formed = [
            d for d in decisions if isinstance(d, dict) and isinstance(d.get("by"), dict)
        ]
        signed = (
            signed
            and len(well_formed) == len(decisions)
            and all(
                signer.verify(d.get("sig"), row.id, row.digest, _decision_text(d))
                for d in well_formed
            )
        )
        kept = frozen.get("requester")
        requester: dict[str, Any] = kept if isinstance(kept, dict) else {}
        consistent = (
            frozen.get("id") == row.id
            and _clip(frozen.get("action"), 255) == row.action
            and _clip(frozen.get("model"), 255) == row.model
            and _clip(requester.get("id"), 255) == row.requester_id
            and frozen.get("created_at") == iso(row.created_at)
            and frozen.get("expires_at") == iso(row.expires_at)
        )
        if row.state == "pending":
            # Only approvals land on a pending request, and it has no answer yet: anything
            # else is a final request set back to pending.
            consistent = consistent and row.answer_body is None
            consistent = consistent and all(d.get("verdict") == "approved" for d in well_formed)
        ids = frozen.get("ids")
        values = frozen.get("values")
        return Stored(
            id=row.id,
            action=row.action,
            model=row.model,
            state=row.state,
            version=row.version,
            created_at=row.created_at,
            expires_at=row.expires_at,
            requester=caller_from_json(requester),
            ids=list(ids) if isinstance(ids, list) else None,
            values=dict(values) if isinstance(values, dict) else {},
            sealed_names=[str(n) for n in frozen.get("sealed_names") or ()],
            sealed=row.sealed,
            reason=frozen.get("reason") if isinstance(frozen.get("reason"), str) else None,
            door=str(frozen.get("door") or "messages"),
            decisions=well_formed,
            tampered=not (signed and consistent),
            answer=stored_answer(row),
            digest=row.digest,
            row=row,
        )

    def values_of(self, stored: Stored) -> dict[str, Any]:
        """The values the request runs with: the kept ones and the secret ones, unsealed."""
        values = dict(stored.values)
        if stored.sealed:
            if self.secrets is None:
                raise RuntimeError("This request has secret params but no FLEXACTIONS_SECRET_KEY.")
            values.update(self.secrets.open(stored.sealed))
        return values

    # Deciding

    def decide(
        self, stored: Stored, by: Caller, verdict: str, comment: str | None, state: str
    ) -> bool:
        """Append a decision and move the request to ``state``, if nobody decided it since
        ``stored`` was read and it has not expired; returns whether it did."""
        decided = now()
        entry: dict[str, Any] = {
            "by": person(by),
            "verdict": verdict,
            "comment": comment,
            "at": iso(decided),
        }
        entry["sig"] = self._signer().sign(stored.id, stored.digest, _decision_text(entry))
        table = self.table
        values: dict[str, Any] = {
            "decisions": [*stored.decisions, entry],
            "version": stored.version + 1,
            "state": state,
        }
        if state != "pending":
            values["decided_at"] = decided
        if state in FINAL_STATES:
            values.update(finished_at=decided, sealed=None)
        with self.db.engine.begin() as connection:
            changed = connection.execute(
                table.update()
                .where(
                    table.c.id == stored.id,
                    table.c.state == "pending",
                    table.c.version == stored.version,
                    table.c.expires_at > utcnow(),
                )
                .values(**values)
            ).rowcount
        return bool(changed == 1)

    # Ending, after the run

    def settle_in(self, session: Any, approval_id: str, response: BaseResponse) -> None:
        """Mark the approved request ``ran`` with its answer inside its run's transaction;
        :class:`ApprovalLost` (rolling the run back) if it is no longer ``approved``."""
        table = self.table
        changed = session.execute(
            table.update()
            .where(table.c.id == approval_id, table.c.state == "approved")
            .values(state="ran", finished_at=now(), sealed=None, **answer_values(response))
        ).rowcount
        if changed != 1:
            raise ApprovalLost(approval_id)

    def finish(self, approval_id: str, state: str, response: BaseResponse, *, was: str) -> bool:
        """Move the request from ``was`` to ``state`` with ``response`` as its answer, in a
        transaction of its own; returns whether it did."""
        table = self.table
        with self.db.engine.begin() as connection:
            changed = connection.execute(
                table.update()
                .where(table.c.id == approval_id, table.c.state == was)
                .values(state=state, finished_at=now(), sealed=None, **answer_values(response))
            ).rowcount
        return bool(changed == 1)

    # Expiry and the sweep

    def _expire(self, stored: Stored) -> bool:
        """Expire a pending request whose time ran out: recorded and signalled once."""
        table = self.table
        current = utcnow()
        with self.db.engine.begin() as connection:
            changed = connection.execute(
                table.update()
                .where(
                    table.c.id == stored.id,
                    table.c.state == "pending",
                    table.c.expires_at <= current,
                )
                .values(state="expired", finished_at=now(), sealed=None)
            ).rowcount
        if changed != 1:
            return False
        self.record(audit_record(stored, None, "expired", 200, None))
        fresh = self.get(stored.id)
        if fresh is not None:
            notify(approval_decided, summary(fresh, self.action_of(fresh)), decision=None)
        return True

    def sweep(self, limit: int = 1000) -> dict[str, int]:
        """Expire pending requests whose time ran out, fail approved ones whose run never
        ended, and delete final requests older than the TTL; returns how many of each."""
        table = self.table
        current = utcnow()
        counts = {"expired_approvals": 0, "stale_approvals": 0}
        late = (table.c.state == "pending") & (table.c.expires_at <= current)
        for row in self._select(late, limit=limit):
            counts["expired_approvals"] += self._expire(self._read(row))
        stale = (table.c.state == "approved") & (
            table.c.decided_at < current - dt.timedelta(seconds=STALE_APPROVED)
        )
        for row in self._select(stale, limit=limit):
            stored = self._read(row)
            failure = error_answer(STALE_MESSAGE)
            if self.finish(stored.id, "failed", failure, was="approved"):
                counts["stale_approvals"] += 1
                errors = errors_of(failure)
                self.record(audit_record(stored, None, "failed", 200, None, errors=errors))
                fresh = self.get(stored.id)
                if fresh is not None:
                    notify(approval_ran, summary(fresh, self.action_of(fresh)))
        old = (
            sa.select(table.c.id)
            .where(
                table.c.state.in_(FINAL_STATES),
                table.c.finished_at < current - dt.timedelta(seconds=self.ttl),
            )
            .limit(limit)
        )
        with self.db.engine.begin() as connection:
            counts["deleted_approvals"] = connection.execute(
                table.delete().where(table.c.id.in_(old))
            ).rowcount
        return counts

    @property
    def in_use(self) -> bool:
        """Whether a registered action needs approval (else the sweep leaves the table be)."""
        return self.registry is not None and any(a.approval for a in self.registry)

    def action_of(self, stored: Stored) -> Action | None:
        """The action ``stored`` is for, if it is still registered."""
        if self.registry is None:
            return None
        try:
            return self.registry.find(stored.model, stored.action)
        except NotFound:
            return None

    def record(self, record: AuditRecord) -> None:
        """Write ``record`` to the audit log, if there is one; failures are logged."""
        if self.audit is None:
            return
        try:
            self.audit.write(record)
        except Exception:
            current_app.logger.exception("Writing the Flex Actions audit record failed")


@dataclass(frozen=True)
class _Row:
    """The columns of a new request: inserted, and read back without a query."""

    id: str
    action: str
    model: str | None
    requester_id: str | None
    requester_scheme: str
    state: str
    frozen: str
    sealed: str | None
    digest: str
    decisions: list[Any]
    version: int
    created_at: dt.datetime
    expires_at: dt.datetime
    answer_status: int | None = None
    answer_headers: dict[str, str] | None = None
    answer_body: bytes | None = None


def _clip(value: Any, length: int) -> Any:
    return value[:length] if isinstance(value, str) else value


def _decision_text(decision: Mapping[str, Any]) -> str:
    signed = {k: decision.get(k) for k in ("by", "verdict", "comment", "at")}
    return json.dumps(signed, sort_keys=True, separators=(",", ":"))
