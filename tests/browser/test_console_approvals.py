"""The console's approvals panel: a requester files a request and sees it waiting, another
person approves or rejects it there, and the server's refusals (approving one's own request)
are shown; each at 1366x768 and 390x844 (see conftest.py)."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from flask import Flask

from tests.browser.approvals_lab import refunded
from tests.browser.conftest import (
    VIEWPORTS,
    Opener,
    allow_errors,
    axe_violations,
    keep_for_the_docs,
    pick,
)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason='the Playwright package is missing: pip install -e ".[test]"',
)
expect = sync_api.expect


def sign_in_as(open_console: Opener, base: str, who: str) -> Any:
    """The console of ``base``, signed in as one of the lab's people (``Bearer <who>``)."""
    page = open_console(base, sign_in=False)
    page.fill("#credential", f"Bearer {who}")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#actions button.action")
    return page


def file_refund(page: Any, order: int = 1, amount: str = "250.00") -> str:
    """Run the refund, which files a request; returns the request's id."""
    pick(page, "orders", "refund")
    page.fill("#target-id", str(order))
    page.fill("#param-amount", amount)
    page.fill("#approval-reason", "Damaged in transit")
    page.click("#run")
    expect(page.locator("#result-title")).to_have_text("Approval requested")
    return str(page.get_attribute(".approval-filed", "data-approval"))


def open_request(page: Any, approval_id: str, listed_in: str) -> None:
    """Click the request in the panel's list (``to-decide`` or ``mine``)."""
    page.click(f'#{listed_in} button[data-approval="{approval_id}"]')
    expect(page.locator("#approval")).to_have_attribute("data-approval", approval_id)
    assert page.evaluate("document.activeElement.id") == "approval-title"


def facts(page: Any) -> dict[str, str]:
    """The request's details as shown: term to text."""
    pairs = page.eval_on_selector_all(
        "#approval-facts dt", "nodes => nodes.map(n => [n.textContent, n.nextSibling.innerText])"
    )
    return {term: text for term, text in pairs}


def test_a_request_is_filed_listed_and_approved_by_another_person(
    open_console: Opener, approvals_lab: tuple[Flask, str], viewport: tuple[int, int]
) -> None:
    app, base = approvals_lab
    alice = sign_in_as(open_console, base, "alice")
    pick(alice, "orders", "refund")
    assert "needs approval" in alice.inner_text("#action-meta")
    assert alice.get_attribute("#approval-reason", "required") is not None
    approval_id = file_refund(alice)
    notice = alice.inner_text(".approval-filed")
    assert "An approval request was filed. Nothing ran yet" in notice
    expect(alice.locator("#announcer")).to_have_text(
        "Refund: an approval request was filed; nothing ran yet."
    )
    assert refunded(app, 1) == 0
    # The requester's own request, pending, in the panel; the filed notice leads to it.
    mine = alice.locator(f'#mine li[data-approval="{approval_id}"]')
    expect(mine).to_have_attribute("data-state", "pending")
    assert alice.inner_text("#to-decide") == "Nothing awaits your decision."
    alice.click("#open-filed")
    expect(alice.locator("#approval-title")).to_have_text("Request: Refund on orders")
    assert alice.evaluate("document.activeElement.id") == "approval-title"
    assert alice.is_visible("#approval-withdraw")

    # Bob may not ask for refunds (no refund in his list) but decides them.
    bob = sign_in_as(open_console, base, "bob")
    assert bob.locator('#actions button[data-action="refund"]').count() == 0
    expect(bob.locator("#approvals")).to_be_visible()
    open_request(bob, approval_id, "to-decide")
    shown = facts(bob)
    assert shown["Action"] == "refund on orders"
    assert shown["Records"] == "#1"
    assert shown["Values"] == "amount: 250.00"
    assert shown["Reason"] == "Damaged in transit"
    assert shown["Requested by"] == "Alice (alice)"
    assert shown["Created"].endswith(" UTC") and shown["Expires"].endswith(" UTC")
    assert shown["Preview"] == "Would refund 250.00 of order #1."
    assert bob.inner_text("#approval-may") == "You may approve or reject this request."
    assert bob.is_hidden("#approval-withdraw")
    if viewport == VIEWPORTS["1366x768"]:
        keep_for_the_docs(bob, "console-approvals.png")
    bob.fill("#approval-comment", "Photos of the parcel attached")
    bob.click("#approval-approve")
    expect(bob.locator("#approval-answer .message")).to_have_text("Refunded 250.00 of order #1.")
    assert bob.evaluate("document.activeElement.id") == "approval-outcome-title"
    expect(bob.locator("#approval")).to_have_attribute("data-state", "ran")
    assert bob.is_hidden("#approval-decide")
    assert "approved by Bob" in facts(bob)["Decisions"]
    assert "Photos of the parcel attached" in facts(bob)["Decisions"]
    expect(bob.locator("#to-decide")).to_have_text("Nothing awaits your decision.")
    expect(bob.locator("#approvals-empty")).to_be_visible()
    assert '"name": "approve_action"' in bob.inner_text("#request-body")
    assert refunded(app, 1) == decimal.Decimal("250.00")

    alice.click("#approvals-refresh")
    expect(mine).to_have_attribute("data-state", "ran")
    expect(alice.locator("#approval")).to_have_attribute("data-state", "ran")


def test_a_rejection_with_a_reason_runs_nothing(
    open_console: Opener, approvals_lab: tuple[Flask, str]
) -> None:
    app, base = approvals_lab
    dave = sign_in_as(open_console, base, "dave")
    approval_id = file_refund(dave, order=2, amount="400.00")
    carol = sign_in_as(open_console, base, "carol")
    open_request(carol, approval_id, "to-decide")
    carol.fill("#approval-comment", "The parcel arrived intact")
    carol.keyboard.press("Tab")
    carol.keyboard.press("Tab")  # past Approve, to Reject
    assert carol.evaluate("document.activeElement.id") == "approval-reject"
    carol.keyboard.press("Enter")
    expect(carol.locator("#approval-answer .message")).to_have_text("Rejected; nothing ran.")
    expect(carol.locator("#approval")).to_have_attribute("data-state", "rejected")
    assert "rejected by Carol" in facts(carol)["Decisions"]
    assert "The parcel arrived intact" in facts(carol)["Decisions"]
    expect(carol.locator("#announcer")).to_have_text("Done: Rejected; nothing ran.")
    assert refunded(app, 2) == 0
    dave.click("#approvals-refresh")
    expect(dave.locator(f'#mine li[data-approval="{approval_id}"]')).to_have_attribute(
        "data-state", "rejected"
    )


def test_approving_ones_own_request_is_refused_and_a_withdrawal_ends_it(
    open_console: Opener, approvals_lab: tuple[Flask, str]
) -> None:
    app, base = approvals_lab
    alice = sign_in_as(open_console, base, "alice")
    allow_errors(alice, "status of 403")  # Chromium logs the refusal
    approval_id = file_refund(alice, order=3)
    alice.click("#open-filed")
    expect(alice.locator("#approval-may")).to_have_text(
        "You made this request: another person must approve it. You may withdraw it."
    )
    alice.click("#approval-approve")
    answer = alice.locator("#approval-answer")
    expect(answer.locator(".answer-errors")).to_have_text(
        "You made this request: someone else must approve it."
    )
    expect(answer.locator(".status-line")).to_contain_text("HTTP 403")
    expect(alice.locator("#announcer")).to_have_text(
        "Refused: You made this request: someone else must approve it."
    )
    expect(alice.locator("#approval")).to_have_attribute("data-state", "pending")
    alice.click("#approval-withdraw")
    expect(answer.locator(".message")).to_have_text("Withdrawn; nothing ran.")
    expect(alice.locator("#approval")).to_have_attribute("data-state", "withdrawn")
    expect(alice.locator(f'#mine li[data-approval="{approval_id}"]')).to_have_attribute(
        "data-state", "withdrawn"
    )
    assert refunded(app, 3) == 0


def test_a_missing_reason_is_shown_under_the_reason_field(
    open_console: Opener, approvals_lab: tuple[Flask, str]
) -> None:
    alice = sign_in_as(open_console, approvals_lab[1], "alice")
    allow_errors(alice, "status of 400")  # Chromium logs the refusal
    pick(alice, "orders", "refund")
    alice.uncheck("#browser-validation")  # send it without the reason the browser asks for
    alice.fill("#target-id", "1")
    alice.fill("#param-amount", "250.00")
    alice.click("#run")
    expect(alice.locator("#errors-approval-reason")).to_have_text(
        "Give a reason for this request: the approvers read it."
    )
    assert alice.get_attribute("#approval-reason", "aria-invalid") == "true"
    assert alice.locator(".approval-filed").count() == 0
    expect(alice.locator("#announcer")).to_have_text(
        "Refund refused. Reason: Give a reason for this request: the approvers read it."
    )


def test_the_panel_stays_away_from_an_app_without_approvals(
    open_console: Opener, shop: tuple[Flask, str]
) -> None:
    page = open_console(shop[1])
    pick(page, "orders", "refund")
    page.wait_for_load_state("networkidle")
    assert page.is_hidden("#approvals") and page.is_hidden("#approval-reason")
    assert "needs approval" not in page.inner_text("#action-meta")


def test_axe_finds_no_serious_or_critical_violation_in_the_panel(
    open_console: Opener,
    approvals_lab: tuple[Flask, str],
    axe_source: str,
    request: pytest.FixtureRequest,
) -> None:
    base = approvals_lab[1]
    alice = sign_in_as(open_console, base, "alice")
    approval_id = file_refund(alice)
    found = {}
    violations = axe_violations(alice, axe_source, f"{request.node.callspec.id}-approval-filed")
    if violations:
        found["filed"] = violations
    bob = sign_in_as(open_console, base, "bob")
    open_request(bob, approval_id, "to-decide")
    violations = axe_violations(bob, axe_source, f"{request.node.callspec.id}-approval-shown")
    if violations:
        found["shown"] = violations
    bob.click("#approval-approve")
    expect(bob.locator("#approval")).to_have_attribute("data-state", "ran")
    violations = axe_violations(bob, axe_source, f"{request.node.callspec.id}-approval-decided")
    if violations:
        found["decided"] = violations
    assert found == {}
