"""One turn of a conversation: the model's answer streamed, its tool calls run, all stored.

Everything the turn waits for (upstream deltas, tool outcomes, a cancel, a heartbeat tick)
arrives on one queue, so the stream can always send a ping or stop, and tokens that arrive
together leave in one write. The database is touched when the turn opens, once per tool step
and once when it ends; never per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from agent_runtime.errors import (
    SessionBusy,
    TurnStillRunning,
    UpstreamError,
    UpstreamProtocolError,
)
from sessions import services
from sessions.models import Message
from sessions.records import NewMessage, TurnStart
from streaming import telemetry
from streaming.active_turns import active_turns
from streaming.llm_client import (
    ChatStream,
    ContentDelta,
    StreamEnd,
    ToolCallDelta,
    get_llm_client,
)
from streaming.protocol import (
    DONE_FRAME,
    PING_FRAME,
    StreamEvent,
    ToolResultRequest,
    UserMessageRequest,
    event_frame,
    token_frame,
)
from streaming.tool_calls import ToolCall, ToolCallAssembler, ToolOutcome, tool_rejected, tool_run
from streaming.tools.registry import get_tool_registry
from streaming.upstream_retry import retry_delay

logger = logging.getLogger(__name__)

INTERRUPTED_TOOL = orjson.dumps({"error": "not executed: the turn was stopped"}).decode()


class _Signal:
    """A queue item that is not data."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_PING = _Signal("ping")
_CANCEL = _Signal("cancel")
_STEP_END = _Signal("step-end")


# Clean-up tasks still running; a strong reference keeps each alive until it is done.
_cleanups: set[asyncio.Task[None]] = set()


class TurnCancelled(Exception):
    """The cancel endpoint, or a newer turn under the ``interrupt`` strategy, stopped it."""


# --- Entry points --------------------------------------------------------------------------------


async def turn_stream(*, request: UserMessageRequest | ToolResultRequest) -> AsyncIterator[bytes]:
    """The frames answering a stream request: a new user turn, or a tool result's."""
    if isinstance(request, UserMessageRequest):
        return await turn_start(request=request)
    return await turn_resume(request=request)


async def turn_start(*, request: UserMessageRequest) -> AsyncIterator[bytes]:
    """Open a user turn and return its frames; raises ``SessionBusy`` before any byte is sent."""
    turn_id = uuid.uuid4()
    start = await _open_when_free(
        session_id=request.session_id,
        turn_id=turn_id,
        open_turn=lambda: services.turn_open(
            session_id=request.session_id,
            turn_id=turn_id,
            content=request.content,
            client_message_id=request.message_id,
        ),
    )
    if start.replay is not None:
        return _replay_frames(start)
    return TurnRunner(start, session_id=request.session_id).frames()


async def turn_resume(*, request: ToolResultRequest) -> AsyncIterator[bytes]:
    """Store a client tool's result; stream the continuation once the step has all results."""
    if request.error is not None:
        content, error_code = orjson.dumps({"error": request.error}).decode(), "tool_error"
    elif isinstance(request.result, str):
        content, error_code = request.result, ""
    else:
        content, error_code = orjson.dumps(request.result).decode(), ""
    turn_id = uuid.uuid4()
    start = await _open_or_abandon(
        session_id=request.session_id,
        turn_id=turn_id,
        open_turn=lambda: services.tool_result_submit(
            session_id=request.session_id,
            turn_id=turn_id,
            call_id=request.call_id,
            content=content,
            error_code=error_code,
        ),
    )
    if start.pending_call_ids:
        return _pending_frames(start.pending_call_ids)
    return TurnRunner(start, session_id=request.session_id).frames()


async def turn_cancel(*, session_id: str) -> uuid.UUID | None:
    """Stop the session's running turn, on whichever worker runs it; its id, or None if idle."""
    turn_id = await sync_to_async(services.turn_cancel_request)(session_id=session_id)
    if turn_id is not None:
        active_turns.cancel_local(turn_id)  # at once when it runs here; else the watcher's poll
    return turn_id


async def _open_or_abandon(
    *, session_id: str, turn_id: uuid.UUID, open_turn: Callable[[], TurnStart]
) -> TurnStart:
    """Open a turn; if the client goes away meanwhile, give the session back.

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


# --- The running turn ----------------------------------------------------------------------------


class TurnRunner:
    """Runs the model/tool loop of one turn and records its outcome exactly once."""

    def __init__(self, start: TurnStart, *, session_id: str) -> None:
        self.start = start
        self.session_id = session_id
        self.client = get_llm_client()
        self.registry = get_tool_registry()
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.messages = list(start.history)
        self.event_id = 0
        self.steps = 0
        self.usage: dict[str, int] = {}
        self.started_at = self.loop.time()
        self.first_token_at: float | None = None
        self.last_frame_at = self.started_at
        self.tasks: set[asyncio.Task[None]] = set()
        self.pump: asyncio.Task[None] | None = None
        self.upstream: ChatStream | None = None
        self.stopping = False
        self.reading = False
        # The step in progress: its text, streamed tool calls and outcomes so far.
        self.parts: list[str] = []
        self.end = StreamEnd()
        self.assembler = ToolCallAssembler()
        self.step_calls: list[ToolCall] | None = None
        self.step_outcomes: dict[str, ToolOutcome] = {}
        #: True from a step's start until what it produced is stored.
        self.step_open = False
        self.final_recorded = False

    # The generator Django streams. ------------------------------------------------------------

    async def frames(self) -> AsyncIterator[bytes]:
        turn_id = self.start.turn_id
        active_turns.add(turn_id, self._request_cancel)
        telemetry.turn_started(session_id=self.session_id, turn_id=turn_id)
        self._heartbeat_handle = self.loop.call_later(settings.HEARTBEAT_SECONDS, self._heartbeat)
        status = Message.Status.INTERRUPTED
        error: UpstreamError | None = None
        final: StreamEvent | None = None
        try:
            # MCP servers' tools: discovered at the worker's first turn, then known.
            await self.registry.ready()
            while True:
                self._begin_step()
                async for chunk in self._relay_model_step():
                    yield chunk
                if not self.assembler:
                    status = Message.Status.COMPLETE
                    final = self._final("assistant_message", finish_reason=self.end.finish_reason)
                    break
                async for chunk in self._run_tool_step():
                    yield chunk
                pending = self._pending_client_calls()
                await self._record_tool_step(pending)
                if pending:
                    status = Message.Status.COMPLETE
                    final = StreamEvent(
                        token="",
                        is_final=True,
                        type="tool_call",
                        metadata={"pending_call_ids": [c.id for c in pending]},
                    )
                    break
                if self.steps >= settings.TOOL_MAX_STEPS:
                    status = Message.Status.COMPLETE
                    final = StreamEvent(
                        token="",
                        is_final=True,
                        type="error",
                        metadata={
                            "code": "tool_step_limit",
                            "message": f"Stopped after {self.steps} model calls that all "
                            "asked for tools (AGENT_RUNTIME__TOOL_MAX_STEPS).",
                        },
                    )
                    break
        except TurnCancelled:
            status = Message.Status.CANCELLED
            final = self._final("assistant_message", finish_reason="cancelled")
        except UpstreamError as exc:
            status, error = Message.Status.FAILED, exc
            final = StreamEvent(
                token="",
                is_final=True,
                type="error",
                metadata={"code": exc.code, "message": exc.detail},
            )
        finally:
            # Runs on every way out, client disconnect (CancelledError/GeneratorExit) included:
            # stop what still runs, store the answer so far, release the session.
            self._heartbeat_handle.cancel()
            active_turns.remove(turn_id)
            # One shielded task does the clean-up: the client going away while it runs (a
            # cancellation of this task) must not skip any of it.
            cleanup = self.loop.create_task(self._finish(status, error))
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
            await asyncio.shield(cleanup)
        yield event_frame(self._next_id(), final)
        yield DONE_FRAME

    # Steps. -----------------------------------------------------------------------------------

    def _begin_step(self) -> None:
        self.steps += 1
        self.parts = []
        self.end = StreamEnd()
        self.assembler = ToolCallAssembler()
        self.step_calls = None
        self.step_outcomes = {}
        self.step_open = True
        tools = self.registry.openai_schemas or None
        self.pump = self._spawn(self._pump(self.messages, tools))

    async def _pump(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> None:
        """Feed one model call's deltas to the queue, retrying failures before any delta."""
        put = self.queue.put_nowait
        attempt = 0
        first_try = self.loop.time()
        while True:
            attempt += 1
            produced = False
            try:
                self.upstream = self.client.stream_chat(messages=messages, tools=tools)
                self.reading = True
                async for delta in self.upstream:
                    produced = True
                    put(delta)
                put(_STEP_END)
                return
            except UpstreamError as exc:
                if self.stopping:
                    return
                delay = (
                    None
                    if produced
                    else retry_delay(
                        error=exc, attempt=attempt, elapsed=self.loop.time() - first_try
                    )
                )
                telemetry.upstream_failed(
                    code=exc.code, attempt=attempt, will_retry=delay is not None
                )
                if delay is None:
                    put(exc)
                    return
                self.reading = False
                await asyncio.sleep(delay)
            except Exception:  # a bug in a client must end the turn, not hang it
                logger.exception("turn %s: the LLM client failed", self.start.turn_id)
                put(UpstreamProtocolError())
                return

    async def _relay_model_step(self) -> AsyncIterator[bytes]:
        """Frames of one model call until it ends; tokens already queued leave together."""
        queue = self.queue
        while True:
            item = await queue.get()
            frames: list[bytes] = []
            while True:
                kind = type(item)
                if kind is ContentDelta:
                    if self.first_token_at is None:
                        self.first_token_at = self.loop.time()
                    self.parts.append(item.text)
                    self.event_id += 1
                    frames.append(token_frame(self.event_id, item.text))
                elif kind is ToolCallDelta:
                    self.assembler.add(item)
                elif kind is StreamEnd:
                    self.end = item
                    self._add_usage(item.usage)
                elif item is _STEP_END:
                    if frames:
                        yield self._sent(b"".join(frames))
                    return
                else:
                    if frames:
                        yield self._sent(b"".join(frames))
                    frame = self._signal(item)
                    if frame is not None:
                        yield frame
                    frames = []
                # Usually nothing more is queued: test rather than raise QueueEmpty per token.
                if queue.empty():
                    break
                item = queue.get_nowait()
            if frames:
                yield self._sent(b"".join(frames))

    async def _run_tool_step(self) -> AsyncIterator[bytes]:
        """Announce the step's calls, run the server-side ones concurrently, relay outcomes."""
        calls = self.assembler.calls(self.registry)
        self.step_calls = calls
        frames = []
        for call in calls:
            frames.append(
                event_frame(
                    self._next_id(),
                    StreamEvent(
                        token="",
                        is_final=False,
                        type="tool_call",
                        metadata={
                            "call_id": call.id,
                            "tool_name": call.name,
                            "arguments": call.wire_arguments(),
                            "executor": call.executor,
                        },
                    ),
                )
            )
        for call in calls:
            if call.problem is not None:
                frames.append(self._outcome_frame(tool_rejected(call)))
        yield self._sent(b"".join(frames))
        running = [c for c in calls if c.problem is None and c.executor == "server"]
        for call in running:
            self._spawn(self._run_tool(call))
        while any(c.id not in self.step_outcomes for c in running):
            item = await self.queue.get()
            if type(item) is ToolOutcome:
                yield self._sent(self._outcome_frame(item))
            else:
                frame = self._signal(item)
                if frame is not None:
                    yield frame

    async def _run_tool(self, call: ToolCall) -> None:
        self.queue.put_nowait(await tool_run(call))

    def _outcome_frame(self, outcome: ToolOutcome) -> bytes:
        self.step_outcomes[outcome.call.id] = outcome
        metadata: dict[str, Any] = {"call_id": outcome.call.id, "tool_name": outcome.call.name}
        if outcome.error is not None:
            metadata["error"] = outcome.error
        else:
            metadata["result"] = outcome.result
        return event_frame(
            self._next_id(),
            StreamEvent(token="", is_final=False, type="tool_result", metadata=metadata),
        )

    def _pending_client_calls(self) -> list[ToolCall]:
        return [c for c in self.step_calls or () if c.id not in self.step_outcomes]

    # Recording. -------------------------------------------------------------------------------

    def _assistant_message(self, status: str, error: UpstreamError | None = None) -> NewMessage:
        return NewMessage(
            role=Message.Role.ASSISTANT,
            content="".join(self.parts),
            status=status,
            model=self.end.model or getattr(self.client, "model", ""),
            usage=self.end.usage,
            finish_reason=self.end.finish_reason or "",
            error_code=error.code if error else "",
            tool_calls=[c.openai() for c in self.step_calls] if self.step_calls else None,
        )

    def _tool_messages(self, *, stopped: bool) -> list[NewMessage]:
        """The step's results in call order; with ``stopped``, a result for every call."""
        messages = []
        for call in self.step_calls or ():
            outcome = self.step_outcomes.get(call.id)
            if outcome is None and not stopped:
                continue  # a client-side call: its result comes later
            messages.append(
                NewMessage(
                    role=Message.Role.TOOL,
                    content=outcome.content() if outcome else INTERRUPTED_TOOL,
                    tool_call_id=call.id,
                    tool_name=call.name,
                    error_code=outcome.error_code if outcome else "not_executed",
                )
            )
        return messages

    async def _record_tool_step(self, pending: list[ToolCall]) -> None:
        messages = [
            self._assistant_message(Message.Status.COMPLETE),
            *self._tool_messages(stopped=False),
        ]
        self.messages.extend(
            [
                {
                    "role": "assistant",
                    "content": messages[0].content,
                    "tool_calls": messages[0].tool_calls,
                },
                *(
                    {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
                    for m in messages[1:]
                ),
            ]
        )
        await sync_to_async(services.turn_record)(
            session_pk=self.start.session_pk,
            turn_id=self.start.turn_id,
            messages=messages,
            finished=bool(pending),
            pending_tool_calls=[{"id": c.id, "name": c.name} for c in pending],
        )
        self.step_calls = None
        self.step_open = False
        self.final_recorded = bool(pending)

    async def _record_end(self, status: str, error: UpstreamError | None) -> None:
        messages: list[NewMessage] = []
        if self.step_open and self.step_calls is not None:
            # Stopped while tools ran: keep the calls, each with a result, so the history
            # stays valid for the next turn.
            messages = [self._assistant_message(status, error), *self._tool_messages(stopped=True)]
        elif self.step_open:
            messages = [self._assistant_message(status, error)]
        try:
            if not self.final_recorded:
                await sync_to_async(services.turn_record)(
                    session_pk=self.start.session_pk,
                    turn_id=self.start.turn_id,
                    messages=messages,
                    finished=True,
                )
        except Exception:
            logger.exception("turn %s: storing the answer failed", self.start.turn_id)
        telemetry.turn_finished(
            session_id=self.session_id,
            turn_id=self.start.turn_id,
            outcome=status if error is None else "failed",
            duration_s=self.loop.time() - self.started_at,
            ttft_s=None if self.first_token_at is None else self.first_token_at - self.started_at,
            usage=self.usage,
            steps=self.steps,
        )

    async def _finish(self, status: str, error: UpstreamError | None) -> None:
        await self._stop()
        await self._record_end(status, error)

    async def _stop(self) -> None:
        """Hang up on the model and stop the tools; nothing of the turn runs after this."""
        self.stopping = True
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self.upstream.hang_up()
        for task in self.tasks:
            if task is not self.pump:
                task.cancel()  # tools and retry sleeps: ours, safe to cancel anywhere
        if self.pump is not None and not self.pump.done():
            if not self.reading:  # between attempts, asleep: cancelling is harmless
                self.pump.cancel()
                return
            done, _ = await asyncio.wait([self.pump], timeout=1.0)
            if not done:  # a client that ignores hang-ups: the last resort
                self.pump.cancel()

    # Helpers. ---------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _signal(self, item: Any) -> bytes | None:
        """Handle a non-data queue item: a ping frame, or raise to stop the turn."""
        if item is _PING:
            return self._sent(PING_FRAME)
        if item is _CANCEL:
            raise TurnCancelled()
        if isinstance(item, UpstreamError):
            raise item
        if type(item) is ToolOutcome:  # a late outcome of a stopped step
            return None
        raise AssertionError(f"unexpected queue item {item!r}")

    def _sent(self, chunk: bytes) -> bytes:
        self.last_frame_at = self.loop.time()
        return chunk

    def _next_id(self) -> int:
        self.event_id += 1
        return self.event_id

    def _add_usage(self, usage: dict[str, int]) -> None:
        for key, value in usage.items():
            if isinstance(value, int):
                self.usage[key] = self.usage.get(key, 0) + value

    def _final(self, kind: str, *, finish_reason: str | None) -> StreamEvent:
        return StreamEvent(
            token="",
            is_final=True,
            type=kind,  # type: ignore[arg-type]
            metadata={"finish_reason": finish_reason, "usage": self.usage},
        )

    def _request_cancel(self) -> None:
        self.queue.put_nowait(_CANCEL)

    def _heartbeat(self) -> None:
        interval = settings.HEARTBEAT_SECONDS
        if self.loop.time() - self.last_frame_at >= interval * 0.9:
            self.queue.put_nowait(_PING)
        self._heartbeat_handle = self.loop.call_later(interval, self._heartbeat)


# --- Streams that are not a model call -----------------------------------------------------------


async def _pending_frames(call_ids: list[str]) -> AsyncIterator[bytes]:
    """The result was stored; other client-side calls of the step still wait for theirs."""
    yield event_frame(
        1,
        StreamEvent(
            token="", is_final=True, type="tool_call", metadata={"pending_call_ids": call_ids}
        ),
    )
    yield DONE_FRAME


async def _replay_frames(start: TurnStart) -> AsyncIterator[bytes]:
    """A repeated ``message_id``: the stored answer, in the normal event format."""
    event_id = 0
    last = None
    for message in start.replay or ():
        if message.role == Message.Role.ASSISTANT and message.content:
            event_id += 1
            yield token_frame(event_id, message.content)
        last = message
    metadata: dict[str, Any] = {"replayed": True}
    if last is not None:
        metadata.update({"finish_reason": last.finish_reason or None, "usage": last.usage})
    event_id += 1
    yield event_frame(
        event_id,
        StreamEvent(token="", is_final=True, type="assistant_message", metadata=metadata),
    )
    yield DONE_FRAME
