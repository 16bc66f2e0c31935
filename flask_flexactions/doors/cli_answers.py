"""What the command line does with the Messages URL's answers: refusals and exit codes, file
answers written only where the user says, background jobs followed to their end."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import click
from flask import current_app
from werkzeug.http import parse_options_header
from werkzeug.test import TestResponse
from werkzeug.utils import secure_filename

from ..run.jobs import FINAL_STATES
from .client import LocalCaller

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

#: Exit codes of the commands: 0 done; 1 the action, the job or the server failed; 2 a usage
#: error, a request the Messages URL refused, or a wait that ended without the job's end.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The name of a file answer whose ``Content-Disposition`` gives none that is safe.
DEFAULT_FILE_NAME = "answer.bin"
#: The prefix of the temporary folders file answers go to when no path is given.
TEMP_PREFIX = "flexactions-"


def cli_caller(auth: str | None, missing: str) -> LocalCaller:
    """A caller of the current app's Messages URL sending ``auth`` (the shared token by
    default); a usage error naming the fix when the blueprint is not registered, or
    ``missing`` when there is no credential at all."""
    try:
        caller = LocalCaller(current_app.test_client(), auth)
    except RuntimeError as error:
        raise click.UsageError(str(error)) from None
    if not caller.authorization:
        raise click.UsageError(missing)
    return caller


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


def job_status(caller: LocalCaller, job_id: str) -> dict[str, Any]:
    """The ``job`` of a ``get_action_status`` answer; a refusal exits (an unknown job: 2)."""
    response = caller.message("get_action_status", {"job": job_id})
    if response.status_code != 200:
        refused(response)
    body = response.get_json(silent=True)
    job = body.get("job") if isinstance(body, dict) else None
    if not isinstance(job, dict) or not isinstance(job.get("state"), str):
        click.echo("Error: get_action_status answered without a job.", err=True)
        sys.exit(EXIT_FAILED)
    return job


def _progress(job: dict[str, Any]) -> tuple[int, int | None, str | None]:
    """``done``, ``total`` (None when unknown) and the status text of a job's progress."""
    progress = job.get("progress")
    progress = progress if isinstance(progress, dict) else {}
    done, total, text = progress.get("done"), progress.get("total"), progress.get("status")
    done = done if isinstance(done, int) and not isinstance(done, bool) and done > 0 else 0
    known = isinstance(total, int) and not isinstance(total, bool) and total > 0
    return done, total if known else None, text if isinstance(text, str) and text else None


def print_job(job: dict[str, Any], *, err: bool = False) -> None:
    """Print a job's id and state, its action and its progress, one per line."""
    state = job["state"]
    lines = [f"Job {job.get('id')}: {state}"]
    if job.get("action"):
        where = f" on {job['model']}" if job.get("model") else ""
        lines.append(f"Action: {job['action']}{where}")
    done, total, text = _progress(job)
    line = f"Progress: {done}/{total}" if total is not None else f"Progress: {done} done"
    lines.append(line + (f" ({text})" if text else ""))
    if job.get("cancel_requested") and state not in FINAL_STATES:
        lines.append("Cancel requested: the job stops at its next progress report.")
    for line in lines:
        click.echo(line, err=err)


def finish_job(
    caller: LocalCaller, job: dict[str, Any], output: Path | None, force: bool, *, asked: bool
) -> int:
    """Show what a job answered, once it is final, and return the exit code.

    0 for a job that succeeded (or is not final yet), 1 for one that failed or was cancelled
    or whose answer is ``result: false`` (an ``atomic=False`` job with records that failed).
    A JSON answer is printed as ``run`` prints one. A file answer is written by
    :func:`save_file` to ``output``; when ``asked`` (``status --download``), ``output`` is
    wanted only for a file, and without it the file is only described.
    """
    state, job_id = job["state"], str(job.get("id"))
    if state not in FINAL_STATES:
        if output is not None:
            click.echo(f"Job {job_id} is {state}: nothing to download yet.", err=True)
        return EXIT_OK
    code = EXIT_OK if state == "succeeded" else EXIT_FAILED
    file = job.get("file")
    if isinstance(file, dict):
        if asked and output is None:
            _, options = parse_options_header(str(file.get("name") or ""))
            name = options.get("filename") or "a file without a name"
            size, kind = file.get("size"), file.get("content_type")
            click.echo(f"File: {name} ({size} bytes, {kind}); write it with --download PATH.")
            return code
        response = caller.message("get_action_status", {"job": job_id, "download": True})
        if response.status_code != 200:
            refused(response)
        if not save_file(response, output, force):
            click.echo(response.get_data(as_text=True))
        return code
    answer = job.get("answer")
    if answer is None:
        return code
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    if isinstance(answer, dict) and answer.get("result") is not True:
        code = EXIT_FAILED
    if asked and output is not None:
        _usage_error(f"job {job_id} answered JSON, not a file: nothing to download.")
    return code


def follow_job(
    caller: LocalCaller, job_id: str, interval: float, timeout: float | None
) -> dict[str, Any]:
    """Ask for the job's status every ``interval`` seconds until it is final, showing its
    progress on stderr, and return the final status. A ``timeout`` that runs out, or Ctrl-C,
    exits 2 with the command that asks for the job later: the job itself goes on."""
    deadline = None if timeout is None else time.monotonic() + timeout
    job: dict[str, Any] | None = None
    final = False
    with _ProgressDisplay(job_id) as display:
        try:
            while True:
                job = job_status(caller, job_id)
                display.show(job)
                if job["state"] in FINAL_STATES:
                    final = True
                    break
                pause = interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    pause = min(interval, left)
                time.sleep(pause)
        except KeyboardInterrupt:
            pass
    later = f"ask for it with: flask flexactions status {job_id}"
    if job is None:
        _usage_error(f"stopped waiting for job {job_id}; {later}")
    if not final:
        waited = "stopped waiting" if deadline is None else f"waited {timeout:g} s"
        _usage_error(f"{waited}; job {job_id} is still {job['state']} and goes on: {later}")
    click.echo(f"Job {job_id}: {job['state']}", err=True)
    return job


def _shown(item: str | None) -> str | None:
    return item


class _ProgressDisplay:
    """A job's progress on stderr: its state until it reports a total, then a click progress
    bar of the records done, with the job's status text."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.state: str | None = None
        self.bar: ProgressBar[Any] | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    def show(self, job: dict[str, Any]) -> None:
        """Show the progress of one status answer."""
        done, total, text = _progress(job)
        if self.bar is None and total is not None:
            self.bar = self._stack.enter_context(
                click.progressbar(
                    length=total,
                    label=f"Job {self.job_id}",
                    show_pos=True,
                    item_show_func=_shown,
                    file=sys.stderr,
                )
            )
        if self.bar is not None:
            if total is not None:
                self.bar.length = total
            self.bar.update(max(0, min(done, self.bar.length or 0) - self.bar.pos), text)
        elif job["state"] != self.state:
            click.echo(f"Job {self.job_id}: {job['state']}", err=True)
        self.state = job["state"]
