"""A small app with what the example shop lacks, for the console's browser tests.

- ``rename_person``: a record action with a default from the record, a ``BooleanField`` whose
  declared default is True, and params without a label;
- ``recount`` and ``export_people``: background actions run by a worker thread of this
  process (the job waits for the test's go before each record, so a test sees its progress
  and can cancel it at a known point), answering HTML and a file;
- ``hostile_html``: an HTML answer that tries to run a script, load an image and style itself.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from flask import Flask, Response, request
from markupsafe import escape

from flask_flexactions import ActionError, FlexActions, Result, report_progress
from flask_flexactions.run.job_run import run_job
from tests.models import User, db

#: How long a job waits for the test's go before giving up.
STEP_TIMEOUT = 15.0


@dataclass
class Lab:
    """The app, the go the jobs wait for before each record, and the paths it was asked."""

    app: Flask
    steps: threading.Semaphore
    paths: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def step(self, count: int = 1) -> None:
        """Let the running job go on by ``count`` records."""
        for _ in range(count):
            self.steps.release()


class ThreadWorker:
    """Stands in for the Celery task: runs each queued job in a thread of this process."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def apply_async(self, args: tuple[str]) -> None:
        def work() -> None:
            with self.lab.app.app_context():
                run_job(self.lab.app.extensions["flexactions"], args[0])

        thread = threading.Thread(target=work, daemon=True)
        self.lab.threads.append(thread)
        thread.start()


def create_lab(database_url: str, token: str, people: int = 30) -> Lab:
    """The lab app on ``database_url`` with ``people`` users, named ``Person <id>``."""
    flex = FlexActions()
    steps = threading.Semaphore(0)

    def wait_for_the_test() -> None:
        if not steps.acquire(timeout=STEP_TIMEOUT):
            raise ActionError("The test never let the job go on.")

    @flex.action(
        User,
        for_instance=True,
        label="Rename person",
        params=[
            {"name": "name", "field": "CharField", "label": "Name", "default": lambda u: u.name},
            {"name": "notify", "field": "BooleanField", "label": "Notify", "default": True},
            {"name": "priority", "field": "IntegerField", "default": 3},
            {"name": "send_copy_to", "field": "CharField"},
        ],
    )
    def rename_person(user: User, params: dict[str, Any]) -> str:
        """Answer what it would do with the values it got; changes nothing."""
        shown = {key: params.get(key) for key in ("name", "notify", "priority", "send_copy_to")}
        return f"Person #{user.id}: " + ", ".join(f"{k}={v!r}" for k, v in shown.items())

    def recount_preview(users: list[User], params: dict[str, Any]) -> str:
        return f"Would recount {len(users)} people."

    @flex.action(User, bulk=True, background=True, label="Recount", preview=recount_preview)
    def recount(users: list[User], params: dict[str, Any]) -> Result:
        """Count the people one by one, reporting progress; reads only."""
        for done, user in enumerate(users, start=1):
            wait_for_the_test()
            report_progress(done, len(users), f"person {user.id}")
        rows = "".join(f"<tr><td>{user.id}</td><td>{escape(user.name)}</td></tr>" for user in users)
        return Result(
            message=f"Counted {len(users)} people.",
            html=f"<table><tr><th>Id</th><th>Name</th></tr>{rows}</table>",
        )

    @flex.action(User, bulk=True, background=True, label="Export people")
    def export_people(users: list[User], params: dict[str, Any]) -> Response:
        """The selected people as a CSV file, made in the background."""
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["id", "name"])
        for user in users:
            writer.writerow([user.id, user.name])
        # Not send_file: a worker has the app's context but no request's, which it needs.
        return Response(
            text.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="people.csv"'},
        )

    @flex.action(None, label="Hostile HTML")
    def hostile_html(params: dict[str, Any]) -> Result:
        """HTML that would run a script, load an image and restyle itself, if it could."""
        return Result(
            message="Some HTML.",
            html=(
                "<p id='styled' style='color: rgb(255, 0, 0)'>Styled</p>"
                "<style>p { font-family: serif; }</style>"
                "<img src='/probe.png' alt='probe'>"
                "<script>document.body.dataset.ran = 'yes';</script>"
                "<table><tr><th>A</th></tr><tr><td>1</td></tr></table>"
            ),
        )

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        FLEXACTIONS_TOKEN=token,
        FLEXACTIONS_CONSOLE=True,
        FLEXACTIONS_BACKGROUND_INLINE=False,
    )
    db.init_app(app)
    # A Celery app on the in-memory broker only to pass the background check; the jobs are
    # handed to ThreadWorker instead.
    flex.init_app(app, db=db, celery=Celery("console-lab", broker="memory://"))
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    lab = Lab(app=app, steps=steps)
    app.extensions["flexactions"].jobs.task = ThreadWorker(lab)

    @app.before_request
    def note_the_path() -> None:
        lab.paths.append(request.path)

    with app.app_context():
        db.create_all()
        db.session.add_all(User(id=i, name=f"Person {i}") for i in range(1, people + 1))
        db.session.commit()
    return lab
