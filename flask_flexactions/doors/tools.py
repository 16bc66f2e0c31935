"""The actions as tools for AI agents: what the MCP door (:mod:`.mcp`) serves, without the
MCP SDK, so that it can be read and tested on its own.

A tool is the route of one action (:mod:`.routes`) that the caller may run: its name is the
action's OpenAPI ``operationId``, its input schema the route's JSON body (with ``dry_run``
only where the action has a preview, and ``idempotency_key`` where keys are on). A call posts
that body to the route through the app's test client, so it runs through the same core as
every door: authentication, permissions, validation, one transaction, audit (with the door
``mcp``), the Idempotency-Key, background jobs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from ..declare.actions import Action, ActionKind
from ..declare.models import Collection
from ..errors import ProtocolError
from ..run.idempotency import KEY_HEADER, REPLAYED_HEADER
from .client import LocalCaller, messages_url
from .incoming import app_state, authenticate_caller, current_request
from .routes import DOOR_ENVIRON_KEY, route_path

#: The door's name in the audit log.
DOOR = "mcp"
#: The argument that carries the Idempotency-Key header.
KEY_ARGUMENT = "idempotency_key"
#: The tool that tells a background job's state; its ``-`` keeps it apart from every
#: operationId, which holds only ``[A-Za-z0-9_]``.
JOB_TOOL = "flexactions-job-status"
#: A file answer larger than this is described, not embedded in the tool's result.
MAX_EMBEDDED_FILE = 1024 * 1024

_KIND_TEXT = {
    ActionKind.COMMON: "Runs once, on no collection.",
    ActionKind.COLLECTION: "Runs once on the {name} collection.",
    ActionKind.RECORD: "Runs on one {name} record: pass its primary key as id.",
    ActionKind.BULK: "Runs on the {name} records whose primary keys are in ids "
    "(inverseIds: true runs on every record except those).",
}


@dataclass(frozen=True)
class Tool:
    """One tool as MCP lists it (``name``, ``title``, ``description``, ``input_schema``,
    ``annotations``), and the route it posts to."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any]
    path: str
    background: bool = False


@dataclass
class FileAnswer:
    """A file the action answered with."""

    filename: str
    mimetype: str
    data: bytes

    @property
    def text(self) -> str | None:
        """The file as text, for ``text/*`` and JSON files that decode as UTF-8."""
        if not (self.mimetype.startswith("text/") or self.mimetype == "application/json"):
            return None
        try:
            return self.data.decode()
        except UnicodeDecodeError:
            return None

    @property
    def base64(self) -> str:
        """The file's bytes in base64, as MCP carries binary contents."""
        return base64.b64encode(self.data).decode()


@dataclass
class ToolAnswer:
    """The result of one call: a text for the model, the JSON answer as structured content,
    whether it is an error the model may correct, and the file answered, if any."""

    text: str
    structured: dict[str, Any]
    is_error: bool = False
    file: FileAnswer | None = field(default=None)


def refusal(detail: str) -> ToolAnswer:
    """A call refused before it reached the route, shaped as the route's error bodies."""
    return ToolAnswer(detail, {"result": False, "detail": detail}, is_error=True)


class ActionTools:
    """The tools of ``app`` for the caller that ``authorization`` names.

    :param app: the Flask app, with the extension initialised and its blueprint registered.
    :param authorization: the ``Authorization`` header every call sends.
    """

    def __init__(self, app: Flask, authorization: str) -> None:
        self.app = app
        self.authorization = authorization
        self.prefix = messages_url(app).rstrip("/").removesuffix("/messages")

    def list(self) -> list[Tool]:
        """The tools the caller may run, in the order of registration (a
        :class:`~..errors.ProtocolError` when the credential is refused)."""
        with self.app.test_request_context(headers={"Authorization": self.authorization}):
            state = app_state()
            caller = authenticate_caller(state, current_request())
            idempotency = state.idempotency is not None
            tools = [
                self._tool(
                    action,
                    collection,
                    state.openapi.operation_id(action, collection),
                    state.openapi.schemas.request_body(action, collection),
                    idempotency,
                )
                for action, collection in state.openapi.operations(caller)
            ]
            if state.jobs is not None and any(tool.background for tool in tools):
                tools.append(_job_tool())
        return tools

    def call(self, name: str, arguments: dict[str, Any] | None) -> ToolAnswer:
        """Run the tool ``name`` with ``arguments``; an unknown tool, or one the caller may
        no longer run, answers an error."""
        arguments = dict(arguments or {})
        if name == JOB_TOOL:
            return self._job_status(arguments)
        try:
            path = self._path(name)
        except ProtocolError as error:
            return refusal(str(error))
        if path is None:
            detail = f"Unknown tool {name[:80]!r}: list the tools to see those you may run."
            return refusal(detail)
        headers = {"Authorization": self.authorization}
        key = arguments.pop(KEY_ARGUMENT, None)
        if key is not None:
            if not isinstance(key, str):
                detail = f"{KEY_ARGUMENT} must be a string."
                return refusal(detail)
            headers[KEY_HEADER] = key
        response = self.app.test_client().post(
            path,
            json=arguments,
            headers=headers,
            environ_base={DOOR_ENVIRON_KEY: DOOR},
        )
        return read_answer(response)

    def _path(self, name: str) -> str | None:
        """The route of the tool ``name`` if the caller may run it, without building every
        tool's schema (a :class:`~..errors.ProtocolError` when the credential is refused)."""
        with self.app.test_request_context(headers={"Authorization": self.authorization}):
            state = app_state()
            caller = authenticate_caller(state, current_request())
            for action, collection in state.openapi.operations(caller):
                if state.openapi.operation_id(action, collection) == name:
                    return self._route(action, collection)
        return None

    def _route(self, action: Action, collection: Collection | None) -> str:
        return self.prefix + route_path(collection.name if collection else None, action.name)

    def _tool(
        self,
        action: Action,
        collection: Collection | None,
        name: str,
        body: dict[str, Any],
        idempotency: bool,
    ) -> Tool:
        schema = json.loads(json.dumps(body))  # a copy the tool owns
        properties = schema["properties"]
        if action.preview is None:
            properties.pop("dry_run", None)
        else:
            properties["dry_run"]["description"] = (
                "True answers what the action would do (its preview), writing nothing."
            )
        if idempotency:
            properties[KEY_ARGUMENT] = {
                "type": "string",
                "pattern": "^[!-~]{1,255}$",
                "description": "Run once per key: the same call with the same key answers "
                "the first answer without running again. Use a new key for each new request.",
            }
        kind = _KIND_TEXT[action.kind].format(name=collection.name if collection else "")
        parts = [action.description or "", kind]
        if action.preview is not None:
            parts.append("Supports dry_run: true to see what it would do without writing.")
        if action.background:
            parts.append(f"Runs as a background job: call {JOB_TOOL} with the job's id.")
        if action.approval is not None:
            parts.append("Needs other people's approval: a call files a request.")
        annotations: dict[str, Any] = {"title": str(action.label or action.name)}
        if action.destructive is not None:
            annotations["destructiveHint"] = action.destructive
        if action.idempotent is not None:
            annotations["idempotentHint"] = action.idempotent
        annotations["readOnlyHint"] = False
        annotations["openWorldHint"] = False
        return Tool(
            name=name,
            title=str(action.label or action.name),
            description=" ".join(part for part in parts if part),
            input_schema=schema,
            annotations=annotations,
            path=self._route(action, collection),
            background=action.background,
        )

    def _job_status(self, arguments: dict[str, Any]) -> ToolAnswer:
        job = arguments.get("job")
        if not isinstance(job, str) or set(arguments) - {"job"}:
            detail = f"{JOB_TOOL} takes one argument, job: the id a background action answered."
            return refusal(detail)
        caller = LocalCaller(self.app.test_client(), self.authorization)
        return read_answer(caller.message("get_action_status", {"job": job}))


def _job_tool() -> Tool:
    return Tool(
        name=JOB_TOOL,
        title="Background job status",
        description="The state, progress and answer of a background job, by the id a "
        "background action answered.",
        input_schema={
            "type": "object",
            "properties": {"job": {"type": "string", "description": "The job's id."}},
            "required": ["job"],
            "additionalProperties": False,
        },
        annotations={"title": "Background job status", "readOnlyHint": True},
        path="",
    )


def read_answer(response: TestResponse) -> ToolAnswer:
    """A tool's answer from the route's (or the Messages URL's) HTTP answer."""
    if response.status_code == 200 and not response.is_json:
        file = FileAnswer(
            filename=response.headers.get("Content-Disposition", "")
            .partition("filename=")[2]
            .strip('"')
            or "answer",
            mimetype=response.mimetype or "application/octet-stream",
            data=response.get_data(),
        )
        text = f"The action answered with the file {file.filename} ({file.mimetype}, "
        text += f"{len(file.data)} bytes)."
        structured = {
            "result": True,
            "file": {"filename": file.filename, "mimetype": file.mimetype, "size": len(file.data)},
        }
        if len(file.data) > MAX_EMBEDDED_FILE:
            text += " It is too large to pass here; run the action from the CLI with --output."
            return ToolAnswer(text, structured)
        return ToolAnswer(text, structured, file=file)
    body = response.get_json(silent=True)
    if not isinstance(body, dict):
        detail = f"The server answered {response.status} without a JSON body."
        return refusal(detail)
    if response.status_code != 200:
        return ToolAnswer(_error_text(body, response.status), body, True)
    if body.get("result") is False:
        return ToolAnswer(_error_text(body, None), body, True)
    text = _success_text(body)
    if response.headers.get(REPLAYED_HEADER):
        text += "\nReplayed: the answer of the first call with this idempotency_key; it ran once."
    return ToolAnswer(text, body)


def _error_text(body: dict[str, Any], status: str | None) -> str:
    lines = [f"Refused ({status})." if status else "The action refused or failed."]
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        for name, messages in errors.items():
            shown = "; ".join(str(m) for m in messages) if isinstance(messages, list) else messages
            where = "" if name == "non_field_errors" else f"{name}: "
            lines.append(f"{where}{shown}")
    elif isinstance(body.get("detail"), str):
        lines.append(body["detail"])
    if any(name != "non_field_errors" for name in (errors or {})):
        lines.append("Correct the values named and call again.")
    return "\n".join(lines)


def _success_text(body: dict[str, Any]) -> str:
    lines: list[str] = []
    if body.get("dry_run"):
        lines.append("Dry run: nothing was written.")
    job = body.get("job")
    if isinstance(job, dict):
        lines.append(f"Background job {job.get('id')} is {job.get('state')}.")
        answer = job.get("answer")
        if isinstance(answer, dict) and isinstance(answer.get("message"), str):
            lines.append(answer["message"])
        if job.get("state") in {"queued", "running"}:
            lines.append(f"Call {JOB_TOOL} with job {job.get('id')!r} to follow it.")
    for key in ("message", "html"):
        if isinstance(body.get(key), str) and body[key] not in lines:
            lines.append(body[key])
    records = body.get("records")
    if isinstance(records, list):
        for record in records:
            if isinstance(record, dict):
                outcome = "done" if record.get("result") else "failed"
                detail = record.get("message") or _flat_errors(record.get("errors"))
                lines.append(f"#{record.get('id')}: {outcome}" + (f": {detail}" if detail else ""))
    return "\n".join(lines) or "Done."


def _flat_errors(errors: Any) -> str:
    if not isinstance(errors, dict):
        return ""
    return "; ".join(
        "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        for messages in errors.values()
    )
