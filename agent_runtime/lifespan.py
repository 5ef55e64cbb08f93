"""ASGI lifespan for Django, which has none: warn at start-up of a way of running several
workers that cannot share metrics; close the upstream client and the MCP sessions on shutdown.

Without it the pooled upstream connections are dropped unclosed when a worker stops
(aiohttp then logs "Unclosed connector" at ERROR), and stdio MCP servers slow to notice the
closed pipe outlive the worker.
"""

import logging

from agent_runtime.asgi_types import ASGIApp, Receive, Scope, Send
from agent_runtime.metrics import unshared_worker_problem
from streaming.llm_client import reset_llm_client
from streaming.tools.registry import tool_registry_close

logger = logging.getLogger("agent_runtime.serve")


class Lifespan:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if problem := unshared_worker_problem():
                    logger.warning(problem)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await reset_llm_client()
                await tool_registry_close()
                await send({"type": "lifespan.shutdown.complete"})
                return
