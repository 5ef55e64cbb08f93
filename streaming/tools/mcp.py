"""MCP servers as tool sources: one session per configured server and worker process.

Each server's tools become server-side tools named ``<server>__<tool>``, with the server's
descriptions and JSON schemas. A session is opened at first use (the first turn, or
GET /agent/tools) by a background task that owns the SDK's context managers (they must be
entered and left in one task); calls go through its ``Client``. A call that finds the
session broken (the server crashed, or the call timed out and nothing else runs on it) closes
it, and the next call opens a new one. The tool list follows the server's list-changed
notifications. ``aclose()`` (at worker shutdown) closes every session and stdio process.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Any, Literal

from django.conf import settings
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp.types import Tool as MCPTool
from mcp.types import ToolListChangedNotification

from streaming.tools.mcp_client import MCPToolError, client_open, describe, tool_result_value
from streaming.tools.mcp_config import MCPServerConfig, mcp_servers_parse
from streaming.tools.registry import Tool
from streaming.tools.schema_arguments import SchemaArguments

logger = logging.getLogger(__name__)

#: A server that failed is tried again by the next turn after this long (calls retry at once).
RETRY_AFTER_SECONDS = 30.0
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
ServerState = Literal["idle", "connecting", "ready", "failed", "closed"]


class MCPConnection:
    """One configured server: its session, its state and its tools (kept across reconnects)."""

    def __init__(self, name: str, config: MCPServerConfig, *, connect_timeout: float) -> None:
        self.name = name
        self.config = config
        self.connect_timeout = connect_timeout
        self.state: ServerState = "idle"
        self.error = ""
        self.tools: dict[str, Tool] = {}
        self.revision = 0
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[Client] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._in_flight = 0
        self._failed_at = 0.0

    # Session lifecycle. ---------------------------------------------------------------------

    def start(self) -> asyncio.Future[Client]:
        """The session being opened, or open; a new one when there is none."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._connected = connected = loop.create_future()
            # Nobody may wait for it (a background retry): that must not log a warning.
            connected.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.state = "connecting"
            self._task = loop.create_task(self._run(connected), name=f"mcp:{self.name}")
        assert self._connected is not None
        return self._connected

    async def ready(self) -> None:
        """Open the session if it was never tried (waiting for it), or retry a failed one in the
        background once in a while; never raises."""
        if self.state == "idle":
            await asyncio.wait([self.start()])
        elif self.state == "failed" and time.monotonic() - self._failed_at > RETRY_AFTER_SECONDS:
            self.start()
        elif self.state == "connecting" and not self.tools and self._connected is not None:
            await asyncio.wait([self._connected])

    def reset(self) -> None:
        """Close the session (in its own task); the next call opens a new one."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._client = None
        if self.state != "closed":
            self.state = "idle"

    def restart(self) -> None:
        """Replace a broken session with a new one, opened in the background right away."""
        self.reset()
        self.start()

    async def aclose(self) -> None:
        self.reset()
        self.state = "closed"
        if self._closing:
            await asyncio.wait(self._closing, timeout=15)
        logger.info("MCP server %s closed", self.name)

    async def _run(self, connected: asyncio.Future[Client]) -> None:
        client: Client | None = None
        try:
            async with AsyncExitStack() as stack:
                async with asyncio.timeout(self.connect_timeout):
                    client = await stack.enter_async_context(
                        await client_open(self.config, stack, self._on_message)
                    )
                    await self._refresh(client)
                self._client, self.state, self.error = client, "ready", ""
                connected.set_result(client)
                logger.info("MCP server %s ready: %d tools", self.name, len(self.tools))
                await self._follow(client)
            self._failed(connected, "the server closed the session")
        except TimeoutError:
            self._failed(connected, f"no answer within {self.connect_timeout:g}s")
        except Exception as exc:  # whatever the server did, the runtime serves on
            self._failed(connected, describe(exc))
        finally:
            # A replaced session ends after its successor started: leave that one alone.
            if client is not None and self._client is client:
                self._client = None
            if not connected.done():
                connected.cancel()

    def _failed(self, connected: asyncio.Future[Client], reason: str) -> None:
        if self._connected is not connected:
            return  # a replaced session's end says nothing about the current one
        self.state, self.error, self._failed_at = "failed", reason, time.monotonic()
        if connected.done():
            logger.warning("MCP server %s: session lost (%s)", self.name, reason)
            return
        logger.error(
            "MCP server %s cannot start (%s %s): %s; its tools are unavailable until it does",
            self.name,
            self.config.transport,
            self.config.command or self.config.url,
            reason,
        )
        connected.set_exception(MCPToolError(f"MCP server {self.name!r} is unavailable: {reason}"))

    async def _on_message(self, message: Any) -> None:
        # Handshake-era servers notify on the session; the refresh runs in the session's task.
        if isinstance(message, ToolListChangedNotification):
            self._changed.set()

    async def _follow(self, client: Client) -> None:
        """Refresh the tools whenever the server says they changed, until the session ends."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._refresh(client)
            return
        except (ListenNotSupportedError, MCPError):
            pass  # a handshake-era server, or one without subscriptions: notifications only
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._refresh(client)

    async def _refresh(self, client: Client) -> None:
        listed: list[MCPTool] = []
        cursor: str | None = None
        for _ in range(100):
            page = await client.list_tools(cursor=cursor)
            listed += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        allowed = self.config.allowed_tools
        tools = {}
        for listed_tool in listed:
            if allowed is not None and listed_tool.name not in allowed:
                continue
            tool = self._tool(listed_tool)
            if tool is not None:
                tools[tool.name] = tool
        self.tools = tools
        self.revision += 1

    def _tool(self, listed: MCPTool) -> Tool | None:
        name = f"{self.name}__{_NOT_IN_NAME.sub('_', listed.name)}"[:64]
        try:
            arguments = SchemaArguments(listed.input_schema, title=name)
        except ValueError as exc:
            logger.warning("MCP server %s: tool %r skipped: %s", self.name, listed.name, exc)
            return None

        async def run(values: dict[str, Any], tool_name: str = listed.name) -> Any:
            return await self.call(tool_name, values)

        return Tool(
            name=name,
            description=listed.description or listed.title or listed.name,
            arguments=arguments,
            executor="server",
            function=run,
            timeout=self.config.timeout,
            source=f"mcp:{self.name}",
            approval="always" if self.config.requires_approval else "never",
        )

    # Calls. -----------------------------------------------------------------------------------

    async def call(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        """Call one of the server's tools (by its own name); failures raise MCPToolError."""
        opening = self.start()
        try:
            client = await asyncio.shield(opening)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if opening.cancelled() and task is not None and not task.cancelling():
                raise MCPToolError(f"MCP server {self.name!r}: the session was closed") from None
            raise
        self._in_flight += 1
        try:
            result = await client.call_tool(tool_name, arguments)
        except asyncio.CancelledError:
            # Timed out (or the turn stopped): a server that hangs is restarted for the next
            # call, unless other calls still use the session.
            if self._in_flight == 1 and self._client is client:
                self.restart()
            raise
        except MCPError as exc:
            if self._client is client and (self._task is None or self._task.done() or _lost(exc)):
                self.restart()
            raise MCPToolError(f"MCP server {self.name!r}: {exc.error.message}") from exc
        except Exception as exc:
            if self._client is client:
                self.restart()
            raise MCPToolError(f"MCP server {self.name!r} failed: {describe(exc)}") from exc
        finally:
            self._in_flight -= 1
        return tool_result_value(result)


def _lost(exc: MCPError) -> bool:
    """Whether the error says the connection itself is gone (JSON-RPC's -32000)."""
    return exc.error.code == -32000


class MCPToolSource:
    """Every configured server's tools, for the tool registry."""

    def __init__(self, servers: dict[str, MCPServerConfig], *, connect_timeout: float) -> None:
        self.connections = {
            name: MCPConnection(name, config, connect_timeout=connect_timeout)
            for name, config in servers.items()
        }

    @classmethod
    def from_settings(cls) -> MCPToolSource:
        return cls(
            mcp_servers_parse(settings.MCP_SERVERS),
            connect_timeout=settings.MCP_CONNECT_TIMEOUT_SECONDS,
        )

    @property
    def revision(self) -> int:
        return sum(c.revision for c in self.connections.values())

    def tools(self) -> Iterable[Tool]:
        for connection in self.connections.values():
            yield from connection.tools.values()

    async def ready(self) -> None:
        await asyncio.gather(*(c.ready() for c in self.connections.values()))

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connections.values()))
