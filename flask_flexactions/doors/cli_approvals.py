"""``flask flexactions approvals list|show|approve|reject|withdraw``: approval requests from the
command line, through the Messages URL like every other command."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from flask.cli import AppGroup

from .cli_answers import EXIT_FAILED, EXIT_OK, cli_caller, refused
from .client import LocalCaller

AUTH_HELP = (
    "Authorization header to send, e.g. 'Bearer abc' for a custom authenticator. Deciding "
    "needs a person's credential: the shared FLEXACTIONS_TOKEN (the default) may only look."
)
NO_CREDENTIAL = (
    "No credential for the Messages URL: pass --auth 'Scheme value' (or set "
    "FLEXACTIONS_CLI_AUTH), or set FLEXACTIONS_TOKEN to look without deciding."
)
JSON_HELP = "Print the Messages URL's answer as JSON."

approvals_cli = AppGroup(
    "approvals",
    help="List, show and decide requests to run actions that need approval (four eyes).",
)


def _answer(caller: LocalCaller, message: str, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of ``message``; a refusal exits (2 for a 4xx, 1 for a 5xx)."""
    response = caller.message(message, params)
    if response.status_code != 200:
        refused(response)
    answer = response.get_json(silent=True)
    if not isinstance(answer, dict):
        click.echo(f"Error: {message} answered without a JSON object.", err=True)
        sys.exit(EXIT_FAILED)
    return answer


def _records(approval: dict[str, Any]) -> str:
    count = approval.get("count")
    return "-" if count is None else str(count)


def _who(approval: dict[str, Any]) -> str:
    by = approval.get("requested_by") or {}
    return str(by.get("name") or by.get("id") or "-")


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))


@approvals_cli.command("list")
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def list_command(limit: int, as_json: bool, auth: str | None) -> None:
    """Print the pending requests you may decide (oldest first), then your own requests."""
    answer = _answer(cli_caller(auth, NO_CREDENTIAL), "list_approvals", {"limit": limit})
    if as_json:
        click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        sys.exit(EXIT_OK)
    to_decide, mine = answer.get("to_decide") or [], answer.get("mine") or []
    if to_decide:
        click.echo("Awaiting your decision:")
        rows = [("ID", "ACTION", "MODEL", "RECORDS", "REQUESTED BY", "EXPIRES")]
        rows += [
            (a["id"], a["action"], a["model"] or "-", _records(a), _who(a), a["expires_at"])
            for a in to_decide
        ]
        _table(rows)
    else:
        click.echo("Nothing awaits your decision.")
    if mine:
        click.echo("\nYour requests:")
        rows = [("ID", "STATE", "ACTION", "MODEL", "RECORDS", "REQUESTED AT")]
        rows += [
            (a["id"], a["state"], a["action"], a["model"] or "-", _records(a), a["created_at"])
            for a in mine
        ]
        _table(rows)
    sys.exit(EXIT_OK)


@approvals_cli.command("show")
@click.argument("approval_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def show_command(approval_id: str, as_json: bool, auth: str | None) -> None:
    """Print the request ID: what it runs on which records, who asked and why, the decisions,
    and a preview of its run computed now."""
    answer = _answer(cli_caller(auth, NO_CREDENTIAL), "get_approval", {"id": approval_id})
    approval = answer.get("approval") or {}
    if as_json:
        click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        sys.exit(EXIT_OK)
    where = f" on {approval['model']}" if approval.get("model") else ""
    ids = approval.get("ids")
    lines = [
        f"Request {approval.get('id')}: {approval.get('state')}",
        f"Action: {approval.get('label')}{where}",
    ]
    if ids is not None:
        more = "" if len(ids) == approval.get("count") else f" (of {approval.get('count')})"
        lines.append(f"Records: {', '.join(str(i) for i in ids)}{more}")
    lines.append(f"Params: {json.dumps(approval.get('params'), ensure_ascii=False)}")
    lines.append(f"Requested by {_who(approval)} at {approval.get('created_at')}")
    if approval.get("reason"):
        lines.append(f"Reason: {approval['reason']}")
    lines.append(f"Expires: {approval.get('expires_at')}")
    given = approval.get("approvals") or {}
    lines.append(f"Approvals: {given.get('given')} of {given.get('needed') or '?'}")
    for decision in approval.get("decisions") or []:
        by = decision.get("by") or {}
        comment = f": {decision['comment']}" if decision.get("comment") else ""
        name = by.get("name") or by.get("id")
        lines.append(f"  {decision.get('verdict')} by {name} at {decision.get('at')}{comment}")
    if approval.get("tampered"):
        lines.append("Altered in the database since it was made: it cannot be decided.")
    preview = approval.get("preview")
    if isinstance(preview, dict):
        if preview.get("result") is True:
            lines.append(f"Preview: {preview.get('message')}")
        else:
            errors = preview.get("errors") or {}
            text = "; ".join(m for ms in errors.values() for m in ms) or "it would fail"
            lines.append(f"Preview: would fail now: {text}")
    if "answer" in approval:
        lines.append(f"Answer: {json.dumps(approval['answer'], ensure_ascii=False)}")
    for line in lines:
        click.echo(line)
    sys.exit(EXIT_OK)


def _decide(message: str, approval_id: str, comment: str | None, auth: str | None) -> None:
    params: dict[str, Any] = {"id": approval_id}
    if comment is not None:
        params["comment"] = comment
    answer = _answer(cli_caller(auth, NO_CREDENTIAL), message, params)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(EXIT_OK if answer.get("result") is True else EXIT_FAILED)


COMMENT_HELP = "A comment kept with your decision (and in the audit log)."


@approvals_cli.command("approve")
@click.argument("approval_id", metavar="ID")
@click.option("--comment", "-c", help=COMMENT_HELP)
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def approve_command(approval_id: str, comment: str | None, auth: str | None) -> None:
    """Approve the request ID; the last approval needed runs the action and prints its
    answer. Exit code 1 when that run failed."""
    _decide("approve_action", approval_id, comment, auth)


@approvals_cli.command("reject")
@click.argument("approval_id", metavar="ID")
@click.option("--comment", "-c", help=COMMENT_HELP)
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def reject_command(approval_id: str, comment: str | None, auth: str | None) -> None:
    """Reject the request ID: it ends, and nothing runs."""
    _decide("reject_action", approval_id, comment, auth)


@approvals_cli.command("withdraw")
@click.argument("approval_id", metavar="ID")
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def withdraw_command(approval_id: str, auth: str | None) -> None:
    """Withdraw your own pending request ID: it ends, and nothing runs."""
    _decide("withdraw_approval", approval_id, None, auth)
