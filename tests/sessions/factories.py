"""Rows for session tests, written straight through the ORM."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from sessions.models import Message, Session

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_session(
    session_id: str,
    *,
    last_activity_at: datetime | None = None,
    messages: int = 0,
    running: bool = False,
    lease_expired: bool = False,
) -> Session:
    """A session with ``messages`` alternating user/assistant messages."""
    session = Session.objects.create(
        session_id=session_id, last_activity_at=last_activity_at or timezone.now()
    )
    if messages:
        add_messages(session, messages, touch=False)
    if running or lease_expired:
        offset = timedelta(seconds=-1 if lease_expired else 30)
        Session.objects.filter(pk=session.pk).update(
            active_turn_id=uuid.uuid4(), active_turn_expires_at=timezone.now() + offset
        )
    session.refresh_from_db()
    return session


def add_messages(
    session: Session, count: int, *, touch: bool = True, **fields: Any
) -> list[Message]:
    """Append ``count`` messages after the session's last one, as the services would (they
    also make the session active now, unless ``touch`` is false)."""
    session.refresh_from_db()
    rows = []
    for _ in range(count):
        session.last_seq += 1
        role = "user" if session.last_seq % 2 else "assistant"
        values = {"role": role, "content": f"{session.session_id} message {session.last_seq}"}
        rows.append(Message(session=session, seq=session.last_seq, **(values | fields)))
    Message.objects.bulk_create(rows)
    activity = {"last_activity_at": timezone.now()} if touch else {}
    Session.objects.filter(pk=session.pk).update(last_seq=session.last_seq, **activity)
    return rows


def tool_conversation(session_id: str) -> Session:
    """user → assistant tool call → tool result → assistant answer, as stored by a turn."""
    session = Session.objects.create(session_id=session_id, last_activity_at=timezone.now())
    call = {
        "id": "call_7",
        "type": "function",
        "function": {"name": "calculator", "arguments": '{"expr": "6*7"}'},
    }
    rows = [
        {"role": "user", "content": "What is six times seven?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call],
            "model": "dev-llm",
            "finish_reason": "tool_calls",
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
        },
        {"role": "tool", "content": "42", "tool_call_id": "call_7", "tool_name": "calculator"},
        {
            "role": "assistant",
            "content": "Six times seven is 42.",
            "model": "dev-llm",
            "finish_reason": "stop",
            "prompt_tokens": 30,
            "completion_tokens": 8,
            "total_tokens": 38,
        },
    ]
    Message.objects.bulk_create(
        Message(session=session, seq=seq, **row) for seq, row in enumerate(rows, start=1)
    )
    session.last_seq = len(rows)
    session.save(update_fields=["last_seq"])
    return session
