"""The debug console: a static page in the browser that calls the Messages URL."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from flask import Blueprint, current_app
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

#: The console's files (HTML, CSS, JavaScript), shipped inside the package.
STATIC_DIR = Path(__file__).parent / "console"

#: The files of the console and their media types; nothing else is served.
FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
    "frame.css": "text/css",
}


def _sha256(filename: str) -> str:
    return base64.b64encode(hashlib.sha256((STATIC_DIR / filename).read_bytes()).digest()).decode()


#: Each file's SHA-256 (base64), sent as its ``Content-Digest``.
DIGESTS = {filename: _sha256(filename) for filename in FILES}

#: The page runs only its own script and style and talks only to its own origin. Answers that
#: carry HTML are shown in a sandboxed ``srcdoc`` frame, which inherits this policy: the one
#: inline style it admits, by its hash, is ``frame.css``, which the script copies into the
#: frame (with a policy of the frame's own that admits nothing else), so the answer's markup
#: gets a neutral look and still runs no script and loads nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; "
    f"style-src 'self' 'sha256-{DIGESTS['frame.css']}'; connect-src 'self'; "
    "img-src 'self' data:; frame-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def console_enabled() -> bool:
    """Whether the console is served: ``FLEXACTIONS_CONSOLE``, or ``app.debug`` when None."""
    state = current_app.extensions.get("flexactions")
    setting = state.settings.console if state is not None else None
    return current_app.debug if setting is None else setting


def console(filename: str = "index.html") -> BaseResponse:
    """Serve one file of the console, or 404 when the console is off.

    The files hold no data and no secret: everything the page shows comes from Messages URL
    requests, authenticated with the credential the user types in (kept in session storage).
    """
    if not console_enabled():
        raise NotFound("The debug console is off; set FLEXACTIONS_CONSOLE = True to serve it.")
    mimetype = FILES.get(filename)
    if mimetype is None:
        raise NotFound(f"The console has no file named {filename[:64]!r}.")
    body = (STATIC_DIR / filename).read_bytes()
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Digest"] = f"sha-256=:{DIGESTS[filename]}:"
    return response


def register_console(blueprint: Blueprint) -> None:
    """Route ``/console/`` and its files on the extension's blueprint."""
    blueprint.add_url_rule("/console/", "console", console, methods=["GET"])
    blueprint.add_url_rule("/console/<path:filename>", "console", console, methods=["GET"])
