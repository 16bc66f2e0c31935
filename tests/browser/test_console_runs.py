"""Filling and running a form as a user does: defaults, preview, confirmation, where the answer
shows, when fields are marked, and what a refused run leaves; at 1366x768 and 390x844."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from examples.shop.models import User, db
from tests.browser.conftest import (
    VIEWPORTS,
    Opener,
    answer_text,
    in_view,
    keep_for_the_docs,
    pick,
)
from tests.browser.lab import Lab

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason='the Playwright package is missing: pip install -e ".[test]"',
)
expect = sync_api.expect
BAD = "rgb(179, 38, 30)"


def blocked(shop: tuple[Flask, str]) -> list[int]:
    with shop[0].app_context():
        return list(db.session.scalars(db.select(User.id).where(User.is_blocked).order_by(User.id)))


def asked(page: Any, message: str) -> Any:
    """Wait for the page's next request of the message ``message``."""
    return page.expect_response(lambda r: f'"name":"{message}"' in (r.request.post_data or ""))


# 1. Declared defaults, and the defaults of the record


def test_declared_defaults_start_the_form_and_reach_the_handler(
    open_console: Opener, lab: tuple[Lab, str]
) -> None:
    page = open_console(lab[1])
    pick(page, "users", "rename_person")
    assert page.is_checked("#param-notify")  # "default": True
    assert page.input_value("#param-priority") == "3"
    assert page.input_value("#param-name") == ""
    assert "Default: from the record" in page.inner_text('.field[data-field="name"]')
    page.fill("#target-id", "7")
    expect(page.locator("#param-name")).to_have_value("Person 7")
    expect(page.locator("#defaults-status")).to_have_text("Filled from record 7: Name.")
    page.click("#run")
    message = page.locator("#answer .message")
    expect(message).to_have_text(
        "Person #7: name='Person 7', notify=True, priority=3, send_copy_to=None"
    )
    page.uncheck("#param-notify")
    page.click("#run")
    expect(message).to_contain_text("notify=False")


def test_the_record_prefills_its_default_until_the_user_types_one(page: Any) -> None:
    pick(page, "users", "rename_user")
    with asked(page, "get_action_params"):
        page.fill("#target-id", "2")
    expect(page.locator("#param-name")).to_have_value("Grace Hopper")
    with asked(page, "get_action_params"):
        page.fill("#target-id", "3")
    expect(page.locator("#param-name")).to_have_value("Alan Turing")
    page.fill("#param-name", "Alan M. Turing")
    with asked(page, "get_action_params"):
        page.fill("#target-id", "2")
    assert page.input_value("#param-name") == "Alan M. Turing"  # what the user typed wins
    with asked(page, "get_action_params"):
        page.fill("#target-id", "99")
    expect(page.locator("#errors-target-id")).to_have_text("No record of users has the id 99.")
    assert page.get_attribute("#target-id", "aria-invalid") == "true"
    page.fill("#target-id", "2")
    page.click("#run")
    assert "grace@example.com is now called Alan M. Turing." in answer_text(page)


# 2. Preview


def test_preview_shows_what_a_run_would_do_before_it_runs(
    page: Any, shop: tuple[Flask, str]
) -> None:
    pick(page, "orders", "refund")
    assert page.is_hidden("#preview")  # refund declares no preview
    pick(page, "users", "block_users")
    assert "has a preview" in page.inner_text("#action-meta")
    page.fill("#target-ids", "1, 2")
    page.click("#preview")
    expect(page.locator("#result-title")).to_have_text("Preview")
    answer = answer_text(page)
    assert "Dry run: nothing was changed · 2 records selected." in answer
    assert "Would block 2 users (0 already blocked)." in answer
    assert '"dry_run": true' in page.inner_text("#request-body")
    assert blocked(shop) == []
    page.click("#run")  # two ids: no confirmation
    expect(page.locator("#result-title")).to_have_text("Answer")
    expect(page.locator("#answer .message")).to_have_text("Blocked 2 users")
    assert blocked(shop) == [1, 2]


# 3. Confirmation of a bulk run over an inverse selection, or over many ids


def test_all_rows_except_none_asks_first_with_the_count_from_the_preview(
    page: Any, shop: tuple[Flask, str], viewport: tuple[int, int]
) -> None:
    pick(page, "users", "block_users")
    page.check("#target-inverse")
    page.click("#run")
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    assert page.inner_text("#confirm-title") == "Run Block users on 5 records?"
    assert page.inner_text("#confirm-text") == "All rows of users, with no exception: 5 records."
    assert page.inner_text("#confirm-preview") == "Would block 5 users (0 already blocked)."
    assert page.inner_text("#confirm-run") == "Run on 5 records"
    assert page.evaluate("document.activeElement.id") == "confirm-cancel"
    if viewport == VIEWPORTS["1366x768"]:
        keep_for_the_docs(page, "console-confirm.png")
    page.click("#confirm-cancel")
    expect(dialog).to_be_hidden()
    assert blocked(shop) == []
    expect(page.locator("#result-title")).to_have_text("Preview")
    page.fill("#target-ids", "1")
    page.click("#run")
    expect(dialog).to_be_visible()
    assert page.inner_text("#confirm-text") == "All rows of users except 1 id (1): 4 records."
    page.click("#confirm-run")
    expect(dialog).to_be_hidden()
    expect(page.locator("#answer .message")).to_have_text("Blocked 4 users")
    assert blocked(shop) == [2, 3, 4, 5]


def test_a_bulk_run_over_many_ids_asks_first_and_escape_runs_nothing(page: Any) -> None:
    pick(page, "orders", "export_orders_csv")
    page.fill("#target-ids", ", ".join(str(i) for i in range(1, 11)))
    page.click("#run")
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    assert page.inner_text("#confirm-title") == "Run Export to CSV on 10 records?"
    assert page.inner_text("#confirm-text") == "10 records selected."
    assert page.is_hidden("#confirm-preview")  # no preview declared: the count alone
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.locator("#download").count() == 0
    page.click("#run")
    page.click("#confirm-run")
    page.wait_for_selector("#download")
    assert page.inner_text("#download") == "Download orders.csv"


# 5. The answer first, the exchange below it with its headers folded


def test_the_answer_is_in_view_after_run_and_the_headers_are_folded(
    page: Any, viewport: tuple[int, int]
) -> None:
    pick(page, "orders", "refund")
    page.fill("#target-id", "2")
    page.fill("#param-amount", "5.50")
    page.click("#run")
    expect(page.locator("#answer .message")).to_have_text("Refunded 5.50 of order #2.")
    assert in_view(page, "#answer .message")
    assert page.evaluate("window.scrollX") == 0
    result = page.locator("#result").bounding_box()
    exchange = page.locator("#exchange").bounding_box()
    assert result is not None and exchange is not None and result["y"] < exchange["y"]
    assert page.is_hidden("#response-headers") and page.is_hidden("#request-headers")
    assert page.is_visible("#response-status") and page.is_visible("#request-body")
    if viewport == VIEWPORTS["390x844"]:
        keep_for_the_docs(page, "console-phone.png")


# 6. Required fields marked after a blur or a first send, not before


def border(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "node => getComputedStyle(node).borderTopColor"))


def test_required_fields_are_marked_only_after_a_blur_or_a_send(page: Any) -> None:
    pick(page, "users", "reset_password")
    assert border(page, "#target-id") != BAD
    assert border(page, "#param-new_password") != BAD
    page.focus("#target-id")
    page.keyboard.press("Tab")  # left empty
    assert border(page, "#target-id") == BAD
    assert border(page, "#param-new_password") != BAD  # not left yet
    page.click("#run")
    assert border(page, "#param-new_password") == BAD
    assert page.get_attribute("#param-new_password", "aria-invalid") == "true"
    page.fill("#param-new_password", "long enough")
    assert border(page, "#param-new_password") != BAD
    assert page.get_attribute("#param-new_password", "aria-invalid") is None


# 7. A run the browser refuses leaves no earlier answer on screen


def test_a_run_the_browser_refuses_clears_the_previous_answer(page: Any) -> None:
    pick(page, "orders", "refund")
    page.fill("#target-id", "2")
    page.fill("#param-amount", "5.50")
    page.click("#run")
    expect(page.locator("#answer .message")).to_have_text("Refunded 5.50 of order #2.")
    page.fill("#param-amount", "")
    page.click("#run")
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#exchange")).to_be_hidden()
    assert page.inner_text("#answer") == ""
    assert page.eval_on_selector("#request-body", "node => node.textContent") == ""
    expect(page.locator("#announcer")).to_have_text("Not sent: 1 field to correct.")
