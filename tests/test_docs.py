"""The documentation does what it says: the README's Quickstart, the pages' outputs, the
configuration keys, and the rules that keep the pages' code tested.

- The README's Quickstart is started as a real process and the curl lines the README shows are
  run against it; each must answer what the README shows under it.
- The pages take their code from files in ``docs/examples/`` (``{literalinclude}``), each
  exercised by ``tests/test_docs_examples.py``; a ``python`` block written in a page must be a
  complete program that runs, and a ``json`` block must parse.
- Console transcripts (``docs/_generated/*.txt``) run in bash on a fresh example shop and must
  print what they show; the configuration keys are written from ``flask_flexactions/config.py``.

``FLEXACTIONS_REGENERATE_DOCS=1`` rewrites the generated outputs (and the README's answers)
from what the code prints now, instead of comparing (see ``HOW_TO_REGENERATE``).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flask_flexactions.config import DEFAULTS
from tests.docsamples import (
    DOCS,
    EXAMPLES,
    GENERATED,
    HOW_TO_REGENERATE,
    README,
    REGENERATE,
    ROOT,
    Block,
    Entry,
    Server,
    Shell,
    Substitutions,
    check_transcript,
    clean,
    clean_env,
    doc_pages,
    fenced_blocks,
    free_port,
    literal_includes,
    masked,
    parse_transcript,
    render_transcript,
)

needs_curl = pytest.mark.skipif(
    shutil.which("curl") is None, reason="curl is not installed: apt-get install curl"
)


def test_every_included_file_exists_and_its_markers_cut_one_fragment() -> None:
    for include in literal_includes():
        assert include.path.is_file(), f"{include.page.name} includes a missing {include.path}"
        lines = include.path.read_text().splitlines()
        for option in ("start-after", "end-before"):
            if option in include.options:
                marker = include.options[option]
                found = [line for line in lines if marker in line]
                assert len(found) == 1, (
                    f"{include.page.name}: the marker {marker!r} must be on exactly one line of "
                    f"{include.path.name}, found {len(found)}"
                )


#: The files of docs/examples/ and the test that runs each; a new file needs a test here.
EXAMPLE_TESTS = {
    "quickstart.py": "test_docs.py::test_readme_quickstart_runs_as_shown",
    "testing/conftest.py": "test_docs_examples.py::test_the_testing_guide_runs_as_written",
    "testing/test_app.py": "test_docs_examples.py::test_the_testing_guide_runs_as_written",
    "actions.py": "test_docs_examples.py::test_actions_example",
    "security.py": "test_docs_examples.py::test_security_example",
    "data_safety.py": "test_docs_examples.py::test_data_safety_example",
    "background.py": "test_docs_examples.py::test_background_example",
    "approvals.py": "test_docs_examples.py::test_approvals_example",
    "dynamic_params.py": "test_docs_examples.py::test_dynamic_params_example",
    "deployment.py": "test_docs_examples.py::test_deployment_example",
    "mcp_agent.py": "test_docs_examples.py::test_mcp_agent_example",
}
#: Generated files checked by a test other than the transcript sessions below.
OTHER_GENERATED = {
    "quickstart.txt": "test_docs.py::test_readme_quickstart_runs_as_shown",
    "testing-pytest.txt": "test_docs_examples.py::test_the_testing_guide_runs_as_written",
    "configuration.md": "test_docs.py::test_configuration_page_lists_every_key",
    "console.png": (
        "browser/test_console_browser.py::test_foreign_key_picker_searches_the_related_rows"
    ),
    "console-phone.png": (
        "browser/test_console_runs.py::"
        "test_the_answer_is_in_view_after_run_and_the_headers_are_folded"
    ),
    "console-confirm.png": (
        "browser/test_console_runs.py::"
        "test_all_rows_except_none_asks_first_with_the_count_from_the_preview"
    ),
    "console-job.png": (
        "browser/test_console_jobs.py::test_an_inline_job_answers_its_final_state_with_each_record"
    ),
    "console-approvals.png": (
        "browser/test_console_approvals.py::"
        "test_a_request_is_filed_listed_and_approved_by_another_person"
    ),
    # The text of what each console screenshot shows, which the tests above check.
    "console-screens.txt": "browser/conftest.py::keep_for_the_docs",
}


def assert_test_exists(node_id: str) -> None:
    module, name = node_id.split("::")
    source = (ROOT / "tests" / module).read_text()
    assert f"def {name}(" in source, f"{node_id} does not exist"


def test_every_example_file_is_shown_and_tested() -> None:
    files = {
        str(path.relative_to(EXAMPLES))
        for path in EXAMPLES.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert files == set(EXAMPLE_TESTS), "docs/examples/ and EXAMPLE_TESTS differ"
    for node_id in EXAMPLE_TESTS.values():
        assert_test_exists(node_id)
    included = {
        str(include.path.relative_to(EXAMPLES))
        for include in literal_includes()
        if include.path.is_relative_to(EXAMPLES)
    }
    assert included == files, f"example files no page shows: {sorted(files - included)}"


def test_every_generated_file_is_shown_and_checked() -> None:
    files = {path.name for path in GENERATED.iterdir()}
    in_sessions = {name for names in SESSIONS.values() for name in names}
    assert files == in_sessions | set(OTHER_GENERATED), "docs/_generated/ has unchecked files"
    for node_id in OTHER_GENERATED.values():
        assert_test_exists(node_id)
    pages = "".join(page.read_text() for page in doc_pages())
    for name in files - {"console-screens.txt"}:
        assert f"_generated/{name}" in pages, f"no page shows docs/_generated/{name}"


def test_python_blocks_written_in_pages_are_complete_programs(tmp_path: Path) -> None:
    """Code in a page is either a {literalinclude} of a tested file or a program that runs."""
    for page in doc_pages():
        for block in fenced_blocks(page):
            if block.info.split()[:1] != ["python"]:
                continue
            program = tmp_path / f"{page.stem}_{block.line}.py"
            program.write_text(block.text)
            ran = subprocess.run(
                [sys.executable, str(program)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ran.returncode == 0, f"{page.name}:{block.line} fails:\n{ran.stderr}"


def test_json_blocks_are_json() -> None:
    """A ``json`` block is one JSON document, or one per line (answers shown in a row)."""
    for path in [*doc_pages(), README]:
        for block in fenced_blocks(path):
            if block.info != "json":
                continue
            try:
                json.loads(block.text)
            except ValueError:
                for line in block.text.splitlines():
                    if line.strip():
                        try:
                            json.loads(line)
                        except ValueError as error:
                            pytest.fail(f"{path.name}:{block.line}: not JSON: {line}\n{error}")


# The README's Quickstart


def readme_blocks(info: str) -> list[Block]:
    return [block for block in fenced_blocks(README) if block.info == info]


@needs_curl
def test_readme_quickstart_runs_as_shown(tmp_path: Path) -> None:
    """The README's Quickstart, saved as app.py and started with ``python app.py`` as the
    README says, answers its curl lines as the README shows. The test sets ``PORT``, which the
    sample reads (default 5001), to a free port, and runs the curl lines against it."""
    (program,) = readme_blocks("python")
    assert program.text == (EXAMPLES / "quickstart.py").read_text(), (
        "The README's Quickstart and docs/examples/quickstart.py (which the docs include) "
        "differ: keep them the same."
    )
    readme = README.read_text()
    assert "python app.py" in readme and "127.0.0.1:5001" in readme
    (transcript,) = readme_blocks("console")
    assert transcript.text == (GENERATED / "quickstart.txt").read_text() or REGENERATE, (
        "The README's curl lines and docs/_generated/quickstart.txt (which the docs include) "
        "differ: keep them the same."
    )
    (tmp_path / "app.py").write_text(program.text)
    port = free_port()
    server = Server("python app.py", tmp_path, clean_env(PORT=str(port)), port)
    shell = Shell(tmp_path, clean_env())
    try:
        server.wait_until(f"Running on http://127.0.0.1:{port}")
        substitutions = Substitutions(forward={"127.0.0.1:5001": f"127.0.0.1:{port}"})
        problems = check_transcript(README, shell, substitutions, readme_block=transcript.text)
        if REGENERATE:
            shutil.copyfile(README, tmp_path / "README.md")
            (GENERATED / "quickstart.txt").write_text(readme_blocks("console")[0].text)
    finally:
        shell.close()
        server.stop()
    assert not problems, f"The README's answers are not what the Quickstart answers:\n{problems}"


# The example shop: the tutorial's and the command line page's transcripts


#: Transcripts run in order on one freshly seeded shop; "shop-start.txt" is the output of
#: ``python -m examples.shop``, started first.
SESSIONS = {
    "tutorial": [
        "shop-start.txt",
        "tutorial-curl.txt",
        "shop-actions.txt",
        "tutorial-cli.txt",
        "idempotency.txt",
    ],
    "command line": ["cli-files.txt", "cli-jobs.txt", "cli-sweep.txt"],
}


@pytest.fixture
def reader_folder(tmp_path: Path) -> Path:
    """Where the commands run: like the root of a clone (``examples`` is a link to this
    one's), so the files they write (``-o orders.csv``) land in a temporary folder."""
    folder = tmp_path / "clone"
    folder.mkdir()
    (folder / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "tmp").mkdir()
    return folder


@pytest.mark.parametrize("session", list(SESSIONS))
def test_shop_transcripts_print_what_they_show(
    session: str, reader_folder: Path, tmp_path: Path
) -> None:
    """Each transcript of the session, run as written on a fresh shop (its own SQLite file,
    through ``$DATABASE_URL``, which the shop reads), prints what it shows."""
    if session == "tutorial" and shutil.which("curl") is None:
        pytest.skip("curl is not installed: apt-get install curl")
    port = free_port()
    temporary = tmp_path / "tmp"
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'shop.db'}", TMPDIR=str(temporary))
    substitutions = Substitutions(
        forward={"127.0.0.1:5000": f"127.0.0.1:{port}", "/tmp/": f"{temporary}/"}
    )
    names = SESSIONS[session]
    problems: list[str] = []
    server = None
    if names[0] == "shop-start.txt":
        start = parse_transcript((GENERATED / names[0]).read_text())[0]
        server = Server(start.command, reader_folder, {**env, "PORT": str(port)}, port)
    shell = Shell(reader_folder, env)
    try:
        if server is not None:
            problems += check_server_start(server, substitutions)
            names = names[1:]
        for name in names:
            problems += check_transcript(GENERATED / name, shell, substitutions)
    finally:
        shell.close()
        if server is not None:
            server.stop()
    assert not problems, (
        "These transcripts do not print what the docs show (if the change is right, "
        f"regenerate them with {HOW_TO_REGENERATE}):\n" + "\n".join(problems)
    )


# The configuration keys, from flask_flexactions/config.py


#: The guide that explains each group of keys (the first prefix that matches).
KEY_GUIDES = [
    ("FLEXACTIONS_TOKEN", "security.md#who-is-calling"),
    ("FLEXACTIONS_JET_", "security.md#who-is-calling"),
    ("FLEXACTIONS_CORS_", "cors.md"),
    ("FLEXACTIONS_MAX_", "security.md#limits"),
    ("FLEXACTIONS_ID_CHUNK_SIZE", "actions.md#actions"),
    ("FLEXACTIONS_AUDIT", "data-safety.md#audit-log"),
    ("FLEXACTIONS_IDEMPOTENCY", "data-safety.md#idempotency-key"),
    ("FLEXACTIONS_RETRY_AFTER", "data-safety.md#database-outages"),
    ("FLEXACTIONS_BACKGROUND_INLINE", "background.md"),
    ("FLEXACTIONS_JOB_", "background.md"),
    ("FLEXACTIONS_SWEEP_INTERVAL", "background.md#housekeeping"),
    ("FLEXACTIONS_SECRET_KEY", "background.md#secret-params"),
    ("FLEXACTIONS_APPROVAL_", "approvals.md"),
    ("FLEXACTIONS_CONSOLE", "console.md"),
]


def config_comments() -> dict[str, str]:
    """The comment above each key of ``DEFAULTS`` in config.py: its documentation."""
    source = (ROOT / "flask_flexactions" / "config.py").read_text()
    body = source[source.index("DEFAULTS: dict[str, Any] = {") :]
    body = body[: body.index("\n}\n")]
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith("#"):
            pending.append(line.lstrip("#").strip())
            continue
        key = re.match(r'^"(FLEXACTIONS_\w+)":', line)
        if key:
            comments[key.group(1)] = " ".join(pending)
            pending = []
    return comments


def default_text(value: Any) -> str:
    if isinstance(value, str) and value.startswith("-----BEGIN"):
        return "Jet Admin's published key"
    return f"`{value!r}`"


def configuration_table() -> str:
    """Every key of ``DEFAULTS`` as a definition list: key, default, meaning, guide."""
    comments = config_comments()
    rows = [
        "<!-- Written by tests/test_docs.py from flask_flexactions/config.py; "
        f"regenerate with {HOW_TO_REGENERATE}. -->",
    ]
    for key, value in DEFAULTS.items():
        guide = next(target for prefix, target in KEY_GUIDES if key.startswith(prefix))
        page = guide.split("#")[0].removesuffix(".md").replace("-", " ")
        meaning = comments[key].replace("``", "`")
        rows += [
            "",
            f"`{key}`",
            f": Default: {default_text(value)}. {meaning} See [{page}]({guide}).",
        ]
    return "\n".join(rows) + "\n"


def test_every_config_key_is_documented_in_config_py() -> None:
    comments = config_comments()
    assert set(comments) == set(DEFAULTS)
    assert all(comments.values()), "every key of DEFAULTS needs a comment above it"
    assert all(any(key.startswith(p) for p, _ in KEY_GUIDES) for key in DEFAULTS), (
        "a key no guide explains: add it to KEY_GUIDES"
    )


def test_configuration_page_lists_every_key() -> None:
    path = GENERATED / "configuration.md"
    table = configuration_table()
    if REGENERATE:
        path.write_text(table)
    assert path.read_text() == table, (
        f"docs/_generated/configuration.md is out of date: run {HOW_TO_REGENERATE}"
    )


def test_the_hand_written_api_entry_repeats_the_source() -> None:
    """``current_caller`` is a proxy autodoc cannot inspect; its entry quotes the source."""
    source = (ROOT / "flask_flexactions" / "caller.py").read_text()
    comment = re.search(r"#: (.*)\ncurrent_caller", source)
    assert comment is not None
    assert comment.group(1) in (DOCS / "api.md").read_text()


def check_server_start(server: Server, substitutions: Substitutions) -> list[str]:
    path = GENERATED / "shop-start.txt"
    (entry,) = parse_transcript(path.read_text())
    printed = clean(substitutions.output(server.wait_until("Press CTRL+C to quit")))
    expected = clean(entry.output) if entry.output.strip() else ""
    substitutions.learn(expected, printed)
    if REGENERATE:
        path.write_text(render_transcript([Entry(entry.command, printed)]))
        return []
    if masked(substitutions.expected(expected)) == masked(printed):
        return []
    diff = "".join(
        difflib.unified_diff(expected.splitlines(True), printed.splitlines(True), "shown", "now")
    )
    return [f"{path.name}: $ {entry.command}\n{diff}"]
