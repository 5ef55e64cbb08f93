"""What the turn engine needs of a chat model: the deltas of a streamed call, and the client.

The client is the ``LLM_CLIENT`` dotted path (``streaming.llm_client.OpenAIChatClient``, or a
test double), one per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(slots=True)
class ContentDelta:
    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of one tool call; fragments of a call share ``index``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamEnd:
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""


Delta = ContentDelta | ToolCallDelta | StreamEnd


class ChatStream:
    """The deltas of one upstream call, as an async iterable.

    ``hang_up()`` may be called from any task, while another one iterates: it closes the
    connection (which tells the model server to stop generating) and the iteration then ends
    with ``UpstreamDisconnected``. Hanging up this way, rather than cancelling the reading
    task in the middle of a read, leaves the connection pool consistent.
    """

    def __init__(self) -> None:
        self.iterator: AsyncIterator[Delta] | None = None
        self.response: httpx.Response | None = None
        self.hung_up = False

    def __aiter__(self) -> AsyncIterator[Delta]:
        assert self.iterator is not None
        return self.iterator

    async def hang_up(self) -> None:
        self.hung_up = True
        if self.response is not None:
            await self.response.aclose()


class ChatClient(Protocol):
    def stream_chat(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> ChatStream: ...

    async def aclose(self) -> None: ...


_client: ChatClient | None = None


def get_llm_client() -> ChatClient:
    """The process's client, built from ``settings.LLM_CLIENT`` on first use."""
    global _client
    if _client is None:
        _client = import_string(settings.LLM_CLIENT)()
    return _client


async def reset_llm_client() -> None:
    """Close and forget the process's client (settings changed, or shutdown)."""
    global _client
    client, _client = _client, None
    if client is not None:
        await client.aclose()
