"""Tool approval in-process: which calls wait, and the engine's pause and continuation.

The model server is mocked with respx at the upstream boundary; everything else is real (the
engine, the services, the database).
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import respx
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from agent_runtime.errors import SessionBusy, ToolCallAnswered, ToolCallNotFound
from agent_runtime.logs import request_id_var
from sessions import services
from sessions.models import Message, Session, ToolApproval
from streaming.engine.answers import turn_events_each
from streaming.engine.events import (
    TextDelta,
    ToolCallReady,
    ToolResult,
    TurnEvent,
    TurnFinished,
)
from streaming.engine.start import ToolDecision, ToolOutput, UserInput, turn_events
from streaming.llm_client import reset_llm_client
from streaming.tool_calls import tool_call_validated
from streaming.tools.approval import approval_required
from streaming.tools.builtin import echo, read_file
from streaming.tools.registry import (
    Tool,
    ToolRegistry,
    client_tool,
    reset_tool_registry,
    server_tool,
)
from tests import tools as test_tools

URL = "http://llm.test/v1/chat/completions"
TOOLS = [
    "streaming.tools.builtin.echo",
    "streaming.tools.builtin.read_file",
    "tests.tools.guarded",
    "tests.tools.shell",
]

# --- Which calls wait ------------------------------------------------------------------------


class Args(BaseModel):
    text: str = ""


async def nothing(arguments: Args) -> None:
    return None


def mcp_like(name: str, approval: Any = "never") -> Tool:
    """A server-side tool as the MCP integration declares them: ``<server>__<tool>``."""
    return server_tool(name=name, description="", arguments=Args, approval=approval)(nothing)


def needs(tool: Tool, arguments: str = "{}", **registry_tools: Tool) -> bool:
    registry = ToolRegistry([tool, *registry_tools.values()])
    return approval_required(
        tool_call_validated(id="c", name=tool.name, raw_arguments=arguments, registry=registry)
    )


def test_the_declaration_says_always_never_or_decides_on_the_arguments(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS_REQUIRING_APPROVAL = []
    assert needs(mcp_like("a", "always")) is True
    assert needs(mcp_like("a", "never")) is False
    predicate = mcp_like("a", lambda arguments: arguments.text == "rm -rf")
    assert needs(predicate, '{"text": "rm -rf"}') is True
    assert needs(predicate, '{"text": "ls"}') is False


def test_the_setting_adds_approval_by_name_or_glob(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS_REQUIRING_APPROVAL = ["echo", "time__*"]
    assert needs(echo, '{"text": "x"}') is True
    assert needs(mcp_like("time__get_current_time")) is True
    assert needs(mcp_like("time__convert_time")) is True
    assert needs(mcp_like("weather__now")) is False
    assert needs(mcp_like("Time__now")) is False  # globs are case-sensitive


def test_only_valid_server_side_calls_wait(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS_REQUIRING_APPROVAL = ["*"]
    assert needs(read_file, '{"path": "a"}') is False  # the client runs it
    assert needs(echo, '{"text": 1}') is False  # invalid: answered with its error at once
    unknown = tool_call_validated(id="c", name="nope", raw_arguments="{}", registry=ToolRegistry())
    assert approval_required(unknown) is False


def test_a_failing_predicate_asks_the_user(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TOOLS_REQUIRING_APPROVAL = []
    assert needs(mcp_like("a", lambda arguments: 1 / 0)) is True


def test_a_client_side_tool_cannot_declare_an_approval() -> None:
    tool = client_tool(name="ide", description="", arguments=Args)
    declared = Tool(tool.name, tool.description, tool.arguments, "client", approval="always")
    with pytest.raises(ImproperlyConfigured, match="approval is for server-side tools"):
        ToolRegistry([declared])


# --- The engine -------------------------------------------------------------------------------


def sse(*chunks: dict) -> httpx.Response:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})


def calls_reply(*calls: tuple[str, str, dict]) -> httpx.Response:
    """A model answer that calls tools: ``(call id, tool name, arguments)`` each."""
    deltas = [
        {
            "index": i,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
        }
        for i, (call_id, name, arguments) in enumerate(calls)
    ]
    return sse(
        {"choices": [{"index": 0, "delta": {"tool_calls": deltas}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )


def text_reply(text: str) -> httpx.Response:
    return sse(
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )


class Upstream:
    def __init__(self, router: respx.Router) -> None:
        self.route = router.post(URL)
        self.route.side_effect = self._answer
        self.replies: list[httpx.Response] = []

    def _answer(self, request: httpx.Request) -> httpx.Response:
        return self.replies.pop(0)

    def script(self, *replies: httpx.Response) -> None:
        self.replies.extend(replies)

    def messages(self, n: int) -> list[dict]:
        """The messages the model was sent in its ``n``-th call (from 0)."""
        return orjson.loads(self.route.calls[n].request.content)["messages"]

    @property
    def call_count(self) -> int:
        return self.route.call_count


@pytest.fixture
async def upstream(settings) -> AsyncIterator[Upstream]:  # type: ignore[no-untyped-def]
    settings.LLM_PROXY_URL = "http://llm.test"
    settings.TOOLS = TOOLS
    settings.TOOLS_REQUIRING_APPROVAL = []
    settings.HEARTBEAT_SECONDS = 60
    reset_tool_registry()
    await reset_llm_client()
    test_tools.RAN.clear()
    with respx.mock(assert_all_called=False) as router:
        yield Upstream(router)
    await reset_llm_client()
    reset_tool_registry()


@pytest.fixture
def request_id() -> Iterator[str]:
    token = request_id_var.set("req-approval-1")
    yield "req-approval-1"
    request_id_var.reset(token)


async def run(turn_input: Any) -> list[TurnEvent]:
    return [event async for event in await turn_events(turn_input=turn_input)]


def of(kind: type, events: list[TurnEvent]) -> list:
    return [e for e in events if isinstance(e, kind)]


def tool_messages(history: list[dict]) -> dict[str, Any]:
    """The tool results the model was sent, by call id (parsed when they are JSON)."""

    def parsed(content: str) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            return content

    return {m["tool_call_id"]: parsed(m["content"]) for m in history if m["role"] == "tool"}


@sync_to_async
def approval_row(call_id: str) -> ToolApproval:
    return ToolApproval.objects.get(call_id=call_id)


@sync_to_async
def session_state(session_id: str) -> tuple[Any, Any]:
    session = Session.objects.get(session_id=session_id)
    return session.pending_tool_calls, session.active_turn_id


pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_call_that_needs_approval_pauses_the_turn_and_an_approval_runs_it(
    upstream: Upstream, request_id: str
) -> None:
    upstream.script(calls_reply(("c1", "guarded", {"text": "hi"})), text_reply("Done."))
    events = await run(UserInput("s", "go"))
    [ready] = of(ToolCallReady, events)
    assert (ready.call_id, ready.executor, ready.approval_required) == ("c1", "server", True)
    assert of(ToolResult, events) == []
    final = events[-1]
    assert isinstance(final, TurnFinished)
    assert (final.pending_call_ids, final.awaiting_approval) == ([], ["c1"])
    assert test_tools.RAN == []
    pending, lease = await session_state("s")
    assert pending == [
        {"id": "c1", "name": "guarded", "kind": "approval", "arguments": '{"text":"hi"}'}
    ]
    assert lease is None  # waiting for the user holds no lease
    waiting = await approval_row("c1")
    assert (waiting.decision, waiting.tool_name, waiting.decided_at) == ("", "guarded", None)

    events = await run(ToolDecision("s", "c1", approved=True, reason="fine by me"))
    [result] = of(ToolResult, events)
    assert result.call_id == "c1"
    assert result.result["text"] == "hi"
    assert result.error is None
    assert events.index(result) < events.index(of(TextDelta, events)[0])
    assert "".join(e.text for e in of(TextDelta, events)) == "Done."
    assert isinstance(events[-1], TurnFinished)
    assert events[-1].status == "complete"
    assert test_tools.RAN == ["hi"]
    assert tool_messages(upstream.messages(1))["c1"]["text"] == "hi"
    decided = await approval_row("c1")
    assert decided.decision == "approved"
    assert (decided.reason, decided.request_id) == ("fine by me", request_id)
    assert decided.decided_at is not None
    assert decided.decided_at >= decided.requested_at
    assert await session_state("s") == (None, None)


async def test_a_denied_call_never_runs_and_the_model_reads_the_reason(
    upstream: Upstream,
) -> None:
    upstream.script(
        calls_reply(("c1", "shell", {"command": "rm -rf /"})), text_reply("Understood.")
    )
    events = await run(UserInput("s", "clean up"))
    assert of(ToolCallReady, events)[0].approval_required is True
    events = await run(ToolDecision("s", "c1", approved=False, reason="not my disk"))
    denial = events[0]
    assert isinstance(denial, ToolResult)
    assert (denial.call_id, denial.error_code) == ("c1", "denied")
    assert denial.error == "denied by the user: not my disk"
    assert "".join(e.text for e in of(TextDelta, events)) == "Understood."
    assert test_tools.RAN == []
    assert tool_messages(upstream.messages(1)) == {
        "c1": {"error": "denied by the user", "reason": "not my disk"}
    }
    row = await approval_row("c1")
    assert (row.decision, row.reason) == ("denied", "not my disk")
    stored = await sync_to_async(Message.objects.get)(role="tool", tool_call_id="c1")
    assert stored.error_code == "denied"


async def test_a_step_mixing_calls_runs_what_needs_no_approval_and_waits_for_every_answer(
    upstream: Upstream,
) -> None:
    upstream.script(
        calls_reply(
            ("c1", "shell", {"command": "ls src"}),  # the predicate lets it run
            ("c2", "guarded", {"text": "two"}),
            ("c3", "shell", {"command": "make deploy"}),
            ("c4", "read_file", {"path": "a.py"}),  # client-side
        ),
        text_reply("All answered."),
    )
    events = await run(UserInput("s", "go"))
    assert [e.approval_required for e in of(ToolCallReady, events)] == [
        False,
        True,
        True,
        False,
    ]
    assert [(r.call_id, r.result) for r in of(ToolResult, events)] == [("c1", "ran ls src")]
    assert (events[-1].pending_call_ids, events[-1].awaiting_approval) == (["c4"], ["c2", "c3"])

    events = await run(ToolDecision("s", "c2", approved=True))
    assert events == [TurnFinished("complete", "tool_calls", {}, ["c4"], ["c3"])]
    assert test_tools.RAN == ["ls src"]  # approved calls run with the step's last answer
    with pytest.raises(ToolCallAnswered):
        await run(ToolDecision("s", "c2", approved=False))
    with pytest.raises(ToolCallNotFound):  # a result cannot stand in for the approval
        await run(ToolOutput("s", "c3", '"done"'))

    events = await run(ToolDecision("s", "c3", approved=False))
    assert [type(e) for e in events] == [ToolResult, TurnFinished]
    assert (events[0].call_id, events[0].error) == ("c3", "denied by the user")
    assert (events[1].pending_call_ids, events[1].awaiting_approval) == (["c4"], [])

    events = await run(ToolOutput("s", "c4", '"print(1)"'))
    [result] = of(ToolResult, events)
    assert (result.call_id, result.result["text"]) == ("c2", "two")
    assert "".join(e.text for e in of(TextDelta, events)) == "All answered."
    assert test_tools.RAN == ["ls src", "two"]
    assert upstream.call_count == 2
    assert set(tool_messages(upstream.messages(1))) == {"c1", "c2", "c3", "c4"}


async def test_answers_posted_together_stream_every_denial_then_the_continuation(
    upstream: Upstream,
) -> None:
    """A request with all of a step's decisions (AG-UI's resume): each is stored in order,
    the results of the denials before the last come first, then the continuation's."""
    upstream.script(
        calls_reply(
            ("c1", "guarded", {"text": "a"}),
            ("c2", "guarded", {"text": "b"}),
            ("c3", "guarded", {"text": "c"}),
        ),
        text_reply("Answered."),
    )
    await run(UserInput("s", "go"))
    decisions = [
        ToolDecision("s", "c1", approved=False, reason="no"),
        ToolDecision("s", "c2", approved=True),
        ToolDecision("s", "c3", approved=False),
    ]
    events = [e async for e in await turn_events_each(turn_inputs=decisions)]
    assert [(r.call_id, r.error_code) for r in of(ToolResult, events)] == [
        ("c1", "denied"),
        ("c3", "denied"),
        ("c2", ""),
    ]
    [finished] = of(TurnFinished, events)
    assert (finished.status, finished.awaiting_approval) == ("complete", [])
    assert "".join(e.text for e in of(TextDelta, events)) == "Answered."
    assert test_tools.RAN == ["b"]


async def test_a_new_message_closes_waiting_approvals_as_not_executed(
    upstream: Upstream,
) -> None:
    upstream.script(calls_reply(("c1", "guarded", {"text": "x"})), text_reply("Moving on."))
    await run(UserInput("s", "go"))
    events = await run(UserInput("s", "never mind"))
    assert "".join(e.text for e in of(TextDelta, events)) == "Moving on."
    assert tool_messages(upstream.messages(1)) == {
        "c1": {"error": "not executed: the conversation went on before this call had a result"}
    }
    with pytest.raises(ToolCallAnswered):
        await run(ToolDecision("s", "c1", approved=True))
    assert test_tools.RAN == []
    assert (await approval_row("c1")).decision == ""


async def test_approval_for_a_call_that_never_asked_is_refused(upstream: Upstream) -> None:
    upstream.script(
        calls_reply(("c1", "echo", {"text": "ran"}), ("c2", "read_file", {"path": "a"}))
    )
    await run(UserInput("s", "go"))
    for call_id in ("c1", "c2", "nope"):  # ran server-side; client-side; unknown
        with pytest.raises(ToolCallNotFound):
            await run(ToolDecision("s", call_id, approved=True))
    pending, _ = await session_state("s")
    assert pending == [{"id": "c2", "name": "read_file"}]
    assert await sync_to_async(ToolApproval.objects.count)() == 0
    assert upstream.call_count == 1


async def test_a_decision_while_a_turn_runs_is_busy(upstream: Upstream) -> None:
    upstream.script(calls_reply(("c1", "guarded", {"text": "x"})))
    await run(UserInput("s", "go"))
    await sync_to_async(
        lambda: Session.objects.filter(session_id="s").update(active_turn_id="0" * 32)
    )()
    with pytest.raises(SessionBusy):
        await run(ToolDecision("s", "c1", approved=True))
    assert (await approval_row("c1")).decision == ""


async def test_an_approval_may_replace_the_arguments_which_are_validated(
    upstream: Upstream,
) -> None:
    upstream.script(
        calls_reply(("c1", "guarded", {"text": "model's"}), ("c2", "guarded", {"text": "b"})),
        text_reply("ok"),
    )
    await run(UserInput("s", "go"))
    await run(ToolDecision("s", "c1", approved=True, arguments={"text": "user's"}))
    events = await run(ToolDecision("s", "c2", approved=True, arguments={"text": 7}))
    results = {r.call_id: r for r in of(ToolResult, events)}
    assert results["c1"].result["text"] == "user's"
    assert results["c2"].error_code == "invalid_arguments"
    assert results["c2"].error.startswith("invalid arguments: text:")
    assert test_tools.RAN == ["user's"]
    assert (await approval_row("c1")).arguments == '{"text":"user\'s"}'


async def test_approved_calls_a_continuation_never_ran_are_closed_by_the_next_message(
    upstream: Upstream,
) -> None:
    """The client left before the continuation began: the lease is given back, and the next
    user message closes the approved call as not executed (the history stays valid)."""
    upstream.script(calls_reply(("c1", "guarded", {"text": "x"})), text_reply("Fresh start."))
    await run(UserInput("s", "go"))
    turn_id = uuid.uuid4()
    await sync_to_async(services.tool_approval_submit)(
        session_id="s", turn_id=turn_id, call_id="c1", approved=True
    )
    await sync_to_async(services.turn_abandon)(session_id="s", turn_id=turn_id)
    pending, lease = await session_state("s")
    assert lease is None
    assert pending[0]["approved"] is True
    with pytest.raises(ToolCallAnswered):
        await run(ToolDecision("s", "c1", approved=True))

    events = await run(UserInput("s", "again"))
    assert "".join(e.text for e in of(TextDelta, events)) == "Fresh start."
    assert tool_messages(upstream.messages(1))["c1"]["error"].startswith("not executed")
    assert test_tools.RAN == []
    assert await session_state("s") == (None, None)
