"""Test doubles for Jet Admin: RSA keys and tokens, and a fake ``project_auth`` server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "shop-admin"


class KeyPair:
    """An RSA key pair that signs tokens the way Jet Admin does."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, claims: dict[str, Any] | None = None, **overrides: Any) -> str:
        """An RS256 token for the test project, valid for an hour, with ``overrides``."""
        return jwt.encode({**user_claims(), **(claims or {}), **overrides}, self.private, "RS256")


def user_claims(**entry: Any) -> dict[str, Any]:
    """Claims of a Jet Admin user of :data:`PROJECT`, with ``entry`` as its project entry."""
    return {
        "user": 42,
        "email": "ann@example.com",
        "exp": int(time.time()) + 3600,
        "projects": {PROJECT: entry},
    }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A token with the given header and no signature (``alg: none``)."""
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())]
    return ".".join(parts) + "."


def hs256_token(claims: dict[str, Any], secret: str) -> str:
    """An HS256 token signed with ``secret``: the key-confusion attack when it is a public key."""
    signing_input = ".".join(
        [b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), b64(json.dumps(claims).encode())]
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


class FakeJetAdmin:
    """A ``project_auth`` endpoint on 127.0.0.1 whose answer a test chooses.

    ``mode``: ``"yes"`` (200 with ``answer``), ``"no"`` (200 ``access_disabled``), ``"forbid"``
    (403), ``"error"`` (500), ``"garbage"`` (200, not JSON), ``"slow"`` (answers after
    ``delay`` seconds).
    """

    def __init__(self) -> None:
        self.mode = "yes"
        self.delay = 2.0
        self.answer: dict[str, Any] = {"result": True, "user": 7, "roles": ["support"]}
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                fake.requests.append({key: values[0] for key, values in form.items()})
                fake.paths.append(self.path)
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                status, body = fake.reply()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout tests)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/"

    def reply(self) -> tuple[int, bytes]:
        if self.mode in ("yes", "slow"):
            return 200, json.dumps(self.answer).encode()
        if self.mode == "no":
            return 200, json.dumps({"access_disabled": True}).encode()
        if self.mode == "forbid":
            return 403, b'{"detail": "Invalid token"}'
        if self.mode == "error":
            return 500, b"Internal Server Error"
        return 200, b"<html>not json</html>"

    @contextmanager
    def running(self) -> Iterator[FakeJetAdmin]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"
