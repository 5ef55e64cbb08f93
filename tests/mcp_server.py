"""A small MCP server for the tests, on the SDK's server API: over stdio or Streamable HTTP.

Run as a script (``python tests/mcp_server.py --transport http --port N``), so that a stdio
server started by the runtime needs nothing from this repository on its path. Its tools cover
what the runtime must handle: structured output, a tool that raises, one that hangs, a
``list_changed`` notification, and, for the process tests, its own pid and environment.
With ``MCP_TEST_MARK_DIR`` set, ``hang`` writes ``<dir>/hang-<pid>`` when it starts, so a test
knows a call is in progress (and which process runs it) before it kills the server.
"""

from __future__ import annotations

import argparse
import os
import time

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

server = MCPServer("runtime-test-server")


class Stats(BaseModel):
    count: int
    mean: float
    largest: float


@server.tool(description="Count, mean and largest of some numbers.")
def stats(numbers: list[float] = Field(min_length=1)) -> Stats:  # noqa: B008
    return Stats(count=len(numbers), mean=sum(numbers) / len(numbers), largest=max(numbers))


@server.tool(description="Fail with the given reason.")
def fail(reason: str) -> str:
    raise ToolError(reason)


@server.tool(description="Sleep for some seconds, then answer.")
async def hang(seconds: float) -> str:
    mark_dir = os.environ.get("MCP_TEST_MARK_DIR")
    if mark_dir:
        await anyio.Path(mark_dir, f"hang-{os.getpid()}").write_text("started")
    await anyio.sleep(seconds)
    return f"woke up after {seconds:g}s"


@server.tool(description="Return the text unchanged.")
def shout(text: str) -> str:
    return text.upper()


@server.tool(description="This server's process id.")
def pid() -> int:
    return os.getpid()


@server.tool(description="The names of this server's environment variables.")
def env_names() -> list[str]:
    return sorted(os.environ)


def bonus(word: str) -> str:
    """A tool that only exists after ``unlock``."""
    return f"bonus {word}"


@server.tool(description="Add the tool `bonus`, and tell clients that the tool list changed.")
async def unlock(ctx: Context) -> str:
    server.add_tool(bonus, description="Say a bonus word.")
    await ctx.notify_tools_changed()
    return "unlocked"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--linger",
        type=float,
        default=0,
        help="stay alive this many seconds after stdin closes (a server slow to exit)",
    )
    args = parser.parse_args()
    if args.transport == "http":
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        try:
            server.run("stdio")
        finally:  # however the session ended (EOF, a broken pipe...)
            time.sleep(args.linger)


if __name__ == "__main__":
    main()
