"""Background actions: jobs queued on Celery, run once, with progress, cancel and a status."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..caller import Caller
from ..errors import FlexActionsError, NotFound, ProtocolError
from .answers import answer_values
from .batches import BatchStore
from .leases import HOST, utcnow, worker_gone
from .outages import is_unavailable
from .progress import CANCELLED, latest_progress
from .sealing import SecretBox

if TYPE_CHECKING:
    from ..declare.actions import Action
    from .selection import Selection

#: The table of jobs, added to the app's SQLAlchemy metadata.
JOBS_TABLE = "flexactions_jobs"
#: Job states; the last three are final.
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset(STATES[2:])
WORKER_LOST = "The worker running this job stopped; nothing it did was committed."
DATABASE_LOST = "The database went away while this job ran; nothing it did was committed."
NEVER_STARTED = "No worker started this job in time; nothing ran."
BATCHES_STALLED = (
    "No batch of this job started or committed in time (are its workers gone?); the batches "
    "that committed stay, and retry_action runs the rest."
)


#: What a finished job keeps of its request: nothing (values may hold secret params).
CLEARED_REQUEST: dict[str, Any] = {}


class RetryLater(FlexActionsError):
    """A database outage stopped a job's bookkeeping (starting it, or recording how its run
    ended); the Celery task retries later with :attr:`outcome` (None: start the job)."""

    def __init__(self, job_id: str, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(f"The database is unavailable; job {job_id} is retried later.")
        self.outcome = outcome


class JobLost(FlexActionsError):
    """A run finished after a redelivery of its task had already failed the job (its worker
    looked lost); the run is rolled back so that the job's answer stays true."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Job {job_id} was failed by a redelivery of its task while this run went on "
            "(the broker's visibility timeout is shorter than the job); rolled back."
        )


_now = utcnow


def jobs_table(metadata: sa.MetaData) -> sa.Table:
    """The jobs table in ``metadata``, defined on first use."""
    existing = metadata.tables.get(JOBS_TABLE)
    if existing is not None:
        return existing
    return sa.Table(
        JOBS_TABLE,
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255)),
        sa.Column("caller", sa.JSON, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False, default=0),
        sa.Column("total", sa.Integer),
        sa.Column("status_text", sa.String(255)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
        sa.Column("worker_pid", sa.Integer),
        sa.Column("worker_host", sa.String(255)),
        # Until when the running job's worker is known alive (see leases.py).
        sa.Column("lease_until", sa.DateTime),
        sa.Column("answer_status", sa.Integer),
        sa.Column("answer_headers", sa.JSON),
        sa.Column("answer_body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("expires_at", sa.DateTime, nullable=False, index=True),
    )


def caller_to_json(caller: Caller) -> dict[str, Any]:
    """What a job keeps of its caller: everything but a custom authenticator's ``user``
    object, which the worker cannot rebuild (claims only when they are plain JSON)."""
    try:
        claims = json.loads(json.dumps(dict(caller.claims)))
    except (TypeError, ValueError):
        claims = {}
    return {
        "id": caller.id,
        "name": caller.name,
        "roles": sorted(caller.roles),
        "superuser": caller.superuser,
        "read_only": caller.read_only,
        "scheme": caller.scheme,
        "claims": claims,
    }


def caller_from_json(data: Mapping[str, Any]) -> Caller:
    """The caller a job was queued by."""
    return Caller(
        id=data.get("id"),
        name=data.get("name"),
        roles=frozenset(data.get("roles") or ()),
        superuser=bool(data.get("superuser")),
        read_only=bool(data.get("read_only")),
        scheme=str(data.get("scheme") or "custom"),
        claims=MappingProxyType(dict(data.get("claims") or {})),
    )


class JobStore:
    """Creates, claims, finishes and answers for background jobs, kept in :data:`JOBS_TABLE`.

    :param lease: seconds a running job's worker is trusted alive without renewing its lease.
    :param queue_timeout: seconds a job may wait for a worker before it is failed.
    :param secrets: seals the secret params of queued jobs; None when no key is configured.
    """

    def __init__(
        self,
        db: Any,
        *,
        inline: bool,
        ttl: int,
        lease: int,
        queue_timeout: int,
        secrets: SecretBox | None,
    ) -> None:
        self.db = db
        self.inline = inline
        self.ttl = ttl
        self.lease = lease
        self.queue_timeout = queue_timeout
        self.secrets = secrets
        self.table = jobs_table(db.metadata)
        self.batches = BatchStore(db)
        #: The Celery tasks that run a job, plan a batched job and run one of its batches
        #: (see :func:`.worker.register_tasks`); None inline.
        self.task: Any = None
        self.plan_task: Any = None
        self.batch_task: Any = None

    @property
    def available(self) -> bool:
        """Whether background actions can run: on Celery, or inline."""
        return self.task is not None or self.inline

    # Queueing, in the request

    def create_in(
        self,
        session: Any,
        action: Action,
        model: str | None,
        caller: Caller,
        selection: Selection | None,
        values: Mapping[str, Any],
        door: str,
    ) -> str:
        """Add a queued job inside the request's transaction; returns its id. It keeps what
        its worker needs to read the request again: the selection, the values and the door.

        The values of secret params are sealed (see :mod:`.sealing`), never stored as sent.
        """
        job_id = uuid.uuid4().hex
        now = _now()
        secret = action.params.secret_names
        kept: dict[str, Any] = {
            "selection": selection.wire() if selection is not None else None,
            "values": {k: v for k, v in values.items() if k not in secret},
            "door": door,
        }
        sealed = {k: v for k, v in values.items() if k in secret}
        if sealed:
            if self.secrets is None:  # check_registrations refuses such actions at start-up
                raise RuntimeError("A job with secret params needs FLEXACTIONS_SECRET_KEY.")
            kept["sealed"] = self.secrets.seal(sealed)
        session.execute(
            self.table.insert().values(
                id=job_id,
                action=action.name,
                model=model,
                caller=caller_to_json(caller),
                request=kept,
                state="queued",
                done=0,
                cancel_requested=False,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.ttl),
            )
        )
        return job_id

    def dispatch(self, job_id: str, batched: bool = False) -> None:
        """Hand the committed job to Celery (a batched job to its planning task)."""
        task = self.plan_task if batched else self.task
        if task is None:  # check_registrations refuses background actions without one
            raise RuntimeError("Background jobs run inline here: no Celery task to queue on.")
        task.apply_async((job_id,))

    def dispatch_batches(self, job_id: str, seqs: list[int]) -> None:
        """Hand each batch of a planned job to Celery, as one group of tasks."""
        if self.batch_task is None or not seqs:
            return
        from celery import group

        group(self.batch_task.s(job_id, seq) for seq in seqs).apply_async()

    def request_values(self, row: Any) -> dict[str, Any]:
        """The values a job was queued with, its secret params unsealed."""
        values = dict(row.request.get("values") or {})
        sealed = row.request.get("sealed")
        if sealed:
            if self.secrets is None:
                raise RuntimeError("This job has secret params but no FLEXACTIONS_SECRET_KEY.")
            values.update(self.secrets.open(sealed))
        return values

    def fail(self, job_id: str, message: str) -> None:
        """Mark a job failed with ``message`` as its answer, in a transaction of its own."""
        self._finish(job_id, "failed", *_message_answer(message))

    # Running, in the worker

    def get(self, job_id: str) -> Any:
        """The job's row, or None."""
        with self.db.engine.connect() as connection:
            return connection.execute(
                sa.select(self.table).where(self.table.c.id == job_id)
            ).one_or_none()

    def claim_batched(self, job_id: str) -> Any:
        """Start a batched job (queued -> running) and return its row, also when it runs
        already (a redelivered plan); None when it is unknown or final. No single process
        runs a batched job: its lease is renewed by its batches (see :meth:`progress_in`)."""
        table = self.table
        try:
            with self.db.engine.begin() as connection:
                connection.execute(
                    table.update()
                    .where(table.c.id == job_id, table.c.state == "queued")
                    .values(state="running", started_at=_now(), lease_until=self._batch_lease())
                )
                row = connection.execute(sa.select(table).where(table.c.id == job_id)).one_or_none()
        except Exception as error:
            if is_unavailable(error):
                raise RetryLater(job_id) from error
            raise
        return row if row is not None and row.state == "running" else None

    def plan_in(self, session: Any, job_id: str, total: int) -> None:
        """Record a batched job's number of records, in the transaction that plans it."""
        session.execute(
            self.table.update()
            .where(self.table.c.id == job_id)
            .values(total=total, done=0, lease_until=self._batch_lease())
        )

    def progress_in(self, session: Any, job_id: str, count: int) -> None:
        """Add a committed batch's records to the job's progress and renew its lease, in the
        batch's transaction; :class:`JobLost` when the job ended meanwhile (cancelled or
        failed): the batch then rolls back."""
        table = self.table
        counted = session.execute(
            table.update()
            .where(table.c.id == job_id, table.c.state == "running")
            .values(done=table.c.done + count, lease_until=self._batch_lease())
        ).rowcount
        if counted != 1:
            raise JobLost(job_id)

    def end_batched(
        self, job_id: str, state: str, answer: Mapping[str, Any], keep_request: bool
    ) -> bool:
        """End a running batched job with ``answer`` (a JSON object); True if this call ended
        it. A failed or cancelled job keeps its request, so a retry can run the rest."""
        body = current_app.json.dumps(dict(answer)).encode()
        values = _final_values(state, 200, {"Content-Type": "application/json"}, body)
        if keep_request:
            del values["request"]
        with self.db.engine.begin() as connection:
            return bool(
                connection.execute(
                    self.table.update()
                    .where(self.table.c.id == job_id, self.table.c.state == "running")
                    .values(**values)
                ).rowcount
            )

    def reopen(self, job_id: Any, caller: Caller) -> Any:
        """Put a failed or cancelled batched job back to running, for a retry of the batches
        that did not commit; its row, or a ProtocolError saying why not."""
        row = self._row(job_id, caller)
        if row.state not in ("failed", "cancelled") or not row.request:
            raise ProtocolError(
                "Only a batched job that failed or was cancelled can be retried.", status=409
            )
        self.batches.retry(row.id)
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.id == row.id, table.c.state.in_(("failed", "cancelled")))
                .values(
                    state="running",
                    cancel_requested=False,
                    finished_at=None,
                    answer_status=None,
                    answer_headers=None,
                    answer_body=None,
                    lease_until=self._batch_lease(),
                )
            )
        return row

    def _batch_lease(self) -> dt.datetime:
        # Batches may wait in the queue behind others: a batched job is lost only when no
        # batch started or committed for as long as a job may wait for a worker.
        return _now() + dt.timedelta(seconds=max(self.lease, self.queue_timeout))

    def claim(self, job_id: str) -> Any:
        """Claim a queued job for this process and return its row; None if there is nothing
        to run (unknown, final, or running elsewhere: failed here if its worker is gone). A
        job is never run twice. A database outage raises :class:`RetryLater`; the job stays
        queued."""
        try:
            return self._claim(job_id)
        except Exception as error:
            if is_unavailable(error):
                raise RetryLater(job_id) from error
            raise

    def _claim(self, job_id: str) -> Any:
        table = self.table
        now = _now()
        with self.db.engine.begin() as connection:
            started = connection.execute(
                table.update()
                .where(table.c.id == job_id, table.c.state == "queued")
                .values(
                    state="running",
                    started_at=now,
                    worker_pid=os.getpid(),
                    worker_host=HOST,
                    lease_until=now + dt.timedelta(seconds=self.lease),
                )
            ).rowcount
            row = connection.execute(sa.select(table).where(table.c.id == job_id)).one_or_none()
        if row is not None and started:
            return row
        if row is not None and row.state == "running" and worker_gone(row, now):
            # Redelivered after its worker died: the first run's transaction is gone.
            self._settle(row, now)
        return None

    def finish_in(self, session: Any, job_id: str, response: BaseResponse) -> None:
        """Store a successful answer inside the run's transaction.

        Raises :class:`JobLost` when the job is no longer running (its worker was declared
        gone meanwhile): the run then rolls back, so the job's verdict stays true.
        """
        stored = session.execute(
            self.table.update()
            .where(self.table.c.id == job_id, self.table.c.state == "running")
            .values(
                state="succeeded",
                finished_at=_now(),
                lease_until=None,
                request=CLEARED_REQUEST,
                **latest_progress(),
                **answer_values(response),
            )
        ).rowcount
        if stored != 1:
            raise JobLost(job_id)

    def finish(self, job_id: str, state: str, response: BaseResponse) -> None:
        """Store the answer of a run that was rolled back, in a transaction of its own; a
        database outage raises :class:`RetryLater` carrying that answer."""
        values = answer_values(response)
        outcome = {
            "state": state,
            "status": values["answer_status"],
            "headers": values["answer_headers"],
            "body": values["answer_body"].decode("utf-8", "replace"),
        }
        self.record(job_id, outcome)

    def record(self, job_id: str, outcome: Mapping[str, Any]) -> None:
        """Store how a run ended (see :meth:`finish`); retried by the task after an outage."""
        try:
            self._finish(
                job_id,
                outcome["state"],
                outcome["status"],
                outcome["headers"],
                outcome["body"].encode("utf-8"),
            )
        except Exception as error:
            if is_unavailable(error):
                raise RetryLater(job_id, dict(outcome)) from error
            raise

    def _finish(
        self, job_id: str, state: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(
                self.table.update()
                .where(self.table.c.id == job_id, self.table.c.state.not_in(FINAL_STATES))
                .values(**_final_values(state, status, headers, body))
            )

    # Stale jobs

    def sweep(self, limit: int = 1000) -> dict[str, int]:
        """Fail running jobs whose worker is gone (lease run out) and queued jobs no worker
        started within the queue timeout, then delete up to ``limit`` expired final jobs.
        Returns how many of each."""
        table = self.table
        now = _now()
        waited = now - dt.timedelta(seconds=self.queue_timeout)
        batched = sa.exists().where(self.batches.table.c.job_id == table.c.id)
        lost = (table.c.state == "running") & (table.c.lease_until < now)
        counts = {}
        for name, condition, message, keep_request in (
            ("lost", lost & ~batched, WORKER_LOST, False),
            ("lost_batched", lost & batched, BATCHES_STALLED, True),
            (
                "never_started",
                (table.c.state == "queued") & (table.c.created_at < waited),
                NEVER_STARTED,
                False,
            ),
        ):
            stale = sa.select(table.c.id).where(condition).limit(limit)
            values = _final_values("failed", *_message_answer(message))
            if keep_request:
                del values["request"]  # retry_action runs the batches that did not commit
            with self.db.engine.begin() as connection:
                counts[name] = connection.execute(
                    table.update().where(table.c.id.in_(stale), condition).values(**values)
                ).rowcount
        counts["lost"] += counts.pop("lost_batched")
        with self.db.engine.begin() as connection:
            expired = list(
                connection.execute(
                    sa.select(table.c.id)
                    .where(table.c.state.in_(FINAL_STATES), table.c.expires_at < now)
                    .limit(limit)
                ).scalars()
            )
            counts["deleted"] = connection.execute(
                table.delete().where(table.c.id.in_(expired))
            ).rowcount
        self.batches.delete(expired)
        return counts

    def _settle(self, row: Any, now: dt.datetime) -> bool:
        """Fail the job ``row`` if it is stale (its worker gone, or never started in time);
        returns whether it was failed here."""
        table = self.table
        keep_request = False
        if row.state == "running" and worker_gone(row, now):
            message = WORKER_LOST
            if self.batches.planned(row.id):
                message, keep_request = BATCHES_STALLED, True
            # The same start only: a newer lease or another run is left alone.
            condition = (table.c.state == "running") & (table.c.started_at == row.started_at)
        elif row.state == "queued" and row.created_at < now - dt.timedelta(
            seconds=self.queue_timeout
        ):
            message, condition = NEVER_STARTED, table.c.state == "queued"
        else:
            return False
        values = _final_values("failed", *_message_answer(message))
        if keep_request:
            del values["request"]  # retry_action runs the batches that did not commit
        with self.db.engine.begin() as connection:
            return bool(
                connection.execute(
                    table.update().where(table.c.id == row.id, condition).values(**values)
                ).rowcount
            )

    # Status and cancel, in the request

    def _row(self, job_id: Any, caller: Caller) -> Any:
        if not isinstance(job_id, str) or not job_id:
            raise ProtocolError('This message needs params.job, the job id "execute_action" gave.')
        query = sa.select(self.table).where(self.table.c.id == job_id[:64])
        with self.db.engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        if row is None or not _owns(caller, row.caller):
            raise NotFound(f"Unknown job {job_id[:64]!r}.")
        if row.state not in FINAL_STATES and self._settle(row, _now()):
            with self.db.engine.connect() as connection:
                row = connection.execute(query).one()
        return row

    def status(self, job_id: Any, caller: Caller, download: bool) -> BaseResponse:
        """The job's state and progress, with its answer once finished; with ``download``
        the file a finished job answered with."""
        row = self._row(job_id, caller)
        if download:
            headers = row.answer_headers or {}
            if row.state != "succeeded" or not _answered_a_file(headers):
                raise ProtocolError("This job has no file to download (yet).", status=409)
            return current_app.response_class(
                row.answer_body, status=row.answer_status, headers=headers
            )
        payload = {"result": True, "job": _job_status(row)}
        return current_app.response_class(
            current_app.json.dumps(payload), mimetype="application/json"
        )

    def settled_answer(self, job_id: str, queued: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to a request whose job already ran (inline): the ``queued`` answer
        with the job's true state, and its outcome in front (``result``, ``message`` or
        ``errors``) so the admin UI shows what happened."""
        with self.db.engine.connect() as connection:
            row = connection.execute(sa.select(self.table).where(self.table.c.id == job_id)).one()
        job = _job_status(row)
        answer = job.get("answer") or {}
        if row.state == "succeeded":
            settled: dict[str, Any] = {"result": answer.get("result", True) is not False}
            for key in ("message", "html", "errors"):
                if key in answer:
                    settled[key] = answer[key]
            settled.setdefault("message", queued.get("message"))
        elif row.state in FINAL_STATES:
            settled = {"result": False, "errors": answer.get("errors") or {}}
        else:
            settled = dict(queued)
        return {**settled, "job": job}

    def cancel(self, job_id: Any, caller: Caller) -> BaseResponse:
        """Cancel a queued job now, or ask a running one to stop at its next progress report."""
        row = self._row(job_id, caller)
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.id == row.id, table.c.state == "queued")
                .values(**_final_values("cancelled", *_message_answer(CANCELLED)))
            )
            connection.execute(
                table.update()
                .where(table.c.id == row.id, table.c.state == "running")
                .values(cancel_requested=True)
            )
        return self.status(row.id, caller, download=False)


def _message_answer(message: str) -> tuple[int, dict[str, str], bytes]:
    """A job's answer that carries one error message: status, headers and body."""
    body = current_app.json.dumps({"result": False, "errors": {"non_field_errors": [message]}})
    return 200, {"Content-Type": "application/json"}, body.encode()


def _final_values(state: str, status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The columns of a job that ends in ``state`` with this answer: its request is
    forgotten (values may hold secret params) and its lease ends."""
    return {
        "state": state,
        "finished_at": _now(),
        "lease_until": None,
        "request": CLEARED_REQUEST,
        **latest_progress(),
        "answer_status": status,
        "answer_headers": headers,
        "answer_body": body,
    }


def _owns(caller: Caller, queued_by: Mapping[str, Any]) -> bool:
    if caller.superuser:
        return True
    if caller.id is None:
        return False
    return caller.scheme == queued_by.get("scheme") and caller.id == queued_by.get("id")


def _answered_a_file(headers: Mapping[str, str]) -> bool:
    content_type = headers.get("Content-Type", "")
    return "Content-Disposition" in headers or not content_type.startswith("application/json")


def _job_status(row: Any) -> dict[str, Any]:
    """What ``get_action_status`` tells of a job: its state and progress, and once it is
    final its answer, or a description of the file it answered."""
    job = _job_json(row)
    if row.state in FINAL_STATES and row.answer_body is not None:
        headers = row.answer_headers or {}
        if _answered_a_file(headers):
            job["file"] = {
                "name": headers.get("Content-Disposition"),
                "content_type": headers.get("Content-Type"),
                "size": len(row.answer_body),
            }
        else:
            job["answer"] = current_app.json.loads(row.answer_body)
    return job


def _job_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "action": row.action,
        "model": row.model,
        "progress": {"done": row.done, "total": row.total, "status": row.status_text},
        "cancel_requested": bool(row.cancel_requested),
    }
