"""HTTP views of the streaming API: parse, call the turn service, frame the output."""

from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError

from agent_runtime.errors import InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge
from agent_runtime.json_body import parse_json_body, validation_errors
from sessions import selectors
from streaming.engine.events import TurnEvent
from streaming.engine.start import turn_cancel, turn_open_events
from streaming.protocol import AnyStreamRequest, CancelResult, ResumeQuery, UserMessageRequest
from streaming.protocols.codelab import (
    CodelabEnvelope,
    codelab_stream,
    codelab_turn_input,
    message_stream_adapter,
)
from streaming.protocols.seed import DONE_FRAME, seed_frame, seed_stream, seed_turn_input
from streaming.runs.resume import Encoder, events_only, run_events, run_resume
from streaming.runs.run import Logged
from streaming.write_watch import events_written, write_watched


class EventStreamResponse(StreamingHttpResponse):
    """An SSE response whose async iterator Django consumes directly.

    The frames are bytes already, so Django's per-chunk wrapper generators are skipped; and
    Django's ``aclosing()`` then closes our generator itself on client disconnect. A client
    that accepts nothing for ``STREAM_IDLE_WRITE_TIMEOUT_SECONDS`` is dropped
    (``streaming.write_watch``).
    """

    def __init__(self, frames: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(frames, content_type="text/event-stream", **kwargs)
        self.frames = frames
        self["Cache-Control"] = "no-cache"
        self["X-Accel-Buffering"] = "no"

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        return write_watched(self.frames, idle=settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS)


class EncodedEventStreamResponse(EventStreamResponse):
    """Events with their ids, framed one by one by ``frame``, then ``end``: the encoding and
    the write watch are one generator (``events_written``), since each layer costs per token."""

    def __init__(
        self,
        items: AsyncIterator[Logged],
        *,
        frame: Callable[[int | None, TurnEvent], bytes | None],
        end: bytes,
    ) -> None:
        idle = settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS
        super().__init__(events_written(items, frame=frame, end=end, idle=idle))

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        return self.frames


@csrf_exempt  # authenticated by X-Internal-Auth, not by a browser cookie
async def message_stream(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed()
    body = parse_json_body(request, message_stream_adapter)
    if isinstance(body, CodelabEnvelope):  # the Codelab gateway's dialect
        turn_input, new_session_id = codelab_turn_input(body)
        opened = await turn_open_events(turn_input=turn_input)
        items = run_events(opened=opened, on_disconnect=settings.ON_DISCONNECT)
        return EventStreamResponse(
            codelab_stream(events_only(items), new_session_id=new_session_id)
        )
    body = stream_request_checked(body)
    opened = await turn_open_events(turn_input=seed_turn_input(body))
    on_disconnect = body.on_disconnect or settings.ON_DISCONNECT
    items = run_events(opened=opened, on_disconnect=on_disconnect)
    return EncodedEventStreamResponse(items, frame=seed_frame, end=DONE_FRAME)


@csrf_exempt
async def session_stream(request: HttpRequest, session_id: str) -> HttpResponse:
    """``GET /agent/sessions/{session_id}/stream``: the running turn, resumed, in seed SSE."""
    return await resumed_stream_response(request, session_id, encoder=seed_stream)


async def resumed_stream_response(
    request: HttpRequest, session_id: str, *, encoder: Encoder, **headers: str
) -> HttpResponse:
    """A session's run resumed after the client's cursor, in the format ``encoder`` writes;
    ``204`` when there is nothing to resume. Any wire format's resume route can use it."""
    if request.method != "GET":
        raise MethodNotAllowed()
    cursor = resume_cursor(request)
    if not await sync_to_async(selectors.session_exists)(session_id=session_id):
        raise NotFound(f"No session {session_id!r}.")
    frames = await run_resume(session_id=session_id, cursor=cursor, encoder=encoder)
    if frames is None:
        return HttpResponse(status=204)
    return EventStreamResponse(frames, headers=headers or None)


def resume_cursor(request: HttpRequest) -> int | None:
    """The last event id the client saw: ``Last-Event-ID`` (what a reconnecting
    ``EventSource`` sends), else ``?after=``; None for neither."""
    value = request.headers.get("Last-Event-ID") or request.GET.get("after") or None
    try:
        return ResumeQuery.model_validate({"after": value}).after
    except ValidationError as exc:
        raise InvalidRequest("Invalid event id.", errors=validation_errors(exc)) from None


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
