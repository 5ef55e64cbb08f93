"""Opening a turn: the engine's entry points, and the busy-session policy.

Each entry point does its database work before it returns, so that a busy session or an
unknown tool call is an error the caller can answer before any event; what it returns is the
turn's events.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from agent_runtime.errors import SessionBusy, TurnStillRunning
from agent_runtime.logs import request_id_var
from sessions import services
from sessions.records import TurnStart
from streaming.active_turns import active_turns
from streaming.engine.events import TurnEvent
from streaming.engine.stored import replayed_events, still_pending_events
from streaming.engine.turn import Turn
from streaming.tools.registry import Tool


@dataclass(slots=True, frozen=True)
class UserInput:
    """A user's message for a session. ``message_id`` is the client's idempotency key."""

    session_id: str
    content: str
    message_id: str | None = None
    #: Client-side tools the request declared for this turn, on top of the configured ones.
    extra_tools: tuple[Tool, ...] = ()


@dataclass(slots=True, frozen=True)
class ToolOutput:
    """A client-side tool's outcome: ``content`` is what the model reads."""

    session_id: str
    call_id: str
    content: str
    error_code: str = ""
    extra_tools: tuple[Tool, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        session_id: str,
        call_id: str,
        result: Any,
        error: str | None,
        extra_tools: tuple[Tool, ...] = (),
    ) -> ToolOutput:
        """From a result (any JSON value; a string is taken as it is) or an error message."""
        if error is not None:
            content, code = orjson.dumps({"error": error}).decode(), "tool_error"
        else:
            content = result if isinstance(result, str) else orjson.dumps(result).decode()
            code = ""
        return cls(session_id, call_id, content, code, extra_tools)


@dataclass(slots=True, frozen=True)
class ToolDecision:
    """The user's decision on a call that waits for approval.

    ``arguments`` (an approved call only) replaces the model's arguments; the server validates
    them against the tool's schema when it runs the call.
    """

    session_id: str
    call_id: str
    approved: bool
    reason: str = ""
    arguments: Any = None
    extra_tools: tuple[Tool, ...] = ()


@dataclass(slots=True, frozen=True)
class Regenerate:
    """Answer the session's last user message again; the answer it had is superseded."""

    session_id: str
    extra_tools: tuple[Tool, ...] = ()


TurnInput = UserInput | ToolOutput | ToolDecision | Regenerate


@dataclass(slots=True, frozen=True)
class OpenedTurn:
    """An opened turn's events, and the turn they come from.

    ``start`` is None when nothing runs: a stored answer replayed, or an answer stored while
    other calls of its step still wait.
    """

    session_id: str
    events: AsyncIterator[TurnEvent]
    start: TurnStart | None = None


async def turn_events(*, turn_input: TurnInput) -> AsyncIterator[TurnEvent]:
    """Open the turn an input starts: its events."""
    return (await turn_open_events(turn_input=turn_input)).events


async def turn_open_events(*, turn_input: TurnInput) -> OpenedTurn:
    """Open the turn a user message, a tool result, a decision or a regenerate starts."""
    if isinstance(turn_input, UserInput):
        return await turn_start(user_input=turn_input)
    if isinstance(turn_input, ToolDecision):
        return await turn_decide(decision=turn_input)
    if isinstance(turn_input, Regenerate):
        return await turn_regenerate(regenerate=turn_input)
    return await turn_continue(tool_output=turn_input)


async def turn_start(*, user_input: UserInput) -> OpenedTurn:
    """Open a user turn; raises ``SessionBusy`` (and the like) before any event."""
    turn_id = uuid.uuid4()
    start = await _open_when_free(
        session_id=user_input.session_id,
        turn_id=turn_id,
        open_turn=lambda: services.turn_open(
            session_id=user_input.session_id,
            turn_id=turn_id,
            content=user_input.content,
            client_message_id=user_input.message_id,
        ),
    )
    session_id = user_input.session_id
    if start.replay is not None:
        return OpenedTurn(session_id, replayed_events(start))
    turn = Turn(start, session_id=session_id, extra_tools=user_input.extra_tools)
    return OpenedTurn(session_id, turn.events(), start)


async def turn_continue(*, tool_output: ToolOutput) -> OpenedTurn:
    """Store a client tool's result; the continuation's events once the step has them all."""
    return await _answer(
        session_id=tool_output.session_id,
        submit=lambda turn_id: services.tool_result_submit(
            session_id=tool_output.session_id,
            turn_id=turn_id,
            call_id=tool_output.call_id,
            content=tool_output.content,
            error_code=tool_output.error_code,
        ),
        extra_tools=tool_output.extra_tools,
    )


async def turn_decide(*, decision: ToolDecision) -> OpenedTurn:
    """Store the user's decision on a call; the continuation's events once the step has all
    its answers (approved calls run first)."""
    arguments = None
    if decision.approved and decision.arguments is not None:
        arguments = orjson.dumps(decision.arguments).decode()
    request_id = request_id_var.get() or ""
    return await _answer(
        session_id=decision.session_id,
        submit=lambda turn_id: services.tool_approval_submit(
            session_id=decision.session_id,
            turn_id=turn_id,
            call_id=decision.call_id,
            approved=decision.approved,
            reason=decision.reason,
            request_id=request_id,
            arguments=arguments,
        ),
        extra_tools=decision.extra_tools,
    )


async def turn_regenerate(*, regenerate: Regenerate) -> OpenedTurn:
    """Open a turn answering the last user message again; raises ``SessionBusy`` and the
    like before any event."""
    turn_id = uuid.uuid4()
    start = await _open_or_abandon(
        session_id=regenerate.session_id,
        turn_id=turn_id,
        open_turn=lambda: services.turn_regenerate_open(
            session_id=regenerate.session_id, turn_id=turn_id
        ),
    )
    turn = Turn(start, session_id=regenerate.session_id, extra_tools=regenerate.extra_tools)
    return OpenedTurn(regenerate.session_id, turn.events(), start)


async def _answer(
    *,
    session_id: str,
    submit: Callable[[uuid.UUID], TurnStart],
    extra_tools: tuple[Tool, ...] = (),
) -> OpenedTurn:
    """Store an answer to a pending call (``submit``, given the continuation's turn id): the
    continuation, or the final event listing what still waits (either begins with the
    denial's result, when the answer was one)."""
    turn_id = uuid.uuid4()
    start = await _open_or_abandon(
        session_id=session_id, turn_id=turn_id, open_turn=lambda: submit(turn_id)
    )
    if start.pending_call_ids is not None:
        return OpenedTurn(session_id, still_pending_events(start))
    turn = Turn(start, session_id=session_id, extra_tools=extra_tools)
    return OpenedTurn(session_id, turn.events(), start)


async def turn_cancel(*, session_id: str) -> uuid.UUID | None:
    """Stop the session's running turn, on whichever worker runs it; its id, or None if idle."""
    turn_id = await sync_to_async(services.turn_cancel_request)(session_id=session_id)
    if turn_id is not None:
        active_turns.cancel_local(turn_id)  # at once when it runs here; else the watcher's poll
    return turn_id


async def _open_or_abandon(
    *, session_id: str, turn_id: uuid.UUID, open_turn: Callable[[], TurnStart]
) -> TurnStart:
    """Open a turn; if the caller goes away meanwhile, give the session back.

    The database work finishes in its thread even when the request is cancelled, so a lease
    may have been taken for a turn that will never run: release it at once rather than let
    the session look busy until the lease expires.
    """
    try:
        return await sync_to_async(open_turn)()
    except asyncio.CancelledError:
        await asyncio.shield(
            sync_to_async(services.turn_abandon)(session_id=session_id, turn_id=turn_id)
        )
        raise


async def _open_when_free(
    *, session_id: str, turn_id: uuid.UUID, open_turn: Callable[[], TurnStart]
) -> TurnStart:
    """Open the turn, applying ``SESSION_BUSY_STRATEGY`` while another one runs."""
    strategy = settings.SESSION_BUSY_STRATEGY
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.SESSION_BUSY_WAIT_SECONDS
    asked_to_cancel = False
    while True:
        try:
            return await _open_or_abandon(
                session_id=session_id, turn_id=turn_id, open_turn=open_turn
            )
        except TurnStillRunning:
            raise
        except SessionBusy:
            if strategy == "reject" or loop.time() >= deadline:
                raise
            if strategy == "interrupt" and not asked_to_cancel:
                await turn_cancel(session_id=session_id)
                asked_to_cancel = True
            await asyncio.sleep(0.05)
