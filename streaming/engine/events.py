"""The typed events a turn yields, in the order a client should see them.

Treat them as immutable; they are not frozen only because the text delta is built per token.

A text turn is ``TextDelta``… then ``TurnFinished``. A step that calls tools adds, per call,
``ToolCallStarted``, ``ToolCallArgsDelta``… and ``ToolCallReady`` (once the model's answer is
whole), then a ``ToolResult`` per server-side call and ``StepFinished``. ``Heartbeat`` comes
whenever the turn has been quiet for ``HEARTBEAT_SECONDS``. The last event is always
``TurnFinished`` or ``TurnFailed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Executor = Literal["server", "client"]


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallStarted:
    """The model began a tool call; its arguments follow as ``ToolCallArgsDelta``."""

    call_id: str
    tool_name: str


@dataclass(slots=True)
class ToolCallArgsDelta:
    call_id: str
    delta: str


@dataclass(slots=True)
class ToolCallReady:
    """A whole tool call, validated. ``problem`` says why it cannot run, if it cannot."""

    call_id: str
    tool_name: str
    #: The arguments the model sent: parsed JSON when they parse, else the raw string.
    arguments: Any
    executor: Executor
    problem: str | None = None


@dataclass(slots=True)
class ToolResult:
    """A server-side call's outcome, or the rejection of a call that could not run."""

    call_id: str
    tool_name: str
    result: Any = None
    #: Set when the call failed; ``error_code`` then says how (``tool_error``, ``timeout``…).
    error: str | None = None
    error_code: str = ""


@dataclass(slots=True)
class StepFinished:
    """One model call and the tools it asked for are done and stored."""

    step: int
    finish_reason: str | None
    usage: dict[str, int] = field(default_factory=dict)


TurnStatus = Literal["complete", "interrupted", "cancelled", "failed"]


@dataclass(slots=True)
class TurnFinished:
    """The turn ended normally, was cancelled, or waits for client-side tool results."""

    status: TurnStatus
    finish_reason: str | None
    #: Summed over the turn's model calls; None for a replay of nothing stored.
    usage: dict[str, int] | None = field(default_factory=dict)
    #: Client-side calls whose results the client must post to continue.
    pending_call_ids: list[str] | None = None
    #: True when a repeated ``message_id`` replays a stored answer.
    replayed: bool = False


@dataclass(slots=True)
class TurnFailed:
    """The turn stopped on an error after it began (upstream failure, step limit)."""

    code: str
    message: str


@dataclass(slots=True)
class Heartbeat:
    pass


HEARTBEAT = Heartbeat()

TurnEvent = (
    TextDelta
    | ToolCallStarted
    | ToolCallArgsDelta
    | ToolCallReady
    | ToolResult
    | StepFinished
    | TurnFinished
    | TurnFailed
    | Heartbeat
)
