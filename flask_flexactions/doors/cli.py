"""``flask flexactions list|run|status|sweep|approvals``: the actions from the command line
(through the Messages URL), and the housekeeping of jobs and keys."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.test import TestResponse

from ..run.jobs import FINAL_STATES
from .cli_answers import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    check_output,
    cli_caller,
    finish_job,
    follow_job,
    job_status,
    print_job,
    refused,
    save_file,
)
from .cli_approvals import approvals_cli
from .client import LocalCaller, execute_params

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "flexactions_cli"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}

#: The usage error of a command run with no credential.
NO_CREDENTIAL = (
    "No credential for the Messages URL: set FLEXACTIONS_TOKEN in the app's config, "
    "or pass --auth 'Scheme value' (or set FLEXACTIONS_CLI_AUTH) for a custom "
    "authenticator."
)

AUTH_HELP = (
    "Authorization header to send, e.g. 'Bearer abc' for a custom authenticator "
    "(default: Token <FLEXACTIONS_TOKEN>)."
)

flexactions_cli = AppGroup(
    "flexactions",
    help="List and run Flex Actions. Every run goes through the Messages URL: the same "
    "authentication, validation and transaction as a request from the admin UI.",
)
flexactions_cli.add_command(approvals_cli)


def _action_list(caller: LocalCaller) -> list[dict[str, Any]]:
    response = caller.message("get_action_list")
    if response.status_code != 200:
        refused(response)
    actions: list[dict[str, Any]] = response.get_json()
    return actions


def _kind(action: dict[str, Any]) -> str:
    model_action = action.get("model_action")
    if model_action is None:
        return "common"
    if model_action["bulk"]:
        return "bulk"
    return "record" if model_action["for_instance"] else "collection"


def _collections(action: dict[str, Any]) -> list[str | None]:
    model_action = action.get("model_action")
    if model_action is None:
        return [None]
    model = model_action["model"]
    return list(model) if isinstance(model, list) else [model]


@flexactions_cli.command("list")
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def list_command(auth: str | None) -> None:
    """Print the actions as a table: name, collection, kind and params (* = required)."""
    actions = _action_list(cli_caller(auth, NO_CREDENTIAL))
    rows = [("NAME", "COLLECTION", "KIND", "PARAMS")]
    for action in actions:
        params = ", ".join(
            f"{p['name']}:{p['field']}{'*' if p['required'] else ''}" for p in action["params"]
        )
        for collection in _collections(action):
            rows.append((action["name"], collection or "-", _kind(action), params or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        click.echo("  ".join([*cells, row[3]]))
    if not actions:
        click.echo("No actions are registered.", err=True)


def _value(text: str, param: dict[str, Any]) -> Any:
    """The JSON value for ``--param name=text``: the wire types that are not text are converted;
    what cannot be converted is sent as it is, for the server to refuse as a field error."""
    field = param["field"]
    if field == "BooleanField" and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if field in {"FloatField", "TimestampField"}:
        try:
            number = float(text)
        except ValueError:
            return text
        if not math.isfinite(number):
            return text  # NaN and infinities are not JSON: the server refuses the text
        return int(number) if number.is_integer() and "." not in text else number
    if field == "JSONField":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if field == "SelectField":
        for option in param["params"].get("options", []):
            if str(option.get("value")) == text:
                return option["value"]
    return text


def _find(actions: list[dict[str, Any]], name: str, model: str | None) -> dict[str, Any] | None:
    for action in actions:
        if action["name"] == name and model in _collections(action):
            return action
    return None


def _user_params(
    action: dict[str, Any] | None, pairs: tuple[str, ...], json_params: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if json_params is not None:
        try:
            loaded = json.loads(json_params)
        except ValueError as error:
            message = f"not valid JSON: {error}"
            raise click.BadParameter(message, param_hint="--json-params") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--json-params")
        values.update(loaded)
    declared = {p["name"]: p for p in action["params"]} if action else {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        if action is not None and name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise click.BadParameter(
                f"the action {action['name']!r} has no param {name!r} (its params: {known})",
                param_hint="--param",
            )
        values[name] = _value(text, declared[name]) if name in declared else text
    return values


def _answered(response: TestResponse, output: Path | None, force: bool) -> NoReturn:
    """Print or save a synchronous answer and exit: 0 for ``result: true`` or a file."""
    if save_file(response, output, force):
        sys.exit(EXIT_OK)
    answer = response.get_json(silent=True)
    if not isinstance(answer, dict):
        # A handler may return any flask.Response; show what it sent.
        click.echo(response.get_data(as_text=True))
        sys.exit(EXIT_OK)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(EXIT_OK if answer.get("result") is True else EXIT_FAILED)


def _queued_job(response: TestResponse) -> dict[str, Any] | None:
    """The ``job`` of a background action's answer, or None for any other answer."""
    answer = response.get_json(silent=True)
    job = answer.get("job") if isinstance(answer, dict) else None
    if isinstance(job, dict) and isinstance(job.get("id"), str) and job["id"]:
        return job
    return None


def _finite(context: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # FloatRange lets NaN through (every comparison with it is false), and infinity past a min.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number of seconds.")
    return value


OUTPUT_HELP = (
    "Where to write a file answer; '-' writes it to stdout. Default: a new temporary folder, "
    "whose path is printed."
)
FORCE_HELP = "Overwrite the file named by --output if it exists."


@flexactions_cli.command("run")
@click.argument("action")
@click.option("--model", "-m", help="The collection's wire name (not for common actions).")
@click.option("--id", "id_", metavar="ID", help="The record of a record action.")
@click.option("--ids", help="The records of a bulk action, separated by commas.")
@click.option("--inverse", is_flag=True, help="All rows except --ids (inverseIds).")
@click.option(
    "--param",
    "-p",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="One param; repeat for more. Wins over --json-params.",
)
@click.option("--json-params", metavar="JSON", help="The params as a JSON object.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help=OUTPUT_HELP,
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option(
    "--wait",
    is_flag=True,
    help="For a background action: follow the job to its end with a progress bar, then "
    "print its answer as a run in the request would.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05, max=60),
    default=0.5,
    show_default=True,
    callback=_finite,
    metavar="SECONDS",
    help="With --wait: seconds between two status requests.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    callback=_finite,
    metavar="SECONDS",
    help="With --wait: stop waiting after this long (exit 2); the job goes on. Default: no limit.",
)
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def run_command(
    action: str,
    model: str | None,
    id_: str | None,
    ids: str | None,
    inverse: bool,
    pairs: tuple[str, ...],
    json_params: str | None,
    output: Path | None,
    force: bool,
    wait: bool,
    interval: float,
    timeout: float | None,
    auth: str | None,
) -> None:
    """Run ACTION and print its answer as JSON; a file answer is written to a file.

    Exit code 0 when the answer is "result: true", 1 when it is "result: false" (invalid
    params, missing records, a business error), the server failed or a waited-for job failed,
    2 for a usage error, a request the Messages URL refuses (unknown action, malformed ids,
    wrong credential) or a --timeout that ran out.
    """
    if id_ is not None and (ids is not None or inverse):
        raise click.UsageError("Give either --id (a record action) or --ids/--inverse (bulk).")
    check_output(output, force, "--output")
    caller = cli_caller(auth, NO_CREDENTIAL)
    declared = _find(_action_list(caller), action, model)
    message = execute_params(
        action,
        model,
        id=id_,
        ids=ids,
        inverse_ids=inverse,
        params=_user_params(declared, pairs, json_params),
    )
    response = caller.message("execute_action", message)
    if response.status_code != 200:
        refused(response)
    job = _queued_job(response)
    if job is None:
        _answered(response, output, force)
    if not wait:
        click.echo(json.dumps(response.get_json(), indent=2, ensure_ascii=False))
        if job.get("state") not in FINAL_STATES:
            click.echo(f"Follow the job with: flask flexactions status {job['id']}", err=True)
        sys.exit(EXIT_OK)
    final = follow_job(caller, job["id"], interval, timeout)
    sys.exit(finish_job(caller, final, output, force, asked=False))


@flexactions_cli.command("status")
@click.argument("job")
@click.option(
    "--download",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the file a finished job answered with to this path ('-' for stdout).",
)
@click.option("--force", is_flag=True, help="Overwrite the file named by --download if it exists.")
@click.option("--auth", envvar="FLEXACTIONS_CLI_AUTH", help=AUTH_HELP)
def status_command(job: str, download: Path | None, force: bool, auth: str | None) -> None:
    """Print the state and progress of the background job JOB and, once it is finished, its
    answer (with --download, its file).

    Exit code 0 when the job succeeded or is not finished yet, 1 when it failed, was
    cancelled or answered "result: false", 2 for a usage error or a request the Messages URL
    refuses (an unknown job).
    """
    check_output(download, force, "--download")
    caller = cli_caller(auth, NO_CREDENTIAL)
    current = job_status(caller, job)
    to_stderr = download is not None and str(download) == "-"
    print_job(current, err=to_stderr)
    sys.exit(finish_job(caller, current, download, force, asked=True))


@flexactions_cli.command("sweep")
def sweep_command() -> None:
    """Fail stale background jobs (their worker gone, or never started in time), expire
    approval requests and delete expired jobs, Idempotency-Keys and ended requests now, e.g.
    from cron. Requests and workers also sweep
    on their own, at most once per FLEXACTIONS_SWEEP_INTERVAL each."""
    state = current_app.extensions["flexactions"]
    counts = state.housekeeping.run()
    labels = {
        "lost": "running jobs whose worker is gone, failed",
        "never_started": "queued jobs no worker started, failed",
        "deleted": "expired jobs deleted",
        "expired_keys": "expired Idempotency-Keys deleted",
        "expired_approvals": "approval requests expired",
        "stale_approvals": "approved requests whose run never ended, failed",
        "deleted_approvals": "ended approval requests deleted",
    }
    for key, label in labels.items():
        if key in counts:
            click.echo(f"{counts[key]} {label}")
    sys.exit(EXIT_OK)


@flexactions_cli.command("mcp")
@click.option(
    "--auth",
    envvar=["FLEXACTIONS_MCP_AUTH", "FLEXACTIONS_CLI_AUTH"],
    help="Authorization header every tool call sends: the agent may run what this caller may "
    "(default: Token <FLEXACTIONS_TOKEN>, which may run every action). Also read from "
    "FLEXACTIONS_MCP_AUTH.",
)
def mcp_command(auth: str | None) -> None:
    """Serve the actions as MCP tools over stdio, for AI agents: one tool per action the
    caller may run, each call through the same checks, transaction and audit as the
    Messages URL. Needs the mcp extra: pip install 'flask-flexactions[mcp]'."""
    try:
        from .mcp import serve_stdio
    except ImportError as error:
        raise click.UsageError(
            f"The MCP door needs the mcp package ({error}): pip install 'flask-flexactions[mcp]'."
        ) from None
    caller = cli_caller(auth, NO_CREDENTIAL)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Check the credential now, on stderr: an MCP client shows a server that exits at once.
    response = caller.message("get_action_list")
    if response.status_code != 200:
        refused(response)
    serve_stdio(app, caller.authorization or "")
