"""The added time of one MCP tool call over a built-in tool's, over stdio and Streamable HTTP.

In the orchestrator's process (Django set up by ``bench.seed``), each call made as a turn makes
it (``tool_run`` on a validated call), one at a time after a warm-up: the built-in ``echo``,
then the same tool on ``bench/mcp_server.py`` over stdio and over Streamable HTTP. The session
is open before the timing starts (a worker opens it once). Prints nothing; returns figures.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import summarize
from bench.procs import BASE_DIR, Pinning, start_mcp_http

SERVER_SCRIPT = BASE_DIR / "bench" / "mcp_server.py"


async def _measure(http_url: str, calls: int, warmup: int) -> dict[str, list[float]]:
    from streaming.llm_client import ToolCallDelta
    from streaming.tool_calls import ToolCallAssembler, tool_run
    from streaming.tools.builtin import echo
    from streaming.tools.mcp import MCPToolSource
    from streaming.tools.mcp_config import MCPServerConfig
    from streaming.tools.registry import ToolRegistry

    servers = {
        "stdio": MCPServerConfig(command=sys.executable, args=[str(SERVER_SCRIPT)]),
        "http": MCPServerConfig(url=f"{http_url}/mcp"),
    }
    registry = ToolRegistry([echo], sources=[MCPToolSource(servers, connect_timeout=120)])
    await registry.ready()
    timings: dict[str, list[float]] = {}
    try:
        for kind, name in (("builtin", "echo"), ("stdio", "stdio__echo"), ("http", "http__echo")):
            assembler = ToolCallAssembler()
            assembler.add(ToolCallDelta(index=0, id="c", name=name, arguments='{"text":"hi"}'))
            [call] = assembler.calls(registry)
            if call.problem:
                raise RuntimeError(f"{name}: {call.problem}")
            samples = []
            for i in range(warmup + calls):
                started = time.perf_counter()
                outcome = await tool_run(call)
                if outcome.error is not None:
                    raise RuntimeError(f"{name}: {outcome.error}")
                if i >= warmup:
                    samples.append(time.perf_counter() - started)
            timings[kind] = samples
    finally:
        await registry.aclose()
    return timings


def run(scratch: Path, pinning: Pinning, *, calls: int = 200, warmup: int = 20) -> dict[str, Any]:
    """Per-call latency (ms) of each kind, and the added p50 of MCP over the built-in tool."""
    http = start_mcp_http(scratch, pinning)
    try:
        timings = asyncio.run(_measure(http.url, calls, warmup))
    finally:
        http.stop()
    builtin = statistics.median(timings["builtin"])
    out: dict[str, Any] = {"calls": calls, "ms": {k: summarize(v) for k, v in timings.items()}}
    for kind in ("stdio", "http"):
        out[f"added_p50_ms_{kind}"] = (statistics.median(timings[kind]) - builtin) * 1000
    return out
