"""The turn engine in process, against a scripted model: the events it yields and what it stores."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from agent_runtime.errors import UpstreamHTTPError, UpstreamUnavailable
from sessions.models import Message, Session
from streaming.engine import model_call
from streaming.engine.events import (
    Heartbeat,
    StepFinished,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallReady,
    ToolCallStarted,
    ToolResult,
    TurnEvent,
    TurnFailed,
    TurnFinished,
)
from streaming.engine.start import ToolOutput, UserInput, turn_cancel, turn_events
from streaming.llm_client import reset_llm_client
from streaming.tools.registry import reset_tool_registry
from tests.streaming.engine import scripted_model
from tests.streaming.engine.scripted_model import HOLD, text, tool_calls

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def scripted(settings) -> AsyncIterator[scripted_model.Script]:  # type: ignore[no-untyped-def]
    settings.LLM_CLIENT = "tests.streaming.engine.scripted_model.ScriptedChatClient"
    settings.TOOLS = [
        "streaming.tools.builtin.echo",
        "streaming.tools.builtin.calculator",
        "streaming.tools.builtin.read_file",
    ]
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.001
    scripted_model.script = scripted_model.Script()
    await reset_llm_client()
    reset_tool_registry()
    yield scripted_model.script
    await reset_llm_client()
    reset_tool_registry()
    # The turn's database work ran on asgiref's database thread: close its connection there,
    # or the test database cannot be dropped at the end of the run.
    await sync_to_async(connections.close_all)()


async def run(turn_input: UserInput | ToolOutput) -> list[TurnEvent]:
    return [event async for event in await turn_events(turn_input=turn_input)]


@sync_to_async
def stored(session_id: str) -> list[tuple[str, str, str]]:
    return list(
        Message.objects.filter(session__session_id=session_id)
        .order_by("seq")
        .values_list("role", "content", "status")
    )


@sync_to_async
def lease_free(session_id: str) -> bool:
    return Session.objects.get(session_id=session_id).active_turn_id is None


async def test_text_streams_as_deltas_and_is_stored_once(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [text("Hel", "lo", usage={"prompt_tokens": 3, "completion_tokens": 2})]
    events = await run(UserInput("s1", "hi"))
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        StepFinished(1, "stop", {"prompt_tokens": 3, "completion_tokens": 2}),
        TurnFinished("complete", "stop", {"prompt_tokens": 3, "completion_tokens": 2}),
    ]
    assert await stored("s1") == [("user", "hi", "complete"), ("assistant", "Hello", "complete")]
    assert scripted.requests[0]["messages"][-1] == {"role": "user", "content": "hi"}
    assert await lease_free("s1")


async def test_server_tools_run_and_their_results_go_back_to_the_model(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [
        tool_calls(("c1", "calculator", '{"expr": "6*7"}'), ("c2", "echo", '{"text": "x"}')),
        text("42"),
    ]
    events = await run(UserInput("s2", "compute"))
    kinds = [type(e) for e in events]
    assert kinds[:4] == [ToolCallStarted, ToolCallArgsDelta, ToolCallArgsDelta, ToolCallStarted]
    ready = [e for e in events if isinstance(e, ToolCallReady)]
    assert [(r.call_id, r.tool_name, r.arguments, r.executor) for r in ready] == [
        ("c1", "calculator", {"expr": "6*7"}, "server"),
        ("c2", "echo", {"text": "x"}, "server"),
    ]
    results = {e.call_id: e for e in events if isinstance(e, ToolResult)}
    assert results["c1"].result == 42
    assert results["c1"].error is None
    assert events[-3:] == [TextDelta("42"), StepFinished(2, "stop", {}), events[-1]]
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].status == "complete"
    second_call = scripted.requests[1]["messages"]
    assert [m["role"] for m in second_call[-3:]] == ["assistant", "tool", "tool"]
    assert second_call[-2] == {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert [r for r, _, _ in await stored("s2")] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]


async def test_a_call_that_cannot_run_gets_an_error_result_and_the_turn_goes_on(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [tool_calls(("c1", "no_such_tool", "{}")), text("sorry")]
    events = await run(UserInput("s3", "go"))
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert (result.error_code, result.error) == ("unknown_tool", "unknown tool 'no_such_tool'")
    assert isinstance(events[-1], TurnFinished)


async def test_a_client_tool_ends_the_turn_and_its_result_continues_it(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [tool_calls(("c1", "read_file", '{"path": "a.txt"}')), text("done")]
    events = await run(UserInput("s4", "read it"))
    ready = [e for e in events if isinstance(e, ToolCallReady)]
    assert [(r.call_id, r.executor) for r in ready] == [("c1", "client")]
    assert not [e for e in events if isinstance(e, ToolResult)]
    assert events[-1] == TurnFinished("complete", "tool_calls", {"prompt_tokens": 1}, ["c1"])
    assert await lease_free("s4")
    assert len(scripted.requests) == 1

    events = await run(
        ToolOutput.of(session_id="s4", call_id="c1", result={"text": "hello"}, error=None)
    )
    assert events[0] == TextDelta("done")
    assert scripted.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"text":"hello"}',
    }
    assert [r for r, _, _ in await stored("s4")] == ["user", "assistant", "tool", "assistant"]


async def test_failures_before_the_first_delta_are_retried(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [[UpstreamUnavailable()], [UpstreamHTTPError(503, "busy")], text("ok")]
    events = await run(UserInput("s5", "hi"))
    assert len(scripted.requests) == 3
    assert events[0] == TextDelta("ok")
    assert isinstance(events[-1], TurnFinished)


async def test_a_failure_after_the_first_delta_is_not_retried_and_keeps_the_text(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [[*text("par")[:1], UpstreamUnavailable()], text("never")]
    events = await run(UserInput("s6", "hi"))
    assert len(scripted.requests) == 1
    assert events == [TextDelta("par"), TurnFailed("upstream_unavailable", events[-1].message)]
    assert (await stored("s6"))[-1] == ("assistant", "par", "failed")


async def test_a_non_retryable_failure_ends_the_turn_at_once(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [[UpstreamHTTPError(400, "bad request")]]
    events = await run(UserInput("s7", "hi"))
    assert len(scripted.requests) == 1
    assert isinstance(events[-1], TurnFailed)
    assert events[-1].code == "upstream_http_error"


async def test_cancel_stops_the_model_and_stores_the_text_so_far(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [[*text("part")[:1], HOLD]]
    events = await turn_events(turn_input=UserInput("s8", "hi"))
    seen = [await anext(events)]
    assert seen == [TextDelta("part")]
    assert await turn_cancel(session_id="s8") is not None
    seen += [event async for event in events]
    assert seen[-1] == TurnFinished("cancelled", "cancelled", {})
    assert scripted.hang_ups == 1
    assert (await stored("s8"))[-1] == ("assistant", "part", "cancelled")
    assert await lease_free("s8")


async def test_a_reader_that_leaves_hangs_up_and_stores_an_interrupted_answer(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [[*text("part")[:1], HOLD]]
    events = await turn_events(turn_input=UserInput("s9", "hi"))
    assert await anext(events) == TextDelta("part")
    await events.aclose()  # type: ignore[attr-defined]
    assert scripted.hang_ups == 1
    assert (await stored("s9"))[-1] == ("assistant", "part", "interrupted")
    assert await lease_free("s9")


async def test_a_tool_loop_stops_at_the_step_limit(scripted, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOL_MAX_STEPS = 2
    scripted.replies = [
        tool_calls(("c1", "echo", '{"text": "1"}')),
        tool_calls(("c2", "echo", '{"text": "2"}')),
    ]
    events = await run(UserInput("s10", "loop"))
    assert len(scripted.requests) == 2
    assert isinstance(events[-1], TurnFailed)
    assert events[-1].code == "tool_step_limit"
    assert [e.step for e in events if isinstance(e, StepFinished)] == [1, 2]
    assert await lease_free("s10")


async def test_a_quiet_turn_sends_heartbeats(scripted, settings) -> None:  # type: ignore[no-untyped-def]
    settings.HEARTBEAT_SECONDS = 0.05
    scripted.replies = [[HOLD]]
    events = await turn_events(turn_input=UserInput("s11", "hi"))
    assert await asyncio.wait_for(anext(events), timeout=30) == Heartbeat()
    await turn_cancel(session_id="s11")
    rest: list[Any] = [event async for event in events]
    assert rest[-1].status == "cancelled"


async def test_calls_past_the_per_step_limit_get_an_error_and_are_not_stored(
    scripted, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.TOOL_MAX_CALLS_PER_STEP = 3
    scripted.replies = [
        tool_calls(*((f"c{i}", "echo", f'{{"text": "{i}"}}') for i in range(500))),
        text("done"),
    ]
    events = await run(UserInput("s12", "many"))
    results = [e for e in events if isinstance(e, ToolResult)]
    assert len(results) == 500
    assert [r.call_id for r in results if r.error_code == ""] == ["c0", "c1", "c2"]
    over = [r for r in results if r.error_code]
    assert len(over) == 497
    assert {r.error_code for r in over} == {"tool_call_limit"}
    assert over[0].error == "not executed: more than 3 tool calls in one step"
    roles = [role for role, _, _ in await stored("s12")]
    assert roles == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    second_call = scripted.requests[1]["messages"]
    assert len(second_call) == 5  # the user message, the 3 calls and their 3 results
    assert len(second_call[1]["tool_calls"]) == 3


async def test_a_long_tool_loop_keeps_each_model_call_within_the_budget(scripted, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CONTEXT_MAX_MESSAGES = 6
    settings.TOOL_MAX_STEPS = 10
    scripted.replies = [
        *(tool_calls((f"c{i}", "echo", f'{{"text": "{i}"}}')) for i in range(9)),
        text("done"),
    ]
    events = await run(UserInput("s13", "loop on"))
    assert events[-1] == TurnFinished("complete", "stop", {"prompt_tokens": 9})
    assert len(scripted.requests) == 10
    for request in scripted.requests:
        messages = request["messages"]
        assert len(messages) <= 6
        assert messages[0] == {"role": "user", "content": "loop on"}
        for i, message in enumerate(messages):  # every result follows its call
            if message["role"] == "tool":
                assert messages[i - 1]["role"] in ("assistant", "tool")
    last = scripted.requests[-1]["messages"]
    assert last[-1] == {"role": "tool", "tool_call_id": "c8", "content": "8"}
    assert len(await stored("s13")) == 1 + 9 * 2 + 1


async def test_a_reader_that_takes_nothing_stops_the_model_being_read(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [text(*(f"t{i} " for i in range(500)))]
    events = await turn_events(turn_input=UserInput("s-slow", "hi"))
    assert await anext(events) == TextDelta("t0 ")
    for _ in range(200):  # many loop turns in which the reader takes nothing
        await asyncio.sleep(0)
    assert scripted.played <= model_call.BACKLOG_PAUSE + 2
    rest = [event async for event in events]
    assert "".join(e.text for e in rest if isinstance(e, TextDelta)) == "".join(
        f"t{i} " for i in range(1, 500)
    )
    assert scripted.played == 501  # and the end of the reply
    assert await stored("s-slow") == [
        ("user", "hi", "complete"),
        ("assistant", "".join(f"t{i} " for i in range(500)), "complete"),
    ]


async def test_a_reader_leaving_a_paused_call_hangs_up_at_once(scripted) -> None:  # type: ignore[no-untyped-def]
    scripted.replies = [text(*(f"t{i} " for i in range(500)))]
    events = await turn_events(turn_input=UserInput("s-slow-2", "hi"))
    await anext(events)
    for _ in range(200):
        await asyncio.sleep(0)
    async with asyncio.timeout(0.9):  # the engine's last resort (cancel the call) takes 1 s
        await events.aclose()  # type: ignore[attr-defined]
    assert scripted.hang_ups == 1
    assert (await stored("s-slow-2"))[-1][2] == "interrupted"
    assert await lease_free("s-slow-2")


async def test_an_ended_turn_is_freed_without_waiting_for_the_garbage_collector(scripted) -> None:  # type: ignore[no-untyped-def]
    # A turn in a reference cycle keeps its text and queue until a full collection, which a
    # large heap rarely runs: hundreds of ended turns' text stayed in memory (issue 18).
    scripted.replies = [text("Hel", "lo")]
    events = await turn_events(turn_input=UserInput("freed", "hi"))
    gc.collect()
    gc.disable()
    try:
        await anext(events)
        turn = weakref.ref(events.ag_frame.f_locals["self"])  # type: ignore[attr-defined]
        async for _ in events:
            pass
        del events
        assert turn() is None
    finally:
        gc.enable()
