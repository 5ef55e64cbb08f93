"""Rows for session tests, written straight through the ORM."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from sessions.models import Message, Session, ToolApproval

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


def approval_conversation(session_id: str) -> Session:
    """A step with three calls that asked for approval: one approved (with the user's
    arguments), one denied with a reason, one never answered; as the services store them."""
    session = Session.objects.create(session_id=session_id, last_activity_at=timezone.now())
    calls = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in [
            ("call_ok", "guarded", '{"text": "hello"}'),
            ("call_no", "shell", '{"command": "rm -rf build"}'),
            ("call_open", "guarded", '{"text": "later"}'),
        ]
    ]
    turn_id = uuid.uuid4()
    now = timezone.now()
    rows = [
        {"role": "user", "content": "Tidy up, please."},
        {"role": "assistant", "content": "", "tool_calls": calls, "finish_reason": "tool_calls"},
        {
            "role": "tool",
            "content": '{"error":"denied by the user","reason":"keep the build"}',
            "tool_call_id": "call_no",
            "tool_name": "shell",
            "error_code": "denied",
        },
        {
            "role": "tool",
            "content": '{"text":"hi there"}',
            "tool_call_id": "call_ok",
            "tool_name": "guarded",
        },
    ]
    Message.objects.bulk_create(
        Message(session=session, seq=seq, turn_id=turn_id, **row)
        for seq, row in enumerate(rows, start=1)
    )
    session.last_seq = len(rows)
    session.save(update_fields=["last_seq"])
    decided = {
        "call_ok": {
            "decision": "approved",
            "arguments": '{"text": "hi there"}',
            "request_id": "req-approve-7",
        },
        "call_no": {"decision": "denied", "reason": "keep the build", "request_id": "req-deny-8"},
        "call_open": {},
    }
    for call in calls:
        answer = decided[call["id"]]
        ToolApproval.objects.create(
            session=session,
            call_id=call["id"],
            tool_name=call["function"]["name"],
            turn_id=turn_id,
            requested_at=now,
            decided_at=now + timedelta(seconds=5) if answer else None,
            **answer,
        )
    return session
