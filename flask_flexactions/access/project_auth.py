"""Jet Admin's ``Token``/``ProjectToken`` credentials, checked with Jet Admin's ``project_auth``.

The check is a server-to-server form POST; it fails closed: Jet Admin saying no is a 401, Jet
Admin not answering in time or answering garbage is a 503, and neither runs anything.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from ..caller import Caller
from ..errors import AuthenticationError, ServiceUnavailable
from .jet_jwt import jet_caller

#: Most ``project_auth`` answers kept at once; the oldest go first when full.
CACHE_SIZE = 4096
#: Largest ``project_auth`` answer read, in bytes.
MAX_ANSWER = 64 * 1024
#: Form fields a header parameter may not override.
RESERVED_FIELDS = frozenset({"project_token", "token"})

Opener = Callable[..., Any]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a 3xx reaches ``_ask`` as an HTTPError, answered 503."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ProjectAuth:
    """Asks Jet Admin's ``project_auth`` API whether a user or project token may use a project.

    :param url: the ``project_auth/`` endpoint.
    :param project_token: this app's project token (``FLEXACTIONS_JET_PROJECT_TOKEN``).
    :param timeout: seconds to wait on each network operation.
    :param cache_seconds: how long a positive answer is reused; 0 asks every time.
    """

    def __init__(
        self,
        url: str,
        project_token: str,
        timeout: float,
        cache_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.project_token = project_token
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()
        # No proxy from the environment: the token must go to Jet Admin and nowhere else.
        # No redirect either: urllib would follow it as a GET without the token, and an answer
        # to a request that never carried the token must not let anyone in.
        self._open: Opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect()
        ).open

    def verify(self, token: str, params: Mapping[str, str]) -> Caller:
        """The caller Jet Admin vouches for, or 401 (refused) or 503 (no usable answer)."""
        key = self._cache_key(token, params)
        cached = self._cached(key)
        if cached is not None:
            return cached
        answer = self._ask(token, params)
        if answer.get("access_disabled") is True or answer.get("result") is False:
            raise AuthenticationError("Jet Admin refused the token: it gives no access here.")
        caller = jet_caller(answer, answer, "project_auth")
        self._store(key, caller)
        return caller

    def _ask(self, token: str, params: Mapping[str, str]) -> Mapping[str, Any]:
        fields = {k: v for k, v in params.items() if k not in RESERVED_FIELDS}
        fields.update(project_token=self.project_token, token=token)
        request = urllib.request.Request(
            self.url,
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Accept": "application/json", "User-Agent": "flask-flexactions"},
            method="POST",
        )
        try:
            with self._open(request, timeout=self.timeout) as response:
                body = response.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as error:
            error.close()
            if 400 <= error.code < 500:
                raise AuthenticationError(
                    "Jet Admin refused the token: it gives no access here."
                ) from None
            raise _unavailable(f"it answered {error.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            # URLError, timeouts and refused connections are OSErrors.
            raise _unavailable(type(error).__name__) from None
        try:
            answer = json.loads(body) if len(body) <= MAX_ANSWER else None
        except ValueError:
            answer = None
        if not isinstance(answer, Mapping):
            raise _unavailable("its answer was not a JSON object")
        return answer

    def _cache_key(self, token: str, params: Mapping[str, str]) -> str:
        # Only a digest is kept, so the cache never holds a usable token.
        material = json.dumps([token, sorted(params.items())])
        return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()

    def _cached(self, key: str) -> Caller | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._cache[key]
                return None
            return hit[1]

    def _store(self, key: str, caller: Caller) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                now = self._clock()
                for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                    del self._cache[stale]
                while len(self._cache) >= CACHE_SIZE:
                    del self._cache[next(iter(self._cache))]
            self._cache[key] = (self._clock() + self.cache_seconds, caller)


def _unavailable(why: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Could not verify the token with Jet Admin ({why}); nothing was run. Try again."
    )
