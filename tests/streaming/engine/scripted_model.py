"""A chat client that plays a script: the engine's tests run in process, with no server.

Each call to ``stream_chat`` takes the next reply of the script. A reply is a list of items:
deltas to yield, an ``UpstreamError`` to raise (before or after some deltas), or ``HOLD``,
which waits until the turn hangs up. The requests the engine made are kept for assertions.
Chosen by ``settings.LLM_CLIENT = "tests.streaming.engine.scripted_model.ScriptedChatClient"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.errors import UpstreamDisconnected
from streaming.llm_client import ChatStream, ContentDelta, Delta, StreamEnd, ToolCallDelta

HOLD = object()


@dataclass
class Script:
    replies: list[list[Any]] = field(default_factory=list)
    #: The messages and tools of every call, in order.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: How many calls were hung up by the engine.
    hang_ups: int = 0
    #: How many deltas the engine has read, over all calls.
    played: int = 0


script = Script()


def text(*tokens: str, finish: str = "stop", usage: dict[str, int] | None = None) -> list[Any]:
    return [*(ContentDelta(t) for t in tokens), StreamEnd(finish, usage or {}, "scripted")]


def tool_calls(*calls: tuple[str, str, str]) -> list[Any]:
    """A reply calling tools: ``(call id, tool name, arguments JSON)`` each, in fragments."""
    items: list[Any] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        half = len(arguments) // 2
        items.append(ToolCallDelta(index, call_id, name, arguments[:half]))
        items.append(ToolCallDelta(index, arguments=arguments[half:]))
    return [*items, StreamEnd("tool_calls", {"prompt_tokens": 1}, "scripted")]


class _Stream(ChatStream):
    def __init__(self, reply: list[Any]) -> None:
        super().__init__()
        self.hung_up_event = asyncio.Event()
        self.iterator = self._play(reply)

    async def _play(self, reply: list[Any]) -> AsyncIterator[Delta]:
        for item in reply:
            if self.hung_up:
                raise UpstreamDisconnected("The call was hung up.")
            if item is HOLD:
                await self.hung_up_event.wait()
                raise UpstreamDisconnected("The call was hung up.")
            if isinstance(item, Exception):
                raise item
            await asyncio.sleep(0)  # one delta per loop turn, as from a socket
            script.played += 1
            yield item

    async def hang_up(self) -> None:
        if not self.hung_up:
            script.hang_ups += 1
        self.hung_up = True
        self.hung_up_event.set()


class ScriptedChatClient:
    model = "scripted"

    def stream_chat(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> ChatStream:
        script.requests.append({"messages": [dict(m) for m in messages], "tools": tools})
        if not script.replies:
            raise AssertionError("the model was called more often than scripted")
        return _Stream(script.replies.pop(0))

    async def aclose(self) -> None:
        pass
