"""HTTP views of the frontends' wire formats: the Vercel AI SDK's and AG-UI's.

Same engine and middleware as the seed format: parse, find what is new, open the turn,
encode its events.
"""

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import TypeAdapter

from agent_runtime.errors import MethodNotAllowed
from agent_runtime.json_body import parse_json_body
from sessions.selectors import session_awaiting_approval, session_pending_call_ids
from streaming.engine.answers import turn_events_each, turn_open_each
from streaming.engine.events import TurnEvent
from streaming.engine.start import OpenedTurn, TurnInput, UserInput
from streaming.protocols.ag_ui import ag_ui_stream
from streaming.protocols.ag_ui_input import RunInput, ag_ui_turn_inputs, ag_ui_wants_pending
from streaming.protocols.ai_sdk import STREAM_HEADERS, ai_sdk_stream
from streaming.protocols.ai_sdk_request import (
    ChatRequest,
    ai_sdk_turn_inputs,
    ai_sdk_wants_pending,
)
from streaming.runs.resume import events_only, run_current, run_events
from streaming.runs.run import Logged
from streaming.views import EventStreamResponse, resumed_stream_response, user_content_checked

_chat_request = TypeAdapter(ChatRequest)
_run_input = TypeAdapter(RunInput)


async def _pending_call_ids(session_id: str, wanted: bool) -> list[str]:
    if not wanted:
        return []
    return await sync_to_async(session_pending_call_ids)(session_id=session_id)


async def _turn_events(turn_inputs: list[TurnInput]) -> AsyncIterator[TurnEvent]:
    """Open the turn of what a request posted (within the seed format's limits): its events."""
    for turn_input in turn_inputs:
        if isinstance(turn_input, UserInput):
            user_content_checked(turn_input.content)
    return await turn_events_each(turn_inputs=turn_inputs)


async def _ai_sdk_opened(body: ChatRequest) -> OpenedTurn:
    """Open the turn of what a chat posted: a user message, or the answers to waiting calls."""
    pending: list[str] = []
    undecided: list[str] = []
    if ai_sdk_wants_pending(body):
        pending = await sync_to_async(session_pending_call_ids)(session_id=body.id)
        waiting = await sync_to_async(session_awaiting_approval)(session_id=body.id)
        undecided = [call.call_id for call in waiting]
    turn_inputs = ai_sdk_turn_inputs(body, pending_call_ids=pending, undecided_call_ids=undecided)
    for turn_input in turn_inputs:
        if isinstance(turn_input, UserInput):
            user_content_checked(turn_input.content)
    return await turn_open_each(turn_inputs=turn_inputs)


@csrf_exempt  # authenticated by X-Internal-Auth, not by a browser cookie
async def ai_sdk_chat(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed()
    body = parse_json_body(request, _chat_request)
    opened = await _ai_sdk_opened(body)
    items = run_events(opened=opened, on_disconnect=body.on_disconnect)
    return EventStreamResponse(ai_sdk_stream(events_only(items)), headers=STREAM_HEADERS)


def _ai_sdk_resumed(items: AsyncIterator[Logged]) -> AsyncIterator[bytes]:
    return ai_sdk_stream(events_only(items), resumed=True)


@csrf_exempt
async def ai_sdk_chat_resume(request: HttpRequest, session_id: str) -> HttpResponse:
    """``useChat({resume: true})`` asks on mount for the chat's running stream.

    The transport sends no cursor and replays what it gets into a new message: the running
    turn streams from its start. ``204`` when no turn runs (an ended one is in the history).
    """
    if request.method != "GET":
        raise MethodNotAllowed()
    if await run_current(session_id=session_id) is None:
        return HttpResponse(status=204)
    return await resumed_stream_response(
        request, session_id, encoder=_ai_sdk_resumed, **STREAM_HEADERS
    )


@csrf_exempt
async def ag_ui_run(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        raise MethodNotAllowed()
    body = parse_json_body(request, _run_input)
    answers = ag_ui_wants_pending(body)
    pending = await _pending_call_ids(body.thread_id, answers)
    # The calls that wait for a decision: the resume is checked against them, and those it
    # leaves waiting are listed again as interrupts.
    waiting = []
    if answers or body.resume:
        waiting = await sync_to_async(session_awaiting_approval)(session_id=body.thread_id)
    turn_inputs = ag_ui_turn_inputs(
        body, pending_call_ids=pending, awaiting_approval={c.call_id for c in waiting}
    )
    events = await _turn_events(turn_inputs)
    return EventStreamResponse(
        ag_ui_stream(events, thread_id=body.thread_id, run_id=body.run_id, waiting=waiting)
    )
