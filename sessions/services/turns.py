"""Opening, recording and ending turns. Each public function is one short transaction."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agent_runtime.errors import (
    IdempotencyConflict,
    NotFound,
    NothingToRegenerate,
    SessionBusy,
    TurnStillRunning,
)
from sessions import statements
from sessions.models import Message, Session, ToolApproval
from sessions.records import NewMessage, TurnStart
from sessions.selectors import (
    message_turn_replay,
)
from sessions.services.common import (
    _LEASE_FIELDS,
    _TURN_STATE_FIELDS,
    NOT_EXECUTED,
    _append,
    _history,
    _idle_session_for_update,
    _is_approval,
    _session_for_update,
    _take_lease,
)


def turn_open(
    *,
    session_id: str,
    turn_id: UUID,
    content: str,
    client_message_id: str | None = None,
) -> TurnStart:
    """Start a user turn: take the session's lease, store the user message, load the history.

    Tool calls still waiting for a client's result are closed first with a "not executed"
    result, so the history sent upstream is always one the model server accepts.

    Raises ``SessionBusy`` when another turn holds the lease, or when ``client_message_id``
    names a turn that is still running. A repeated ``client_message_id`` whose turn ended
    stores nothing and returns the stored answer to replay; one that named a different
    message (another content, or not a user message) raises ``IdempotencyConflict``.
    """
    if client_message_id is None:
        # The common turn: a known, idle session. Two statements instead of the ORM's five.
        now = timezone.now()
        with transaction.atomic():
            taken = statements.lease_take_if_free(
                session_id=session_id,
                turn_id=turn_id,
                now=now,
                expires=now + timedelta(seconds=settings.TURN_LEASE_SECONDS),
            )
            if taken is not None:
                session_pk, seq, turn_number = taken
                statements.messages_insert(
                    session_pk=session_pk,
                    first_seq=seq,
                    turn_id=turn_id,
                    messages=[NewMessage(role=Message.Role.USER, content=content)],
                    now=now,
                )
        if taken is not None:
            return TurnStart(
                session_pk=session_pk,
                turn_id=turn_id,
                history=_history(session_pk),
                turn_number=turn_number,
            )
    # Otherwise (a new session, a busy one, pending tool calls, a message_id to look up).
    with transaction.atomic():
        session = _session_for_update(session_id=session_id, create=True)
        assert session is not None
        if client_message_id is not None:
            earlier = (
                Message.objects.filter(session=session, client_message_id=client_message_id)
                .values("turn_id", "seq", "role", "content")
                .first()
            )
            if earlier is not None:
                # As with payment APIs' idempotency keys: a retry must be the same request.
                if earlier["role"] != Message.Role.USER or earlier["content"] != content:
                    raise IdempotencyConflict()
                if session.lease_held and session.active_turn_id == earlier["turn_id"]:
                    raise TurnStillRunning()
                return TurnStart(
                    session_pk=session.pk,
                    turn_id=earlier["turn_id"],
                    replay=message_turn_replay(
                        session_pk=session.pk, turn_id=earlier["turn_id"], after_seq=earlier["seq"]
                    ),
                )
        if session.lease_held:
            raise SessionBusy()
        _take_lease(session, turn_id)
        session.last_activity_at = timezone.now()
        messages = [
            NewMessage(
                role=Message.Role.TOOL,
                content=NOT_EXECUTED,
                tool_call_id=call["id"],
                tool_name=call["name"],
                error_code="not_executed",
            )
            for call in session.pending_tool_calls or ()
        ]
        session.pending_tool_calls = None
        messages.append(
            NewMessage(role=Message.Role.USER, content=content, client_message_id=client_message_id)
        )
        _append(session, turn_id, messages)
        session.save(update_fields=_TURN_STATE_FIELDS)
    return TurnStart(
        session_pk=session.pk,
        turn_id=turn_id,
        history=_history(session.pk),
        turn_number=session.turns_opened,
    )


def turn_regenerate_open(*, session_id: str, turn_id: UUID) -> TurnStart:
    """Start a turn that answers the last user message again.

    Everything after that message (the answer, its tool calls and results) is marked
    superseded: it stays stored but leaves the history sent upstream. Calls of it still
    waiting for a client's result wait no more. Raises ``NotFound`` for an unknown session,
    ``SessionBusy`` while a turn runs, ``NothingToRegenerate`` without a user message.
    """
    with transaction.atomic():
        session = _idle_session_for_update(session_id=session_id)
        messages = Message.objects.filter(session=session)
        last_user = (
            messages.filter(role=Message.Role.USER).order_by("-seq").values_list("seq", flat=True)
        ).first()
        if last_user is None:
            raise NothingToRegenerate()
        messages.filter(seq__gt=last_user, superseded=False).update(superseded=True)
        session.pending_tool_calls = None
        _take_lease(session, turn_id)
        session.last_activity_at = timezone.now()
        session.save(update_fields=_TURN_STATE_FIELDS)
    return TurnStart(
        session_pk=session.pk,
        turn_id=turn_id,
        history=_history(session.pk),
        turn_number=session.turns_opened,
    )


def turn_record(
    *,
    session_pk: int,
    turn_id: UUID,
    messages: Sequence[NewMessage],
    finished: bool,
    pending_tool_calls: list[dict[str, str]] | None = None,
) -> None:
    """Store what a turn produced; when ``finished``, also give up the session's lease.

    Called once per model step with tool calls and once when the turn ends, never per token.
    ``pending_tool_calls`` are the calls the client must now answer; for those that wait for
    an approval, the request is recorded (a ``ToolApproval`` without a decision).
    """
    now = timezone.now()
    with transaction.atomic():
        last_seq = statements.turn_progress(
            session_pk=session_pk,
            turn_id=turn_id,
            added=len(messages),
            finished=finished,
            pending_tool_calls=pending_tool_calls or None,
            now=now,
            expires=now + timedelta(seconds=settings.TURN_LEASE_SECONDS),
        )
        if last_seq is None:  # deleted while the turn ran: nothing to keep
            return
        if messages:
            statements.messages_insert(
                session_pk=session_pk,
                first_seq=last_seq - len(messages) + 1,
                turn_id=turn_id,
                messages=messages,
                now=now,
            )
        approvals = [call for call in pending_tool_calls or () if _is_approval(call)]
        if approvals:  # the ORM's bulk_create costs even with nothing to insert
            ToolApproval.objects.bulk_create(
                ToolApproval(
                    session_id=session_pk,
                    call_id=call["id"],
                    tool_name=call["name"],
                    turn_id=turn_id,
                    requested_at=now,
                )
                for call in approvals
            )


def turn_step_record(
    *,
    session_pk: int,
    turn_id: UUID,
    messages: Sequence[NewMessage],
    pending_tool_calls: list[dict[str, str]],
) -> list[dict[str, Any]] | None:
    """Store a model step that called tools. With calls pending on the client the turn ends
    here (None); otherwise the history for the next model call, within the context budget."""
    turn_record(
        session_pk=session_pk,
        turn_id=turn_id,
        messages=messages,
        finished=bool(pending_tool_calls),
        pending_tool_calls=pending_tool_calls,
    )
    return None if pending_tool_calls else _history(session_pk)


def turn_abandon(*, session_id: str, turn_id: UUID) -> None:
    """Release the lease of a turn whose client left before it began streaming.

    The user message stays; an empty ``interrupted`` assistant message records what happened.
    """
    with transaction.atomic():
        session = _session_for_update(session_id=session_id, create=False)
        if session is None or session.active_turn_id != turn_id:
            return
        _append(
            session,
            turn_id,
            [NewMessage(role=Message.Role.ASSISTANT, status=Message.Status.INTERRUPTED)],
        )
        session.active_turn_id = None
        session.active_turn_expires_at = None
        session.cancel_turn_id = None
        session.save(update_fields=[*_LEASE_FIELDS, "last_seq", "updated_at"])


def turn_cancel_request(*, session_id: str) -> UUID | None:
    """Ask whichever worker runs this session's turn to stop it; the turn id, or None if idle.

    Raises ``NotFound`` for an unknown session.
    """
    with transaction.atomic():
        session = _session_for_update(session_id=session_id, create=False)
        if session is None:
            raise NotFound("Unknown session.")
        if not session.lease_held:
            return None
        session.cancel_turn_id = session.active_turn_id
        session.save(update_fields=["cancel_turn_id", "updated_at"])
        return session.active_turn_id


def turn_leases_renew(*, turn_ids: Sequence[UUID]) -> None:
    """Extend the leases of turns this worker is still running."""
    expires = timezone.now() + timedelta(seconds=settings.TURN_LEASE_SECONDS)
    Session.objects.filter(active_turn_id__in=turn_ids).update(active_turn_expires_at=expires)
