"""The example shop as the MCP door's stdio tests serve it: its database from
``DATABASE_URL``, the audit log in a table, and a second caller, ``Bearer clerk``, who does
not hold the ``finance`` role that the shop's money transfer needs."""

from __future__ import annotations

from typing import Any

from examples.shop import create_app, flex
from flask_flexactions import Caller

CLERK = "Bearer clerk"


@flex.authenticator
def clerk(request: Any) -> Caller | None:
    """The clerk: any action but those needing the ``finance`` role."""
    if request.headers.get("Authorization") == CLERK:
        return Caller(id="clerk", name="clerk", roles=frozenset({"support"}))
    return None


app = create_app({"FLEXACTIONS_AUDIT": "table"})
