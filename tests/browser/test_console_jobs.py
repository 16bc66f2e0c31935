"""Background jobs in the console: live state and progress, the answer when the job ends
(message, HTML, file), Cancel, and the tab's list of recent jobs; at 1366x768 and 390x844.

The lab's jobs run in a thread of the test process and wait for the test's go before each
record, so the test sees each step; the shop's run inline, answering the final state at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.browser.conftest import VIEWPORTS, Opener, keep_for_the_docs, pick
from tests.browser.lab import Lab

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason='the Playwright package is missing: pip install -e ".[test]"',
)
expect = sync_api.expect


def start(page: Any, action: str, ids: str) -> Any:
    """Run the lab's bulk ``action`` on ``ids``; the job card of the answer."""
    pick(page, "users", action)
    assert "runs in the background" in page.inner_text("#action-meta")
    page.fill("#target-ids", ids)
    page.click("#run")
    card = page.locator("#answer .job")
    expect(card).to_be_visible()
    return card


def test_a_job_shows_its_progress_live_then_its_answer(
    open_console: Opener, lab: tuple[Lab, str]
) -> None:
    page = open_console(lab[1])
    card = start(page, "recount", "1, 2, 3")
    assert page.inner_text("#answer .message") == "Queued Recount on 3 records."
    expect(card.locator(".state")).to_have_text("running")
    lab[0].step()
    expect(card.locator(".progress-text")).to_have_text("1 of 3 · person 1")
    assert card.locator("progress").get_attribute("max") == "3"
    assert card.locator("progress").evaluate("node => node.value") == 1
    expect(card.locator(".job-cancel")).to_be_visible()
    expect(page.locator("#job-list li .state")).to_have_text(["running"])
    lab[0].step(2)
    expect(card.locator(".state")).to_have_text("succeeded")
    expect(card.locator(".message")).to_have_text("Counted 3 people.")
    frame = page.frame_locator("#answer .job iframe.html-answer")
    expect(frame.locator("td")).to_have_text(["1", "Person 1", "2", "Person 2", "3", "Person 3"])
    assert card.locator(".job-cancel").count() == 0
    expect(page.locator("#job-list li .state")).to_have_text(["succeeded"])
    expect(page.locator("#announcer")).to_have_text("Recount: succeeded.")


def test_cancel_stops_a_running_job(open_console: Opener, lab: tuple[Lab, str]) -> None:
    page = open_console(lab[1])
    card = start(page, "recount", "4, 5, 6")
    lab[0].step()
    expect(card.locator(".progress-text")).to_have_text("1 of 3 · person 4")
    card.locator(".job-cancel").click()
    expect(card.locator(".job-cancel")).to_have_text("Cancel requested")
    expect(card.locator(".job-cancel")).to_be_disabled()
    lab[0].step()  # the job looks for a cancel at its next progress report
    expect(card.locator(".state")).to_have_text("cancelled")
    expect(card.locator(".answer-errors")).to_have_text("Cancelled; nothing was committed.")


def test_a_file_job_offers_its_file_when_it_ends(
    open_console: Opener, lab: tuple[Lab, str]
) -> None:
    page = open_console(lab[1])
    card = start(page, "export_people", "2, 1")
    expect(card.locator(".state")).to_have_text("succeeded")
    button = card.locator(".job-download")
    expect(button).to_have_text("Download people.csv (33 bytes)")
    with page.expect_download() as info:
        button.click()
    assert info.value.suggested_filename == "people.csv"
    assert Path(info.value.path()).read_bytes() == b"id,name\r\n2,Person 2\r\n1,Person 1\r\n"


def test_recent_jobs_stay_in_the_tab_and_open_with_their_state(
    open_console: Opener, lab: tuple[Lab, str]
) -> None:
    page = open_console(lab[1])
    start(page, "export_people", "1")
    expect(page.locator("#answer .job .state")).to_have_text("succeeded")
    card = start(page, "recount", "7, 8")
    expect(card.locator(".state")).to_have_text("running")
    page.reload()
    page.wait_for_selector("#actions button.action")
    jobs = page.locator("#job-list li")
    expect(jobs.locator(".job-open")).to_have_text(["Recount on users", "Export people on users"])
    expect(jobs.locator(".state")).to_have_text(["running", "succeeded"])
    lab[0].step(2)  # the reloaded page follows the job that is still running
    expect(jobs.locator(".state")).to_have_text(["succeeded", "succeeded"])
    jobs.locator(".job-open").first.click()
    expect(page.locator("#result-title")).to_have_text("Job")
    expect(page.locator("#answer .job .message")).to_have_text("Counted 2 people.")
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('flexactions.jobs'))")
    assert [job["action"] for job in stored] == ["recount", "export_people"]
    page.click("#jobs-clear")
    expect(page.locator("#jobs")).to_be_hidden()
    page.click("#forget")
    assert page.evaluate("sessionStorage.length") == 0


def test_an_inline_job_answers_its_final_state_with_each_record(
    page: Any, shop: tuple[Flask, str], viewport: tuple[int, int]
) -> None:
    pick(page, "orders", "refund_in_full")
    page.fill("#target-ids", "1, 4")
    page.click("#run")
    card = page.locator("#answer .job")
    expect(card.locator(".state")).to_have_text("succeeded")
    expect(card.locator(".progress-text")).to_have_text("2 of 2 · id 4")
    expect(card.locator(".records li")).to_have_text(
        ["#1 ok: Refunded 120.00 of order #1.", "#4 failed: Order #4 is already fully refunded."]
    )
    expect(page.locator("#job-list li .state")).to_have_text(["succeeded"])
    if viewport == VIEWPORTS["1366x768"]:
        keep_for_the_docs(page, "console-job.png")
