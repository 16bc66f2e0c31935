"""Messages sent from inside the app through its test client, as the CLI and test helper do."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import BuildError
from werkzeug.test import TestResponse

#: The endpoint of the Messages URL on the extension's blueprint.
MESSAGES_ENDPOINT = "flexactions.messages"


def messages_url(app: Flask) -> str:
    """The path of the Messages URL on ``app``, or a ``RuntimeError`` naming the fix."""
    # Built from the URL map alone: the test client adds APPLICATION_ROOT itself.
    try:
        return app.url_map.bind("localhost").build(MESSAGES_ENDPOINT)
    except BuildError:
        raise RuntimeError(
            "The Flex Actions blueprint is not registered on this app: call "
            'app.register_blueprint(flex.blueprint, url_prefix="/flex").'
        ) from None


def token_authorization(app: Flask) -> str | None:
    """``Token <FLEXACTIONS_TOKEN>`` for ``app``, or None when no token is configured."""
    state = app.extensions.get("flexactions")
    token = state.settings.token if state is not None else app.config.get("FLEXACTIONS_TOKEN")
    return f"Token {token}" if token else None


def execute_params(
    action: str,
    model: str | None = None,
    *,
    id: Any = None,
    ids: Any = None,
    inverse_ids: bool = False,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``params`` of an ``execute_action`` message; None values are left out."""
    message: dict[str, Any] = {"name": action}
    if model is not None:
        message["model"] = model
    if id is not None:
        message["id"] = id
    if ids is not None:
        message["ids"] = ids
    if inverse_ids:
        message["inverseIds"] = True
    message["params"] = dict(params or {})
    return message


class LocalCaller:
    """Posts messages to the Messages URL of an app through a Flask test client.

    :param client: the test client to send with.
    :param authorization: the ``Authorization`` header; defaults to the app's shared token.
        Pass ``""`` to send none.
    """

    def __init__(self, client: FlaskClient, authorization: str | None = None) -> None:
        self.client = client
        self.app: Flask = client.application
        self.url = messages_url(self.app)
        self.authorization = (
            token_authorization(self.app) if authorization is None else authorization
        )

    def message(
        self, name: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> TestResponse:
        """Send the message ``name`` with ``params``; ``kwargs`` go to the client's ``post``."""
        body: dict[str, Any] = {"name": name}
        if params is not None:
            body["params"] = params
        headers = dict(kwargs.pop("headers", None) or {})
        if self.authorization:
            headers.setdefault("Authorization", self.authorization)
        return self.client.post(self.url, json=body, headers=headers, **kwargs)
