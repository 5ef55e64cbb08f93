"""Answers to a turn's pending calls: a client tool's result, the user's approval decision.
Each public function is one short transaction."""

from typing import Any
from uuid import UUID

import orjson
from django.db import transaction
from django.utils import timezone

from agent_runtime.errors import (
    NotFound,
    SessionBusy,
    ToolCallAnswered,
    ToolCallNotFound,
)
from sessions.models import Message, Session, ToolApproval
from sessions.records import ApprovedCall, NewMessage, TurnStart
from sessions.services.common import (
    _TURN_STATE_FIELDS,
    _append,
    _history,
    _is_approval,
    _session_for_update,
    _take_lease,
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
        turn_number=session.turns_opened,
    )


def _with_history(start: TurnStart) -> TurnStart:
    """The continuation's history, when the answer opened one."""
    if start.pending_call_ids is None:
        start.history = _history(start.session_pk)
    return start
