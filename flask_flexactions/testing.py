"""A client for testing an app's Flex Actions through its Messages URL, as the admin UI calls it.

The ``flex_client`` pytest fixture (plugin ``pytest_flexactions``, installed with the package)
wraps the ``app`` fixture of your tests in a :class:`FlexClient`.
"""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse

from .doors.client import LocalCaller, execute_params

__all__ = ["FlexClient"]


class FlexClient(LocalCaller):
    """Sends Flex Actions messages through a Flask test client, with the app's shared token.

    ``FlexClient(app.test_client())``; pass ``authorization="Bearer ..."`` to send another
    credential (for a custom authenticator), or ``""`` to send none. Every call goes through the
    Messages URL: authentication, validation and the transaction run as in production.
    """

    def action_list(self) -> list[dict[str, Any]]:
        """The ``get_action_list`` answer; an ``AssertionError`` if it is not a 200."""
        response = self.message("get_action_list")
        if response.status_code != 200:
            raise AssertionError(
                f"get_action_list answered {response.status}: {response.get_data(as_text=True)}"
            )
        actions: list[dict[str, Any]] = response.get_json()
        return actions

    def execute(
        self,
        action: str,
        model: str | None = None,
        *,
        id: Any = None,
        ids: Any = None,
        inverse_ids: bool = False,
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        """Send ``execute_action`` and return the response.

        :param action: the action's name.
        :param model: the collection's wire name; None for a common action.
        :param id: the record of a record action.
        :param ids: the records of a bulk action (a list, or a comma-separated string).
        :param inverse_ids: run on every row except ``ids``.
        :param params: the user's input values.
        :param kwargs: passed to the test client's ``post``, e.g. ``headers``.
        """
        message = execute_params(
            action, model, id=id, ids=ids, inverse_ids=inverse_ids, params=params
        )
        return self.message("execute_action", message, **kwargs)
