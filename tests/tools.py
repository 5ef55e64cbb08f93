"""Tools that exist only for the tests (activated through AGENT_RUNTIME__TOOLS)."""

import asyncio

from pydantic import BaseModel

from streaming.tools.registry import client_tool, server_tool


class NoArguments(BaseModel):
    pass


class DelayArguments(BaseModel):
    seconds: float = 5.0


@server_tool(name="boom", description="Always fails.", arguments=NoArguments)
async def boom(arguments: NoArguments) -> str:
    raise RuntimeError("boom")


@server_tool(name="slow", description="Sleeps.", arguments=DelayArguments)
async def slow(arguments: DelayArguments) -> str:
    await asyncio.sleep(arguments.seconds)
    return "woke up"


open_editor = client_tool(name="open_editor", description="Opens a file.", arguments=NoArguments)
