"""Typed values that cross the service boundary (no model instances leave a transaction)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson


@dataclass(slots=True, frozen=True)
class NewMessage:
    """A message a turn wants stored."""

    role: str
    content: str = ""
    status: str = "complete"
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = ""
    error_code: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    tool_name: str = ""
    client_message_id: str | None = None


@dataclass(slots=True, frozen=True)
class StoredMessage:
    """A stored message, as the turn logic and replay need it."""

    seq: int
    role: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    tool_name: str
    finish_reason: str
    error_code: str
    usage: dict[str, int]


@dataclass(slots=True, frozen=True)
class ApprovedCall:
    """A call the user approved: the continuation runs it before it calls the model."""

    id: str
    name: str
    #: JSON text: the model's arguments, or those the approval replaced them with.
    arguments: str


@dataclass(slots=True)
class TurnStart:
    """What opening a turn produced: either a lease and the history, or a stored replay."""

    session_pk: int
    turn_id: UUID
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The turn's number in its session (``Session.turns_opened`` when it took the lease): it
    #: orders a session's turns, and so the ids of their events.
    turn_number: int = 0
    #: Set when the request repeats a ``message_id`` whose turn already ended.
    replay: list[StoredMessage] | None = None
    #: Set when an answer was stored but other calls of its step still wait: the client-side
    #: calls without a result, and (``awaiting_approval``) the calls without a decision.
    pending_call_ids: list[str] | None = None
    awaiting_approval: list[str] = field(default_factory=list)
    #: Approved calls to run before the model is called.
    approved_calls: list[ApprovedCall] = field(default_factory=list)
    #: The result stored for a call the user denied, when this turn opened with a denial.
    denial: NewMessage | None = None


@dataclass(slots=True, frozen=True)
class SessionInfo:
    """A session's metadata, as the sessions API and the admin show it."""

    session_id: str
    created_at: datetime
    last_activity_at: datetime
    message_count: int
    #: A turn holds the session's lease and the lease has not expired.
    turn_running: bool


@dataclass(slots=True, frozen=True)
class ActivityKey:
    """A session's place in the most-recently-active-first order: ``(last_activity_at, pk)``."""

    last_activity_at: datetime
    pk: int


@dataclass(slots=True, frozen=True)
class SessionPage:
    sessions: list[SessionInfo]
    #: Where the next page starts; ``None`` on the last page.
    next_key: ActivityKey | None


@dataclass(slots=True, frozen=True)
class MessageInfo:
    """A stored message with everything a reader of the history needs."""

    seq: int
    role: str
    content: str
    status: str
    created_at: datetime
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    tool_name: str
    model: str
    #: ``{"prompt_tokens", "completion_tokens", "total_tokens"}``, or ``None`` when unknown.
    usage: dict[str, int | None] | None
    finish_reason: str
    error_code: str
    #: Replaced by a regenerated answer; left out of the history sent upstream.
    superseded: bool = False


@dataclass(slots=True, frozen=True)
class MessagePage:
    session_id: str
    messages: list[MessageInfo]
    #: More messages follow the last one of this page.
    has_more: bool


@dataclass(slots=True, frozen=True)
class ApprovalInfo:
    """A call that asked for the user's approval, and the decision (``""``: none yet)."""

    call_id: str
    tool_name: str
    decision: str
    reason: str
    #: JSON text of the arguments an approval replaced the model's with, if it did.
    arguments: str | None
    requested_at: datetime
    decided_at: datetime | None
    #: The ``X-Request-ID`` of the request that carried the decision.
    request_id: str


@dataclass(slots=True, frozen=True)
class TranscriptPage:
    """One page of a session's transcript, for the admin."""

    messages: list[MessageInfo]
    number: int
    num_pages: int
    count: int
    start_index: int
    end_index: int


@dataclass(slots=True)
class PruneResult:
    """What ``session_prune`` deleted (or, in a dry run, would delete)."""

    cutoff: datetime
    dry_run: bool = False
    sessions: int = 0
    messages: int = 0
    #: Sessions idle past the cutoff that were kept because a turn is running in them.
    kept_running: int = 0
    batches: int = 0


@dataclass(slots=True, frozen=True)
class AwaitingApproval:
    """A call that waits for the user's decision."""

    call_id: str
    tool_name: str
    #: The model's arguments: parsed JSON when they parse, else the raw string.
    arguments: Any

    @classmethod
    def of(cls, call: dict[str, Any]) -> "AwaitingApproval":
        """From its entry in ``Session.pending_tool_calls`` (the arguments are JSON text)."""
        try:
            arguments = orjson.loads(call["arguments"] or "{}")
        except orjson.JSONDecodeError:
            arguments = call["arguments"]
        return cls(call["id"], call["name"], arguments)
