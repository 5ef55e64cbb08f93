"""Writes to sessions and messages. Each public function is one short transaction."""

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_runtime.errors import (
    IdempotencyConflict,
    NotFound,
    NothingToRegenerate,
    SessionBusy,
    ToolCallAnswered,
    ToolCallNotFound,
    TurnStillRunning,
)
from sessions import statements
from sessions.models import Message, Session, ToolApproval
from sessions.records import ApprovedCall, NewMessage, PruneResult, TurnStart
from sessions.selectors import (
    message_history_for_upstream,
    message_turn_replay,
    session_idle_running_count,
    session_prune_batch,
    session_prune_counts,
)

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
                session_pk, seq = taken
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
                opening_seq=seq,
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
        opening_seq=session.last_seq,
    )


def tool_result_submit(
    *, session_id: str, turn_id: UUID, call_id: str, content: str, error_code: str = ""
) -> TurnStart:
    """Store a client-side tool's result; when it was the step's last answer, open the
    continuation.

    Raises ``NotFound`` for an unknown session, ``ToolCallNotFound`` for a call that was never
    pending (or that waits for an approval, not a result), ``ToolCallAnswered`` for one that
    already has a result, and ``SessionBusy`` while a turn runs. Nothing is written in any of
    those cases.
    """
    with transaction.atomic():
        session = _session_to_answer(session_id=session_id)
        call = _pending_call(session, call_id, approval=False)
        result = NewMessage(
            role=Message.Role.TOOL,
            content=content,
            tool_call_id=call_id,
            tool_name=call["name"],
            error_code=error_code,
        )
        _append(session, turn_id, [result])
        start = _settle(session, turn_id, call, None)
    return _with_history(start)


def tool_approval_submit(
    *,
    session_id: str,
    turn_id: UUID,
    call_id: str,
    approved: bool,
    reason: str = "",
    request_id: str = "",
    arguments: str | None = None,
) -> TurnStart:
    """Store the user's decision on a call that waits for approval; when it was the step's
    last answer, open the continuation, which runs the approved calls first.

    ``arguments`` (JSON text) replaces the model's arguments of an approved call; the
    continuation validates them like the model's. A denied call gets its result at once: the
    denial, with ``reason``. Raises as ``tool_result_submit`` does; an approval for a call that
    never asked for one is ``ToolCallNotFound``.
    """
    with transaction.atomic():
        session = _session_to_answer(session_id=session_id)
        call = _pending_call(session, call_id, approval=True)
        decision = ToolApproval.objects.filter(session=session, call_id=call_id).latest("pk")
        decision.decision = (
            ToolApproval.Decision.APPROVED if approved else ToolApproval.Decision.DENIED
        )
        decision.reason = reason
        decision.arguments = arguments if approved else None
        decision.decided_at = timezone.now()
        decision.request_id = request_id
        decision.save()
        denial = None
        settled = None
        if approved:
            settled = {**call, "approved": True}
            if arguments is not None:
                settled["arguments"] = arguments
        else:
            denial = NewMessage(
                role=Message.Role.TOOL,
                content=_denied(reason),
                tool_call_id=call_id,
                tool_name=call["name"],
                error_code="denied",
            )
            _append(session, turn_id, [denial])
        start = _settle(session, turn_id, call, settled)
    start.denial = denial
    return _with_history(start)


def _denied(reason: str) -> str:
    """What the model reads for a call the user denied."""
    body = {"error": "denied by the user"}
    if reason:
        body["reason"] = reason
    return orjson.dumps(body).decode()


def _is_approval(call: dict[str, Any]) -> bool:
    return call.get("kind") == "approval"


def _session_to_answer(*, session_id: str) -> Session:
    """Lock a session to store an answer to one of its pending tool calls."""
    session = _session_for_update(session_id=session_id, create=False)
    if session is None:
        raise NotFound("Unknown session.")
    if session.lease_held:
        raise SessionBusy()
    return session


def _pending_call(session: Session, call_id: str, *, approval: bool) -> dict[str, Any]:
    """The pending call an answer (a result, or with ``approval`` a decision) is for.

    Raises ``ToolCallNotFound`` when no call waits for this kind of answer under this id,
    ``ToolCallAnswered`` when the call has had its answer.
    """
    for call in session.pending_tool_calls or ():
        if call["id"] == call_id and _is_approval(call) == approval:
            if call.get("approved"):
                raise ToolCallAnswered()
            return call
    if approval and not ToolApproval.objects.filter(session=session, call_id=call_id).exists():
        raise ToolCallNotFound()  # it never asked for approval: the server ran it, or the client
    answered = Message.objects.filter(
        session=session, role=Message.Role.TOOL, tool_call_id=call_id
    ).exists()
    raise ToolCallAnswered() if answered else ToolCallNotFound()


def _settle(
    session: Session, turn_id: UUID, call: dict[str, Any], settled: dict[str, Any] | None
) -> TurnStart:
    """Replace an answered pending call by ``settled`` (an approved call, which stays until it
    runs) or drop it; when no call waits any more, take the lease for the continuation."""
    pending = [
        entry
        for entry in (settled if c is call else c for c in session.pending_tool_calls or ())
        if entry is not None
    ]
    waiting = [c for c in pending if not c.get("approved")]
    session.last_activity_at = timezone.now()
    # Approved calls stay pending until the continuation stores their results: if it never
    # does (the client left before it began, the worker died), the next user message closes
    # them as not executed, like any unanswered call.
    session.pending_tool_calls = pending or None
    if not waiting:
        _take_lease(session, turn_id)
    session.save(update_fields=_TURN_STATE_FIELDS)
    if waiting:
        return TurnStart(
            session_pk=session.pk,
            turn_id=turn_id,
            pending_call_ids=[c["id"] for c in waiting if not _is_approval(c)],
            awaiting_approval=[c["id"] for c in waiting if _is_approval(c)],
        )
    return TurnStart(
        session_pk=session.pk,
        turn_id=turn_id,
        approved_calls=[ApprovedCall(c["id"], c["name"], c["arguments"]) for c in pending],
        opening_seq=session.last_seq,
    )


def _with_history(start: TurnStart) -> TurnStart:
    """The continuation's history, when the answer opened one."""
    if start.pending_call_ids is None:
        start.history = _history(start.session_pk)
    return start


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
    return TurnStart(session_pk=session.pk, turn_id=turn_id, history=_history(session.pk))


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
        ToolApproval.objects.bulk_create(
            ToolApproval(
                session_id=session_pk,
                call_id=call["id"],
                tool_name=call["name"],
                turn_id=turn_id,
                requested_at=now,
            )
            for call in pending_tool_calls or ()
            if _is_approval(call)
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


# --- Deleting and pruning sessions ---------------------------------------------------------


def _sessions_delete_locked(session_pks: Sequence[int]) -> tuple[int, int]:
    """Delete these sessions and their messages, messages first; the caller holds the row locks.

    Returns ``(sessions, messages)`` deleted.
    """
    messages, _ = Message.objects.filter(session_id__in=session_pks).delete()
    sessions, _ = Session.objects.filter(pk__in=session_pks).delete()
    return sessions, messages


def session_delete(*, session_id: str) -> bool:
    """Delete a session and all its messages; ``False`` if there is no such session.

    A turn still running in the session does not stop the delete. The session's row lock orders
    the delete with the turn's own writes, and when the turn ends ``turn_record`` finds no
    session and stores nothing: the partial answer is dropped with the rest.
    """
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(session_id=session_id).only("pk")
        locked = session.first()
        if locked is None:
            return False
        locked.delete()  # its messages in one DELETE, then the row
    return True


def session_delete_many(*, session_pks: Sequence[int]) -> tuple[int, int]:
    """Delete several sessions and their messages in one transaction: ``(sessions, messages)``.

    Like ``session_delete``, it does not wait for running turns.
    """
    with transaction.atomic():
        locked = list(
            Session.objects.select_for_update()
            .filter(pk__in=list(session_pks))
            .values_list("pk", flat=True)
        )
        return _sessions_delete_locked(locked)


#: Sessions per prune transaction: about 20,000 messages at 100 a session, well under a second.
DEFAULT_PRUNE_BATCH = 200


def session_prune(
    *,
    older_than: timedelta,
    dry_run: bool = False,
    batch_size: int = DEFAULT_PRUNE_BATCH,
    on_batch: Callable[[PruneResult], None] | None = None,
) -> PruneResult:
    """Delete the sessions, with their messages, idle for longer than ``older_than``.

    Works in batches of ``batch_size`` sessions, oldest first, each deleted in its own short
    transaction (messages, then sessions), so memory and lock time stay bounded whatever the
    table sizes; ``on_batch`` is called with the running totals after each one. A session in
    which a turn holds an unexpired lease is never deleted: the batch is re-checked under the
    row locks inside the transaction, so a turn that started after the batch was selected keeps
    its session. ``dry_run`` deletes nothing and returns what would go.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be a positive duration")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = timezone.now()
    result = PruneResult(cutoff=started - older_than, dry_run=dry_run)
    if dry_run:
        result.sessions, result.messages, result.kept_running = session_prune_counts(
            cutoff=result.cutoff, now=started
        )
        return result

    result.kept_running = session_idle_running_count(cutoff=result.cutoff, now=started)
    after = None
    while keys := session_prune_batch(
        cutoff=result.cutoff, now=timezone.now(), after=after, limit=batch_size
    ):
        after = keys[-1]
        with transaction.atomic():
            # Re-check under the row locks: a turn may have started since the batch was read.
            # Rows another transaction holds (a turn starting right now) are skipped, not
            # waited for (PostgreSQL; SQLite runs one writer at a time anyway).
            deletable = list(
                Session.objects.select_for_update(skip_locked=True)
                .filter(pk__in=[key.pk for key in keys], last_activity_at__lt=result.cutoff)
                .lease_free(timezone.now())
                .values_list("pk", flat=True)
            )
            sessions, messages = _sessions_delete_locked(deletable)
        result.sessions += sessions
        result.messages += messages
        result.kept_running += len(keys) - len(deletable)
        result.batches += 1
        if on_batch is not None:
            on_batch(result)
    return result
