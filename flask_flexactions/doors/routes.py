"""The route of each action: ``POST <prefix>/actions/<collection>/<action>`` (or
``/actions/<action>`` for a common action) with a plain JSON body, run by the same core as the
Messages URL; and the routes that decide approval requests, ``POST <prefix>/approvals``.

The body is ``{"id": ...}`` for a record action, ``{"ids": [...], "inverseIds": false}`` for a
bulk action, ``"values"`` for the input values and ``"dry_run"`` (and ``"reason"`` for an
action that needs approval); any other key is refused (400), so a typo never runs an action
with its defaults. The answers, the authentication, the CORS headers, the limits and the
``Idempotency-Key`` header are the Messages URL's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flask import Blueprint, current_app
from werkzeug.wrappers import Response as BaseResponse

from ..declare.actions import ActionKind, ActionRegistry
from ..errors import NotFound, ProtocolError
from ..run.answers import message_error
from ..run.audit import Attempt
from ..run.core import run_request
from ..run.idempotency import KEY_ENVIRON
from ..run.request import ExecuteRequest, read_request
from .approvals import ROUTE_DECISIONS, get_approval, list_approvals
from .incoming import app_state, authenticate_caller, current_request, read_json_object

if TYPE_CHECKING:
    from .state import AppState

#: Where the routes are, under the blueprint's ``url_prefix``.
ROUTES_PATH = "/actions"
APPROVALS_PATH = "/approvals"
#: The door's name in the audit log.
DOOR = "route"
#: The WSGI environ key by which a door inside the app (the MCP door's test client) names
#: itself in the audit log; no HTTP request can set an environ key without the HTTP_ prefix.
DOOR_ENVIRON_KEY = "flexactions.door"
#: The doors that may post to a route from inside the app.
INNER_DOORS = frozenset({"mcp"})
#: The keys a body may have, by the kind of action.
BODY_KEYS: dict[ActionKind, tuple[str, ...]] = {
    ActionKind.COMMON: ("values", "dry_run"),
    ActionKind.COLLECTION: ("values", "dry_run"),
    ActionKind.RECORD: ("id", "values", "dry_run"),
    ActionKind.BULK: ("ids", "inverseIds", "values", "dry_run"),
}
ALLOW = "POST, OPTIONS"


def route_path(collection: str | None, action: str) -> str:
    """The path of an action's route under the prefix, each name percent-encoded (a wire
    name such as ``shop;account`` becomes ``shop%3Baccount``)."""
    names = [action] if collection is None else [collection, action]
    return ROUTES_PATH + "".join("/" + quote(name, safe="") for name in names)


class RouteTable:
    """Finds the action a route's path names, among every registered action; rebuilt when a
    registration is added. Names may hold any character, ``/`` included, once decoded."""

    def __init__(self, registry: ActionRegistry) -> None:
        self.registry = registry
        self._version = -1
        self._targets: dict[str, tuple[str | None, str]] = {}

    def find(self, target: str) -> tuple[str | None, str]:
        """The ``(collection, action)`` of the decoded path after ``/actions/``; one that
        names nothing registered is split at its first ``/``, so that the core answers 404
        naming what is unknown."""
        if self._version != self.registry.version:
            self._targets = dict(_targets(self.registry))
            self._version = self.registry.version
        found = self._targets.get(target)
        if found is None and target.endswith("/"):
            found = self._targets.get(target[:-1])  # the same route with a trailing slash
        if found is not None:
            return found
        collection, slash, action = target.rstrip("/").partition("/")
        return (collection, action) if slash else (None, collection)


def _targets(registry: ActionRegistry) -> Iterable[tuple[str, tuple[str | None, str]]]:
    for action in registry:
        if not action.collections:
            yield action.name, (None, action.name)
        for collection in action.collections:
            yield f"{collection.name}/{action.name}", (collection.name, action.name)


def register_routes(blueprint: Blueprint) -> None:
    """Route ``/actions/...`` and ``/approvals...`` on the extension's blueprint. Methods
    other than POST and OPTIONS are routed only to answer them with the protocol's 405 body."""
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    blueprint.add_url_rule(
        ROUTES_PATH + "/<path:target>",
        "route",
        run_route,
        methods=methods,
        provide_automatic_options=False,
    )
    for rule in ("", "/<approval_id>", "/<approval_id>/<verdict>"):
        blueprint.add_url_rule(
            APPROVALS_PATH + rule,
            "approvals" + rule.replace("/<", "_").replace(">", ""),
            approval_route,
            methods=methods,
            provide_automatic_options=False,
        )


#: The body keys of the approval routes: listing, showing one, deciding one.
APPROVAL_BODY_KEYS = {"list": ("limit",), "show": ("download",), "decide": ("comment",)}


def approval_route(approval_id: str | None = None, verdict: str | None = None) -> BaseResponse:
    """``POST /approvals`` lists the requests the caller may decide and their own;
    ``/approvals/<id>`` shows one (with its preview); ``/approvals/<id>/approve``,
    ``/reject`` and ``/withdraw`` decide it (``{"comment": ...}``)."""
    state = app_state()
    incoming = current_request()
    if incoming.method == "OPTIONS":
        return current_app.response_class(status=204)
    if incoming.method != "POST":
        response = message_error("An approval route takes POST with a JSON body.", 405)
        response.headers["Allow"] = ALLOW
        return response
    authenticate_caller(state, incoming)
    if verdict is not None and verdict not in ROUTE_DECISIONS:
        raise NotFound(f"Unknown approval route {verdict[:40]!r}: approve, reject or withdraw.")
    body = read_json_object(incoming, state.settings, "the body", empty_is_object=True)
    what = "list" if approval_id is None else ("show" if verdict is None else "decide")
    unknown = [key for key in body if key not in APPROVAL_BODY_KEYS[what]]
    if unknown:
        shown = ", ".join(repr(key[:40]) for key in unknown[:5])
        allowed = ", ".join(APPROVAL_BODY_KEYS[what])
        raise ProtocolError(f"Unknown key in the body: {shown}. This route takes {allowed}.")
    if approval_id is None:
        return list_approvals(state, body)
    params = {**body, "id": approval_id}
    if verdict is None:
        return get_approval(state, params)
    decide: Any = ROUTE_DECISIONS[verdict]
    return decide(state, params)  # type: ignore[no-any-return]


def run_route(target: str) -> BaseResponse:
    """Answer a CORS preflight, or authenticate and run the action the path names."""
    state = app_state()
    incoming = current_request()
    if incoming.method == "OPTIONS":
        return current_app.response_class(status=204)
    if incoming.method != "POST":
        response = message_error("An action's route takes POST with a JSON body.", 405)
        response.headers["Allow"] = ALLOW
        return response
    caller = authenticate_caller(state, incoming)
    body = read_json_object(incoming, state.settings, "the body", empty_is_object=True)
    model, name = state.routes.find(target)
    inner = incoming.environ.get(DOOR_ENVIRON_KEY)
    door = inner if inner in INNER_DOORS else DOOR

    def read(attempt: Attempt) -> ExecuteRequest:
        return read_request(
            state,
            attempt,
            action=name,
            model=model,
            values=lambda: _values(state, model, name, body),
            id=body.get("id"),
            ids=body.get("ids"),
            inverse=body.get("inverseIds"),
            dry_run=body.get("dry_run"),
            key=incoming.environ.get(KEY_ENVIRON),
            door=door,
            reason=body.get("reason"),
        )

    return run_request(state, caller, door, read)


def _values(state: AppState, model: str | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The input values of ``body``, once the caller may run the action: a body with a key
    the action does not take is refused (400), whatever else it holds."""
    action = state.registry.find(model or None, name)
    allowed = BODY_KEYS[action.kind] + (("reason",) if action.approval is not None else ())
    unknown = [key for key in body if key not in allowed]
    if unknown:
        shown = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise ProtocolError(
            f"Unknown key{'s' if len(unknown) > 1 else ''} in the body: {shown}. "
            f"A {action.kind.value} action takes {', '.join(allowed)}."
        )
    values = body.get("values")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ProtocolError('"values" must be an object of param names to values.')
    return values
