"""The console in real headless Chromium (Debian's, driven by Playwright), against the example
shop and the lab app served on 127.0.0.1, at a laptop's and a phone's size.

Every test's pages are photographed when it ends (``test-artifacts/console/``, what the
viewport shows and the whole page), and a test fails if a page logged an error, such as a
Content-Security-Policy violation. ``FLEXACTIONS_REGENERATE_DOCS=1`` rewrites the docs'
screenshots (``docs/_generated/console*.png``); otherwise each is checked against the text
of what it shows (``docs/_generated/console-screens.txt``), so it cannot show an older console.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from examples.shop import create_app
from examples.shop.models import db as shop_db
from tests.browser.approvals_lab import create_approvals_lab
from tests.browser.lab import Lab, create_lab
from tests.models import db as test_db

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path(os.environ.get("FLEXACTIONS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts" / "console"
GENERATED = ROOT / "docs" / "_generated"
SCREENS = GENERATED / "console-screens.txt"
REGENERATE = os.environ.get("FLEXACTIONS_REGENERATE_DOCS") == "1"
TOKEN = "browser-test-token"
#: The two sizes every test runs at: a 1366x768 laptop and a 390x844 phone.
VIEWPORTS = {"1366x768": (1366, 768), "390x844": (390, 844)}
#: axe-core, from the npm registry: .ci/run installs it here; a test run installs it when npm
#: is there, and the accessibility tests skip, saying so, when it cannot.
AXE_DIR = ROOT / "tests" / ".axe"
AXE_PACKAGE = "axe-core@4"


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` from a thread on a free port of 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    """Where the served apps are stopped, after the pages (open_console depends on it)."""
    with ExitStack() as stack:
        yield stack


def _dispose(app: Flask, db: Any) -> None:
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def shop(servers: ExitStack, tmp_path: Path) -> tuple[Flask, str]:
    """A fresh example shop (its demo data on a new SQLite file), served; (app, base URL)."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shop.db'}",
            "FLEXACTIONS_TOKEN": TOKEN,
            "FLEXACTIONS_CONSOLE": True,
        }
    )
    servers.callback(_dispose, app, shop_db)
    return app, servers.enter_context(serve(app))


@pytest.fixture
def lab(servers: ExitStack, tmp_path: Path) -> tuple[Lab, str]:
    """The lab app (see tests/browser/lab.py) on a new SQLite file, served; (lab, base URL)."""
    lab = create_lab(f"sqlite:///{tmp_path / 'lab.db'}", TOKEN)
    servers.callback(_dispose, lab.app, test_db)
    base = servers.enter_context(serve(lab.app))

    def end_the_jobs() -> None:
        lab.step(100)  # let any job still waiting end
        for thread in lab.threads:
            thread.join(timeout=20)

    servers.callback(end_the_jobs)
    return lab, base


@pytest.fixture
def approvals_lab(servers: ExitStack, tmp_path: Path) -> tuple[Flask, str]:
    """The app with an action that needs approval (see tests/browser/approvals_lab.py) on a
    new SQLite file, served; (app, base URL)."""
    app = create_approvals_lab(f"sqlite:///{tmp_path / 'approvals.db'}", TOKEN)
    servers.callback(_dispose, app, test_db)
    return app, servers.enter_context(serve(app))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason='the Playwright package is missing: pip install -e ".[test]"'
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(params=list(VIEWPORTS), ids=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> tuple[int, int]:
    """The size of the browser window: each test runs at both."""
    return VIEWPORTS[request.param]


#: Console messages a test may expect; each test states its own with ``allow_errors``.
Opener = Callable[..., Any]


@pytest.fixture
def open_console(
    browser: Any, viewport: tuple[int, int], servers: ExitStack, request: pytest.FixtureRequest
) -> Iterator[Opener]:
    """Open the console of a served app in a new browser context, signed in unless
    ``sign_in=False``; each page is photographed when the test ends, and its errors fail it."""
    opened: list[tuple[Any, Any, list[str], list[str]]] = []

    def open_(base: str, *, size: tuple[int, int] | None = None, sign_in: bool = True) -> Any:
        width, height = size or viewport
        context = browser.new_context(
            accept_downloads=True, viewport={"width": width, "height": height}
        )
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        allowed: list[str] = ["status of 401"]  # Chromium logs every 401 answer
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.allowed_errors = allowed
        page.goto(f"{base}/flex/console/")
        if sign_in:
            page.fill("#credential", TOKEN)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#actions button.action")
        opened.append((context, page, errors, allowed))
        return page

    yield open_
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    unexpected = []
    for index, (context, page, errors, allowed) in enumerate(opened):
        name = request.node.name + (f"-{index + 1}" if index else "")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
            page.screenshot(path=str(ARTIFACTS / f"{name}-full.png"), full_page=True)
        finally:
            context.close()
        unexpected += [e for e in errors if not any(text in e for text in allowed)]
    assert unexpected == []


@pytest.fixture
def page(open_console: Opener, shop: tuple[Flask, str]) -> Any:
    """The shop's console, signed in, at the test's viewport."""
    return open_console(shop[1])


def allow_errors(page: Any, *texts: str) -> None:
    """Console errors containing one of ``texts`` are expected by this test."""
    page.allowed_errors.extend(texts)


def pick(page: Any, model: str, action: str) -> None:
    page.click(f'#actions button[data-action="{action}"][data-model="{model}"]')
    page.wait_for_selector(f'#action-form[data-action="{action}"]')


def answer_text(page: Any) -> str:
    page.wait_for_selector("#answer p")
    return str(page.inner_text("#answer"))


def show_headers(page: Any) -> None:
    """Unfold the request's and the response's headers, as a user clicks them open."""
    for details in page.locator("#exchange details.headers").all():
        if details.get_attribute("open") is None:
            details.locator("summary").click()


def in_view(page: Any, selector: str) -> bool:
    """Whether the element's top edge is inside the viewport, as the page is scrolled now."""
    return bool(
        page.eval_on_selector(
            selector,
            "node => { const box = node.getBoundingClientRect();"
            " return box.height > 0 && box.top >= 0 && box.top < window.innerHeight - 20; }",
        )
    )


# The docs' screenshots


def _sections() -> dict[str, str]:
    if not SCREENS.exists():
        return {}
    parts = re.split(r"^== (\S+)\n", SCREENS.read_text(), flags=re.MULTILINE)
    return {name: text for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def screen_text(page: Any) -> str:
    """What a screenshot shows, as text: the actions, the form's labels, the answer, the
    recent jobs and the approval requests, with ids, dates and clock times masked."""
    parts = [page.inner_text("#actions")]
    selectors = ("#action-form", "#result", "#jobs", "#confirm[open]", "#approvals", "#approval")
    for selector in selectors:
        if page.is_visible(selector):
            parts.append(page.inner_text(selector))
    text = "\n".join(part.strip() for part in parts) + "\n"
    text = re.sub(r"\b[0-9a-f]{32}\b", "<job id>", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b", "<date time>", text)
    text = re.sub(r"\b\d{1,2}:\d\d:\d\d(\s?[AP]M)?", "<time>", text)
    return re.sub(r"\n{2,}", "\n", text)


def keep_for_the_docs(page: Any, name: str) -> None:
    """With FLEXACTIONS_REGENERATE_DOCS=1, write docs/_generated/<name> (what the viewport
    shows) and the text of what it shows; otherwise check the committed text is what the
    console shows now, so the image cannot show an older console."""
    text = screen_text(page)
    sections = _sections()
    if REGENERATE:
        page.screenshot(path=str(GENERATED / name))
        sections[name] = text
        SCREENS.write_text("".join(f"== {key}\n{sections[key]}" for key in sorted(sections)))
        return
    assert sections.get(name) == text, (
        f"docs/_generated/{name} shows another console than this one; rewrite it with: "
        "FLEXACTIONS_REGENERATE_DOCS=1 pytest tests/browser"
    )


# axe-core


def _axe_file() -> Path | None:
    configured = os.environ.get("FLEXACTIONS_AXE")
    candidates = [Path(configured)] if configured else []
    candidates.append(AXE_DIR / "node_modules" / "axe-core" / "axe.min.js")
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="session")
def axe_source() -> str:
    """The text of axe.min.js: installed with npm into tests/.axe/ when it is not there yet."""
    found = _axe_file()
    if found is None:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(
                "axe-core is not installed and npm is missing: apt-get install npm, then "
                f"npm install --prefix tests/.axe {AXE_PACKAGE}"
            )
        ran = subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", AXE_PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        found = _axe_file()
        if found is None:
            pytest.skip(f"npm could not install {AXE_PACKAGE}: {ran.stderr[-500:]}")
    return found.read_text()


def axe_violations(page: Any, source: str, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is (injected through the DevTools protocol, which the
    page's Content-Security-Policy does not govern); write its report to test-artifacts/ and
    return the serious and critical violations."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    report = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => ({violations: r.violations.map(v => ({id: v.id, impact: v.impact,"
        " help: v.help, nodes: v.nodes.map(n => n.target.join(' '))})),"
        " version: axe.version}))"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    return [v for v in report["violations"] if v["impact"] in ("serious", "critical")]
