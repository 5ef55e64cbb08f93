"""What GET /agent/tools answers: every tool the model may be offered, and the MCP servers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from streaming.tools.approval import tool_asks_approval
from streaming.tools.registry import ToolRegistry

ServerState = Literal["idle", "connecting", "ready", "failed", "closed"]


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments.")
    executor: str = Field(
        description="`server` (built in), `client` (the IDE runs it) or `mcp:<server>` (an MCP "
        "server's tool, run by the runtime: its `tool_call` events say `server`).",
        examples=["server", "client", "mcp:time"],
    )
    requires_approval: bool = Field(
        description="Calls of this tool wait for the user's approval (always, or when its "
        "arguments ask for it; see tool approval)."
    )
    server_state: ServerState | None = Field(
        default=None, description="For an MCP tool, its server's state."
    )


class MCPServerOut(BaseModel):
    name: str
    transport: Literal["stdio", "http"]
    state: ServerState = Field(
        description="`idle`: no session (one opens at the next use); `connecting`; `ready`; "
        "`failed`: the last start or session failed (see `error`); `closed`: shutting down."
    )
    error: str | None = Field(default=None, description="Why it failed, when it did.")
    tools: int = Field(description="How many of its tools are offered.")


class ToolListOut(BaseModel):
    tools: list[ToolOut]
    mcp_servers: list[MCPServerOut]


async def tool_list(*, registry: ToolRegistry) -> ToolListOut:
    """The registry's tools, once every MCP server has been tried (never raises)."""
    from streaming.tools.mcp import MCPToolSource

    await registry.ready()
    connections = {
        name: connection
        for source in registry.sources
        if isinstance(source, MCPToolSource)
        for name, connection in source.connections.items()
    }
    tools = []
    for tool in registry:
        schema = tool.openai_schema()["function"]
        server = connections.get(tool.source.removeprefix("mcp:")) if tool.source else None
        tools.append(
            ToolOut(
                name=tool.name,
                description=tool.description,
                parameters=schema["parameters"],
                executor=tool.executor_label,
                requires_approval=tool_asks_approval(tool),
                server_state=server.state if server is not None else None,
            )
        )
    servers = [
        MCPServerOut(
            name=name,
            transport=c.config.transport,
            state=c.state,
            error=c.error or None,
            tools=len(c.tools),
        )
        for name, c in connections.items()
    ]
    return ToolListOut(tools=tools, mcp_servers=servers)
