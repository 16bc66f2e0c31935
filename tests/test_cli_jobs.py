"""Background jobs from the command line: ``flask flexactions status JOB`` and ``run --wait``,
inline, queued on a broker no worker reads, and with a real Celery worker."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click._termui_impl
import pytest
import sqlalchemy as sa
from celery import Celery
from click.testing import Result
from flask import Flask, send_file

import flask_flexactions.doors.cli_answers
from flask_flexactions import ActionError, FlexActions
from flask_flexactions.run.jobs import FINAL_STATES
from flask_flexactions.run.leases import HOST, utcnow
from flask_flexactions.run.progress import CANCELLED
from tests import test_background
from tests.background_app import TOKEN, create_app
from tests.conftest import database_url
from tests.models import User, db
from tests.test_background import inline_app, is_postgres, reset, send, user_names

# The fixtures of the background tests: the inline app, and the real Celery worker.
inline = test_background.inline
worker = test_background.worker
worker_app = test_background.worker_app

SUCCEEDED = {"result": True, "message": "2 renamed"}
REFUSED = "Refused after writing: everything rolls back."


def cli(app: Flask, *args: str, **kwargs: Any) -> Result:
    return app.test_cli_runner().invoke(args=["flexactions", *args], **kwargs)


def lines_and_answer(stdout: str) -> tuple[list[str], Any]:
    """The text lines of ``status`` and the JSON answer printed after them."""
    text, brace, answer = stdout.partition("{")
    return text.splitlines(), json.loads(brace + answer)


def queue(app: Flask, ids: list[int], **values: Any) -> str:
    """Queue rename_all through the Messages URL; the job's id."""
    response = send(
        app.test_client(),
        "execute_action",
        {"name": "rename_all", "model": "users", "ids": ids, "params": values},
    )
    body = response.get_json()
    # Inline, the job has run already and the answer tells how it ended.
    assert response.status_code == 200 and "job" in body, body
    return str(body["job"]["id"])


def drop(app: Flask) -> None:
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def stuck(tmp_path: Path) -> Iterator[Flask]:
    """An app whose jobs stay queued: its broker is in memory and no worker reads it."""
    app = create_app(database_url(tmp_path), celery=Celery("stuck", broker="memory://"))
    reset(app)
    yield app
    drop(app)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """An inline app whose background action answers with a file, run from an empty folder."""
    flex = FlexActions()

    @flex.action(User, bulk=True, background=True)
    def export(users: list[User], params: dict[str, Any]) -> Any:
        data = "\n".join(user.name for user in users).encode()
        return send_file(io.BytesIO(data), as_attachment=True, download_name="users.txt")

    app = inline_app(flex, tmp_path, 2, FLEXACTIONS_TOKEN=TOKEN)
    for name in ("work", "temp"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    yield app
    drop(app)


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let click draw its progress bar, as on a terminal."""
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)


def export_job(app: Flask) -> str:
    params = {"name": "export", "model": "users", "inverseIds": True}
    response = send(app.test_client(), "execute_action", params)
    body = response.get_json()
    assert body["result"] is True, body
    return str(body["job"]["id"])


# run, inline


def test_run_without_wait_prints_the_job_and_how_to_follow_it(inline: Flask) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "1,2")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    job = answer["job"]
    assert answer["result"] is True
    hint = f"Follow the job with: flask flexactions status {job['id']}\n"
    assert result.stderr == ("" if job["state"] in FINAL_STATES else hint)


def test_run_wait_answers_the_true_end_of_an_inline_job(inline: Flask) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "3,1", "--wait")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == SUCCEEDED
    last = result.stderr.splitlines()[-1]
    assert re.fullmatch(r"Job [0-9a-f]{32}: succeeded", last), result.stderr
    assert user_names(inline)[3] == "renamed 3"


def test_run_wait_exits_1_when_the_job_fails(inline: Flask) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "1", "-p", "fail=1", "--wait")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"result": False, "errors": {"non_field_errors": [REFUSED]}}
    assert result.stderr.splitlines()[-1].endswith(": failed")
    assert user_names(inline)[1] == "user 1"


def test_run_wait_draws_a_progress_bar(inline: Flask, tty: None) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "3,1", "--wait")
    assert result.exit_code == 0, result.output
    assert re.search(r"Job [0-9a-f]{32}  \[#+\]  2/2  user 1", result.stderr), result.stderr
    assert json.loads(result.stdout) == SUCCEEDED


def test_wait_on_an_action_that_runs_in_the_request_changes_nothing(inline: Flask) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "99", "--wait")
    assert result.exit_code == 1
    assert "99" in json.loads(result.stdout)["errors"]["non_field_errors"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "Invalid value for '--interval'"),
        (["--interval", "x"], "Invalid value for '--interval'"),
        (["--interval", "nan"], "Invalid value for '--interval'"),
        (["--interval", "inf"], "Invalid value for '--interval'"),
        (["--interval", "61"], "Invalid value for '--interval'"),
        (["--timeout", "-1"], "Invalid value for '--timeout'"),
        (["--timeout", "nan"], "Invalid value for '--timeout'"),
        (["--timeout", "inf"], "Invalid value for '--timeout'"),
    ],
)
def test_wait_options_are_checked(inline: Flask, args: list[str], message: str) -> None:
    result = cli(inline, "run", "rename_all", "-m", "users", "--ids", "1", "--wait", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert user_names(inline)[1] == "user 1"


# run --wait, on a job that never ends


def test_a_timeout_exits_2_and_names_the_job(stuck: Flask) -> None:
    args = ["rename_all", "-m", "users", "--ids", "1", "--wait", "--timeout", "0.2"]
    result = cli(stuck, "run", *args, "--interval", "0.05")
    assert result.exit_code == 2
    job = re.search(r"Job ([0-9a-f]{32}): queued", result.stderr)
    assert job, result.stderr
    assert result.stderr.endswith(
        f"Error: waited 0.2 s; job {job[1]} is still queued and goes on: ask for it with: "
        f"flask flexactions status {job[1]}\n"
    )
    assert result.stdout == ""
    assert cli(stuck, "status", job[1]).exit_code == 0


def test_ctrl_c_before_the_first_status_names_the_job(
    stuck: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(caller: Any, job_id: str) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(flask_flexactions.doors.cli_answers, "job_status", interrupted)
    result = cli(stuck, "run", "rename_all", "-m", "users", "--ids", "1", "--wait")
    assert result.exit_code == 2
    assert re.fullmatch(
        r"Error: stopped waiting for job ([0-9a-f]{32}); ask for it with: "
        r"flask flexactions status \1\n",
        result.stderr,
    ), result.stderr


def test_ctrl_c_stops_waiting_and_names_the_job(
    stuck: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = flask_flexactions.doors.cli_answers.job_status
    calls: list[str] = []

    def interrupted(caller: Any, job_id: str) -> dict[str, Any]:
        calls.append(job_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(caller, job_id)

    monkeypatch.setattr(flask_flexactions.doors.cli_answers, "job_status", interrupted)
    args = ["rename_all", "-m", "users", "--ids", "1", "--wait", "--interval", "0.05"]
    result = cli(stuck, "run", *args)
    assert result.exit_code == 2
    assert f"Error: stopped waiting; job {calls[0]} is still queued and goes on" in result.stderr


# status


def test_status_of_a_finished_job(inline: Flask) -> None:
    job = queue(inline, [3, 1])
    result = cli(inline, "status", job)
    assert result.exit_code == 0
    assert lines_and_answer(result.stdout) == (
        [f"Job {job}: succeeded", "Action: rename_all on users", "Progress: 2/2 (user 1)"],
        SUCCEEDED,
    )


def test_status_of_a_failed_job_exits_1(inline: Flask) -> None:
    job = queue(inline, [1, 2], fail=True)
    result = cli(inline, "status", job)
    assert result.exit_code == 1
    lines, answer = lines_and_answer(result.stdout)
    assert lines[0] == f"Job {job}: failed"
    assert answer == {"result": False, "errors": {"non_field_errors": [REFUSED]}}


def test_status_of_a_queued_job_exits_0(stuck: Flask) -> None:
    job = queue(stuck, [1])
    result = cli(stuck, "status", job)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"Job {job}: queued\nAction: rename_all on users\nProgress: 0 done\n"


def test_status_of_a_running_job_asked_to_stop(stuck: Flask) -> None:
    job = queue(stuck, [1, 2, 3])
    with stuck.app_context():
        table = stuck.extensions["flexactions"].jobs.table
        db.session.execute(
            table.update()
            .where(table.c.id == job)
            .values(
                state="running",
                done=1,
                total=3,
                status_text="user 1",
                cancel_requested=True,
                # As a live worker holds it: its lease runs for another minute.
                worker_pid=os.getpid(),
                worker_host=HOST,
                lease_until=utcnow() + dt.timedelta(seconds=60),
            )
        )
        db.session.commit()
    result = cli(stuck, "status", job)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-2:] == [
        "Progress: 1/3 (user 1)",
        "Cancel requested: the job stops at its next progress report.",
    ]


def test_status_of_a_cancelled_job_exits_1(stuck: Flask) -> None:
    job = queue(stuck, [1])
    send(stuck.test_client(), "cancel_action", {"job": job})
    result = cli(stuck, "status", job)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"Job {job}: cancelled\n")
    assert CANCELLED in result.stdout


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ("nope", "Error 404: Unknown job 'nope'.\n"),
        ("0" * 32, f"Error 404: Unknown job '{'0' * 32}'.\n"),
        ("x" * 5000, f"Error 404: Unknown job '{'x' * 64}'.\n"),
        ("' OR 1=1 --", 'Error 404: Unknown job "\' OR 1=1 --".\n'),
        ("../../etc/passwd", "Error 404: Unknown job '../../etc/passwd'.\n"),
        ("", 'Error 400: This message needs params.job, the job id "execute_action" gave.\n'),
    ],
)
def test_status_of_an_unknown_job_exits_2(inline: Flask, job: str, error: str) -> None:
    result = cli(inline, "status", job)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error)


def test_status_needs_the_credential_and_jobs(inline: Flask, app: Flask) -> None:
    job = queue(inline, [1])
    wrong = cli(inline, "status", job, "--auth", "Token wrong")
    assert wrong.exit_code == 2 and wrong.stderr.startswith("Error 401: ")
    without_jobs = cli(app, "status", job)
    assert without_jobs.exit_code == 2
    assert "No background actions run here" in without_jobs.stderr


def test_status_download_of_a_json_job_is_a_usage_error(inline: Flask, tmp_path: Path) -> None:
    job = queue(inline, [1])
    result = cli(inline, "status", job, "--download", str(tmp_path / "x.txt"))
    assert result.exit_code == 2
    assert result.stderr == f"Error: job {job} answered JSON, not a file: nothing to download.\n"
    assert not (tmp_path / "x.txt").exists()


def test_status_download_of_an_unfinished_job_says_so(stuck: Flask, tmp_path: Path) -> None:
    job = queue(stuck, [1])
    result = cli(stuck, "status", job, "--download", str(tmp_path / "x.txt"))
    assert result.exit_code == 0
    assert result.stderr == f"Job {job} is queued: nothing to download yet.\n"
    assert not (tmp_path / "x.txt").exists()


# File answers of jobs


def test_run_wait_writes_a_file_answer_to_a_temporary_folder(files: Flask, tmp_path: Path) -> None:
    result = cli(files, "run", "export", "-m", "users", "--inverse", "--wait")
    assert result.exit_code == 0, result.output
    [written] = (tmp_path / "temp").glob("flexactions-*/users.txt")
    assert result.stdout == f"Wrote {written} (13 bytes, text/plain).\n"
    assert written.read_bytes() == b"user 1\nuser 2"
    assert list((tmp_path / "work").iterdir()) == []


def test_run_wait_writes_a_file_answer_to_the_output(files: Flask, tmp_path: Path) -> None:
    result = cli(files, "run", "export", "-m", "users", "--inverse", "--wait", "-o", "mine.txt")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "mine.txt").read_bytes() == b"user 1\nuser 2"


def test_status_describes_a_file_and_downloads_it_when_asked(files: Flask, tmp_path: Path) -> None:
    job = export_job(files)
    described = cli(files, "status", job)
    assert described.exit_code == 0
    assert described.stdout.splitlines()[-1] == (
        "File: users.txt (13 bytes, text/plain; charset=utf-8); write it with --download PATH."
    )
    downloaded = cli(files, "status", job, "--download", "got.txt")
    assert downloaded.exit_code == 0
    assert downloaded.stdout.splitlines()[-1] == "Wrote got.txt (13 bytes, text/plain)."
    assert (tmp_path / "work" / "got.txt").read_bytes() == b"user 1\nuser 2"
    again = cli(files, "status", job, "--download", "got.txt")
    assert again.exit_code == 2 and "pass --force to overwrite it" in again.stderr
    assert cli(files, "status", job, "--download", "got.txt", "--force").exit_code == 0


def test_status_download_to_stdout_keeps_stdout_for_the_bytes(files: Flask) -> None:
    job = export_job(files)
    result = cli(files, "status", job, "--download", "-")
    assert result.exit_code == 0
    assert result.stdout_bytes == b"user 1\nuser 2"
    assert result.stderr.startswith(f"Job {job}: succeeded\n")


def test_a_job_answer_that_is_text_without_a_file_name_is_printed(tmp_path: Path) -> None:
    flex = FlexActions()

    @flex.action(User, bulk=True, background=True)
    def report(users: list[User], params: dict[str, Any]) -> Any:
        return app.response_class("plain report\n", mimetype="text/plain")

    app = inline_app(flex, tmp_path, 1, FLEXACTIONS_TOKEN=TOKEN)
    result = cli(app, "run", "report", "-m", "users", "--ids", "1", "--wait")
    assert (result.exit_code, result.stdout) == (0, "plain report\n\n")
    drop(app)


def test_a_job_whose_records_partly_failed_exits_1(tmp_path: Path) -> None:
    flex = FlexActions()

    @flex.action(User, bulk=True, background=True, atomic=False)
    def touch(users: list[User], params: dict[str, Any]) -> str:
        (user,) = users
        if user.id == 2:
            raise ActionError("Not this one.")
        return "ok"

    app = inline_app(flex, tmp_path, 2, FLEXACTIONS_TOKEN=TOKEN)
    waited = cli(app, "run", "touch", "-m", "users", "--ids", "1,2", "--wait")
    assert waited.exit_code == 1
    answer = json.loads(waited.stdout)
    assert answer["result"] is False and answer["message"] == "1 of 2 records done, 1 failed."
    job = re.search(r"Job ([0-9a-f]{32}): succeeded", waited.stderr)
    assert job, waited.stderr
    status = cli(app, "status", job[1])
    assert status.exit_code == 1
    assert status.stdout.startswith(f"Job {job[1]}: succeeded\n")
    drop(app)


def test_a_status_answer_without_a_job_exits_1(
    inline: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = queue(inline, [1])
    jobs = inline.extensions["flexactions"].jobs
    monkeypatch.setattr(jobs, "status", lambda *args: inline.response_class("[]"))
    result = cli(inline, "status", job)
    assert result.exit_code == 1
    assert result.stderr == "Error: get_action_status answered without a job.\n"


# With a real Celery worker


def test_run_wait_follows_a_worker_job(worker_app: Flask, tty: None) -> None:
    args = ["rename_all", "-m", "users", "--ids", "1,2,3,4", "-p", "pause=0.3", "--wait"]
    result = cli(worker_app, "run", *args, "--interval", "0.05", "--timeout", "60")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"result": True, "message": "4 renamed"}
    assert "4/4  user 4" in result.stderr
    assert user_names(worker_app)[4] == "renamed 4"
    if is_postgres(worker_app):
        # Progress is written beside the run's transaction; SQLite's write lock makes it best
        # effort there.
        assert re.search(r"\] +[123]/4", result.stderr), result.stderr


def test_status_follows_a_worker_job_to_its_failure(worker_app: Flask) -> None:
    job = queue(worker_app, [1, 2], pause=0.2, fail=True)
    first = cli(worker_app, "status", job)
    assert first.exit_code in (0, 1)
    assert re.match(f"Job {job}: (queued|running|failed)\n", first.stdout)
    # One worker process runs the jobs in turn: once the next one is done, so is this one.
    waited = cli(worker_app, "run", "rename_all", "-m", "users", "--ids", "5", "--wait")
    assert waited.exit_code == 0, waited.output
    result = cli(worker_app, "status", job)
    assert result.exit_code == 1
    assert f"Job {job}: failed\n" in result.stdout and REFUSED in result.stdout
    with worker_app.app_context():
        names = {u.id: u.name for u in db.session.scalars(sa.select(User))}
    assert names[1] == "user 1" and names[5] == "renamed 5"
