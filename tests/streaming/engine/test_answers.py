"""Several answers posted at once (``turn_open_each``): the engine, services and database are
real, the model server is mocked at the upstream boundary (as in tests/streaming/test_approval.py).
"""

import pytest

from streaming.engine.answers import turn_open_each
from streaming.engine.events import TextDelta, ToolResult, TurnEvent, TurnFinished
from streaming.engine.start import OpenedTurn, ToolDecision, ToolOutput, UserInput
from tests import tools as test_tools
from tests.streaming import test_approval
from tests.streaming.test_approval import Upstream, calls_reply, of, run, text_reply

upstream = test_approval.upstream  # the fixture: the model server, mocked

pytestmark = pytest.mark.django_db(transaction=True)


async def events_of(opened: OpenedTurn) -> list[TurnEvent]:
    return [event async for event in opened.events]


async def test_a_step_answered_in_one_post_streams_the_denial_the_runs_and_the_answer(
    upstream: Upstream,
) -> None:
    upstream.script(
        calls_reply(
            ("c2", "guarded", {"text": "two"}),
            ("c3", "shell", {"command": "make deploy"}),
            ("c4", "read_file", {"path": "a.py"}),
        ),
        text_reply("All answered."),
    )
    await run(UserInput("s", "go"))
    opened = await turn_open_each(
        turn_inputs=[
            ToolDecision("s", "c3", approved=False, reason="no"),
            ToolDecision("s", "c2", approved=True),
            ToolOutput("s", "c4", '"print(1)"'),
        ]
    )
    assert opened.start is not None  # a turn runs: the run layer logs it for resume
    events = await events_of(opened)
    results = [(r.call_id, r.error_code) for r in of(ToolResult, events)]
    assert results == [("c3", "denied"), ("c2", "")]
    assert "".join(e.text for e in of(TextDelta, events)) == "All answered."
    assert test_tools.RAN == ["two"]
    assert upstream.call_count == 2


async def test_answers_that_leave_calls_waiting_give_the_denials_and_what_still_waits(
    upstream: Upstream,
) -> None:
    upstream.script(
        calls_reply(
            ("c2", "guarded", {"text": "two"}),
            ("c3", "shell", {"command": "make deploy"}),
            ("c4", "read_file", {"path": "a.py"}),
        )
    )
    await run(UserInput("s", "go"))
    opened = await turn_open_each(
        turn_inputs=[
            ToolDecision("s", "c3", approved=False),
            ToolDecision("s", "c2", approved=True),
        ]
    )
    assert opened.start is None
    events = await events_of(opened)
    assert [type(e) for e in events] == [ToolResult, TurnFinished]
    assert (events[0].call_id, events[0].error_code) == ("c3", "denied")
    assert (events[1].pending_call_ids, events[1].awaiting_approval) == (["c4"], [])
    assert test_tools.RAN == []
