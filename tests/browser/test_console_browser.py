"""The console's forms and answers, as before this round of work: the action list, one
control per field type, the request with the token masked, field errors, files, HTML, the
ForeignKey picker and computed options; each at 1366x768 and 390x844 (see conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from examples.shop.models import User, db
from tests.browser.conftest import (
    TOKEN,
    VIEWPORTS,
    Opener,
    answer_text,
    keep_for_the_docs,
    pick,
    serve,
    show_headers,
)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason='the Playwright package is missing: pip install -e ".[test]"',
)


def test_lists_the_actions_grouped_by_collection_with_their_kind(page: Any) -> None:
    groups = page.eval_on_selector_all(
        "#actions section h2", "nodes => nodes.map(n => n.textContent)"
    )
    assert groups == ["accounts", "orders", "users", "Common actions"]
    kinds = page.eval_on_selector_all(
        "#actions button.action",
        "nodes => nodes.map(n => [n.dataset.model, n.dataset.action,"
        " n.querySelector('.kind').textContent])",
    )
    assert kinds == [
        ["accounts", "account_transfer", "collection"],
        ["orders", "refund", "record"],
        ["orders", "refund_in_full", "bulk"],
        ["orders", "reassign_order", "record"],
        ["orders", "export_orders_csv", "bulk"],
        ["orders", "sales_report", "collection"],
        ["users", "reset_password", "record"],
        ["users", "rename_user", "record"],
        ["users", "block_users", "bulk"],
        ["", "ping", "common"],
    ]


def test_record_action_shows_the_request_with_the_token_masked(page: Any) -> None:
    pick(page, "orders", "refund")
    assert page.get_attribute("#target-id", "required") is not None
    assert page.inner_text('.field[data-field="amount"] label') == "Amount*"
    page.fill("#target-id", "2")
    page.fill("#param-amount", "5.50")
    page.fill("#param-reason", "Late delivery")
    page.click("#run")
    assert "Refunded 5.50 of order #2." in answer_text(page)
    url = page.url.replace("/console/", "/messages/")
    assert page.inner_text("#request-line") == f"POST {url}"
    show_headers(page)
    headers = page.inner_text("#request-headers").splitlines()
    assert "Authorization: Token ••••••••" in headers
    assert "Content-Type: application/json" in headers
    assert '"amount": "5.50"' in page.inner_text("#request-body")
    assert page.inner_text("#response-status") == "200 OK"
    assert "content-type: application/json" in page.inner_text("#response-headers")
    assert '"result": true' in page.inner_text("#response-body")
    assert TOKEN not in page.content()
    assert page.evaluate("sessionStorage.getItem('flexactions.authorization')") == f"Token {TOKEN}"
    assert page.evaluate("localStorage.length") == 0


def test_a_field_error_appears_next_to_its_field(page: Any) -> None:
    pick(page, "users", "reset_password")
    page.fill("#target-id", "1")
    page.fill("#param-new_password", "short")
    page.click("#run")
    page.wait_for_selector("#errors-param-new_password li")
    assert page.inner_text("#errors-param-new_password") == "Use at least 8 characters."
    assert "result: false" in answer_text(page)


def test_browser_validation_can_be_turned_off_to_see_the_server_refuse(page: Any) -> None:
    pick(page, "users", "reset_password")
    page.fill("#target-id", "1")
    page.uncheck("#browser-validation")
    page.click("#run")
    page.wait_for_selector("#errors-param-new_password li")
    assert "Missing data for required field." in page.inner_text("#errors-param-new_password")


def test_bulk_action_with_a_select_param(page: Any, shop: tuple[Flask, str]) -> None:
    pick(page, "users", "block_users")
    page.fill("#target-ids", "4, 5")
    page.select_option("#param-reason", label="Spam")
    page.click("#run")
    assert "Blocked 2 users" in answer_text(page)
    assert '"ids": [\n      4,\n      5\n    ]' in page.inner_text("#request-body")
    app = shop[0]
    with app.app_context():
        blocked = db.session.scalars(db.select(User).where(User.is_blocked)).all()
        assert [(user.id, user.blocked_reason) for user in blocked] == [(4, "spam"), (5, "spam")]


def test_file_answer_downloads_the_csv(page: Any) -> None:
    pick(page, "orders", "export_orders_csv")
    page.fill("#target-ids", "9, 3")
    page.click("#run")
    page.wait_for_selector("#download")
    show_headers(page)
    assert 'attachment; filename="orders.csv"' in page.inner_text("#response-headers")
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "orders.csv"
    assert Path(download.path()).read_bytes() == (
        b"id,customer,total,refunded,status,created_at\r\n"
        b"9,barbara@example.com,89.90,0.00,shipped,2025-02-20T12:00:00\r\n"
        b"3,grace@example.com,249.99,0.00,shipped,2025-01-21T11:05:00\r\n"
    )


def test_html_answer_is_shown_in_a_sandboxed_frame(page: Any) -> None:
    pick(page, "orders", "sales_report")
    page.fill("#param-since", "2025-02-01")
    page.click("#run")
    page.wait_for_selector("iframe.html-answer")
    assert page.get_attribute("iframe.html-answer", "sandbox") == ""
    frame = page.frame_locator("iframe.html-answer")
    assert frame.locator("th").first.inner_text() == "Status"
    assert "net sales" in answer_text(page)


def test_foreign_key_picker_searches_the_related_rows(page: Any, viewport: tuple[int, int]) -> None:
    pick(page, "accounts", "account_transfer")
    picker = '.field[data-field="account_from"]'
    page.fill(f"{picker} .picker-search", "sav")
    results = page.locator(f"{picker} .picker-results button")
    sync_api.expect(results).to_have_text(["Savings (#2)"])
    results.first.click()
    sync_api.expect(results).to_have_count(0)
    assert page.input_value("#param-account_from") == "2"
    assert page.inner_text(f"{picker} .picker-chosen") == "Savings"
    page.fill("#param-account_to", "1")
    page.fill("#param-amount", "100")
    page.fill("#param-description", "Top up")
    page.fill("#param-date", "2025-03-01T09:30")
    page.click("#run")
    assert "Transferred 100.00 from Savings to Operating on 2025-03-01." in answer_text(page)
    assert '"account_from": 2' in page.inner_text("#request-body")
    if viewport == VIEWPORTS["1366x768"]:
        keep_for_the_docs(page, "console.png")


def test_the_browser_checks_a_decimal_before_sending(page: Any) -> None:
    pick(page, "orders", "refund")
    assert page.get_attribute("#param-amount", "inputmode") == "decimal"
    page.fill("#target-id", "1")
    page.fill("#param-amount", "12,5")
    page.click("#run")
    assert page.evaluate("document.querySelector('#param-amount').validity.patternMismatch")
    assert page.is_hidden("#exchange")


def test_a_wrong_credential_is_refused_and_forgotten(page: Any, shop: tuple[Flask, str]) -> None:
    page.click("#forget")
    page.fill("#credential", "Bearer wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not(:empty)")
    assert page.inner_text("#login-error").startswith("401: Missing or invalid credentials")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.is_hidden("#workspace")


@pytest.fixture(scope="module")
def every_field(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An app with one common action that takes a param of every field type; yields its URL."""
    from flask_flexactions import FlexActions
    from tests.models import Tag
    from tests.models import db as test_db

    flex = FlexActions()
    options = [{"value": 1, "name": "One"}, {"value": "b", "name": "Bee"}]
    params: list[dict[str, Any]] = [
        {"name": name, "field": field, "required": name == "char"}
        for name, field in [
            ("flag", "BooleanField"),
            ("char", "CharField"),
            ("text", "TextField"),
            ("sql", "SqlField"),
            ("code", "CodeField"),
            ("translatable", "TranslatableField"),
            ("datetime", "DateTimeField"),
            ("timestamp", "TimestampField"),
            ("date", "DateField"),
            ("time", "TimeField"),
            ("json", "JSONField"),
            ("integer", "IntegerField"),
            ("float", "FloatField"),
            ("decimal", "DecimalField"),
        ]
    ]
    params.append({"name": "choice", "field": "SelectField", "params": {"options": options}})
    params.append({"name": "tag", "field": "ForeignKey", "params": {"related_model": Tag}})

    @flex.action(params=params)
    def echo(values: dict[str, Any]) -> str:
        shown = {k: v.code if isinstance(v, Tag) else v for k, v in values.items()}
        return repr(sorted(shown.items()))

    app = Flask(__name__)
    database = tmp_path_factory.mktemp("fields") / "fields.db"
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        FLEXACTIONS_TOKEN=TOKEN,
        FLEXACTIONS_CONSOLE=True,
    )
    test_db.init_app(app)
    flex.init_app(app, db=test_db)
    app.register_blueprint(flex.blueprint, url_prefix="/flex")
    with app.app_context():
        test_db.create_all()
        test_db.session.add(Tag(code="vip", label="Very important"))
        test_db.session.commit()
    with serve(app) as base:
        yield base
    with app.app_context():
        test_db.engine.dispose()


def test_every_field_type_gets_its_control(open_console: Opener, every_field: str) -> None:
    page = open_console(every_field)
    pick(page, "", "echo")
    controls = page.eval_on_selector_all(
        "#params [id^=param-]", "nodes => nodes.map(n => [n.id, n.tagName, n.type || ''])"
    )
    assert controls == [
        ["param-flag", "INPUT", "checkbox"],
        ["param-char", "INPUT", "text"],
        ["param-text", "TEXTAREA", "textarea"],
        ["param-sql", "TEXTAREA", "textarea"],
        ["param-code", "TEXTAREA", "textarea"],
        ["param-translatable", "TEXTAREA", "textarea"],
        ["param-datetime", "INPUT", "datetime-local"],
        ["param-timestamp", "INPUT", "datetime-local"],
        ["param-date", "INPUT", "date"],
        ["param-time", "INPUT", "time"],
        ["param-json", "TEXTAREA", "textarea"],
        ["param-integer", "INPUT", "number"],
        ["param-float", "INPUT", "number"],
        ["param-decimal", "INPUT", "text"],
        ["param-choice", "SELECT", "select-one"],
        ["param-tag", "INPUT", "text"],
    ]
    assert page.inner_text('.field[data-field="char"] .required-mark') == "*"
    assert page.query_selector('.field[data-field="text"] .required-mark') is None
    page.fill("#param-json", '{"a": ')
    assert page.inner_text('.field[data-field="json"] .json-status').startswith("Not valid JSON")
    page.fill("#param-char", "x")
    page.click("#run")
    assert page.is_hidden("#exchange")  # the browser refused the JSON
    page.fill("#param-json", '{"a": [1, null]}')
    assert page.inner_text('.field[data-field="json"] .json-status') == "Valid JSON"
    page.fill("#param-integer", "1.5")
    page.click("#run")
    assert page.evaluate("document.querySelector('#param-integer').validity.stepMismatch")
    page.check("#param-flag")
    page.fill("#param-integer", "42")
    page.fill("#param-float", "2.5")
    page.fill("#param-decimal", "0.10")
    page.fill("#param-date", "2025-03-01")
    page.fill("#param-time", "10:30")
    page.fill("#param-datetime", "2025-03-01T10:30")
    page.select_option("#param-choice", label="One")
    page.fill('.field[data-field="tag"] .picker-search', "important")
    page.click('.field[data-field="tag"] .picker-results button[data-id="vip"]')
    page.click("#run")
    message = answer_text(page)
    for expected in [
        "('char', 'x')",
        "('choice', 1)",
        "('date', datetime.date(2025, 3, 1))",
        "('datetime', datetime.datetime(2025, 3, 1, 10, 30))",
        "('decimal', Decimal('0.10'))",
        "('flag', True)",
        "('float', 2.5)",
        "('integer', 42)",
        "('json', {'a': [1, None]})",
        "('tag', 'vip')",
        "('time', datetime.time(10, 30))",
    ]:
        assert expected in message


def test_a_computed_select_asks_the_server_for_its_options(page: Any) -> None:
    pick(page, "orders", "reassign_order")
    page.fill("#target-id", "1")
    page.focus("#param-new_owner")
    page.wait_for_selector('#param-new_owner option:has-text("Grace Hopper")', state="attached")
    page.select_option("#param-new_owner", label="Grace Hopper <grace@example.com>")
    page.click("#run")
    assert "Order #1 now belongs to grace@example.com." in answer_text(page)
