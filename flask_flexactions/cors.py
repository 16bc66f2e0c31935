"""CORS headers of the Messages URL, which the admin UI calls straight from the browser."""

from __future__ import annotations

from werkzeug.datastructures import Headers

from .config import Settings

ALLOW_METHODS = "POST, OPTIONS"
EXPOSE_HEADERS = "Content-Disposition, Content-Type"


def add_cors_headers(
    headers: Headers, settings: Settings, origin: str | None, preflight: bool
) -> None:
    """Set the CORS headers of one answer; the origin is allowed only when configured."""
    headers.add("Vary", "Origin")
    if origin and (settings.cors_any_origin or origin in settings.cors_origins):
        headers["Access-Control-Allow-Origin"] = "*" if settings.cors_any_origin else origin
    headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    headers["Access-Control-Allow-Headers"] = settings.cors_allow_headers
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if preflight:
        headers["Access-Control-Max-Age"] = str(settings.cors_max_age)
