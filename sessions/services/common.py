"""What the session services share: locking a session, its lease, appending messages, the
history sent upstream."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_runtime.errors import (
    NotFound,
    SessionBusy,
)
from sessions import statements
from sessions.history import message_history_for_upstream
from sessions.models import Session, pending_call_is_approval
from sessions.records import NewMessage

NOT_EXECUTED = orjson.dumps(
    {"error": "not executed: the conversation went on before this call had a result"}
).decode()

_LEASE_FIELDS = ["active_turn_id", "active_turn_expires_at", "cancel_turn_id"]
# What opening a turn or storing a tool result changes on the session row.
_TURN_STATE_FIELDS = [
    *_LEASE_FIELDS,
    "pending_tool_calls",
    "last_activity_at",
    "last_seq",
    "turns_opened",
    "updated_at",
]


def _session_for_update(*, session_id: str, create: bool) -> Session | None:
    """Lock the session row for this transaction, creating it on first use; with
    ``lease_held``."""
    locked = Session.objects.select_for_update().with_lease_held(timezone.now())
    session = locked.filter(session_id=session_id).first()
    if session is None and create:
        try:
            with transaction.atomic():
                session = Session.objects.create(
                    session_id=session_id, last_activity_at=timezone.now()
                )
            session.lease_held = False  # type: ignore[attr-defined]
        except IntegrityError:  # created by a concurrent request in between
            session = locked.get(session_id=session_id)
    return session


def _idle_session_for_update(*, session_id: str) -> Session:
    """Lock an existing session in which no turn runs: ``NotFound``, ``SessionBusy`` if not."""
    session = _session_for_update(session_id=session_id, create=False)
    if session is None:
        raise NotFound("Unknown session.")
    if session.lease_held:
        raise SessionBusy()
    return session


def _take_lease(session: Session, turn_id: UUID) -> None:
    session.active_turn_id = turn_id
    session.active_turn_expires_at = timezone.now() + timedelta(seconds=settings.TURN_LEASE_SECONDS)
    session.cancel_turn_id = None
    session.turns_opened += 1


def _append(session: Session, turn_id: UUID | None, messages: Sequence[NewMessage]) -> None:
    """Insert messages after the session's last one; the caller holds the row lock."""
    first_seq = session.last_seq + 1
    session.last_seq += len(messages)
    statements.messages_insert(
        session_pk=session.pk,
        first_seq=first_seq,
        turn_id=turn_id,
        messages=messages,
        now=timezone.now(),
    )


def _history(session_pk: int) -> list[dict[str, Any]]:
    return message_history_for_upstream(
        session_pk=session_pk,
        max_messages=settings.CONTEXT_MAX_MESSAGES,
        max_tokens=settings.CONTEXT_MAX_TOKENS,
        system_prompt=settings.SYSTEM_PROMPT,
    )


_is_approval = pending_call_is_approval
