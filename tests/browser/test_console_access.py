"""How the console looks and who can use it: narrow screens, the HTML answer's frame, quiet
buttons and readable names, the keyboard, announcements and axe-core; at 1366x768 and 390x844
(and at 360 and 420 px wide for the page's fit)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.browser.conftest import TOKEN, Opener, allow_errors, axe_violations, pick
from tests.browser.lab import Lab

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason='the Playwright package is missing: pip install -e ".[test]"',
)
expect = sync_api.expect


# 8. From 360 px up: nothing wider than the screen, the header's button on screen


def overflow(page: Any) -> int:
    """How many pixels the page is wider than the window."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize(
    "viewport",
    [(360, 740), (390, 844), (420, 900), (1366, 768)],
    ids=["360x740", "390x844", "420x900", "1366x768"],
)
def test_the_page_fits_the_screen_from_360_px(
    open_console: Opener, shop: tuple[Flask, str], viewport: tuple[int, int]
) -> None:
    width = viewport[0]
    page = open_console(shop[1], sign_in=False)
    assert page.is_visible("#credential") and overflow(page) == 0
    page.fill("#credential", TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_selector("#actions button.action")
    forget = page.locator("#forget").bounding_box()
    assert forget is not None and 0 <= forget["x"] and forget["x"] + forget["width"] <= width
    assert overflow(page) == 0
    pick(page, "accounts", "account_transfer")
    page.fill('.field[data-field="account_from"] .picker-search', "a")
    expect(page.locator('.field[data-field="account_from"] .picker-results button')).to_have_count(
        3
    )
    assert overflow(page) == 0
    pick(page, "orders", "sales_report")
    page.click("#run")
    page.wait_for_selector("iframe.html-answer")
    assert overflow(page) == 0


# 9. The HTML answer's own stylesheet; a quiet Forget; readable names of params


def test_an_html_answer_gets_a_neutral_stylesheet_in_its_frame(page: Any) -> None:
    pick(page, "orders", "sales_report")
    page.fill("#param-since", "2025-02-01")
    page.click("#run")
    frame = page.frame_locator("iframe.html-answer")
    header = frame.locator("th").first
    expect(header).to_have_text("Status")
    style = header.evaluate(
        "node => { const s = getComputedStyle(node); return [s.fontFamily, s.backgroundColor,"
        " s.borderTopStyle, getComputedStyle(node.closest('table')).borderCollapse]; }"
    )
    assert "serif" not in style[0].replace("sans-serif", "")
    assert style[1:] == ["rgb(246, 247, 249)", "solid", "collapse"]
    assert page.get_attribute("iframe.html-answer", "sandbox") == ""


def test_an_html_answer_runs_no_script_and_loads_nothing(
    open_console: Opener, lab: tuple[Lab, str]
) -> None:
    page = open_console(lab[1])
    # The frame's policy refuses the answer's script, style and image; Chromium logs each.
    allow_errors(page, "Content Security Policy", "Blocked script execution")
    pick(page, "", "hostile_html")
    page.click("#run")
    frame = page.frame_locator("iframe.html-answer")
    expect(frame.locator("td")).to_have_text("1")
    assert frame.locator("body").evaluate("body => body.dataset.ran") is None
    styled = frame.locator("#styled").evaluate(
        "node => [getComputedStyle(node).color, getComputedStyle(node).fontFamily]"
    )
    assert styled[0] != "rgb(255, 0, 0)" and not styled[1].startswith("serif")
    assert "/probe.png" not in lab[0].paths


def test_forget_is_a_quiet_button_and_params_without_a_label_read_as_words(
    page: Any, open_console: Opener, lab: tuple[Lab, str]
) -> None:
    def background(selector: str) -> str:
        return str(page.eval_on_selector(selector, "n => getComputedStyle(n).backgroundColor"))

    pick(page, "accounts", "account_transfer")
    assert background("#forget") == "rgba(0, 0, 0, 0)"
    assert background("#run") == "rgb(36, 87, 197)"
    assert page.inner_text('.field[data-field="description"] > label') == "Description"
    page = open_console(lab[1])
    pick(page, "users", "rename_person")
    labels = page.eval_on_selector_all(
        "#params .field > label", "nodes => nodes.map(n => n.textContent)"
    )
    assert labels == ["Name", "Notify", "Priority", "Send copy to"]


# 10. Keyboard and screen readers


def test_the_keyboard_alone_picks_fills_and_runs(page: Any) -> None:
    page.focus('#actions button[data-action="refund"]')
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "action-title"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "target-id"
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    expect(page.locator("#answer .message")).to_have_text("Refunded 5.00 of order #2.")
    expect(page.locator("#announcer")).to_have_text("Refund: Refunded 5.00 of order #2.")
    page.keyboard.press("Tab")  # from the amount to the reason, a text area
    assert page.evaluate("document.activeElement.id") == "param-reason"
    page.keyboard.type("again")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#request-body")).to_contain_text('"reason": "again"')
    expect(page.locator("#answer .message")).to_have_text("Refunded 5.00 of order #2.")


def test_focus_is_visible_on_every_kind_of_control(page: Any) -> None:
    pick(page, "users", "block_users")
    for selector in (
        "#forget",
        "#target-ids",
        "#target-inverse",
        "#param-reason",
        "#run",
        "#preview",
        '#actions button[data-action="ping"]',
    ):
        page.focus(selector)
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        outline = page.eval_on_selector(
            selector, "n => [getComputedStyle(n).outlineStyle, getComputedStyle(n).outlineWidth]"
        )
        assert outline == ["solid", "3px"], selector


def test_errors_are_announced_and_tied_to_their_field(page: Any) -> None:
    pick(page, "users", "reset_password")
    page.fill("#target-id", "1")
    page.fill("#param-new_password", "short")
    page.click("#run")
    expect(page.locator("#errors-param-new_password")).to_have_text("Use at least 8 characters.")
    expect(page.locator("#announcer")).to_have_text(
        "Reset password refused. New password: Use at least 8 characters."
    )
    assert page.get_attribute("#param-new_password", "aria-invalid") == "true"
    described = page.get_attribute("#param-new_password", "aria-describedby") or ""
    assert "errors-param-new_password" in described.split()
    assert page.get_attribute("#non-field-errors", "role") == "alert"
    assert page.get_attribute("#announcer", "aria-live") == "polite"


def test_every_control_has_a_label(page: Any) -> None:
    for model, action in [("accounts", "account_transfer"), ("users", "block_users")]:
        pick(page, model, action)
        unlabelled = page.eval_on_selector_all(
            "#workspace input, #workspace select, #workspace textarea",
            "nodes => nodes.filter(n => !n.labels.length && !n.getAttribute('aria-label'))"
            ".map(n => n.id || n.className)",
        )
        assert unlabelled == []


def states_to_check(page: Any) -> list[tuple[str, Any]]:
    """The console's screens in turn, each a step that brings it on; for axe."""

    def login() -> None:
        page.click("#forget")

    def sign_in() -> None:
        page.fill("#credential", "browser-test-token")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#actions button.action")

    def transfer() -> None:
        pick(page, "accounts", "account_transfer")
        page.fill('.field[data-field="account_from"] .picker-search', "a")
        page.wait_for_selector('.field[data-field="account_from"] .picker-results button')

    def answered_with_html() -> None:
        pick(page, "orders", "sales_report")
        page.click("#run")
        page.wait_for_selector("iframe.html-answer")

    def refused() -> None:
        pick(page, "users", "reset_password")
        page.fill("#target-id", "1")
        page.fill("#param-new_password", "short")
        page.click("#run")
        page.wait_for_selector("#errors-param-new_password li")

    def confirming() -> None:
        pick(page, "users", "block_users")
        page.check("#target-inverse")
        page.click("#run")
        page.wait_for_selector("#confirm[open]")

    def job() -> None:
        page.click("#confirm-cancel")
        pick(page, "orders", "refund_in_full")
        page.fill("#target-ids", "1, 2")
        page.click("#run")
        page.wait_for_selector("#answer .job .records")

    return [
        ("login", login),
        ("actions", sign_in),
        ("picker", transfer),
        ("html-answer", answered_with_html),
        ("field-errors", refused),
        ("confirm", confirming),
        ("job", job),
    ]


def test_axe_finds_no_serious_or_critical_violation(
    page: Any, axe_source: str, request: pytest.FixtureRequest
) -> None:
    found = {}
    for name, bring in states_to_check(page):
        bring()
        violations = axe_violations(page, axe_source, f"{request.node.callspec.id}-{name}")
        if violations:
            found[name] = violations
    assert found == {}
