"""Dry runs: ``execute_action`` with ``"dry_run": true`` resolves everything and writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app
from werkzeug.wrappers import Response as BaseResponse

from ..errors import ProtocolError
from .answers import json_response
from .audit import Attempt

if TYPE_CHECKING:
    from ..declare.actions import Action

#: The audit outcome of a dry run.
DRY_RUN_OUTCOME = "dry_run"


def wants_dry_run(request_params: dict[str, Any]) -> bool:
    """Whether the ``execute_action`` params ask for a dry run (``"dry_run": true``)."""
    flag = request_params.get("dry_run")
    if flag is None or isinstance(flag, bool):
        return flag is True
    raise ProtocolError("dry_run must be true or false.")


def dry_run(
    session: Any,
    action: Action,
    arguments: tuple[Any, ...],
    attempt: Attempt,
) -> BaseResponse:
    """Answer what a run with ``arguments`` would do, from the action's ``preview``, and roll
    back whatever the preview wrote. The handler is never called.

    The caller releases an ``Idempotency-Key`` reserved for the request: a dry run must not
    answer for the real run that follows it.
    """
    try:
        summary = action.preview(*arguments) if action.preview is not None else None
        if summary is not None and not isinstance(summary, str):
            raise TypeError(
                f"The preview of {action.name!r} returned {type(summary).__name__}; "
                "return a str or None."
            )
    finally:
        _undo(session)
    count = _count(action, arguments)
    attempt.outcome = DRY_RUN_OUTCOME
    return json_response(
        {
            "result": True,
            "dry_run": True,
            "count": count,
            "message": summary if summary is not None else default_summary(action, count),
        }
    )


def default_summary(action: Action, count: int | None) -> str:
    """``Would run Block users on 3 records.``, or ``Would run Ping.`` without records."""
    title = action.label or action.name
    if action.batch_size is not None:
        return f"Would run {title} on the selected records, in batches of {action.batch_size}."
    if not action.for_instance:
        return f"Would run {title}."
    return f"Would run {title} on {count} record{'' if count == 1 else 's'}."


def _count(action: Action, arguments: tuple[Any, ...]) -> int | None:
    if action.batch_size is not None:
        return None  # a batched action's rows are counted by its worker, never in a request
    if action.bulk:
        return len(arguments[0])
    return 1 if action.for_instance else 0


def _undo(session: Any) -> None:
    try:
        session.rollback()
    except Exception:
        current_app.logger.exception("Rolling back after a Flex action dry run failed")
