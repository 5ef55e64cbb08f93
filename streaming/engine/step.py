"""One step of a turn: a model call's text and tool calls, and the outcomes of those calls."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from django.conf import settings

from sessions.models import Message
from sessions.records import NewMessage
from streaming.engine.events import ToolCallReady, ToolResult, TurnFailed, TurnFinished
from streaming.llm_client import StreamEnd
from streaming.tool_calls import ToolCall, ToolCallAssembler, ToolOutcome

#: The result stored for a call the turn stopped before it had one.
INTERRUPTED_TOOL = orjson.dumps({"error": "not executed: the turn was stopped"}).decode()


@dataclass
class Step:
    """A model call and the calls it made; or (``resumed``) a step that begins with calls the
    user approved in an earlier request, and has no model call of its own."""

    number: int
    resumed: bool = False
    parts: list[str] = field(default_factory=list)
    end: StreamEnd = field(default_factory=StreamEnd)
    assembler: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    #: The step's whole calls, once the model call ended with some.
    calls: list[ToolCall] | None = None
    outcomes: dict[str, ToolOutcome] = field(default_factory=dict)
    #: What the step produced is stored.
    stored: bool = False

    def waiting_calls(self) -> list[ToolCall]:
        """Calls without an outcome: client-side ones, and those that wait for approval."""
        return [c for c in self.calls or () if c.id not in self.outcomes]

    def outcome_event(self, outcome: ToolOutcome) -> ToolResult:
        """Keep a call's outcome and describe it as an event."""
        self.outcomes[outcome.call.id] = outcome
        return ToolResult(
            call_id=outcome.call.id,
            tool_name=outcome.call.name,
            result=outcome.result,
            error=outcome.error,
            error_code=outcome.error_code,
        )

    def messages(
        self, *, status: str, model: str, error_code: str = "", stopped: bool
    ) -> list[NewMessage]:
        """What storing the step writes: its assistant message, then its results."""
        messages = [] if self.resumed else [self.assistant_message(status, model, error_code)]
        messages.extend(self.tool_messages(stopped=stopped))
        return messages

    def assistant_message(self, status: str, model: str, error_code: str) -> NewMessage:
        return NewMessage(
            role=Message.Role.ASSISTANT,
            content="".join(self.parts),
            status=status,
            model=self.end.model or model,
            usage=self.end.usage,
            finish_reason=self.end.finish_reason or "",
            error_code=error_code,
            tool_calls=[c.openai() for c in self.calls] if self.calls else None,
        )

    def tool_messages(self, *, stopped: bool) -> list[NewMessage]:
        """The step's results in call order; with ``stopped``, a result for every call."""
        messages = []
        for call in self.calls or ():
            outcome = self.outcomes.get(call.id)
            if outcome is None and not stopped:
                continue  # a client-side call, or one awaiting approval: answered later
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


def call_ready_event(call: ToolCall) -> ToolCallReady:
    return ToolCallReady(
        call_id=call.id,
        tool_name=call.name,
        arguments=call.wire_arguments(),
        executor=call.executor,
        problem=call.problem,
        approval_required=call.awaiting_approval,
    )


def denial_event(denial: NewMessage) -> ToolResult:
    """The stored result of a call the user denied, as an event."""
    body = orjson.loads(denial.content)
    reason = body.get("reason")
    return ToolResult(
        call_id=denial.tool_call_id or "",
        tool_name=denial.tool_name,
        error=f"{body['error']}: {reason}" if reason else body["error"],
        error_code=denial.error_code,
    )


def add_usage(total: dict[str, int], usage: dict[str, int]) -> None:
    """Add a model call's token counts to the turn's."""
    for key, value in usage.items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def turn_end_after_tools(step: Step, usage: dict[str, int]) -> TurnFinished | TurnFailed | None:
    """How a turn ends after a step whose calls ran: waiting for client results or approvals,
    or at the step limit; None when the model is called again."""
    if waiting := step.waiting_calls():
        return TurnFinished(
            "complete",
            step.end.finish_reason,
            usage,
            pending_call_ids=[c.id for c in waiting if not c.awaiting_approval],
            awaiting_approval=[c.id for c in waiting if c.awaiting_approval],
        )
    if step.number >= settings.TOOL_MAX_STEPS:
        return TurnFailed(
            "tool_step_limit",
            f"Stopped after {step.number} model calls that all asked for tools "
            "(AGENT_RUNTIME__TOOL_MAX_STEPS).",
        )
    return None
