"""``flask flexactions list|run``: the actions from the command line, through the Messages URL."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.http import parse_options_header
from werkzeug.test import TestResponse
from werkzeug.utils import secure_filename

from .client import LocalCaller, execute_params

#: Exit codes of ``flask flexactions run``.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}

AUTH_HELP = (
    "Authorization header to send, e.g. 'Bearer abc' for a custom authenticator "
    "(default: Token <FLEXACTIONS_TOKEN>)."
)

flexactions_cli = AppGroup(
    "flexactions",
    help="List and run Flex Actions. Every run goes through the Messages URL: the same "
    "authentication, validation and transaction as a request from the admin UI.",
)


def _caller(auth: str | None) -> LocalCaller:
    try:
        caller = LocalCaller(current_app.test_client(), auth)
    except RuntimeError as error:
        raise click.UsageError(str(error)) from None
    if not caller.authorization:
        raise click.UsageError(
            "No credential for the Messages URL: set FLEXACTIONS_TOKEN in the app's config, "
            "or pass --auth 'Scheme value' (or set FLEXACTIONS_CLI_AUTH) for a custom "
            "authenticator."
        )
    return caller


def _refused(response: TestResponse) -> NoReturn:
    """Report an answer that is not a 200 and exit: 2 for a 4xx (the request was wrong)."""
    data = response.get_json(silent=True)
    errors = data.get("errors") if isinstance(data, dict) else None
    text = "; ".join(m for ms in errors.values() for m in ms) if errors else response.status
    click.echo(f"Error {response.status_code}: {text}", err=True)
    sys.exit(EXIT_USAGE if 400 <= response.status_code < 500 else EXIT_FAILED)


def _action_list(caller: LocalCaller) -> list[dict[str, Any]]:
    response = caller.message("get_action_list")
    if response.status_code != 200:
        _refused(response)
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
    actions = _action_list(_caller(auth))
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


def _save(response: TestResponse, output: Path | None) -> bool:
    """Write a file answer to ``output``, or to its own file name in the current directory.

    :return: False when the answer is not a file (no attachment, no file name).
    """
    kind, options = parse_options_header(response.headers.get("Content-Disposition", ""))
    if kind != "attachment" and "filename" not in options:
        return False
    path = output
    if path is None:
        path = Path(secure_filename(options.get("filename", "")) or "answer.bin")
        if path.exists():
            click.echo(f"{path} exists; choose where to write with --output.", err=True)
            sys.exit(EXIT_FAILED)
    data = response.get_data()
    path.write_bytes(data)
    click.echo(f"Wrote {path} ({len(data)} bytes, {response.mimetype}).")
    return True


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
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write a file answer (default: its file name, never overwritten).",
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
    auth: str | None,
) -> None:
    """Run ACTION and print its answer as JSON; a file answer is written to disk.

    Exit code 0 when the answer is "result: true", 1 when it is "result: false" (invalid
    params, missing records, a business error) or the server failed, 2 for a usage error or a
    request the Messages URL refuses (unknown action, malformed ids, wrong credential).
    """
    if id_ is not None and (ids is not None or inverse):
        raise click.UsageError("Give either --id (a record action) or --ids/--inverse (bulk).")
    caller = _caller(auth)
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
        _refused(response)
    if _save(response, output):
        sys.exit(EXIT_OK)
    answer = response.get_json(silent=True)
    if not isinstance(answer, dict):
        # A handler may return any flask.Response; show what it sent.
        click.echo(response.get_data(as_text=True))
        sys.exit(EXIT_OK)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    sys.exit(EXIT_OK if answer.get("result") is True else EXIT_FAILED)
