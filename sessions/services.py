"""Writes to sessions and messages. Each public function is one short transaction."""

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_runtime.errors import SessionBusy
from sessions.models import Message, Session
from sessions.records import NewMessage, TurnStart
from sessions.selectors import message_history_for_upstream, message_turn_replay


def _session_for_update(*, session_id: str, create: bool) -> Session | None:
    """Lock the session row for this transaction, creating it on first use."""
    session = Session.objects.select_for_update().filter(session_id=session_id).first()
    if session is None and create:
        try:
            with transaction.atomic():
                session = Session.objects.create(
                    session_id=session_id, last_activity_at=timezone.now()
                )
        except IntegrityError:  # created by a concurrent request in between
            session = Session.objects.select_for_update().get(session_id=session_id)
    return session


def _lease_held(session: Session) -> bool:
    return session.active_turn_id is not None and (
        session.active_turn_expires_at is None or session.active_turn_expires_at > timezone.now()
    )


def _append(session: Session, turn_id: UUID | None, messages: Sequence[NewMessage]) -> None:
    """Insert messages after the session's last one; the caller holds the row lock."""
    rows = []
    for message in messages:
        session.last_seq += 1
        usage = message.usage
        rows.append(
            Message(
                session=session,
                seq=session.last_seq,
                role=message.role,
                content=message.content,
                status=message.status,
                turn_id=turn_id,
                model=message.model,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
                finish_reason=message.finish_reason or "",
                error_code=message.error_code,
                tool_calls=message.tool_calls,
                tool_call_id=message.tool_call_id,
                tool_name=message.tool_name,
                client_message_id=message.client_message_id,
            )
        )
    Message.objects.bulk_create(rows)


def turn_open(
    *,
    session_id: str,
    turn_id: UUID,
    content: str,
    client_message_id: str | None = None,
) -> TurnStart:
    """Start a user turn: take the session's lease, store the user message, load the history.

    Raises ``SessionBusy`` when another turn holds the lease, or when ``client_message_id``
    names a turn that is still running. A repeated ``client_message_id`` whose turn ended
    stores nothing and returns the stored answer to replay.
    """
    now = timezone.now()
    with transaction.atomic():
        session = _session_for_update(session_id=session_id, create=True)
        assert session is not None
        if client_message_id is not None:
            earlier = (
                Message.objects.filter(session=session, client_message_id=client_message_id)
                .values("turn_id", "seq")
                .first()
            )
            if earlier is not None:
                if _lease_held(session) and session.active_turn_id == earlier["turn_id"]:
                    raise SessionBusy("The turn for this message_id is still running.")
                return TurnStart(
                    session_pk=session.pk,
                    turn_id=earlier["turn_id"],
                    replay=message_turn_replay(
                        session_pk=session.pk, turn_id=earlier["turn_id"], after_seq=earlier["seq"]
                    ),
                )
        if _lease_held(session):
            raise SessionBusy()
        session.active_turn_id = turn_id
        session.active_turn_expires_at = now + timedelta(seconds=settings.TURN_LEASE_SECONDS)
        session.cancel_turn_id = None
        session.last_activity_at = now
        user = NewMessage(
            role=Message.Role.USER, content=content, client_message_id=client_message_id
        )
        _append(session, turn_id, [user])
        session.save(
            update_fields=[
                "active_turn_id",
                "active_turn_expires_at",
                "cancel_turn_id",
                "last_activity_at",
                "last_seq",
                "updated_at",
            ]
        )
    history = message_history_for_upstream(
        session_pk=session.pk,
        max_messages=settings.CONTEXT_MAX_MESSAGES,
        max_tokens=settings.CONTEXT_MAX_TOKENS,
        system_prompt=settings.SYSTEM_PROMPT,
    )
    return TurnStart(session_pk=session.pk, turn_id=turn_id, history=history)


def turn_record(
    *, session_pk: int, turn_id: UUID, messages: Sequence[NewMessage], finished: bool
) -> None:
    """Store what a turn produced; when ``finished``, also give up the session's lease.

    Called once per model step with tool calls and once when the turn ends, never per token.
    """
    now = timezone.now()
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(pk=session_pk).first()
        if session is None:  # deleted while the turn ran: nothing to keep
            return
        if messages:
            _append(session, turn_id, messages)
        session.last_activity_at = now
        fields = ["last_seq", "last_activity_at", "updated_at"]
        if session.active_turn_id == turn_id:
            if finished:
                session.active_turn_id = None
                session.active_turn_expires_at = None
                session.cancel_turn_id = None
            else:
                session.active_turn_expires_at = now + timedelta(
                    seconds=settings.TURN_LEASE_SECONDS
                )
            fields += ["active_turn_id", "active_turn_expires_at", "cancel_turn_id"]
        session.save(update_fields=fields)
