"""The loop of one turn: model calls and the tools they ask for, as typed events.

Everything the turn waits for (upstream deltas, tool outcomes, a cancel, a heartbeat tick)
arrives on one queue, so the turn can always send a heartbeat or stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from django.conf import settings

from agent_runtime.errors import UpstreamError
from sessions.models import Message
from sessions.records import TurnStart
from streaming import telemetry
from streaming.active_turns import active_turns
from streaming.background import task_kept
from streaming.engine.events import (
    HEARTBEAT,
    StepFinished,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStarted,
    TurnEvent,
    TurnFailed,
    TurnFinished,
)
from streaming.engine.heartbeat import HeartbeatTimer
from streaming.engine.inbox import Inbox
from streaming.engine.model_call import CALL_END, ModelCall
from streaming.engine.recording import step_store, turn_store_end
from streaming.engine.step import (
    Step,
    add_usage,
    call_ready_event,
    denial_event,
    turn_end_after_tools,
)
from streaming.llm_client import ContentDelta, StreamEnd, ToolCallDelta, get_llm_client
from streaming.tool_calls import (
    ToolCall,
    ToolOutcome,
    tool_call_validated,
    tool_over_limit,
    tool_rejected,
    tool_run,
)
from streaming.tools.approval import approval_required
from streaming.tools.registry import Tool, get_tool_registry

_CANCEL = object()


class TurnCancelled(Exception):
    """The cancel endpoint, or a newer turn under the ``interrupt`` strategy, stopped it."""


class Turn:
    """Runs the model/tool loop of one opened turn and stores its outcome exactly once."""

    def __init__(
        self, start: TurnStart, *, session_id: str, extra_tools: tuple[Tool, ...] = ()
    ) -> None:
        self.start = start
        self.session_id = session_id
        self.client = get_llm_client()
        self.model = getattr(self.client, "model", "")
        #: The configured tools, plus the client-side ones the request declared for this turn.
        self.registry = get_tool_registry().with_tools(extra_tools)
        self.loop = asyncio.get_running_loop()
        self.inbox = Inbox()
        self.messages = list(start.history)
        self.usage: dict[str, int] = {}
        self.started_at = self.loop.time()
        self.first_token_at: float | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.call: ModelCall | None = None
        self.pump: asyncio.Task[None] | None = None
        self.step: Step | None = None
        #: The lease was given up by storing a step that waits for client-side results.
        self.ended_by_step = False

    async def events(self) -> AsyncIterator[TurnEvent]:
        turn_id = self.start.turn_id
        # Callbacks on the queue, not closures over the turn: a turn must not be part of a
        # reference cycle, or its text stays in memory until a full garbage collection.
        active_turns.add(turn_id, partial(self.inbox.put, _CANCEL))
        telemetry.turn_started(session_id=self.session_id, turn_id=turn_id)
        self.heartbeat = HeartbeatTimer(
            interval=settings.HEARTBEAT_SECONDS, beat=partial(self.inbox.put, HEARTBEAT)
        )
        status: str = Message.Status.INTERRUPTED
        error: UpstreamError | None = None
        final: TurnEvent
        try:
            await self.registry.ready()  # MCP servers list their tools on first use
            if self.start.denial is not None:
                yield denial_event(self.start.denial)
            if self.start.approved_calls:
                async for event in self._approved_step():
                    yield event
            items, touch = self.inbox.items, self.heartbeat.touch
            new_future = self.loop.create_future
            while True:
                step, call = self._begin_step()
                # The model step's loop is here rather than in a generator of its own: each
                # layer costs per token.
                while True:
                    if not items:  # ``Inbox.get``, without a coroutine per item
                        self.inbox.waiter = waiter = new_future()
                        await waiter
                    item = items.popleft()
                    if call.paused is not None:
                        call.taken()
                    if type(item) is ContentDelta:
                        if self.first_token_at is None:
                            self.first_token_at = self.loop.time()
                        step.parts.append(item.text)
                        touch()
                        yield TextDelta(item.text)
                    elif item is CALL_END:
                        break
                    else:
                        for event in self._model_item(step, item):
                            yield event
                if not step.assembler:
                    status = Message.Status.COMPLETE
                    yield StepFinished(step.number, step.end.finish_reason, step.end.usage)
                    final = TurnFinished("complete", step.end.finish_reason, self.usage)
                    break
                async for event in self._tool_step(step):
                    yield event
                history = await step_store(start=self.start, step=step, model=self.model)
                if history is not None:
                    self.messages = history
                yield StepFinished(step.number, step.end.finish_reason, step.end.usage)
                if (end := turn_end_after_tools(step, self.usage)) is not None:
                    # A step that waits for results or approvals gave up the lease itself.
                    self.ended_by_step = type(end) is TurnFinished
                    status, final = Message.Status.COMPLETE, end
                    break
        except TurnCancelled:
            status = Message.Status.CANCELLED
            final = TurnFinished("cancelled", "cancelled", self.usage)
        except UpstreamError as exc:
            status, error = Message.Status.FAILED, exc
            final = TurnFailed(exc.code, exc.detail)
        finally:
            # Runs on every way out, the reader's leaving (CancelledError/GeneratorExit)
            # included: stop what still runs, store the answer so far, release the session.
            self.heartbeat.stop()
            active_turns.remove(turn_id)
            # One shielded task does the clean-up: the reader leaving while it runs (a
            # cancellation of this task) must not skip any of it.
            await asyncio.shield(task_kept(self._finish(status, error)))
        yield final

    def _begin_step(self) -> tuple[Step, ModelCall]:
        number = 1 if self.step is None else self.step.number + 1
        self.step = step = Step(number)
        self.call = call = ModelCall(
            client=self.client, put=self.inbox.put, backlog=self.inbox.items.__len__
        )
        tools = self.registry.openai_schemas or None
        self.pump = self._spawn(call.run(messages=self.messages, tools=tools))
        return step, call

    def _model_item(self, step: Step, item: Any) -> tuple[TurnEvent, ...]:
        """The events of a model step's queued item other than a text delta (``events``)."""
        kind = type(item)
        if kind is ToolCallDelta:
            started = step.assembler.add(item)
            self.heartbeat.touch()
            found: tuple[TurnEvent, ...] = () if started is None else (ToolCallStarted(*started),)
            if item.arguments:
                found += (ToolCallArgsDelta(step.assembler.call_id(item.index), item.arguments),)
            return found
        if kind is StreamEnd:
            step.end = item
            add_usage(self.usage, item.usage)
            return ()
        event = self._signal(item)
        return () if event is None else (event,)

    async def _tool_step(self, step: Step) -> AsyncIterator[TurnEvent]:
        """Announce the step's calls, then run them (but those that wait for approval)."""
        calls = step.assembler.calls(self.registry)
        limit = settings.TOOL_MAX_CALLS_PER_STEP
        # The calls past the limit are answered here and left out of the step (and so of the
        # history): a model that asks for thousands cannot make the turn store thousands.
        calls, over_limit = calls[:limit], calls[limit:]
        step.calls = calls
        self.heartbeat.touch()
        for call in calls:
            call.awaiting_approval = approval_required(call)
            yield call_ready_event(call)
        for call in over_limit:
            yield call_ready_event(call)
            yield step.outcome_event(tool_over_limit(call, limit))
        async for event in self._run_calls(step):
            yield event

    async def _approved_step(self) -> AsyncIterator[TurnEvent]:
        """A step that begins with the calls the user approved: run and store them."""
        self.step = step = Step(0, resumed=True)
        step.calls = [
            tool_call_validated(
                id=c.id, name=c.name, raw_arguments=c.arguments, registry=self.registry
            )
            for c in self.start.approved_calls
        ]
        async for event in self._run_calls(step):
            yield event
        history = await step_store(start=self.start, step=step, model=self.model)
        if history is not None:
            self.messages = history

    async def _run_calls(self, step: Step) -> AsyncIterator[TurnEvent]:
        """Answer the calls that cannot run, run the server-side ones concurrently, relay."""
        assert step.calls is not None
        for call in step.calls:
            if call.problem is None and step.resumed and call.executor != "server":
                call.problem = f"tool {call.name!r} is no longer run by the server"
            if call.problem is not None:
                yield step.outcome_event(tool_rejected(call))
        running = [
            c
            for c in step.calls
            if c.problem is None and c.executor == "server" and not c.awaiting_approval
        ]
        for call in running:
            self._spawn(self._run_tool(call))
        while any(c.id not in step.outcomes for c in running):
            item = await self.inbox.get()
            if type(item) is ToolOutcome:
                self.heartbeat.touch()
                yield step.outcome_event(item)
            elif (event := self._signal(item)) is not None:
                yield event

    async def _run_tool(self, call: ToolCall) -> None:
        self.inbox.put(await tool_run(call))

    async def _finish(self, status: str, error: UpstreamError | None) -> None:
        await self._stop()
        if not self.ended_by_step:
            await turn_store_end(
                start=self.start, step=self.step, status=status, error=error, model=self.model
            )
        telemetry.turn_finished(
            session_id=self.session_id,
            turn_id=self.start.turn_id,
            outcome=status if error is None else "failed",
            duration_s=self.loop.time() - self.started_at,
            ttft_s=None if self.first_token_at is None else self.first_token_at - self.started_at,
            usage=self.usage,
            steps=0 if self.step is None else self.step.number,
        )

    async def _stop(self) -> None:
        """Hang up on the model and stop the tools; nothing of the turn runs after this."""
        if self.call is not None:
            with contextlib.suppress(Exception):
                await self.call.hang_up()
        for task in self.tasks:
            if task is not self.pump:
                task.cancel()  # tools and retry sleeps: ours, safe to cancel anywhere
        if self.pump is not None and not self.pump.done():
            assert self.call is not None
            if not self.call.reading:  # between attempts, asleep: cancelling is harmless
                self.pump.cancel()
                return
            done, _ = await asyncio.wait([self.pump], timeout=1.0)
            if not done:  # a client that ignores hang-ups: the last resort
                self.pump.cancel()

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _signal(self, item: Any) -> TurnEvent | None:
        """A queue item that is not the step's data: a heartbeat, or raise to stop the turn."""
        if item is HEARTBEAT:
            self.heartbeat.touch()
            return HEARTBEAT
        if type(item) is ToolOutcome:  # a late outcome of a stopped step
            return None
        if item is _CANCEL:
            raise TurnCancelled()
        if isinstance(item, UpstreamError):
            raise item
        raise AssertionError(f"unexpected queue item {item!r}")
