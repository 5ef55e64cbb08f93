"""Tools that exist only for the tests (activated through AGENT_RUNTIME__TOOLS)."""

import asyncio
import os

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


class TextArguments(BaseModel):
    text: str


class CommandArguments(BaseModel):
    command: str


#: Calls of ``guarded`` and ``shell`` that ran in this process (their arguments).
RAN: list[str] = []


@server_tool(
    name="guarded",
    description="Echoes the text, with the process that ran it, once the user approves.",
    arguments=TextArguments,
    approval="always",
)
async def guarded(arguments: TextArguments) -> dict:
    RAN.append(arguments.text)
    return {"text": arguments.text, "pid": os.getpid()}


@server_tool(
    name="shell",
    description="Pretends to run a command; anything but `ls` needs the user's approval.",
    arguments=CommandArguments,
    approval=lambda arguments: not arguments.command.startswith("ls"),
)
async def shell(arguments: CommandArguments) -> str:
    RAN.append(arguments.command)
    return f"ran {arguments.command}"


@server_tool(name="whoami", description="The process that runs it.", arguments=NoArguments)
async def whoami(arguments: NoArguments) -> int:
    return os.getpid()
