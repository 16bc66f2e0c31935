"""pytest plugin of flask-flexactions: the ``flex_client`` fixture.

Registered with the ``pytest11`` entry point, so it is active wherever the package is
installed. It imports the package only when a test asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from flask_flexactions.testing import FlexClient


@pytest.fixture
def flex_client(app: Flask) -> FlexClient:
    """A :class:`~flask_flexactions.testing.FlexClient` for your ``app`` fixture.

    It sends ``Authorization: Token <FLEXACTIONS_TOKEN>``; set ``flex_client.authorization``
    to send another credential.
    """
    from flask_flexactions.testing import FlexClient

    return FlexClient(app.test_client())
