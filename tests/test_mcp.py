"""The MCP door as an agent meets it: ``flask flexactions mcp`` started over stdio by the
``mcp`` SDK's own client, serving the example shop on a fresh SQLite database."""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

#: The second caller of tests/mcp_app.py (not imported here: it changes the shop it imports).
CLERK = "Bearer clerk"

ROOT = Path(__file__).resolve().parent.parent
#: Bounds each session: starting the server, listing and calling the tools.
SESSION_TIMEOUT = 90


def _server(database: Path, auth: str) -> StdioServerParameters:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "SYSTEMROOT", "PYTHONPATH", "VIRTUAL_ENV"}
    }
    env.update(DATABASE_URL=f"sqlite:///{database}", FLEXACTIONS_TOKEN="mcp-test-token")
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "flask", "--app", "tests.mcp_app", "flexactions", "mcp", "--auth", auth],
        env=env,
        cwd=str(ROOT),
    )


def _run(main: Any) -> Any:
    """``anyio.run(main)`` in a thread of its own: the browser tests' Playwright keeps an event
    loop running in the test process's main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, main).result()


def _session(database: Path, auth: str, steps: Any) -> Any:
    """Start the server, run ``await steps(session)`` and return what it returns."""

    async def main() -> Any:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_client(_server(database, auth)) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await steps(session)

    return _run(main)


def _scalar(database: Path, sql: str) -> Any:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def test_an_agent_lists_and_calls_the_actions_over_stdio(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"

    async def steps(session: ClientSession) -> dict[str, Any]:
        listed = await session.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        calls = {
            "bad_value": await session.call_tool(
                "orders__refund", {"id": 1, "values": {"amount": "-5"}}
            ),
            "record": await session.call_tool(
                "orders__refund", {"id": 1, "values": {"amount": "10.00"}}
            ),
            "dry_run": await session.call_tool(
                "users__block_users", {"ids": [2, 3], "dry_run": True}
            ),
            "bulk": await session.call_tool("users__block_users", {"ids": [2, 3]}),
            "file": await session.call_tool("orders__export_orders_csv", {"ids": [1]}),
            "background": await session.call_tool("orders__refund_in_full", {"ids": [4]}),
        }
        job_id = calls["background"].structured_content["job"]["id"]
        calls["job"] = await session.call_tool("flexactions-job-status", {"job": job_id})
        calls["forbidden"] = await session.call_tool("accounts__account_transfer", {"values": {}})
        return {"tools": tools, **calls}

    got = _session(database, CLERK, steps)
    tools = got["tools"]
    # The clerk lacks the finance role: the transfer is not offered, and not run when named.
    assert "accounts__account_transfer" not in tools
    assert got["forbidden"].is_error and "Unknown tool" in _text(got["forbidden"])
    assert {"orders__refund", "users__block_users", "orders__export_orders_csv"} <= set(tools)
    refund = tools["orders__refund"]
    assert refund.input_schema["required"] == ["id", "values"]
    assert refund.annotations.title == "Refund"
    assert "dry_run" in tools["users__block_users"].input_schema["properties"]
    assert tools["users__block_users"].annotations.idempotent_hint is True
    assert tools["users__reset_password"].annotations.destructive_hint is True

    bad = got["bad_value"]
    assert bad.is_error
    assert bad.structured_content["errors"] == {"amount": ["The amount must be greater than zero."]}
    assert "amount: The amount must be greater than zero." in _text(bad)

    assert not got["record"].is_error
    assert _text(got["record"]) == "Refunded 10.00 of order #1."
    assert got["dry_run"].structured_content["dry_run"] is True
    assert _text(got["bulk"]) == "Blocked 2 users"

    file = got["file"]
    assert file.structured_content["file"]["filename"] == "orders.csv"
    (resource,) = [block for block in file.content if block.type == "resource"]
    assert resource.resource.mime_type == "text/csv"
    assert resource.resource.text.startswith("id,customer,total,refunded,status,created_at\r\n1,")

    job = got["background"].structured_content["job"]
    assert job["state"] == "succeeded"
    assert got["job"].structured_content["job"]["state"] == "succeeded"

    # Each run wrote what it says, and nothing else: order 1 refunded 10, order 4 in full,
    # users 2 and 3 blocked; the dry run and the refused calls wrote nothing.
    assert _scalar(database, "select refunded from orders where id = 1") == 10
    assert _scalar(database, "select status from orders where id = 4") == "refunded"
    assert _scalar(database, "select count(*) from users where is_blocked") == 2
    doors = _scalar(
        database,
        "select group_concat(distinct door) from flexactions_audit where caller_id = 'clerk'",
    )
    assert doors == "mcp"


def test_a_refused_credential_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    async def steps(session: ClientSession) -> None:
        await session.list_tools()

    with pytest.raises(Exception):  # noqa: B017 - the client only sees the pipe close
        _session(tmp_path / "shop.db", "Token wrong", steps)


def _documented_server(tmp_path: Path) -> StdioServerParameters:
    """The server as docs/mcp.md registers it with a client, its paths made real and its
    credential and database those of a test."""
    page = (ROOT / "docs" / "mcp.md").read_text()
    block = page.split("```json\n", 1)[1].split("```", 1)[0]
    entry = json.loads(block)["mcpServers"]["shop"]
    assert entry["command"] == "/path/to/venv/bin/flask"
    args = [arg.replace("/path/to/project", str(ROOT)) for arg in entry["args"]]
    assert set(entry["env"]) == {"FLEXACTIONS_MCP_AUTH", "DATABASE_URL"}
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}}
    env.update(
        FLEXACTIONS_MCP_AUTH="Token documented-token",
        FLEXACTIONS_TOKEN="documented-token",
        DATABASE_URL=f"sqlite:///{tmp_path / 'shop.db'}",
    )
    flask = Path(sys.executable).parent / "flask"
    # Started from a directory of the client's own, as clients do.
    return StdioServerParameters(command=str(flask), args=args, env=env, cwd=str(tmp_path))


def test_the_documented_client_configuration_serves_the_shop(tmp_path: Path) -> None:
    async def main() -> Any:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_client(_documented_server(tmp_path)) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    listed = await session.list_tools()
                    return listed, await session.call_tool("ping", {})

    listed, ping = _run(main)
    # The shared token may run every action, the finance transfer included.
    assert "accounts__account_transfer" in {tool.name for tool in listed.tools}
    assert not ping.is_error and _text(ping).startswith("pong")
