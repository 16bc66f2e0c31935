"""Schemathesis calls every route of the example shop from the shop's own OpenAPI document.

For each operation of ``/flex/openapi.json``, schemathesis (a maintained property-based API
tester) generates requests that fit the document (positive) and requests that break it
(negative), and each is sent through the shop's WSGI app with the shared token. Three checks
run on every answer:

- ``not_a_server_error``: no answer is a 5xx;
- ``response_schema_conformance``: every answer fits the document's own schemas;
- ``no_write_from_invalid_input`` (ours): a request that breaks the document, or whose answer
  says it was refused (a 4xx, or ``result: false`` without per-record outcomes or a job),
  changed no row of the shop's tables (snapshotted before and after the call).

Valid requests run for real (users get blocked, orders refunded), so the data drifts as it
would; the runs are derandomized and keep no example database, so every run sends the same
requests. The counts are written to ``test-artifacts/schemathesis-figures.json``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from examples.shop import create_app
from examples.shop.models import db
from flask_flexactions.doors import schemas
from flask_flexactions.doors.schemas import RELATED_COLLECTION_KEY
from flask_flexactions.errors import ProtocolError
from flask_flexactions.run.idempotency import KEY_HEADER, check_key
from tests.conftest import database_url

FIGURES = Path(__file__).resolve().parent.parent / "test-artifacts" / "schemathesis-figures.json"
TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
DOCUMENT = "/flex/openapi.json"
SHOP_TABLES = ("users", "orders", "accounts")
#: Examples per operation and generation mode: about a minute for the whole run.
MAX_EXAMPLES = 75


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Flask]:
    """The example shop on the test database, seeded, with background jobs run inline."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url(tmp_path),
            "FLEXACTIONS_TOKEN": TOKEN,
            "FLEXACTIONS_BACKGROUND_INLINE": True,
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the shop's tables, in primary key order."""
    with app.app_context():
        tables = db.metadata.tables
        with db.engine.connect() as connection:
            return {
                name: [
                    tuple(row)
                    for row in connection.execute(tables[name].select().order_by(tables[name].c.id))
                ]
                for name in SHOP_TABLES
            }


def restore(app: Flask, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """Put the shop's tables back to ``rows`` (a :func:`snapshot`)."""
    with app.app_context():
        tables = db.metadata.tables
        with db.engine.begin() as connection:
            for table in reversed(SHOP_TABLES):  # orders point to users
                connection.execute(tables[table].delete())
            for table in SHOP_TABLES:
                columns = [column.name for column in tables[table].columns]
                records = [dict(zip(columns, row, strict=True)) for row in rows[table]]
                if records:
                    connection.execute(tables[table].insert(), records)


def breaks_document(case: schemathesis.Case, document: dict[str, Any]) -> bool:
    """Whether the request sent breaks the document, checked here rather than taken from
    schemathesis's generation mode (a negated value can still fit, e.g. after encoding)."""
    operation = case.operation.definition.raw
    key = case.headers.get(KEY_HEADER) if case.headers else None
    if key is not None and not _valid_key(key):
        return True
    body = case.body
    if isinstance(body, schemathesis.core.NotSet):
        return bool(operation["requestBody"]["required"])
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][reference.rpartition("/")[2]]
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return not validator.is_valid(body)


def prepare(case: schemathesis.Case, rows: dict[str, int], number: int) -> None:
    """Steer the case ``number`` towards the paths that can write, keeping it as valid or as
    invalid as it was (validity is judged later, on the request as sent):

    - ids in ``[0, 2**31)`` (numbers or digits) move to rows that exist, so record and bulk
      actions run (random ids almost never match a row);
    - every second case of a bulk action without ids selects a row;
    - every second case goes without its ``Idempotency-Key``: the server checks the key
      first, so a broken key would hide what else a negative case breaks; a valid key is made
      unique to its call, else every reuse of a generated key is a 422 that runs nothing.
    """
    body = case.body
    operation = case.operation.definition.raw
    flex = operation["x-flexactions"]
    count = rows.get(flex["collection"], 0)
    if isinstance(body, dict):
        if "id" in body:
            body["id"] = _existing(body["id"], count)
        if isinstance(body.get("ids"), list):
            body["ids"] = [_existing(value, count) for value in body["ids"]]
        if flex["kind"] == "bulk" and number % 2 and not body.get("ids") and count:
            body["ids"] = [1 + number % count]
        values = body.get("values")
        if isinstance(values, dict):
            reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            schemas = case.operation.schema.raw_schema["components"]["schemas"]
            params = schemas[reference.rpartition("/")[2]]["properties"]["values"]["properties"]
            for name, param in params.items():
                related = param.get(RELATED_COLLECTION_KEY)
                if related is not None and name in values:
                    values[name] = _existing(values[name], rows.get(related, 0))
    if case.headers and KEY_HEADER in case.headers:
        if number % 2:
            del case.headers[KEY_HEADER]
        elif _valid_key(case.headers[KEY_HEADER]):
            case.headers[KEY_HEADER] = f"{number}-{case.headers[KEY_HEADER]}"[:255]


def _valid_key(key: Any) -> bool:
    try:
        check_key(key)
    except ProtocolError:
        return False
    return True


def _existing(value: Any, count: int) -> Any:
    if not count:
        return value
    if type(value) is int and 0 <= value < 2**31:
        return 1 + value % count
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return str(1 + int(value) % count)
    return value


def refused(response: Any) -> bool:
    """Whether the answer says the request was refused as a whole: a 4xx, or ``result:
    false`` with neither per-record outcomes (atomic=False) nor a job that ran."""
    if 400 <= response.status_code < 500:
        return True
    if response.status_code != 200 or "json" not in response.headers.get("content-type", [""])[0]:
        return False
    answer = response.json()
    return answer.get("result") is False and "records" not in answer and "job" not in answer


def answer_kind(response: Any) -> str:
    """``result: true``, ``result: false``, ``file`` or the error status, for the figures."""
    if response.status_code != 200:
        return str(response.status_code)
    if "json" not in response.headers.get("content-type", [""])[0]:
        return "file"
    return f"result: {str(response.json().get('result')).lower()}"


def run_schemathesis(shop: Flask, max_examples: int, only: str | None = None) -> dict[str, Any]:
    """Run schemathesis's coverage and fuzzing phases on every operation of the shop's
    document (or the one whose path ends with ``only``) and count what the checks found."""
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, shop, headers=AUTH)
    # The shared token is sent with every call: generated credentials would stop every
    # request at the door.
    schema.config.generation.update(with_security_parameters=False)
    document = shop.test_client().get(DOCUMENT, headers=AUTH).get_json()
    seed = snapshot(shop)
    figures: dict[str, Any] = {
        "operations": 0,
        "calls": 0,
        "server_errors": 0,
        "schema_violations": 0,
        "writes_from_invalid_input": 0,
        "invalid_requests_checked": 0,
        "valid_requests_that_wrote": 0,
        "by_phase_and_mode": Counter(),
        "statuses": Counter(),
        "answers": Counter(),
        "max_examples_per_operation_and_mode": max_examples,
        "failures": [],
    }
    before: dict[str, list[tuple[Any, ...]]] = {}

    def no_write_from_invalid_input(ctx: Any, response: Any, case: schemathesis.Case) -> None:
        """Our check: a request that breaks the document, or that the answer says was
        refused, changed no row of the shop."""
        negative = case.meta is not None and case.meta.generation.mode.is_negative
        invalid = (negative and breaks_document(case, document)) or refused(response)
        wrote = snapshot(shop) != before
        if not invalid:
            figures["valid_requests_that_wrote"] += wrote
            return
        figures["invalid_requests_checked"] += 1
        if wrote:
            raise AssertionError("A request that breaks the document changed the shop's data")

    checks = {
        "server_errors": not_a_server_error,
        "schema_violations": response_schema_conformance,
        "writes_from_invalid_input": no_write_from_invalid_input,
    }

    def call(case: schemathesis.Case, phase: str) -> None:
        # Each call starts from the seeded rows, so a write always shows (a user blocked
        # twice would not).
        before.clear()
        before.update(snapshot(shop))
        if before != seed:
            restore(shop, seed)
            before.clear()
            before.update(seed)
        prepare(case, {table: len(rows) for table, rows in seed.items()}, figures["calls"])
        response = case.call(headers=AUTH)
        figures["calls"] += 1
        mode = case.meta.generation.mode.value if case.meta is not None else "?"
        figures["by_phase_and_mode"][f"{phase} {mode}"] += 1
        figures["statuses"][str(response.status_code)] += 1
        figures["answers"][f"{case.method} {case.operation.path} {answer_kind(response)}"] += 1
        for counter, check in checks.items():
            try:
                case.validate_response(response, checks=[check], headers=AUTH)
            except (AssertionError, FailureGroup) as error:
                figures[counter] += 1
                if len(figures["failures"]) < 10:
                    label = case.operation.label
                    figures["failures"].append(f"{label} {counter}: {str(error)[:2000]}")

    def fuzz(case: schemathesis.Case) -> None:
        call(case, "fuzzing")

    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if only is not None and not operation.path.endswith(only):
            continue
        figures["operations"] += 1
        # Schemathesis's coverage phase: each property at its boundaries and each way of
        # breaking it, one at a time.
        for case in schema.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=schema.config.generation,
        ):
            call(case, "coverage")
        # Its fuzzing phase: random requests that fit the document, and that break it.
        for mode in GenerationMode:
            run = settings(
                max_examples=max_examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=operation.as_strategy(generation_mode=mode))(fuzz))
            run()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["database"] = shop.config["SQLALCHEMY_DATABASE_URI"].split(":")[0].split("+")[0]
    figures["schemathesis"] = schemathesis.__version__
    return figures


def test_schemathesis_finds_no_5xx_no_schema_break_and_no_write_from_invalid_input(
    shop: Flask,
) -> None:
    figures = run_schemathesis(shop, MAX_EXAMPLES)
    record(figures)
    assert figures["operations"] == len(document_paths(shop))
    assert figures["calls"] > 0
    assert figures["server_errors"] == 0, figures["failures"]
    assert figures["schema_violations"] == 0, figures["failures"]
    assert figures["writes_from_invalid_input"] == 0, figures["failures"]
    assert figures["invalid_requests_checked"] > 0


def test_the_write_check_catches_a_document_stricter_than_the_server(
    shop: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: with a document that calls null invalid for optional params (the
    server takes it as "not given"), schemathesis's negative cases block users."""
    monkeypatch.setattr(schemas, "_optional", lambda prop, text: prop)
    figures = run_schemathesis(shop, 10, only="/users/block_users")
    assert figures["writes_from_invalid_input"] > 0
    assert "no_write_from_invalid_input" in "".join(figures["failures"])


def record(figures: dict[str, Any]) -> None:
    """Keep the figures of this run beside those of the other database's last run."""
    FIGURES.parent.mkdir(exist_ok=True)
    try:
        kept = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        kept = {}
    kept[figures["database"]] = figures
    FIGURES.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")


def document_paths(app: Flask) -> list[str]:
    return list(app.test_client().get(DOCUMENT, headers=AUTH).get_json()["paths"])
