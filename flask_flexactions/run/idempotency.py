"""Idempotent execution: one run per ``Idempotency-Key``, its answer replayed byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..errors import ProtocolError
from .answers import STORED_HEADERS, stored_answer

#: The table of stored answers, added to the app's SQLAlchemy metadata.
IDEMPOTENCY_TABLE = "flexactions_idempotency"
#: The request header that carries a key.
KEY_HEADER = "Idempotency-Key"
#: Where a WSGI environ holds that header (read there: ``request.headers`` costs more).
KEY_ENVIRON = "HTTP_" + KEY_HEADER.upper().replace("-", "_")
#: The header of an answer replayed for a key already used.
REPLAYED_HEADER = "Idempotent-Replayed"
#: The columns that hold a stored answer.
ANSWER_COLUMNS = ("state", "status", "headers", "body")
#: Answer headers stored and replayed with the body.
REPLAYED_HEADERS = STORED_HEADERS

_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")


def check_key(key: Any) -> str | None:
    """An Idempotency-Key as sent (or None), or a 400 when it does not fit the grammar."""
    if key is not None and (not isinstance(key, str) or not _KEY.match(key)):
        raise ProtocolError(
            f"An {KEY_HEADER} is 1 to 255 visible ASCII characters (no spaces), e.g. a UUID."
        )
    return key


def idempotency_table(metadata: sa.MetaData) -> sa.Table:
    """The table of stored answers in ``metadata``, defined on first use."""
    existing = metadata.tables.get(IDEMPOTENCY_TABLE)
    if existing is not None:
        return existing
    return sa.Table(
        IDEMPOTENCY_TABLE,
        metadata,
        # sha256 of the caller, the action and the key: a key is private to its caller.
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("headers", sa.JSON),
        sa.Column("body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False, index=True),
    )


@dataclass(frozen=True)
class Reservation:
    """A key reserved for one run; complete it with the run's answer."""

    id: str
    #: The :func:`fingerprint` of the request that reserved it.
    fingerprint: str


def _now() -> dt.datetime:
    # Naive UTC: SQLite returns naive datetimes, so comparisons stay consistent everywhere.
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


#: The first key of PostgreSQL's two-key advisory locks that guard Idempotency-Keys ("flex").
_LOCK_CLASS = 0x666C6578


def _lock_key(row_id: str) -> int:
    """A signed 32-bit advisory lock key for the row id (a hex digest)."""
    return int(row_id[:8], 16) - 2**31


class IdempotencyStore:
    """Reserves keys and keeps answers in :data:`IDEMPOTENCY_TABLE` for ``ttl`` seconds.

    A key is reserved by inserting its row inside the action's own transaction, so the
    reservation lives exactly as long as the run: it commits with the run's work and answer,
    and whatever ends the run early (an error, a 5xx, a lost connection, a killed process)
    rolls it back with the work, leaving the key free. A duplicate sent while the first run
    is open is told to retry (409) at once on PostgreSQL, where a transaction-scoped advisory
    lock guards the insert; elsewhere it waits for the first run's transaction like any
    writer (SQLite's database lock), then replays its answer.
    """

    def __init__(self, db: Any, ttl: int) -> None:
        self.db = db
        self.ttl = ttl
        self.table = idempotency_table(db.metadata)
        table = self.table
        # Statements built once: building them per request costs more than running them.
        self._store_answer = (
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values({name: sa.bindparam(name) for name in ANSWER_COLUMNS})
        )
        self._plain_insert = table.insert()
        self._locked_inserts: dict[tuple[str, ...], Any] = {}

    def _locked_insert(self, columns: tuple[str, ...]) -> Any:
        """``INSERT ... SELECT <values> WHERE pg_try_advisory_xact_lock(...) RETURNING id``."""
        statement = self._locked_inserts.get(columns)
        if statement is None:
            table = self.table
            values = sa.select(
                *(sa.bindparam(name, type_=table.c[name].type) for name in columns)
            ).where(
                sa.func.pg_try_advisory_xact_lock(
                    sa.bindparam("lock_class", type_=sa.Integer),
                    sa.bindparam("lock_key", type_=sa.Integer),
                )
            )
            statement = table.insert().from_select(list(columns), values).returning(table.c.id)
            self._locked_inserts[columns] = statement
        return statement

    def reserve_in(
        self, session: Any, scope: str, key: str, digest: str
    ) -> Reservation | BaseResponse:
        """Reserve ``key`` in the session's transaction, or answer without running: the
        stored answer of a finished run (replayed), 409 while the first run goes on, 422 for
        another payload. On an answer, the session's transaction has been rolled back."""
        row_id = hashlib.sha256(f"{scope}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
        for _ in range(3):
            try:
                if self._insert(session, row_id, digest, state="running"):
                    return Reservation(row_id, digest)
                session.rollback()
                raise self._still_running()
            except sa.exc.IntegrityError:
                session.rollback()
            row = session.execute(sa.select(self.table).where(self.table.c.id == row_id)).first()
            session.rollback()
            if row is None:
                continue  # expired and deleted meanwhile: reserve again
            if row.expires_at < _now():
                self._forget_expired(row_id)
                continue
            if row.fingerprint != digest:
                raise ProtocolError(
                    f"This {KEY_HEADER} was already used for a different request; send a new "
                    "key for a new request.",
                    status=422,
                )
            if row.state != "done":
                raise self._still_running()
            return self._replay(row)
        raise ProtocolError(f"Could not reserve the {KEY_HEADER}; retry.", status=409)

    def _insert(self, session: Any, row_id: str, digest: str, **values: Any) -> bool:
        """Insert the key's row; False when PostgreSQL's advisory lock says another open
        transaction holds the key."""
        now = _now()
        row = {
            "id": row_id,
            "fingerprint": digest,
            "created_at": now,
            "expires_at": now + dt.timedelta(seconds=self.ttl),
            **values,
        }
        # Core statements on the transaction's connection: the ORM's execute (autoflush, bind
        # lookup, ORM compile state) costs more than these statements themselves.
        connection = session.connection()
        if connection.dialect.name != "postgresql":
            connection.execute(self._plain_insert, row)
            return True
        lock = {"lock_class": _LOCK_CLASS, "lock_key": _lock_key(row_id)}
        inserted = connection.execute(self._locked_insert(tuple(row)), {**row, **lock})
        return inserted.first() is not None

    @staticmethod
    def _still_running() -> ProtocolError:
        return ProtocolError(
            f"A request with this {KEY_HEADER} is still running; retry in a moment.",
            status=409,
        )

    def _forget_expired(self, row_id: str) -> None:
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.delete().where(table.c.id == row_id, table.c.expires_at < _now())
            )

    def _replay(self, row: Any) -> BaseResponse:
        headers = {k: v for k, v in (row.headers or {}).items() if k in REPLAYED_HEADERS}
        response = current_app.response_class(row.body, status=row.status, headers=headers)
        response.headers[REPLAYED_HEADER] = "true"
        return response

    def _values(self, response: BaseResponse) -> dict[str, Any]:
        status, headers, body = stored_answer(response)
        return {"state": "done", "status": status, "headers": headers, "body": body}

    def complete_in(self, session: Any, reservation: Reservation, response: BaseResponse) -> None:
        """Store the answer inside the action's own transaction, so the run and its answer
        commit together."""
        session.connection().execute(
            self._store_answer, {"row_id": reservation.id, **self._values(response)}
        )

    def complete(self, reservation: Reservation, response: BaseResponse) -> None:
        """Replace the stored answer of a committed run, in a transaction of its own."""
        with self.db.engine.begin() as connection:
            connection.execute(
                self._store_answer, {"row_id": reservation.id, **self._values(response)}
            )

    def remember(self, session: Any, reservation: Reservation, response: BaseResponse) -> None:
        """Store the answer of a run that was rolled back (a refusal, replayed to retries) in
        a transaction of its own; a duplicate that reserved the key meanwhile keeps it."""
        values = self._values(response)
        try:
            if self._insert(session, reservation.id, reservation.fingerprint, **values):
                session.commit()
        except sa.exc.IntegrityError:
            pass
        finally:
            session.rollback()

    def forget(self, reservation: Reservation) -> None:
        """Free a key whose run committed but must not be replayed (its job never queued)."""
        with self.db.engine.begin() as connection:
            connection.execute(self.table.delete().where(self.table.c.id == reservation.id))

    def delete_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired keys; returns how many (see :mod:`.housekeeping`)."""
        table = self.table
        expired = sa.select(table.c.id).where(table.c.expires_at < _now()).limit(limit)
        with self.db.engine.begin() as connection:
            return int(connection.execute(table.delete().where(table.c.id.in_(expired))).rowcount)
