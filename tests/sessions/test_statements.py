"""The turn's hand-written INSERT stores what the ORM stores for the same messages."""

import uuid
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from sessions import statements
from sessions.models import Message
from sessions.records import NewMessage

from .factories import make_session

pytestmark = pytest.mark.django_db

MESSAGES = [
    NewMessage(role=Message.Role.USER, content="héllo 👋", client_message_id="m-1"),
    NewMessage(
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.COMPLETE,
        model="dev-llm",
        usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        finish_reason="tool_calls",
        tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    ),
    NewMessage(
        role=Message.Role.TOOL,
        content='{"error": "no"}',
        tool_call_id="c1",
        tool_name="f",
        error_code="tool_error",
    ),
    NewMessage(role=Message.Role.ASSISTANT, status=Message.Status.INTERRUPTED),
    # What a model server may send in place of the usual types: prepared as the ORM does.
    NewMessage(
        role=Message.Role.ASSISTANT,
        content="x",
        model=7,  # type: ignore[arg-type]
        usage={"prompt_tokens": "5", "completion_tokens": 1.0},  # type: ignore[dict-item]
        finish_reason="stop",
    ),
]


def _rows(session_pk: int) -> list[tuple[Any, ...]]:
    columns = [f.column for f in Message._meta.concrete_fields if f.name not in ("id", "session")]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {Message._meta.db_table} "
            "WHERE session_id = %s ORDER BY seq",
            [session_pk],
        )
        return [
            tuple(v for c, v in zip(columns, row, strict=True) if c != "created_at")
            for row in cursor.fetchall()
        ]


def test_messages_insert_stores_what_the_orm_stores() -> None:
    turn_id = uuid.uuid4()
    now = timezone.now()
    raw, orm = make_session("raw"), make_session("orm")
    statements.messages_insert(
        session_pk=raw.pk, first_seq=1, turn_id=turn_id, messages=MESSAGES, now=now
    )
    Message.objects.bulk_create(
        Message(
            session=orm,
            seq=seq,
            role=m.role,
            content=m.content,
            status=m.status,
            turn_id=turn_id,
            client_message_id=m.client_message_id,
            model=m.model,
            prompt_tokens=m.usage.get("prompt_tokens"),
            completion_tokens=m.usage.get("completion_tokens"),
            total_tokens=m.usage.get("total_tokens"),
            finish_reason=m.finish_reason,
            error_code=m.error_code,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
            tool_name=m.tool_name,
        )
        for seq, m in enumerate(MESSAGES, start=1)
    )
    assert _rows(raw.pk) == _rows(orm.pk)
    assert len(_rows(raw.pk)) == len(MESSAGES)
    stored = Message.objects.filter(session=raw).order_by("seq")
    assert [m.created_at for m in stored] == [now] * len(MESSAGES)
    assert [m.prompt_tokens for m in stored][-1] == 5
