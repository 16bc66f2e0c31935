"""What the command line does with the Messages URL's answers: refusals and exit codes, and
file answers written only where the user says."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click
from werkzeug.http import parse_options_header
from werkzeug.test import TestResponse
from werkzeug.utils import secure_filename

#: Exit codes of the commands: 0 done; 1 the action or the server failed; 2 a usage error or a
#: request the Messages URL refused.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The name of a file answer whose ``Content-Disposition`` gives none that is safe.
DEFAULT_FILE_NAME = "answer.bin"
#: The prefix of the temporary folders file answers go to when no path is given.
TEMP_PREFIX = "flexactions-"


def refused(response: TestResponse) -> NoReturn:
    """Report an answer that is not a 200 and exit: 2 for a 4xx (the request was wrong)."""
    data = response.get_json(silent=True)
    errors = data.get("errors") if isinstance(data, dict) else None
    text = "; ".join(m for ms in errors.values() for m in ms) if errors else response.status
    click.echo(f"Error {response.status_code}: {text}", err=True)
    sys.exit(EXIT_USAGE if 400 <= response.status_code < 500 else EXIT_FAILED)


def _usage_error(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _is_stdout(path: Path) -> bool:
    return str(path) == "-"


def check_output(path: Path | None, force: bool, option: str) -> None:
    """Refuse, before anything runs, a file that exists (unless ``force``) or whose folder does
    not: a usage error, exit 2."""
    if path is None or _is_stdout(path):
        return
    if path.exists() and not force:
        raise click.BadParameter(
            f"{path} exists; pass --force to overwrite it, or choose another path.",
            param_hint=option,
        )
    if not path.parent.is_dir():
        raise click.BadParameter(f"the folder {path.parent} does not exist.", param_hint=option)


def save_file(response: TestResponse, output: Path | None, force: bool) -> bool:
    """Write a file answer where the user said: ``output``, ``-`` for stdout, or by default
    under its own (sanitised) name in a new private temporary folder, whose path is printed.

    Never the current folder: a command run in a repository must not leave files in it.
    ``output`` is written only if it does not exist, unless ``force``. When it cannot be
    written, the answer goes to a temporary folder instead, and the exit code is 2.

    :return: False when the answer is not a file (no attachment, no file name).
    """
    kind, options = parse_options_header(response.headers.get("Content-Disposition", ""))
    if kind != "attachment" and "filename" not in options:
        return False
    data = response.get_data()
    if output is not None and _is_stdout(output):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return True
    name = secure_filename(options.get("filename", "")) or DEFAULT_FILE_NAME
    path = output if output is not None else Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / name
    try:
        with path.open("wb" if force else "xb") as file:
            file.write(data)
    except OSError as error:
        # The action has run: keep its answer rather than lose it.
        kept = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / name
        kept.write_bytes(data)
        why = error.strerror or str(error)
        _usage_error(f"could not write {path} ({why}); the answer is in {kept}.")
    click.echo(f"Wrote {path} ({len(data)} bytes, {response.mimetype}).")
    return True
