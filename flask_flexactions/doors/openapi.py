"""The OpenAPI 3.1 document at ``<prefix>/openapi.json``: the route of every action the caller
may run, its request body, its answers and the security schemes in use.

The document is assembled with apispec (the Flask ecosystem's OpenAPI builder, which
flask-smorest uses too); the schemas come from :mod:`.schemas`. It is built once per set of
permissions, like the ``get_action_list`` answer, and rebuilt when an action is registered.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from apispec import APISpec
from flask import Blueprint, current_app, request
from werkzeug.wrappers import Response as BaseResponse

from ..access.auth import Authentication
from ..access.listing import ActionListing
from ..access.permissions import may_run
from ..caller import Caller
from ..config import Settings
from ..declare.actions import Action, ActionKind
from ..declare.models import Collection
from ..run.answers import message_error
from ..run.idempotency import KEY_HEADER
from .incoming import app_state, authenticate_caller, current_request
from .routes import APPROVALS_PATH, route_path
from .schemas import OPENAPI_VERSION, ActionSchemas, answer_schema, error_schema, operation_ids

if TYPE_CHECKING:
    from ..run.runtime import Runtime

#: Where the document is, under the blueprint's ``url_prefix``.
DOCUMENT_PATH = "/openapi.json"
#: The document's view on the blueprint (the endpoint ``<blueprint name>.openapi``), which
#: takes GET rather than POST.
VIEW = "openapi"
ALLOW = "GET, HEAD, OPTIONS"
#: Distinct audiences (and prefixes) whose documents are kept; past this the cache starts over.
CACHE_SIZE = 256

ANSWER = "ActionAnswer"
ERROR = "ErrorAnswer"
#: The error statuses a route may answer, with the name of their response component.
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The request breaks the protocol: malformed JSON, an unknown key, "
        "a malformed id or Idempotency-Key. Nothing ran.",
    ),
    401: ("Unauthorized", "Missing or invalid credentials."),
    403: ("Forbidden", "The caller may not run this action."),
    404: ("NotFound", "No such action on this collection."),
    409: ("Conflict", "A request with the same Idempotency-Key is still running; retry."),
    413: ("PayloadTooLarge", "The body is larger than FLEXACTIONS_MAX_BODY."),
    415: ("UnsupportedMediaType", "The body is not application/json."),
    422: ("UnprocessableContent", "The Idempotency-Key was used for another request."),
    500: ("InternalServerError", "The server failed; the error has been logged."),
    503: (
        "ServiceUnavailable",
        "The database, the broker or Jet Admin is unavailable; "
        "nothing ran. Retry after Retry-After seconds.",
    ),
}
_KINDS = {
    ActionKind.COMMON: "Tied to no collection.",
    ActionKind.COLLECTION: "Runs on the collection {name} itself.",
    ActionKind.RECORD: "Runs on one record of {name}: send its key as id.",
    ActionKind.BULK: "Runs on the records of {name} whose keys are in ids "
    "(or every record but those, with inverseIds).",
}


def package_version() -> str:
    """The installed version of flask-flexactions, the document's ``info.version``."""
    try:
        return version("flask-flexactions")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def security_schemes(settings: Settings, custom: bool) -> dict[str, dict[str, Any]]:
    """The security schemes of the document: only those configured, any one of which lets
    a request in (see :class:`~..access.auth.Authentication`)."""
    schemes: dict[str, dict[str, Any]] = {}
    if settings.token is not None:
        schemes["sharedToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The shared secret FLEXACTIONS_TOKEN, as Authorization: Bearer "
            "<secret> (Authorization: Token <secret> works too).",
        }
    if settings.jet_project is not None:
        schemes["jetAdminJWT"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Authorization: JWT <token>, a token Jet Admin issued (RS256) "
            "whose projects claim holds this app's project.",
        }
    if settings.jet_project_token is not None:
        schemes["jetAdminToken"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Authorization: Token <user token> or ProjectToken <project "
            "token>, checked with Jet Admin's project_auth API.",
        }
    if custom:
        schemes["appAuthorization"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "The app's own credential, checked by its authenticator "
            "(@flex.authenticator).",
        }
    return schemes


class OpenAPIDocuments:
    """Builds the document per caller and keeps it per audience (see
    :meth:`~..access.listing.ActionListing.audience`).

    :param runtime: the app's run layer (actions, settings, stores).
    :param listing: tells which callers may run the same actions.
    :param authentication: tells whether a custom authenticator is registered.
    """

    def __init__(
        self, runtime: Runtime, listing: ActionListing, authentication: Authentication
    ) -> None:
        self.runtime = runtime
        self.listing = listing
        self.authentication = authentication
        self.schemas = ActionSchemas(runtime)
        self._version = -1
        self._names: dict[tuple[str | None, str], str] = {}
        self._cache: dict[tuple[Any, ...], bytes] = {}

    def body(self, caller: Caller, prefix: str, title: str) -> bytes:
        """The document for ``caller`` as JSON, its routes under ``prefix``."""
        self._refresh()
        audience = self.listing.audience(caller)
        custom = self.authentication.custom_authenticator is not None
        if audience is None:
            return _encode(self.document(caller, prefix, title))
        key = (audience, prefix, title, custom)
        body = self._cache.get(key)
        if body is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            body = self._cache[key] = _encode(self.document(caller, prefix, title))
        return body

    def operations(self, caller: Caller) -> list[tuple[Action, Collection | None]]:
        """The ``(action, collection)`` pairs ``caller`` may run, as ``get_action_list``
        shows them, in the order of registration."""
        pairs: list[tuple[Action, Collection | None]] = []
        for action in self.runtime.registry:
            if not action.collections:
                if may_run(caller, action, None):
                    pairs.append((action, None))
                continue
            for collection in action.collections:
                if may_run(caller, action, collection.model):
                    pairs.append((action, collection))
        return pairs

    def operation_id(self, action: Action, collection: Collection | None) -> str:
        """The operationId of ``action`` on ``collection``, unique among every registered
        operation, whoever asks."""
        self._refresh()
        return self._names[(collection.name if collection else None, action.name)]

    def document(self, caller: Caller, prefix: str, title: str) -> dict[str, Any]:
        """The document for ``caller``, as a dict."""
        settings = self.runtime.settings
        schemes = security_schemes(settings, self.authentication.custom_authenticator is not None)
        spec = APISpec(
            title=title,
            version=package_version(),
            openapi_version=OPENAPI_VERSION,
            info={
                "description": (
                    "The Flex Actions this caller may run, one route each: POST a JSON body "
                    "with the selection (id, or ids and inverseIds), the input values and "
                    f"dry_run. The Messages URL ({prefix.rstrip('/')}/messages/) runs the "
                    "same actions with Jet Admin's protocol."
                )
            },
            servers=[{"url": prefix or "/"}],
            security=[{name: []} for name in schemes],
        )
        for name, scheme in schemes.items():
            spec.components.security_scheme(name, scheme)
        spec.components.schema(ANSWER, answer_schema())
        spec.components.schema(ERROR, error_schema())
        for status, (name, description) in ERROR_RESPONSES.items():
            spec.components.response(name, _error_response(status, description))
        tags: list[str] = []
        for action, collection in self.operations(caller):
            operation_id = self.operation_id(action, collection)
            request_body = self.schemas.request_body(action, collection)
            spec.components.schema(f"{operation_id}_request", request_body)
            tag = collection.name if collection is not None else "common"
            if tag not in tags:
                tags.append(tag)
            path = route_path(collection.name if collection else None, action.name)
            spec.path(
                path=path,
                operations={
                    "post": self._operation(
                        action, collection, operation_id, tag, bool(request_body.get("required"))
                    )
                },
            )
        for tag in tags:
            description = "Common actions." if tag == "common" else f"Actions on {tag}."
            spec.tag({"name": tag, "description": description})
        if any(action.approval is not None for action in self.runtime.registry):
            _add_approval_routes(spec)
        return spec.to_dict()

    def _operation(
        self,
        action: Action,
        collection: Collection | None,
        operation_id: str,
        tag: str,
        body_required: bool,
    ) -> dict[str, Any]:
        kind = _KINDS[action.kind].format(name=collection.name if collection else "")
        description = f"{action.description} {kind}" if action.description else kind
        if action.background:
            description += " Queued as a background job: the answer carries the job."
        responses: dict[str, Any] = {
            "200": {
                "description": "The action's answer: JSON (result false when it refused "
                "or failed), or a file when the action answers with one.",
                "headers": {
                    "Content-Disposition": {
                        "description": "attachment; filename=... on a file answer.",
                        "schema": {"type": "string"},
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{ANSWER}"}},
                    "*/*": {},
                },
            }
        }
        for status, (name, _) in ERROR_RESPONSES.items():
            responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": action.label or action.name,
            "description": description,
            "tags": [tag],
            "requestBody": {
                "required": body_required,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{operation_id}_request"}
                    }
                },
            },
            "responses": responses,
            "x-flexactions": {
                "action": action.name,
                "collection": collection.name if collection else None,
                "kind": action.kind.value,
                "background": action.background,
            },
        }
        if self.runtime.idempotency is not None:
            operation["parameters"] = [
                {
                    "name": KEY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Run once per key: the same request sent again with the "
                    "same key answers the first answer, without running again.",
                    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                }
            ]
        return operation

    def _refresh(self) -> None:
        registry = self.runtime.registry
        if self._version == registry.version:
            return
        pairs = [
            (collection.name if collection else None, action.name)
            for action in registry
            for collection in (action.collections or (None,))
        ]
        self._names = operation_ids(pairs)
        self._cache = {}
        self._version = registry.version


#: The approval routes: (path, operationId, summary, body properties).
_APPROVAL_ROUTES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        APPROVALS_PATH,
        "approvals__list",
        "The pending requests you may decide, and your own requests.",
        {"limit": {"type": ["integer", "null"], "minimum": 1, "maximum": 200}},
    ),
    (
        APPROVALS_PATH + "/{id}",
        "approvals__get",
        "One approval request, with the preview of its run computed now.",
        {"download": {"type": ["boolean", "null"]}},
    ),
    *(
        (
            f"{APPROVALS_PATH}/{{id}}/{verdict}",
            f"approvals__{verdict}",
            f"{verdict.capitalize()} an approval request.",
            {"comment": {"type": ["string", "null"], "maxLength": 2000}},
        )
        for verdict in ("approve", "reject", "withdraw")
    ),
)


def _add_approval_routes(spec: APISpec) -> None:
    """The routes that list, show and decide approval requests (see ``doors/routes.py``)."""
    spec.tag({"name": "approvals", "description": "Four-eyes approval requests."})
    for path, operation_id, summary, properties in _APPROVAL_ROUTES:
        responses: dict[str, Any] = {
            "200": {
                "description": "The answer (see the approvals guide).",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        }
        for status, (name, _) in ERROR_RESPONSES.items():
            responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["approvals"],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": properties,
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": responses,
        }
        if "{id}" in path:
            operation["parameters"] = [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                }
            ]
        spec.path(path=path, operations={"post": operation})


def _error_response(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    elif status == 503:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def register_openapi(blueprint: Blueprint) -> None:
    """Route ``/openapi.json`` on the extension's blueprint."""
    blueprint.add_url_rule(
        DOCUMENT_PATH,
        VIEW,
        openapi_document,
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        provide_automatic_options=False,
    )


def openapi_document() -> BaseResponse:
    """The OpenAPI document for the caller: a CORS preflight needs no credentials; the
    document needs the same as ``get_action_list``, and lists only what the caller may run."""
    state = app_state()
    if request.method == "OPTIONS":
        return current_app.response_class(status=204)
    if request.method not in ("GET", "HEAD"):
        response = message_error("The OpenAPI document is read with GET.", 405)
        response.headers["Allow"] = ALLOW
        return response
    caller = authenticate_caller(state, current_request())
    prefix = request.script_root + request.path[: -len(DOCUMENT_PATH)]
    body = state.openapi.body(caller, prefix, f"Flex Actions of {current_app.name}")
    return current_app.response_class(body, mimetype="application/json")
