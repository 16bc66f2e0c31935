"""Idempotent execution: one run per ``Idempotency-Key``, its answer replayed byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Request, current_app
from werkzeug.wrappers import Response as BaseResponse

from .errors import ProtocolError

#: The table of stored answers, added to the app's SQLAlchemy metadata.
IDEMPOTENCY_TABLE = "flexactions_idempotency"
#: The request header, and the key of ``execute_action`` params that may carry it instead.
KEY_HEADER = "Idempotency-Key"
KEY_PARAM = "request_id"
#: Answer headers stored and replayed with the body.
REPLAYED_HEADERS = ("Content-Type", "Content-Disposition")

_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")


def idempotency_key(request: Request, request_params: Mapping[str, Any]) -> str | None:
    """The key of this request, from the header or ``params.request_id``; 400 if malformed."""
    header = request.headers.get(KEY_HEADER)
    param = request_params.get(KEY_PARAM)
    if param is not None and not isinstance(param, str):
        raise ProtocolError(f"params.{KEY_PARAM} must be a string.")
    if header is not None and param is not None and header != param:
        raise ProtocolError(f"The {KEY_HEADER} header and params.{KEY_PARAM} differ.")
    key = header if header is not None else param
    if key is not None and not _KEY.match(key):
        raise ProtocolError(
            f"An {KEY_HEADER} is 1 to 255 visible ASCII characters (no spaces), e.g. a UUID."
        )
    return key


def fingerprint(request_params: Mapping[str, Any]) -> str:
    """A digest of what the request asks, ``request_id`` aside."""
    payload = {k: v for k, v in request_params.items() if k != KEY_PARAM}
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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


def _now() -> dt.datetime:
    # Naive UTC: SQLite returns naive datetimes, so comparisons stay consistent everywhere.
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class IdempotencyStore:
    """Reserves keys and keeps answers in :data:`IDEMPOTENCY_TABLE` for ``ttl`` seconds."""

    def __init__(self, db: Any, ttl: int) -> None:
        self.db = db
        self.ttl = ttl
        self.table = idempotency_table(db.metadata)

    def reserve(self, scope: str, key: str, digest: str) -> Reservation | BaseResponse:
        """Reserve ``key`` for a run, or answer without running: the stored answer of a
        finished run (replayed), 409 while the first run goes on, 422 for another payload."""
        row_id = hashlib.sha256(f"{scope}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
        for _ in range(3):
            now = _now()
            try:
                with self.db.engine.begin() as connection:
                    connection.execute(self.table.delete().where(self.table.c.expires_at < now))
                    connection.execute(
                        self.table.insert().values(
                            id=row_id,
                            fingerprint=digest,
                            state="running",
                            created_at=now,
                            expires_at=now + dt.timedelta(seconds=self.ttl),
                        )
                    )
                return Reservation(row_id)
            except sa.exc.IntegrityError:
                pass
            with self.db.engine.connect() as connection:
                row = connection.execute(
                    sa.select(self.table).where(self.table.c.id == row_id)
                ).one_or_none()
            if row is None:
                continue  # it expired and was deleted meanwhile: try to reserve again
            if row.fingerprint != digest:
                raise ProtocolError(
                    f"This {KEY_HEADER} was already used for a different request; send a new "
                    "key for a new request.",
                    status=422,
                )
            if row.state != "done":
                raise ProtocolError(
                    f"A request with this {KEY_HEADER} is still running; retry in a moment.",
                    status=409,
                )
            return self._replay(row)
        raise ProtocolError(f"Could not reserve the {KEY_HEADER}; retry.", status=409)

    def _replay(self, row: Any) -> BaseResponse:
        headers = {k: v for k, v in (row.headers or {}).items() if k in REPLAYED_HEADERS}
        response = current_app.response_class(row.body, status=row.status, headers=headers)
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def _values(self, response: BaseResponse) -> dict[str, Any]:
        # A file answer may stream; read it whole so it can be stored and still be sent.
        response.direct_passthrough = False
        headers = {k: response.headers[k] for k in REPLAYED_HEADERS if k in response.headers}
        return {
            "state": "done",
            "status": response.status_code,
            "headers": headers,
            "body": response.get_data(),
        }

    def complete_in(self, session: Any, reservation: Reservation, response: BaseResponse) -> None:
        """Store the answer inside the action's own transaction, so the run and its answer
        commit together."""
        values = self._values(response)
        session.execute(
            self.table.update().where(self.table.c.id == reservation.id).values(**values)
        )

    def complete(self, reservation: Reservation, response: BaseResponse) -> None:
        """Store the answer of a run that was rolled back, in a transaction of its own."""
        values = self._values(response)
        with self.db.engine.begin() as connection:
            connection.execute(
                self.table.update().where(self.table.c.id == reservation.id).values(**values)
            )

    def release(self, reservation: Reservation) -> None:
        """Forget a reservation whose run failed unexpectedly, so a retry may run."""
        with self.db.engine.begin() as connection:
            connection.execute(self.table.delete().where(self.table.c.id == reservation.id))
