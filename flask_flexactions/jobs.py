"""Background actions: jobs queued on Celery, run once, with progress, cancel and a status."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, g
from werkzeug.wrappers import Response as BaseResponse

from .caller import CALLER_KEY, Caller
from .errors import FlexActionsError, NotFound, ProtocolError

if TYPE_CHECKING:
    from .actions import Action

#: The table of jobs, added to the app's SQLAlchemy metadata.
JOBS_TABLE = "flexactions_jobs"
#: The Celery task that runs a job.
TASK_NAME = "flask_flexactions.run_job"
#: Job states; the last three are final.
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset(STATES[2:])
#: Where the running job is kept in ``flask.g`` for :func:`report_progress`.
JOB_KEY = "flexactions_job"
#: Seconds between two progress writes (the last one is always written).
PROGRESS_INTERVAL = 0.2

WORKER_LOST = "The worker running this job stopped; nothing it did was committed."
CANCELLED = "Cancelled; nothing was committed."


#: What a finished job keeps of its request: nothing (values may hold secret params).
CLEARED_REQUEST: dict[str, Any] = {}


class JobCancelled(FlexActionsError):
    """Raised by :func:`report_progress` when the job was asked to stop; do not catch it."""


class JobLost(FlexActionsError):
    """A run finished after a redelivery of its task had already failed the job (its worker
    looked lost); the run is rolled back so that the job's answer stays true."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Job {job_id} was failed by a redelivery of its task while this run went on "
            "(the broker's visibility timeout is shorter than the job); rolled back."
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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


def report_progress(done: int, total: int | None = None, status: str | None = None) -> None:
    """Report how far a background action is: ``done`` of ``total``, and a short text.

    Outside a background job it does nothing, so one handler serves both ways. Writes are
    throttled; when the job was asked to stop it raises :class:`JobCancelled`, which rolls the
    run back.
    """
    job: _RunningJob | None = g.get(JOB_KEY)
    if job is None:
        return
    job.report(done, total, status)


@dataclasses.dataclass
class _RunningJob:
    store: JobStore
    id: str
    last_write: float = 0.0
    #: The last progress reported, written with the answer even if SQLite skipped it.
    latest: dict[str, Any] = dataclasses.field(default_factory=dict)

    def report(self, done: int, total: int | None, status: str | None) -> None:
        self.latest.update(done=int(done), total=total)
        if status is not None:
            self.latest["status_text"] = str(status)[:255]
        now = time.monotonic()
        if now - self.last_write < PROGRESS_INTERVAL and (total is None or done < total):
            return
        self.last_write = now
        values = dict(self.latest)
        table = self.store.table
        engine = self.store.db.engine
        if isinstance(engine.pool, (sa.pool.StaticPool, sa.pool.SingletonThreadPool)):
            # One shared connection (in-memory SQLite): a second one would end the run's own
            # transaction. The progress is stored with the answer instead.
            return
        with engine.connect() as connection:
            try:
                with _no_wait(connection):
                    connection.execute(table.update().where(table.c.id == self.id).values(**values))
                    connection.commit()
            except sa.exc.OperationalError:
                # SQLite while this run holds the write lock: progress is best effort there.
                connection.rollback()
            cancel = connection.execute(
                sa.select(table.c.cancel_requested).where(table.c.id == self.id)
            ).scalar()
        if cancel:
            raise JobCancelled(CANCELLED)


@contextlib.contextmanager
def _no_wait(connection: sa.Connection) -> Iterator[None]:
    """On SQLite, fail at once instead of waiting for the lock the run itself holds."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    connection.exec_driver_sql("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")


class JobStore:
    """Creates, runs and answers for background jobs, kept in :data:`JOBS_TABLE`."""

    def __init__(self, db: Any, celery: Any, inline: bool, ttl: int) -> None:
        self.db = db
        self.celery = celery
        self.inline = inline
        self.ttl = ttl
        self.table = jobs_table(db.metadata)
        self.task = (
            celery.task(
                name=TASK_NAME,
                bind=True,
                acks_late=True,
                reject_on_worker_lost=True,
                ignore_result=True,
            )(_run_job_task)
            if celery is not None
            else None
        )

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
        request_params: Mapping[str, Any],
        values: Mapping[str, Any],
        caller: Caller,
    ) -> str:
        """Add a queued job inside the request's transaction; returns its id."""
        job_id = uuid.uuid4().hex
        now = _now()
        selection = {
            k: request_params[k] for k in ("id", "ids", "inverseIds") if k in request_params
        }
        session.execute(
            self.table.delete().where(
                self.table.c.expires_at < now, self.table.c.state.in_(FINAL_STATES)
            )
        )
        session.execute(
            self.table.insert().values(
                id=job_id,
                action=action.name,
                model=model,
                caller=caller_to_json(caller),
                request={"selection": selection, "values": dict(values)},
                state="queued",
                done=0,
                cancel_requested=False,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.ttl),
            )
        )
        return job_id

    def dispatch(self, job_id: str) -> None:
        """Hand the committed job to Celery (or run it now, inline)."""
        if self.task is not None and not self.inline:
            self.task.apply_async((job_id,))
        else:
            self.run(job_id)

    def fail(self, job_id: str, message: str) -> None:
        """Mark a job failed with ``message`` as its answer, in a transaction of its own."""
        body = current_app.json.dumps(
            {"result": False, "errors": {"non_field_errors": [message]}}
        ).encode()
        self._finish(job_id, "failed", 200, {"Content-Type": "application/json"}, body)

    # Running, in the worker

    def run(self, job_id: str) -> None:
        """Run a queued job once; a job that was already started is failed, never rerun."""
        table = self.table
        with self.db.engine.begin() as connection:
            started = connection.execute(
                table.update()
                .where(table.c.id == job_id, table.c.state == "queued")
                .values(state="running", started_at=_now(), worker_pid=os.getpid())
            ).rowcount
            row = connection.execute(sa.select(table).where(table.c.id == job_id)).one_or_none()
        if row is None or not started:
            if row is not None and row.state == "running":
                # Redelivered after its worker died: the first run's transaction is gone.
                self.fail(job_id, WORKER_LOST)
            return
        from .execution import run_job

        setattr(g, CALLER_KEY, caller_from_json(row.caller))
        setattr(g, JOB_KEY, _RunningJob(self, job_id))
        try:
            run_job(current_app.extensions["flexactions"], self, row)
        finally:
            g.pop(JOB_KEY, None)

    def finish_in(self, session: Any, job_id: str, response: BaseResponse) -> None:
        """Store a successful answer inside the run's transaction.

        Raises :class:`JobLost` when the job is no longer running (a redelivery declared
        its worker lost): the run then rolls back, so the job's verdict stays true.
        """
        stored = session.execute(
            self.table.update()
            .where(self.table.c.id == job_id, self.table.c.state == "running")
            .values(
                state="succeeded",
                finished_at=_now(),
                request=CLEARED_REQUEST,
                **_latest_progress(),
                **_answer_values(response),
            )
        ).rowcount
        if stored != 1:
            raise JobLost(job_id)

    def finish(self, job_id: str, state: str, response: BaseResponse) -> None:
        """Store the answer of a run that was rolled back, in a transaction of its own."""
        values = _answer_values(response)
        self._finish(
            job_id,
            state,
            values["answer_status"],
            values["answer_headers"],
            values["answer_body"],
        )

    def _finish(
        self, job_id: str, state: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(
                self.table.update()
                .where(self.table.c.id == job_id, self.table.c.state.not_in(FINAL_STATES))
                .values(
                    state=state,
                    finished_at=_now(),
                    request=CLEARED_REQUEST,
                    **_latest_progress(),
                    answer_status=status,
                    answer_headers=headers,
                    answer_body=body,
                )
            )

    # Status and cancel, in the request

    def _row(self, job_id: Any, caller: Caller) -> Any:
        if not isinstance(job_id, str) or not job_id:
            raise ProtocolError('This message needs params.job, the job id "execute_action" gave.')
        with self.db.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.table).where(self.table.c.id == job_id[:64])
            ).one_or_none()
        if row is None or not _owns(caller, row.caller):
            raise NotFound(f"Unknown job {job_id[:64]!r}.")
        return row

    def status(self, job_id: Any, caller: Caller, download: bool) -> BaseResponse:
        """The job's state and progress, with its answer once finished; with ``download``
        the file a finished job answered with."""
        row = self._row(job_id, caller)
        headers = row.answer_headers or {}
        content_type = headers.get("Content-Type", "")
        is_file = "Content-Disposition" in headers or not content_type.startswith(
            "application/json"
        )
        if download:
            if row.state != "succeeded" or not is_file:
                raise ProtocolError("This job has no file to download (yet).", status=409)
            return current_app.response_class(
                row.answer_body, status=row.answer_status, headers=headers
            )
        payload: dict[str, Any] = {"result": True, "job": _job_json(row)}
        if row.state in FINAL_STATES and row.answer_body is not None:
            if is_file:
                payload["job"]["file"] = {
                    "name": headers.get("Content-Disposition"),
                    "content_type": headers.get("Content-Type"),
                    "size": len(row.answer_body),
                }
            else:
                payload["job"]["answer"] = current_app.json.loads(row.answer_body)
        return current_app.response_class(
            current_app.json.dumps(payload), mimetype="application/json"
        )

    def cancel(self, job_id: Any, caller: Caller) -> BaseResponse:
        """Cancel a queued job now, or ask a running one to stop at its next progress report."""
        row = self._row(job_id, caller)
        table = self.table
        with self.db.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.id == row.id, table.c.state == "queued")
                .values(
                    state="cancelled",
                    finished_at=_now(),
                    request=CLEARED_REQUEST,
                    answer_status=200,
                    answer_headers={"Content-Type": "application/json"},
                    answer_body=current_app.json.dumps(
                        {"result": False, "errors": {"non_field_errors": [CANCELLED]}}
                    ).encode(),
                )
            )
            connection.execute(
                table.update()
                .where(table.c.id == row.id, table.c.state == "running")
                .values(cancel_requested=True)
            )
        return self.status(row.id, caller, download=False)


def _latest_progress() -> dict[str, Any]:
    job: _RunningJob | None = g.get(JOB_KEY)
    return dict(job.latest) if job is not None else {}


def _owns(caller: Caller, queued_by: Mapping[str, Any]) -> bool:
    if caller.superuser:
        return True
    if caller.id is None:
        return False
    return caller.scheme == queued_by.get("scheme") and caller.id == queued_by.get("id")


def _job_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "action": row.action,
        "model": row.model,
        "progress": {"done": row.done, "total": row.total, "status": row.status_text},
        "cancel_requested": bool(row.cancel_requested),
    }


def _answer_values(response: BaseResponse) -> dict[str, Any]:
    response.direct_passthrough = False
    headers = {
        key: response.headers[key]
        for key in ("Content-Type", "Content-Disposition")
        if key in response.headers
    }
    return {
        "answer_status": response.status_code,
        "answer_headers": headers,
        "answer_body": response.get_data(),
    }


def _run_job_task(task: Any, job_id: str) -> None:
    """The Celery task: run the job inside the app context the app's Celery Task pushes."""
    from flask import has_app_context

    if not has_app_context():
        raise RuntimeError(
            "flask_flexactions jobs need the Flask app context in the worker: give your Celery "
            "app a Task class that pushes app.app_context() (see the Flask docs, 'Background "
            "Tasks with Celery')."
        )
    current_app.extensions["flexactions"].jobs.run(job_id)
