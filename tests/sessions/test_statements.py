"""The turn's hand-written statements do what their ORM forms do."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sessions import statements
from sessions.models import Message, Session
from sessions.records import NewMessage
from sessions.services.common import _TURN_STATE_FIELDS

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


def _session_state(session_pk: int, *, changed: bool) -> dict[str, Any]:
    """The row but its identity; ``updated_at`` only where the test set it on both."""
    row = Session.objects.filter(pk=session_pk).values().get()
    for key in ("id", "session_id", "created_at", *(() if changed else ("updated_at",))):
        row.pop(key)
    return row


@pytest.mark.parametrize(
    ("state", "taken"),
    [
        ({}, True),
        ({"running": True}, False),
        ({"lease_expired": True}, True),
        ({"pending": True}, False),
    ],
)
def test_lease_take_if_free_changes_the_row_as_the_orm_does(state: dict, taken: bool) -> None:
    """The statement against the ORM's form: ``lease_free`` and no pending calls, then the
    same assignments (``_take_lease``, one more ``seq``, the activity stamps)."""
    pending = state.pop("pending", False)
    raw, orm = (make_session(name, messages=2, **state) for name in ("raw", "orm"))
    if pending:
        Session.objects.update(pending_tool_calls=[{"id": "c1", "name": "f"}])
    if raw.active_turn_id is not None:  # one running (or expired) turn's lease on both rows
        Session.objects.update(
            active_turn_id=raw.active_turn_id, active_turn_expires_at=raw.active_turn_expires_at
        )
    Session.objects.update(turns_opened=4, last_activity_at=raw.last_activity_at)
    turn_id, now = uuid.uuid4(), timezone.now()
    expires = now + timedelta(seconds=settings.TURN_LEASE_SECONDS)
    with transaction.atomic():
        result = statements.lease_take_if_free(
            session_id="raw", turn_id=turn_id, now=now, expires=expires
        )
    with transaction.atomic():
        free = Session.objects.select_for_update().lease_free(now)
        session = free.filter(session_id="orm", pending_tool_calls__isnull=True).first()
        if session is not None:
            session.active_turn_id, session.active_turn_expires_at = turn_id, expires
            session.cancel_turn_id = None
            session.last_activity_at = session.updated_at = now
            session.last_seq += 1
            session.turns_opened += 1
            Session.objects.filter(pk=session.pk).update(
                **{f: getattr(session, f) for f in _TURN_STATE_FIELDS}
            )
    assert (result is not None, session is not None) == (taken, taken)
    if taken:
        assert result == (raw.pk, 3, 5)
    assert _session_state(raw.pk, changed=taken) == _session_state(orm.pk, changed=taken)


@pytest.mark.parametrize(("finished", "holder"), [(True, True), (False, True), (True, False)])
def test_turn_progress_changes_the_row_as_the_orm_does(finished: bool, holder: bool) -> None:
    """End or renew the lease only for the turn that holds it; always reserve the seqs."""
    raw, orm = make_session("raw", running=True), make_session("orm", running=True)
    turn_id = uuid.uuid4()
    Session.objects.update(
        active_turn_id=turn_id if holder else uuid.uuid4(),
        active_turn_expires_at=raw.active_turn_expires_at,
        cancel_turn_id=uuid.uuid4(),
        pending_tool_calls=[{"id": "a"}],
    )
    now = timezone.now()
    expires = now + timedelta(seconds=60)
    pending = [{"id": "c1", "name": "f"}]
    with transaction.atomic():
        last_seq = statements.turn_progress(
            session_pk=raw.pk,
            turn_id=turn_id,
            added=2,
            finished=finished,
            pending_tool_calls=pending,
            now=now,
            expires=expires,
        )
    session = Session.objects.get(pk=orm.pk)
    session.last_seq += 2
    session.last_activity_at = session.updated_at = now
    if session.active_turn_id == turn_id:
        if finished:
            session.active_turn_id = session.active_turn_expires_at = None
            session.cancel_turn_id = None
            session.pending_tool_calls = pending
        else:
            session.active_turn_expires_at = expires
            session.pending_tool_calls = None
    Session.objects.filter(pk=orm.pk).update(**{f: getattr(session, f) for f in _TURN_STATE_FIELDS})
    assert last_seq == 2
    assert _session_state(raw.pk, changed=True) == _session_state(orm.pk, changed=True)


def test_history_rows_are_the_orms_newest_messages_without_superseded_ones() -> None:
    session = make_session("h")
    statements.messages_insert(
        session_pk=session.pk, first_seq=1, turn_id=None, messages=MESSAGES, now=timezone.now()
    )
    Message.objects.filter(session=session, seq=4).update(superseded=True)
    newest = Message.objects.filter(session=session, superseded=False).order_by("-seq")[:3]
    orm = [
        {
            "seq": m.seq,
            "role": m.role,
            "content": m.content,
            "tool_calls": m.tool_calls,
            "tool_call_id": m.tool_call_id,
        }
        for m in reversed(newest)
    ]
    assert statements.history_rows(session_pk=session.pk, limit=3) == orm
    assert [row["seq"] for row in orm] == [2, 3, 5]
