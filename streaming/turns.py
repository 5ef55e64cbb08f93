"""One turn of a conversation: store the user message, stream the model's answer, store it.

The database is touched in one ``sync_to_async`` block when the turn opens and one when it
ends; nothing is written per token.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async

from agent_runtime.errors import UpstreamError
from sessions import services
from sessions.models import Message
from sessions.records import NewMessage, TurnStart
from streaming.llm_client import ContentDelta, StreamEnd, get_llm_client
from streaming.protocol import (
    DONE_FRAME,
    StreamEvent,
    UserMessageRequest,
    event_frame,
    token_frame,
)

logger = logging.getLogger(__name__)


async def turn_start(*, request: UserMessageRequest) -> AsyncIterator[bytes]:
    """Open the turn (raises ``SessionBusy`` before any byte is sent) and return its frames."""
    start = await sync_to_async(services.turn_open)(
        session_id=request.session_id,
        turn_id=uuid.uuid4(),
        content=request.content,
        client_message_id=request.message_id,
    )
    if start.replay is not None:
        return _replay_frames(start)
    return TurnRunner(start).frames()


class TurnRunner:
    """Streams one model call and records its outcome exactly once."""

    def __init__(self, start: TurnStart) -> None:
        self.start = start
        self.client = get_llm_client()
        self.event_id = 0
        self.parts: list[str] = []
        self.end = StreamEnd()

    def _frame(self, event: StreamEvent) -> bytes:
        self.event_id += 1
        return event_frame(self.event_id, event)

    async def frames(self) -> AsyncIterator[bytes]:
        status = Message.Status.INTERRUPTED
        error: UpstreamError | None = None
        try:
            async for delta in self.client.stream_chat(messages=self.start.history):
                if type(delta) is ContentDelta:
                    self.parts.append(delta.text)
                    self.event_id += 1
                    yield token_frame(self.event_id, delta.text)
                elif type(delta) is StreamEnd:
                    self.end = delta
            status = Message.Status.COMPLETE
        except UpstreamError as exc:
            status, error = Message.Status.FAILED, exc
            logger.warning("turn %s upstream failure: %s", self.start.turn_id, exc.code)
        finally:
            # Runs on success, failure and client disconnect (CancelledError / GeneratorExit):
            # the answer so far is stored once, and the session's lease is released.
            await asyncio.shield(self._record(status, error))
        if error is not None:
            yield self._frame(
                StreamEvent(
                    token="",
                    is_final=True,
                    type="error",
                    metadata={"code": error.code, "message": error.detail},
                )
            )
        else:
            yield self._frame(
                StreamEvent(
                    token="",
                    is_final=True,
                    type="assistant_message",
                    metadata={"finish_reason": self.end.finish_reason, "usage": self.end.usage},
                )
            )
        yield DONE_FRAME

    async def _record(self, status: str, error: UpstreamError | None) -> None:
        answer = NewMessage(
            role=Message.Role.ASSISTANT,
            content="".join(self.parts),
            status=status,
            model=self.end.model or self.client_model(),
            usage=self.end.usage,
            finish_reason=self.end.finish_reason or "",
            error_code=error.code if error else "",
        )
        try:
            await sync_to_async(services.turn_record)(
                session_pk=self.start.session_pk,
                turn_id=self.start.turn_id,
                messages=[answer],
                finished=True,
            )
        except Exception:
            logger.exception("turn %s: storing the answer failed", self.start.turn_id)

    def client_model(self) -> str:
        return getattr(self.client, "model", "")


async def _replay_frames(start: TurnStart) -> AsyncIterator[bytes]:
    """A repeated ``message_id``: the stored answer, in the normal event format."""
    event_id = 0
    last = None
    for message in start.replay or ():
        if message.role == Message.Role.ASSISTANT and message.content:
            event_id += 1
            yield token_frame(event_id, message.content)
        last = message
    metadata = {"replayed": True}
    if last is not None:
        metadata.update({"finish_reason": last.finish_reason or None, "usage": last.usage})
    event_id += 1
    yield event_frame(
        event_id,
        StreamEvent(token="", is_final=True, type="assistant_message", metadata=metadata),
    )
    yield DONE_FRAME
