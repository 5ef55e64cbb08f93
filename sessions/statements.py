"""The statements every turn runs, in plain SQL.

The ORM builds and compiles each query anew: about 2.5 ms of CPU per turn for the seven
queries of ``turn_open`` and ``turn_record``, as much as the rest of the turn together
(docs/benchmarks.md). These are the same writes as two short statements each. The SQL is
portable (``UPDATE ... RETURNING``: SQLite 3.35+, PostgreSQL), and the models' fields prepare
every value, so what is stored is exactly what the ORM would store. The callers in
``sessions.services`` hold the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection

from sessions.models import LEASE_HELD_SQL, Message, Session
from sessions.records import NewMessage

_S = Session._meta.db_table
_M = Message._meta.db_table
_MESSAGE_FIELDS = [
    Message._meta.get_field(name)
    for name in (
        "session",
        "seq",
        "role",
        "content",
        "status",
        "turn_id",
        "client_message_id",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "finish_reason",
        "error_code",
        "tool_calls",
        "tool_call_id",
        "tool_name",
        "created_at",
    )
]
_MESSAGE_COLUMNS = [field.column for field in _MESSAGE_FIELDS]
# Values the runtime itself makes (the pk, the seq, the role, status, content and codes: str,
# int or None) are stored as they are: their fields' preparation would return them unchanged,
# at about 1 µs a field (a test holds the rows equal to the ORM's). The others are prepared: the
# backend's form of a UUID, a datetime, a JSON value, and whatever the model server sent.
_AS_THEY_ARE = frozenset(
    {"session", "seq", "role", "content", "status", "client_message_id", "error_code"}
)
_PREPARE = [None if f.name in _AS_THEY_ARE else f.get_db_prep_save for f in _MESSAGE_FIELDS]
_INSERT = (
    f"INSERT INTO {_M} ({', '.join(_MESSAGE_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_MESSAGE_COLUMNS))})"
)
_UUID = Session._meta.get_field("active_turn_id")
_STAMP = Session._meta.get_field("updated_at")
_PENDING = Session._meta.get_field("pending_tool_calls")


def _uuid(value: UUID | None) -> Any:
    return _UUID.get_db_prep_value(value, connection)


def _stamp(value: datetime | None) -> Any:
    return _STAMP.get_db_prep_value(value, connection)


def lease_take_if_free(
    *, session_id: str, turn_id: UUID, now: datetime, expires: datetime
) -> tuple[int, int, int] | None:
    """Take the lease of an existing, idle session with no pending tool calls, reserve the
    next ``seq`` and number the turn: ``(session_pk, seq, turn_number)``; None when it is
    unknown, busy or waits for results."""
    stamp = _stamp(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_S} SET active_turn_id = %s, active_turn_expires_at = %s, "
            "cancel_turn_id = NULL, last_activity_at = %s, updated_at = %s, "
            "last_seq = last_seq + 1, turns_opened = turns_opened + 1 "
            "WHERE session_id = %s AND pending_tool_calls IS NULL "
            f"AND NOT {LEASE_HELD_SQL} "
            "RETURNING id, last_seq, turns_opened",
            [_uuid(turn_id), _stamp(expires), stamp, stamp, session_id, stamp],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def _progress_sql(lease: str) -> str:
    return (
        f"UPDATE {_S} SET last_seq = last_seq + %s, last_activity_at = %s, updated_at = %s, "
        f"{lease} WHERE id = %s RETURNING last_seq"
    )


_OWNER = "CASE WHEN active_turn_id = %s THEN {} ELSE {} END"
# The end of the turn that holds the lease: no lease, and the calls it leaves pending.
_PROGRESS_END = _progress_sql(
    f"active_turn_id = {_OWNER.format('NULL', 'active_turn_id')}, "
    f"active_turn_expires_at = {_OWNER.format('NULL', 'active_turn_expires_at')}, "
    f"cancel_turn_id = {_OWNER.format('NULL', 'cancel_turn_id')}, "
    f"pending_tool_calls = {_OWNER.format('%s', 'pending_tool_calls')}"
)
# A step of a turn that goes on: its lease renewed. Calls still pending while the turn runs are
# the approved ones it is about to run: its first stored step holds their results.
_PROGRESS_RENEW = _progress_sql(
    f"active_turn_expires_at = {_OWNER.format('%s', 'active_turn_expires_at')}, "
    f"pending_tool_calls = {_OWNER.format('NULL', 'pending_tool_calls')}"
)


def turn_progress(
    *,
    session_pk: int,
    turn_id: UUID,
    added: int,
    finished: bool,
    pending_tool_calls: list[dict[str, str]] | None,
    now: datetime,
    expires: datetime,
) -> int | None:
    """Reserve ``added`` seqs and, if ``turn_id`` holds the lease, end it (``finished``, and
    store the pending calls) or renew it (and clear the pending calls, which it has answered).
    The session's new ``last_seq``; None if it is gone."""
    stamp = _stamp(now)
    turn = _uuid(turn_id)
    if finished:
        sql = _PROGRESS_END
        params = [turn, turn, turn, turn, _PENDING.get_db_prep_save(pending_tool_calls, connection)]
    else:
        sql = _PROGRESS_RENEW
        params = [turn, _stamp(expires), turn]
    with connection.cursor() as cursor:
        cursor.execute(sql, [added, stamp, stamp, *params, session_pk])
        row = cursor.fetchone()
    return None if row is None else row[0]


def messages_insert(
    *,
    session_pk: int,
    first_seq: int,
    turn_id: UUID | None,
    messages: Sequence[NewMessage],
    now: datetime,
) -> None:
    """Insert ``messages`` with seqs from ``first_seq`` on (reserved by the caller)."""
    rows = []
    for offset, message in enumerate(messages):
        usage = message.usage
        values = (
            session_pk,
            first_seq + offset,
            message.role,
            message.content,
            message.status,
            turn_id,
            message.client_message_id,
            message.model,
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            usage.get("total_tokens"),
            message.finish_reason or "",
            message.error_code,
            message.tool_calls,
            message.tool_call_id,
            message.tool_name,
            now,
        )
        rows.append(
            [
                v if prepare is None else prepare(v, connection)
                for prepare, v in zip(_PREPARE, values, strict=True)
            ]
        )
    with connection.cursor() as cursor:
        cursor.executemany(_INSERT, rows)


def history_rows(*, session_pk: int, limit: int) -> list[dict[str, Any]]:
    """The session's newest ``limit`` messages as the upstream history needs them, oldest first.

    Superseded messages (answers a regenerate replaced) are never part of the history.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, role, content, tool_calls, tool_call_id FROM {_M} "
            "WHERE session_id = %s AND superseded = %s ORDER BY seq DESC LIMIT %s",
            [session_pk, False, limit],
        )
        rows = cursor.fetchall()
    rows.reverse()
    tool_calls = Message._meta.get_field("tool_calls")
    return [
        {
            "seq": seq,
            "role": role,
            "content": content,
            "tool_calls": None
            if calls is None
            else tool_calls.from_db_value(calls, None, connection),
            "tool_call_id": call_id,
        }
        for seq, role, content, calls, call_id in rows
    ]
