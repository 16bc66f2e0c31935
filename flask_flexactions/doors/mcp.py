"""``flask flexactions mcp``: the actions as MCP tools over stdio, with the official ``mcp``
SDK (``pip install 'flask-flexactions[mcp]'``). The tools themselves are :mod:`.tools`.

Each tool call runs in a worker thread (the handlers are synchronous and may wait on the
database), one at a time: an agent's calls run in the order it sends them.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import mcp_types as types
from flask import Flask
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from ..errors import ProtocolError
from .openapi import package_version
from .tools import ActionTools, Tool, ToolAnswer

INSTRUCTIONS = (
    "Each tool runs one admin action of this application, under the caller's permissions, "
    "in one database transaction, recorded in the audit log. Record actions take id, bulk "
    "actions ids; input values go in values. Where a tool offers dry_run, call it with "
    "dry_run: true first to see what it would do. A refused call names the values to correct."
)


def build_server(app: Flask, authorization: str) -> Server[Any]:
    """An MCP server whose tools are the actions that ``authorization`` may run on ``app``."""
    tools = ActionTools(app, authorization)
    lock = threading.Lock()

    def listed() -> list[Tool]:
        with lock:
            return tools.list()

    def called(name: str, arguments: dict[str, Any] | None) -> ToolAnswer:
        with lock:
            return tools.call(name, arguments)

    async def list_tools(
        context: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            found = await anyio.to_thread.run_sync(listed)
        except ProtocolError as error:
            # A refused credential: an MCP error the client shows, rather than no tools.
            raise RuntimeError(f"The credential was refused: {error}") from None
        return types.ListToolsResult(tools=[_tool(tool) for tool in found])

    async def call_tool(context: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        answer = await anyio.to_thread.run_sync(called, params.name, params.arguments)
        return _result(answer)

    return Server(
        "flask-flexactions",
        version=package_version(),
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(app: Flask, authorization: str) -> None:
    """Serve the tools over stdin and stdout until the client closes them."""
    server = build_server(app, authorization)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def _tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema,
        annotations=types.ToolAnnotations(
            title=tool.annotations.get("title"),
            read_only_hint=tool.annotations.get("readOnlyHint"),
            destructive_hint=tool.annotations.get("destructiveHint"),
            idempotent_hint=tool.annotations.get("idempotentHint"),
            open_world_hint=tool.annotations.get("openWorldHint"),
        ),
    )


def _result(answer: ToolAnswer) -> types.CallToolResult:
    content: list[types.ContentBlock] = [types.TextContent(text=answer.text)]
    file = answer.file
    if file is not None:
        uri = f"flexactions://file/{file.filename}"
        text = file.text
        resource: types.TextResourceContents | types.BlobResourceContents
        if text is not None:
            resource = types.TextResourceContents(uri=uri, mime_type=file.mimetype, text=text)
        else:
            resource = types.BlobResourceContents(
                uri=uri, mime_type=file.mimetype, blob=file.base64
            )
        content.append(types.EmbeddedResource(resource=resource))
    return types.CallToolResult(
        content=content, structured_content=answer.structured, is_error=answer.is_error
    )
