"""GET /agent/tools in process: the built-in and client tools, and MCP servers' state."""

import json

import pytest
from django.test import AsyncClient

from streaming.tools.registry import reset_tool_registry, tool_registry_close
from tests.servers import mcp_stdio_config
from tests.settings import INTERNAL_API_KEY

KEY = {"X-Internal-Auth": INTERNAL_API_KEY}


@pytest.fixture
async def fresh_registry():  # type: ignore[no-untyped-def]
    reset_tool_registry()
    yield
    await tool_registry_close()


async def test_the_key_is_required(fresh_registry) -> None:  # type: ignore[no-untyped-def]
    assert (await AsyncClient().get("/agent/tools")).status_code == 401
    response = await AsyncClient().post("/agent/tools", headers=KEY)
    assert response.status_code == 405


async def test_built_in_and_client_tools(fresh_registry) -> None:  # type: ignore[no-untyped-def]
    response = await AsyncClient().get("/agent/tools", headers=KEY)
    assert response.status_code == 200
    body = response.json()
    assert body["mcp_servers"] == []
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert set(tools) == {"echo", "calculator", "read_file"}
    assert tools["echo"] == {
        "name": "echo",
        "description": "Return the given text unchanged.",
        "parameters": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "title": "Text", "description": "The text to return."}
            },
            "required": ["text"],
        },
        "executor": "server",
        "requires_approval": False,
        "server_state": None,
    }
    assert tools["read_file"]["executor"] == "client"


async def test_mcp_tools_and_a_server_that_cannot_start(settings, fresh_registry) -> None:  # type: ignore[no-untyped-def]
    settings.MCP_SERVERS = json.dumps(
        {
            "mcpServers": {
                "t": mcp_stdio_config(allowed_tools=["shout"], requires_approval=True),
                "broken": {"command": "/nonexistent/mcp-server"},
            }
        }
    )
    settings.MCP_CONNECT_TIMEOUT_SECONDS = 60
    body = (await AsyncClient().get("/agent/tools", headers=KEY)).json()
    [shout] = [tool for tool in body["tools"] if tool["name"].startswith("t__")]
    assert shout == {
        "name": "t__shout",
        "description": "Return the text unchanged.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"title": "Text", "type": "string"}},
            "required": ["text"],
        },
        "executor": "mcp:t",
        "requires_approval": True,
        "server_state": "ready",
    }
    servers = {server["name"]: server for server in body["mcp_servers"]}
    assert servers["t"] == {
        "name": "t",
        "transport": "stdio",
        "state": "ready",
        "error": None,
        "tools": 1,
    }
    assert servers["broken"]["state"] == "failed"
    assert "FileNotFoundError" in servers["broken"]["error"]
