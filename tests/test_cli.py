"""``flask flexactions list|run`` with Click's runner: every option, error and exit code."""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, send_file
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from flask_flexactions import ActionError, FlexActions, Result
from tests.conftest import TOKEN
from tests.models import Order, User, db

LEVELS = [{"value": 1, "name": "Low"}, {"value": 2, "name": "High"}]


@pytest.fixture
def actions(flex: FlexActions) -> None:
    @flex.action(User, for_instance=True, params=[{"name": "name", "field": "CharField"}])
    def rename(user: User, params: dict[str, Any]) -> str:
        if params.get("name") == "taken":
            raise ActionError(errors={"name": ["That name is taken."]})
        user.name = params.get("name", user.name)
        return f"Renamed to {user.name}"

    @flex.action(
        User,
        bulk=True,
        params=[
            {"name": "notify", "field": "BooleanField", "required": True},
            {"name": "level", "field": "SelectField", "params": {"options": LEVELS}},
        ],
    )
    def block(users: list[User], params: dict[str, Any]) -> str:
        for user in users:
            user.is_blocked = True
        ids = ", ".join(str(user.id) for user in users)
        return f"Blocked {ids}; notify={params['notify']!r} level={params.get('level')!r}"

    @flex.action(
        params=[
            {"name": "data", "field": "JSONField"},
            {"name": "ratio", "field": "FloatField"},
            {"name": "at", "field": "TimestampField"},
            {"name": "count", "field": "IntegerField"},
            {"name": "flag", "field": "BooleanField"},
        ]
    )
    def echo(params: dict[str, Any]) -> str:
        return repr(sorted(params.items()))

    @flex.action(Order)
    def export(model: type[Order], params: dict[str, Any]) -> Response:
        return send_file(io.BytesIO(b"a,b\r\n1,2\r\n"), "text/csv", download_name="out.csv")

    @flex.action(Order, name="plain")
    def plain(model: type[Order], params: dict[str, Any]) -> Response:
        return Response("just text", mimetype="text/plain")

    @flex.action(Order, name="report")
    def report(model: type[Order], params: dict[str, Any]) -> Result:
        return Result(message="Done", html="<b>ü</b>")

    @flex.action(name="crash")
    def crash(params: dict[str, Any]) -> None:
        raise RuntimeError("boom")


@pytest.fixture
def users(app: Flask, actions: None) -> None:
    with app.app_context():
        db.session.add_all(User(id=i, name=f"user{i}") for i in (1, 2, 3))
        db.session.commit()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def run(runner: FlaskCliRunner, *args: str, **kwargs: Any) -> Any:
    return runner.invoke(args=["flexactions", *args], **kwargs)


def names(app: Flask) -> dict[int, tuple[str, bool]]:
    with app.app_context():
        return {u.id: (u.name, u.is_blocked) for u in db.session.scalars(select(User))}


# list


def test_list_prints_a_table_of_the_actions(runner: FlaskCliRunner, actions: None) -> None:
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NAME    COLLECTION  KIND        PARAMS",
        "rename  users       record      name:CharField",
        "block   users       bulk        notify:BooleanField*, level:SelectField",
        "echo    -           common      data:JSONField, ratio:FloatField, at:TimestampField, "
        "count:IntegerField, flag:BooleanField",
        "export  orders      collection  -",
        "plain   orders      collection  -",
        "report  orders      collection  -",
        "crash   -           common      -",
    ]


def test_list_with_no_actions(runner: FlaskCliRunner) -> None:
    result = run(runner, "list")
    assert result.exit_code == 0
    assert result.stdout == "NAME  COLLECTION  KIND  PARAMS\n"
    assert result.stderr == "No actions are registered.\n"


def test_an_action_on_several_collections_is_listed_once_per_collection(
    runner: FlaskCliRunner, flex: FlexActions
) -> None:
    flex.register_action(lambda model, params: None, [User, Order], name="touch")
    assert run(runner, "list").stdout.splitlines()[1:] == [
        "touch  users       collection  -",
        "touch  orders      collection  -",
    ]


# run: answers and exit codes


def test_run_a_record_action(runner: FlaskCliRunner, app: Flask, users: None) -> None:
    result = run(runner, "run", "rename", "--model", "users", "--id", "2", "-p", "name=Zoe")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"result": True, "message": "Renamed to Zoe"}
    assert names(app)[2] == ("Zoe", False)


def test_result_false_exits_1_and_rolls_back(
    runner: FlaskCliRunner, app: Flask, users: None
) -> None:
    result = run(runner, "run", "rename", "-m", "users", "--id", "2", "--param", "name=taken")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "result": False,
        "errors": {"name": ["That name is taken."]},
    }
    missing = run(runner, "run", "rename", "-m", "users", "--id", "99")
    assert missing.exit_code == 1
    assert "99" in json.loads(missing.stdout)["errors"]["non_field_errors"][0]
    assert names(app)[2] == ("user2", False)


def test_run_a_bulk_action_with_converted_params(
    runner: FlaskCliRunner, app: Flask, users: None
) -> None:
    result = run(
        runner, "run", "block", "-m", "users", "--ids", "3,1", "-p", "notify=yes", "-p", "level=2"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "Blocked 3, 1; notify=True level=2"
    assert names(app) == {1: ("user1", True), 2: ("user2", False), 3: ("user3", True)}


def test_inverse_selects_every_row_except_the_ids(
    runner: FlaskCliRunner, app: Flask, users: None
) -> None:
    result = run(runner, "run", "block", "-m", "users", "--ids", "2", "--inverse", "-p", "notify=0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "Blocked 1, 3; notify=False level=None"


def test_param_values_take_the_declared_wire_type(runner: FlaskCliRunner, actions: None) -> None:
    result = run(
        runner,
        "run",
        "echo",
        "--json-params",
        '{"data": 1, "ratio": 9, "count": 5}',
        "-p",
        'data={"a": [1, null]}',
        "-p",
        "ratio=0.5",
        "-p",
        "at=0",
        "-p",
        "flag=false",
    )
    assert result.exit_code == 0, result.output
    message = json.loads(result.stdout)["message"]
    assert message == repr(
        [
            ("at", datetime(1970, 1, 1, tzinfo=timezone.utc)),
            ("count", 5),
            ("data", {"a": [1, None]}),
            ("flag", False),
            ("ratio", 0.5),
        ]
    )


def test_values_that_do_not_convert_are_left_for_the_server_to_refuse(
    runner: FlaskCliRunner, actions: None
) -> None:
    result = run(runner, "run", "echo", "-p", "ratio=lots", "-p", "flag=maybe", "-p", "data=text")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert set(errors) == {"ratio", "flag"}


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A working folder (a repository, say) as the current one, and the temporary folder."""
    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return work, temp


def test_a_file_answer_goes_to_a_new_temporary_folder_never_the_current_one(
    runner: FlaskCliRunner, actions: None, folders: tuple[Path, Path]
) -> None:
    work, temp = folders
    written = []
    for _ in range(2):
        result = run(runner, "run", "export", "-m", "orders")
        assert result.exit_code == 0, result.output
        [line] = result.stdout.splitlines()
        assert line.startswith(f"Wrote {temp}{os.sep}flexactions-")
        assert line.endswith(f"{os.sep}out.csv (10 bytes, text/csv).")
        path = Path(line.removeprefix("Wrote ").removesuffix(" (10 bytes, text/csv)."))
        assert path.read_bytes() == b"a,b\r\n1,2\r\n"
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        written.append(path)
    assert written[0].parent != written[1].parent
    assert list(work.iterdir()) == []


def test_output_is_written_only_where_the_user_says(
    runner: FlaskCliRunner, actions: None, folders: tuple[Path, Path]
) -> None:
    work, temp = folders
    result = run(runner, "run", "export", "-m", "orders", "--output", "sub.csv")
    assert (result.exit_code, result.stdout) == (0, "Wrote sub.csv (10 bytes, text/csv).\n")
    assert (work / "sub.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert list(temp.iterdir()) == []


def test_an_existing_output_is_a_usage_error_before_anything_runs(
    runner: FlaskCliRunner, app: Flask, users: None, folders: tuple[Path, Path]
) -> None:
    work, _ = folders
    (work / "kept.txt").write_text("mine")
    args = ["run", "rename", "-m", "users", "--id", "2", "-p", "name=Zoe", "-o", "kept.txt"]
    result = run(runner, *args)
    assert result.exit_code == 2
    assert "Invalid value for --output: kept.txt exists; pass --force to overwrite it" in (
        result.stderr
    )
    assert names(app)[2] == ("user2", False)  # nothing ran
    again = run(runner, "run", "export", "-m", "orders", "-o", "kept.txt", "--force")
    assert again.exit_code == 0
    assert (work / "kept.txt").read_bytes() == b"a,b\r\n1,2\r\n"


def test_an_output_in_a_missing_folder_is_a_usage_error(
    runner: FlaskCliRunner, actions: None, folders: tuple[Path, Path]
) -> None:
    result = run(runner, "run", "export", "-m", "orders", "-o", "nope/out.csv")
    assert result.exit_code == 2
    assert "the folder nope does not exist" in result.stderr
    folder = run(runner, "run", "export", "-m", "orders", "-o", ".")
    assert folder.exit_code == 2


def test_output_dash_writes_the_bytes_to_stdout(
    runner: FlaskCliRunner, actions: None, folders: tuple[Path, Path]
) -> None:
    work, temp = folders
    result = run(runner, "run", "export", "-m", "orders", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout_bytes == b"a,b\r\n1,2\r\n"
    assert list(work.iterdir()) == list(temp.iterdir()) == []


def test_an_output_that_appears_during_the_run_keeps_the_answer_elsewhere(
    runner: FlaskCliRunner, flex: FlexActions, folders: tuple[Path, Path]
) -> None:
    work, temp = folders

    @flex.action(name="race")
    def race(params: dict[str, Any]) -> Response:
        (work / "race.csv").write_text("someone else's")
        return send_file(io.BytesIO(b"x"), "text/csv", download_name="race.csv")

    result = run(runner, "run", "race", "-o", "race.csv")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: could not write race.csv (File exists); the answer ")
    assert (work / "race.csv").read_text() == "someone else's"
    [kept] = temp.glob("flexactions-*/race.csv")
    assert kept.read_bytes() == b"x"


def test_output_is_ignored_for_a_json_answer(
    runner: FlaskCliRunner, actions: None, folders: tuple[Path, Path]
) -> None:
    work, _ = folders
    result = run(runner, "run", "report", "-m", "orders", "-o", "report.txt")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["message"] == "Done"
    assert list(work.iterdir()) == []


def test_other_answers_are_printed(runner: FlaskCliRunner, actions: None) -> None:
    result = run(runner, "run", "report", "-m", "orders")
    assert result.exit_code == 0
    assert result.stdout == '{\n  "result": true,\n  "message": "Done",\n  "html": "<b>ü</b>"\n}\n'
    plain = run(runner, "run", "plain", "-m", "orders")
    assert (plain.exit_code, plain.stdout) == (0, "just text\n")


def test_a_server_failure_exits_1(runner: FlaskCliRunner, actions: None) -> None:
    result = run(runner, "run", "crash")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error 500: The server failed to run the action")


# run: usage errors exit 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rename", "-m", "users", "--id", "1", "--ids", "2"], "Give either --id"),
        (["block", "-m", "users", "--id", "1", "--inverse"], "Give either --id"),
        (["rename", "-m", "users", "--id", "1", "-p", "name"], "'name' is not NAME=VALUE"),
        (["rename", "-m", "users", "--id", "1", "-p", "=x"], "'=x' is not NAME=VALUE"),
        (
            ["rename", "-m", "users", "--id", "1", "-p", "nick=x"],
            "the action 'rename' has no param 'nick' (its params: name)",
        ),
        (["echo", "-p", "nick=x"], "the action 'echo' has no param 'nick' (its params: at, count"),
        (["echo", "--json-params", "{"], "Invalid value for --json-params: not valid JSON"),
        (
            ["echo", "--json-params", "[1]"],
            "Invalid value for --json-params: must be a JSON object",
        ),
        (["rename", "-m", "users", "--id", "x"], "Error 400: "),
        (["block", "-m", "users", "--ids", "1,,2", "-p", "notify=1"], "Error 400: "),
        (["nope"], "Error 404: Unknown action 'nope' among the common actions."),
        (["rename", "-m", "nope"], "Error 404: Unknown model 'nope'"),
        (["rename"], "Error 404: Unknown action 'rename' among the common actions."),
    ],
)
def test_usage_errors_exit_2(
    runner: FlaskCliRunner, users: None, args: list[str], message: str
) -> None:
    result = run(runner, "run", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_unknown_params_are_sent_when_the_action_is_unknown(
    runner: FlaskCliRunner, actions: None
) -> None:
    # Without the action's declaration the CLI cannot check names; the server answers 404.
    result = run(runner, "run", "nope", "-p", "x=1")
    assert result.exit_code == 2
    assert "Error 404" in result.stderr


# run and list: credentials


@pytest.fixture
def config() -> dict[str, Any]:
    return {"FLEXACTIONS_TOKEN": TOKEN}


def test_without_a_token_the_cli_names_the_fix(
    flex: FlexActions, tmp_path: Path, actions: None
) -> None:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'cli.db'}"
    db.init_app(app)
    flex.init_app(app, db=db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    for command in (["list"], ["run", "echo"]):
        result = run(app.test_cli_runner(), *command)
        assert result.exit_code == 2
        assert "No credential for the Messages URL: set FLEXACTIONS_TOKEN" in result.stderr


def test_a_custom_authenticator_gets_the_auth_option(
    flex: FlexActions, app: Flask, actions: None
) -> None:
    flex.authenticator(lambda request: request.headers.get("Authorization") == "Bearer ok")
    runner = app.test_cli_runner()
    assert run(runner, "run", "echo", "--auth", "Bearer ok").exit_code == 0
    assert run(runner, "list", env={"FLEXACTIONS_CLI_AUTH": "Bearer ok"}).exit_code == 0
    wrong = run(runner, "run", "echo", "--auth", "Bearer no")
    assert wrong.exit_code == 2
    assert (
        wrong.stderr == "Error 401: Missing or invalid credentials in the Authorization header.\n"
    )
    assert run(runner, "list", "--auth", "Bearer no").exit_code == 2


def test_without_the_blueprint_the_cli_names_the_fix(flex: FlexActions, tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FLEXACTIONS_TOKEN="t")
    db.init_app(app)
    flex.init_app(app, db=db)
    result = run(app.test_cli_runner(), "list")
    assert result.exit_code == 2
    assert "app.register_blueprint(flex.blueprint" in result.stderr
