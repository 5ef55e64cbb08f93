"""Typed values that cross the service boundary (no model instances leave a transaction)."""

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


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


@dataclass(slots=True)
class TurnStart:
    """What opening a turn produced: either a lease and the history, or a stored replay."""

    session_pk: int
    turn_id: UUID
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Set when the request repeats a ``message_id`` whose turn already ended.
    replay: list[StoredMessage] | None = None
    #: Set when a tool result was stored but other calls of its step still wait for theirs.
    pending_call_ids: list[str] | None = None
