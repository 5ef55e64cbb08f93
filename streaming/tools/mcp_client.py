"""The SDK side of an MCP session: opening a client for a configured server, reading results.

A stdio server is started through ``mcp_launch.py`` so that it gets only its configured
environment plus PATH; a Streamable HTTP server gets the configured headers.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
from django.conf import settings
from mcp import Client, StdioServerParameters
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, TextContent

from streaming.tools.mcp_config import MCPServerConfig

#: Starts a stdio server with only its configured environment (see that script).
LAUNCHER = Path(__file__).with_name("mcp_launch.py")


class MCPToolError(Exception):
    """A tool's error result, or its server's failure: the text the model reads."""


def tool_result_value(result: CallToolResult) -> Any:
    """What the model reads: the structured content, else the text, else the content blocks."""
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if result.is_error:
        raise MCPToolError("\n".join(texts) or "the tool reported an error")
    if result.structured_content is not None:
        return result.structured_content
    if len(texts) == len(result.content):
        return "\n".join(texts)
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]


def describe(exc: BaseException) -> str:
    """One line about a failure, from the first leaf of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def client_open(
    config: MCPServerConfig, stack: AsyncExitStack, on_message: MessageHandlerFnT
) -> Client:
    """An SDK client for the server, not yet entered; what it needs besides is put on ``stack``."""
    if config.command is not None:
        env = {"PATH": os.environ.get("PATH", os.defpath), **config.env}
        # The launcher would only exit; say why here.
        command = config.command
        if os.sep in command and config.cwd:
            command = os.path.join(config.cwd, command)
        if shutil.which(command, path=env["PATH"]) is None:
            raise FileNotFoundError(f"command {config.command!r} not found on PATH")
        target: Any = StdioServerParameters(
            command=sys.executable,
            args=["-I", str(LAUNCHER), ",".join(env), config.command, *config.args],
            env=env,
            cwd=config.cwd,
        )
    else:
        assert config.url is not None
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30, read=300))
        )
        target = streamable_http_client(config.url, http_client=http)
    return Client(
        target,
        cache=None,
        message_handler=on_message,
        client_info=Implementation(name="agent-runtime", version=settings.VERSION),
    )
