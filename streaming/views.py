"""HTTP views of the streaming API: parse, call the turn service, frame the output."""

from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from agent_runtime.errors import MethodNotAllowed, PayloadTooLarge
from agent_runtime.json_body import parse_json_body
from streaming.engine.start import turn_cancel, turn_events
from streaming.protocol import (
    AnyStreamRequest,
    CancelResult,
    UserMessageRequest,
    stream_request_adapter,
)
from streaming.protocols.seed import seed_stream, seed_turn_input


class EventStreamResponse(StreamingHttpResponse):
    """An SSE response whose async iterator Django consumes directly.

    The frames are bytes already, so Django's per-chunk wrapper generators are skipped; and
    Django's ``aclosing()`` then closes our generator itself on client disconnect.
    """

    def __init__(self, frames: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(frames, content_type="text/event-stream", **kwargs)
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        return self._iterator


@csrf_exempt  # authenticated by X-Internal-Auth, not by a browser cookie
async def message_stream(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed()
    body = stream_request_checked(parse_json_body(request, stream_request_adapter))
    events = await turn_events(turn_input=seed_turn_input(body))
    return EventStreamResponse(seed_stream(events))


def stream_request_checked(body: AnyStreamRequest) -> AnyStreamRequest:
    """The limits a parsed stream request must also meet."""
    if isinstance(body, UserMessageRequest):
        user_content_checked(body.content)
    return body


def user_content_checked(content: str) -> str:
    """A user message's text, within ``MAX_MESSAGE_CHARS`` (whatever the wire format)."""
    if len(content) > settings.MAX_MESSAGE_CHARS:
        raise PayloadTooLarge(f"content is longer than {settings.MAX_MESSAGE_CHARS} characters.")
    return content


@csrf_exempt
async def session_cancel(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed()
    turn_id = await turn_cancel(session_id=session_id)
    result = CancelResult(
        session_id=session_id,
        cancelled=turn_id is not None,
        turn_id=None if turn_id is None else str(turn_id),
    )
    return HttpResponse(result.model_dump_json(), content_type="application/json")
