"""Bulk jobs in batches: a selection planned as primary key ranges, each batch run in a
transaction of its own, exactly once, by whichever Celery worker takes it.

Planning reads only the keys that end a batch (every ``batch_size``-th key of the selection,
by a window function), so neither the request nor any worker holds every selected id. A batch
reads its rows by its key range when it runs (keyset pagination, never ``OFFSET``); its
handler's writes and the mark that it is done commit together, so a batch whose worker dies
is simply run again, and one that committed is never run twice.

What a job sees: the key ranges are fixed when the job is planned. A row inserted later into
a range whose batch has not run yet is processed; one inserted past the last key seen at
planning is not. A row deleted before its batch runs is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..access.scoping import ScopedRows
from ..declare.models import Collection
from .leases import no_wait, utcnow
from .selection import Selection

#: The table of batches, added to the app's SQLAlchemy metadata.
BATCHES_TABLE = "flexactions_job_batches"
#: Batch states: waiting (or running: its row is locked), committed, or failed.
PENDING, DONE, FAILED = "pending", "done", "failed"


def batches_table(metadata: sa.MetaData) -> sa.Table:
    """The batches table in ``metadata``, defined on first use."""
    existing = metadata.tables.get(BATCHES_TABLE)
    if existing is not None:
        return existing
    return sa.Table(
        BATCHES_TABLE,
        metadata,
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        # The batch's keys: after ``low`` (None: from the first) up to ``high`` inclusive,
        # or the explicit ``ids`` of a selection that names its records.
        sa.Column("low", sa.JSON),
        sa.Column("high", sa.JSON),
        sa.Column("ids", sa.JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False, default=0),
        sa.Column("error", sa.Text),
        sa.Column("finished_at", sa.DateTime),
    )


@dataclass(frozen=True)
class Batch:
    """One batch of a job: a key range, or explicit ids."""

    job_id: str
    seq: int
    low: Any = None
    high: Any = None
    ids: tuple[Any, ...] | None = None

    def target(self) -> dict[str, Any]:
        """The batch as the audit log records it."""
        if self.ids is not None:
            return {"batch": self.seq, "count": len(self.ids)}
        return {"batch": self.seq, "after": self.low, "up_to": self.high}


@dataclass(frozen=True)
class Tally:
    """Where a job's batches stand."""

    done: list[int]
    failed: list[int]
    #: Pending batches no process is running now.
    waiting: list[int]
    #: Pending batches a process is running now (their rows are locked; PostgreSQL only).
    running: int
    #: The records of the committed batches.
    records: int
    errors: dict[int, str]

    @property
    def total(self) -> int:
        """How many batches the job has."""
        return len(self.done) + len(self.failed) + len(self.waiting) + self.running


def _wire_key(value: Any) -> Any:
    """A primary key as JSON: integers stay numbers, other keys become text."""
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)


def plan(
    session: Session,
    collection: Collection,
    selection: Selection,
    batch_size: int,
    scoped: ScopedRows | None,
) -> list[tuple[Any, Any, list[Any] | None]]:
    """The batches of a selection as ``(low, high, ids)``: key ranges for ``inverseIds``
    (every ``batch_size``-th key of the selected rows ends one; the last ends at the largest
    key), chunks of the sorted ids for a selection that names its records."""
    if not selection.inverse:
        keys = sorted(selection.ids)
        return [
            (None, None, [_wire_key(key) for key in keys[start : start + batch_size]])
            for start in range(0, len(keys), batch_size)
        ]
    pk = collection.pk_attribute
    base = scoped.base if scoped is not None else sa.select(collection.model)
    if selection.ids:
        base = base.where(pk.not_in(selection.ids))
    numbered = base.with_only_columns(
        pk.label("key"), sa.func.row_number().over(order_by=pk).label("n")
    ).subquery()
    ends = list(
        session.scalars(
            sa.select(numbered.c.key).where(numbered.c.n % batch_size == 0).order_by(numbered.c.key)
        )
    )
    last = session.scalar(base.with_only_columns(sa.func.max(pk)))
    if last is not None and (not ends or last != ends[-1]):
        ends.append(last)
    lows: list[Any] = [None, *ends[:-1]]
    return [
        (_wire_key(low) if low is not None else None, _wire_key(high), None)
        for low, high in zip(lows, ends, strict=True)
    ]


def rows(
    session: Session,
    collection: Collection,
    selection: Selection,
    batch: Batch,
    scoped: ScopedRows | None,
    wide_integer_ids: bool,
) -> list[Any]:
    """The rows of ``batch`` the caller may touch, in key order; rows gone since planning
    are skipped."""
    pk = collection.pk_attribute
    statement = scoped.base if scoped is not None else sa.select(collection.model)
    parse = collection.parse_id
    if batch.ids is not None:
        statement = statement.where(pk.in_([parse(key, wide_integer_ids) for key in batch.ids]))
    else:
        high = parse(batch.high, wide_integer_ids)
        statement = statement.where(pk <= high)
        low = None if batch.low is None else parse(batch.low, wide_integer_ids)
        if low is not None:
            statement = statement.where(pk > low)
        excluded = [key for key in selection.ids if (low is None or key > low) and key <= high]
        if excluded:
            statement = statement.where(pk.not_in(excluded))
    return list(session.scalars(statement.order_by(pk)))


class BatchStore:
    """The batches of jobs, in :data:`BATCHES_TABLE`."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.table = batches_table(db.metadata)

    def add_in(
        self, session: Session, job_id: str, planned: Iterable[tuple[Any, Any, Any]]
    ) -> list[int]:
        """Store the planned batches of ``job_id`` in the session's transaction."""
        values = [
            {
                "job_id": job_id,
                "seq": seq,
                "low": low,
                "high": high,
                "ids": ids,
                "state": PENDING,
                "count": 0,
            }
            for seq, (low, high, ids) in enumerate(planned, start=1)
        ]
        if values:
            session.execute(self.table.insert(), values)
        return [value["seq"] for value in values]

    def planned(self, job_id: str) -> bool:
        """Whether ``job_id`` has its batches already."""
        table = self.table
        with self.db.engine.connect() as connection:
            return (
                connection.execute(
                    sa.select(table.c.seq).where(table.c.job_id == job_id).limit(1)
                ).first()
                is not None
            )

    def waiting(self, job_id: str) -> list[int]:
        """The batches of ``job_id`` still to run, in order."""
        table = self.table
        with self.db.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(table.c.seq)
                    .where(table.c.job_id == job_id, table.c.state == PENDING)
                    .order_by(table.c.seq)
                ).scalars()
            )

    def claim_in(self, session: Session, job_id: str, seq: int) -> Batch | None:
        """Lock a pending batch for this run (in the session's transaction, which runs it);
        None if it ran already. A second delivery of a batch another process is running
        waits for that run's end, and then finds the batch done (or pending again, if that
        run was rolled back)."""
        table = self.table
        statement = sa.select(table).where(
            table.c.job_id == job_id, table.c.seq == seq, table.c.state == PENDING
        )
        if session.get_bind().dialect.name != "sqlite":
            statement = statement.with_for_update()
        row = session.execute(statement).first()
        if row is None:
            return None
        ids = tuple(row.ids) if row.ids is not None else None
        return Batch(job_id, seq, row.low, row.high, ids)

    def finish_in(self, session: Session, batch: Batch, count: int) -> None:
        """Mark ``batch`` done with ``count`` records, in the transaction of its run."""
        table = self.table
        session.execute(
            table.update()
            .where(table.c.job_id == batch.job_id, table.c.seq == batch.seq)
            .values(state=DONE, count=count, error=None, finished_at=utcnow())
        )

    def fail(self, batch: Batch, error: str) -> None:
        """Mark ``batch`` failed, in a transaction of its own (its run was rolled back)."""
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(
                    table.c.job_id == batch.job_id,
                    table.c.seq == batch.seq,
                    table.c.state == PENDING,
                )
                .values(state=FAILED, error=error[:2000], finished_at=utcnow())
            )

    def retry(self, job_id: str) -> None:
        """Put the failed batches of ``job_id`` back in the queue's reach (pending again)."""
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.job_id == job_id, table.c.state == FAILED)
                .values(state=PENDING, error=None, finished_at=None)
            )

    def failed_any(self, job_id: str) -> bool:
        """Whether a batch of ``job_id`` failed (the job then stops)."""
        table = self.table
        with self.db.engine.connect() as connection:
            return (
                connection.execute(
                    sa.select(table.c.seq)
                    .where(table.c.job_id == job_id, table.c.state == FAILED)
                    .limit(1)
                ).first()
                is not None
            )

    def tally(self, job_id: str, count_running: bool = False) -> Tally:
        """Where the batches of ``job_id`` stand; with ``count_running``, which pending
        batches a process is running now (PostgreSQL: their rows are locked)."""
        table = self.table
        with self.db.engine.begin() as connection:
            found = connection.execute(
                sa.select(table.c.seq, table.c.state, table.c.count, table.c.error)
                .where(table.c.job_id == job_id)
                .order_by(table.c.seq)
            ).all()
            pending = [row.seq for row in found if row.state == PENDING]
            free = pending
            if count_running and pending and connection.dialect.name != "sqlite":
                # Pending batches whose rows another run has locked are running now.
                free = list(
                    connection.execute(
                        sa.select(table.c.seq)
                        .where(table.c.job_id == job_id, table.c.state == PENDING)
                        .with_for_update(skip_locked=True)
                    ).scalars()
                )
        return Tally(
            done=[row.seq for row in found if row.state == DONE],
            failed=[row.seq for row in found if row.state == FAILED],
            waiting=sorted(free),
            running=len(pending) - len(free),
            records=sum(row.count for row in found if row.state == DONE),
            errors={row.seq: row.error for row in found if row.state == FAILED and row.error},
        )

    def delete(self, job_ids: Sequence[str]) -> None:
        """Forget the batches of expired jobs."""
        if not job_ids:
            return
        table = self.table
        with self.db.engine.begin() as connection, no_wait(connection):
            connection.execute(table.delete().where(table.c.job_id.in_(list(job_ids))))


def ranges_text(seqs: Sequence[int]) -> str:
    """``1-3, 5, 7-9`` for the batch numbers ``seqs`` (sorted)."""
    parts: list[str] = []
    start = previous = None
    for seq in seqs:
        if start is None:
            start = previous = seq
        elif seq == previous + 1:  # type: ignore[operator]
            previous = seq
        else:
            parts.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = previous = seq
    if start is not None:
        parts.append(f"{start}" if start == previous else f"{start}-{previous}")
    return ", ".join(parts) or "none"
