"""``atomic=False`` bulk runs: each record in a SAVEPOINT of its own, with an outcome per id."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, has_app_context
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from ..errors import NON_FIELD_ERRORS, ActionError, ErrorDict, ProtocolError, validation_messages
from .answers import success_answer
from .outages import is_unavailable
from .progress import report_progress

#: The error of a record whose handler raised something unexpected; details go to the log.
RECORD_FAILED_MESSAGE = "The action failed on this record; the error has been logged."


def _wire_id(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _begin_driver_transaction(session: Session) -> None:
    """Make pysqlite open its transaction now: a SAVEPOINT that opens the transaction would
    commit everything when released (pysqlite only begins before DML by itself)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.dbapi_connection
    if driver is not None and not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql("BEGIN")


def run_per_record(
    session: Session,
    handler: Callable[..., Any],
    rows: Sequence[Any],
    params: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """Call ``handler([row], params)`` for each row in a SAVEPOINT and answer per id.

    A record whose handler raises or returns False is rolled back to its SAVEPOINT and reported
    with its errors; the others stay. If a SAVEPOINT itself cannot be opened or rolled back the
    exception propagates and the caller rolls the whole run back, so the records reported as
    done are always exactly the ones committed.
    """
    _begin_driver_transaction(session)
    _watch_savepoints(session.get_bind())
    setattr(g, SAVEPOINT_FAILED_KEY, False)
    records: list[dict[str, Any]] = []
    for row in rows:
        row_id = _wire_id(getattr(row, key))
        savepoint = session.begin_nested()
        session.connection()  # emit the SAVEPOINT now, not inside the handler's first query
        try:
            answer = success_answer(handler([row], params))
            if not isinstance(answer, dict):
                raise TypeError(
                    "An atomic=False action answers per record: return text, not a file."
                )
            if answer["result"] is False:
                raise ActionError("The action refused this record.")
            session.flush()
        except (ProtocolError, HTTPException):
            savepoint.rollback()
            raise
        except Exception as error:
            if is_unavailable(error):
                raise  # the database went away: no record's outcome can be trusted
            errors = _errors_of(error)
            savepoint.rollback()
            _check_savepoints()
            records.append({"id": row_id, "result": False, "errors": errors})
        else:
            savepoint.commit()
            _check_savepoints()
            records.append({"id": row_id, **answer})
        # In a background job, progress is the records done so far (a no-op otherwise).
        report_progress(len(records), len(rows), f"id {row_id}")
    return _summary(records)


#: Set in ``flask.g`` when a SAVEPOINT statement of this run failed.
SAVEPOINT_FAILED_KEY = "flexactions_savepoint_failed"
_SAVEPOINT_STATEMENTS = ("SAVEPOINT", "ROLLBACK TO SAVEPOINT", "RELEASE SAVEPOINT")


def _note_savepoint_failure(context: sa.engine.ExceptionContext) -> None:
    statement = (context.statement or "").lstrip().upper()
    if statement.startswith(_SAVEPOINT_STATEMENTS) and has_app_context():
        setattr(g, SAVEPOINT_FAILED_KEY, True)


def _watch_savepoints(engine: Any) -> None:
    """Listen once per engine for failed SAVEPOINT statements (errors only, so it costs
    nothing on the way that works)."""
    if not sa.event.contains(engine, "handle_error", _note_savepoint_failure):
        sa.event.listen(engine, "handle_error", _note_savepoint_failure)


def _check_savepoints() -> None:
    """Give up the whole run when a SAVEPOINT could not be opened, rolled back or released:
    SQLAlchemy may have recovered its own state, but what the database kept is unknown."""
    if g.get(SAVEPOINT_FAILED_KEY):
        raise RuntimeError("A SAVEPOINT statement failed; the whole run is rolled back.")


def _errors_of(error: Exception) -> ErrorDict:
    if isinstance(error, ActionError):
        return error.errors
    if isinstance(error, ValidationError):
        return validation_messages(error.messages)
    current_app.logger.exception("Flex action failed on one record")
    return {NON_FIELD_ERRORS: [RECORD_FAILED_MESSAGE]}


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [record["id"] for record in records if not record["result"]]
    done = len(records) - len(failed)
    answer: dict[str, Any] = {
        "result": not failed,
        "message": f"{done} of {len(records)} records done, {len(failed)} failed.",
        "records": records,
    }
    if failed:
        shown = ", ".join(str(value) for value in failed[:20])
        more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
        answer["errors"] = {NON_FIELD_ERRORS: [f"Failed on the ids {shown}{more}."]}
    return answer
