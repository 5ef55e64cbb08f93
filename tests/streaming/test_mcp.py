"""MCP tool sources against real MCP servers: the test server over Streamable HTTP and stdio,
and the third-party ``mcp-server-time`` over stdio. No mocks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from streaming.llm_client import ToolCallDelta
from streaming.tool_calls import ToolCallAssembler, ToolOutcome, tool_rejected, tool_run
from streaming.tools.mcp import MCPToolSource
from streaming.tools.mcp_config import mcp_servers_parse
from streaming.tools.registry import ToolRegistry
from tests.servers import ServerProcess, mcp_stdio_config, pid_running, start_mcp_http

# Generous: a Python MCP server takes seconds to start on a busy 2-core machine.
CONNECT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def mcp_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_mcp_http(tmp_path_factory.mktemp("mcp-http"))
    yield server
    server.stop()


def registry_of(servers: dict) -> ToolRegistry:
    source = MCPToolSource(
        mcp_servers_parse(json.dumps({"mcpServers": servers})), connect_timeout=CONNECT_TIMEOUT
    )
    return ToolRegistry(sources=[source])


@pytest.fixture
async def open_registry() -> AsyncIterator:
    opened: list[ToolRegistry] = []

    async def open_(servers: dict) -> ToolRegistry:
        registry = registry_of(servers)
        opened.append(registry)
        await registry.ready()
        return registry

    yield open_
    for registry in opened:
        await registry.aclose()


async def run(registry: ToolRegistry, name: str, arguments: dict | str) -> ToolOutcome:
    """One call as the turn makes it: assembled, validated, run with its timeout."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    assembler = ToolCallAssembler()
    assembler.add(ToolCallDelta(index=0, id="c1", name=name, arguments=raw))
    [call] = assembler.calls(registry)
    return tool_rejected(call) if call.problem else await tool_run(call)


def connection(registry: ToolRegistry, name: str):  # type: ignore[no-untyped-def]
    [source] = registry.sources
    assert isinstance(source, MCPToolSource)
    return source.connections[name]


async def test_http_tools_are_discovered_with_their_schemas(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp", "timeout": 5}})
    names = {tool.name for tool in registry}
    assert {"docs__stats", "docs__fail", "docs__hang", "docs__unlock"} <= names
    stats = registry.get("docs__stats")
    assert stats is not None
    assert (stats.executor, stats.source, stats.timeout) == ("server", "mcp:docs", 5)
    assert stats.description == "Count, mean and largest of some numbers."
    [schema] = [s for s in registry.openai_schemas if s["function"]["name"] == "docs__stats"]
    numbers = schema["function"]["parameters"]["properties"]["numbers"]
    assert (numbers["type"], numbers["minItems"]) == ("array", 1)
    assert connection(registry, "docs").state == "ready"


async def test_structured_output_is_the_result(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp"}})
    outcome = await run(registry, "docs__stats", {"numbers": [2, 4, 9]})
    assert outcome.error is None
    assert outcome.result == {"count": 3, "mean": 5.0, "largest": 9.0}
    assert json.loads(outcome.content()) == outcome.result


async def test_arguments_are_checked_against_the_servers_schema(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp"}})
    outcome = await run(registry, "docs__stats", {"numbers": []})
    assert outcome.error_code == "invalid_arguments"
    assert outcome.error == "invalid arguments: numbers: [] should be non-empty"


async def test_a_tool_that_raises_is_a_tool_error_with_its_reason(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp"}})
    outcome = await run(registry, "docs__fail", {"reason": "the index is stale"})
    assert outcome.error_code == "tool_error"
    assert "the index is stale" in outcome.error
    assert json.loads(outcome.content()) == {"error": outcome.error}


async def test_a_hanging_call_times_out_and_the_next_call_works(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp", "timeout": 1}})
    outcome = await run(registry, "docs__hang", {"seconds": 60})
    assert (outcome.error_code, outcome.error) == ("timeout", "timed out after 1s")
    after = await run(registry, "docs__shout", {"text": "still here"})
    assert (after.error, after.result) == (None, {"result": "STILL HERE"})


async def test_the_tool_list_follows_list_changed(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry({"docs": {"url": f"{mcp_http.url}/mcp"}})
    assert registry.get("docs__bonus") is None
    assert (await run(registry, "docs__unlock", {})).result == {"result": "unlocked"}
    for _ in range(200):
        if registry.get("docs__bonus") is not None:
            break
        await asyncio.sleep(0.05)
    assert "docs__bonus" in [s["function"]["name"] for s in registry.openai_schemas]
    assert (await run(registry, "docs__bonus", {"word": "yes"})).result == {"result": "bonus yes"}


async def test_the_allow_list_limits_the_tools(mcp_http, open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry(
        {"docs": {"url": f"{mcp_http.url}/mcp", "allowed_tools": ["shout", "pid"]}}
    )
    assert sorted(tool.name for tool in registry) == ["docs__pid", "docs__shout"]


async def test_mcp_server_time_over_stdio(open_registry) -> None:  # type: ignore[no-untyped-def]
    registry = await open_registry(
        {"time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]}}
    )
    outcome = await run(registry, "time__get_current_time", {"timezone": "Asia/Tokyo"})
    assert outcome.error is None
    assert outcome.result["timezone"] == "Asia/Tokyo"
    assert outcome.result["datetime"].endswith("+09:00")
    bad = await run(registry, "time__get_current_time", {"timezone": "Mars/Olympus"})
    assert bad.error_code == "tool_error"
    assert "Mars/Olympus" in bad.error


async def test_a_stdio_server_gets_only_its_configured_env_and_path(open_registry) -> None:  # type: ignore[no-untyped-def]
    os.environ["AGENT_RUNTIME__TEST_SECRET"] = "must-not-leak"
    try:
        registry = await open_registry({"t": mcp_stdio_config(env={"GREETING": "hello"})})
        names = set((await run(registry, "t__env_names", {})).result["result"])
    finally:
        del os.environ["AGENT_RUNTIME__TEST_SECRET"]
    # Python itself may add LC_CTYPE (locale coercion) in the server process.
    assert names - {"LC_CTYPE"} == {"GREETING", "PATH"}


async def test_a_server_killed_mid_call_then_the_next_call_succeeds(
    open_registry, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = mcp_stdio_config(env={"MCP_TEST_MARK_DIR": str(tmp_path)}, timeout=120)
    registry = await open_registry({"t": config})
    first_pid = (await run(registry, "t__pid", {})).result["result"]
    call = asyncio.create_task(run(registry, "t__hang", {"seconds": 300}))
    mark = tmp_path / f"hang-{first_pid}"
    for _ in range(1200):
        if mark.exists():
            break
        await asyncio.sleep(0.05)
    assert mark.exists(), "the call never reached the server"
    os.kill(first_pid, signal.SIGKILL)
    outcome = await call
    assert outcome.error_code == "tool_error"
    assert "MCP server 't'" in outcome.error
    after = await run(registry, "t__pid", {})
    assert after.error is None
    assert after.result["result"] != first_pid


async def test_a_server_that_cannot_start_is_logged_and_tools_still_serve(
    mcp_http, open_registry, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.ERROR, logger="streaming.tools.mcp"):
        registry = await open_registry(
            {
                "broken": {"command": "/nonexistent/mcp-server"},
                "docs": {"url": f"{mcp_http.url}/mcp"},
            }
        )
    broken = connection(registry, "broken")
    assert broken.state == "failed"
    assert broken.error
    assert "MCP server broken cannot start" in caplog.text
    assert "/nonexistent/mcp-server" in caplog.text
    assert (await run(registry, "docs__shout", {"text": "ok"})).result == {"result": "OK"}


async def test_closing_stops_the_stdio_processes(open_registry) -> None:  # type: ignore[no-untyped-def]
    # --linger: this server would stay 120 s after its stdin closes if nothing stopped it.
    registry = await open_registry({"t": mcp_stdio_config("--linger", "120")})
    pid = (await run(registry, "t__pid", {})).result["result"]
    assert pid_running(pid)
    await registry.aclose()
    assert not pid_running(pid)
    assert connection(registry, "t").state == "closed"
