"""Reads of sessions and messages (the history sent upstream: ``sessions.history``; what a
prune would delete: ``sessions.selectors.prune``)."""

import dataclasses
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from django.core.paginator import Paginator
from django.db.models import Aggregate, Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from sessions.models import Message, Session, ToolApproval, pending_call_is_approval
from sessions.records import (
    ActivityKey,
    ApprovalInfo,
    AwaitingApproval,
    MessageInfo,
    MessagePage,
    SessionInfo,
    SessionPage,
    StoredMessage,
    TranscriptPage,
)


def message_turn_replay(*, session_pk: int, turn_id: Any, after_seq: int) -> list[StoredMessage]:
    """The messages a finished turn stored after its user message, in order."""
    return [
        StoredMessage(
            seq=m.seq,
            role=m.role,
            content=m.content,
            status=m.status,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
            tool_name=m.tool_name,
            finish_reason=m.finish_reason,
            error_code=m.error_code,
            usage=_usage(m),
        )
        for m in Message.objects.filter(
            session_id=session_pk, turn_id=turn_id, seq__gt=after_seq
        ).order_by("seq")
    ]


def _usage(message: Message) -> dict[str, int]:
    usage = {
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "total_tokens": message.total_tokens,
    }
    return {k: v for k, v in usage.items() if v is not None}


def session_pending_call_ids(*, session_id: str) -> list[str]:
    """The ids of the session's tool calls still waiting for a client's result."""
    pending = (
        Session.objects.filter(session_id=session_id)
        .values_list("pending_tool_calls", flat=True)
        .first()
    )
    return [call["id"] for call in pending or ()]


def turn_cancels_requested(*, turn_ids: Sequence[UUID]) -> list[UUID]:
    """Which of these running turns someone asked to cancel."""
    return list(
        Session.objects.filter(cancel_turn_id__in=turn_ids).values_list("cancel_turn_id", flat=True)
    )


def session_awaiting_approval(*, session_id: str) -> list[AwaitingApproval]:
    """The session's tool calls still waiting for the user's decision."""
    pending = Session.objects.filter(session_id=session_id).values_list(
        "pending_tool_calls", flat=True
    )
    return [
        AwaitingApproval.of(call)
        for call in pending.first() or ()
        if pending_call_is_approval(call) and not call.get("approved")
    ]


# --- Sessions API, admin and pruning -------------------------------------------------------

_SESSION_FIELDS = ("pk", "session_id", "created_at", "last_activity_at", "lease_held")
_MESSAGE_FIELDS = (
    "seq",
    "role",
    "content",
    "status",
    "created_at",
    "tool_calls",
    "tool_call_id",
    "tool_name",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "finish_reason",
    "error_code",
    "superseded",
)
#: Statuses of a turn that did not complete: the upstream failed, or the turn was cut short.
FAILED_STATUSES = (Message.Status.FAILED,)
INTERRUPTED_STATUSES = (Message.Status.INTERRUPTED, Message.Status.CANCELLED)


def _per_session(aggregate: Aggregate) -> Subquery:
    """A correlated subquery computing ``aggregate`` over the session's messages."""
    return Subquery(
        Message.objects.filter(session=OuterRef("pk"))
        .order_by()
        .values("session")
        .annotate(value=aggregate)
        .values("value")
    )


def _message_count() -> Coalesce:
    # A subquery, not a JOIN + GROUP BY: it reads only the (session, seq) index per row shown.
    return Coalesce(_per_session(Count("*")), 0)


def _session_info(row: dict[str, Any]) -> SessionInfo:
    return SessionInfo(
        session_id=row["session_id"],
        created_at=row["created_at"],
        last_activity_at=row["last_activity_at"],
        message_count=row["message_count"],
        turn_running=row["lease_held"],
    )


def _message_info(row: dict[str, Any]) -> MessageInfo:
    usage: dict[str, int | None] | None = {
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
    }
    if all(value is None for value in usage.values()):  # type: ignore[union-attr]
        usage = None
    return MessageInfo(
        seq=row["seq"],
        role=row["role"],
        content=row["content"],
        status=row["status"],
        created_at=row["created_at"],
        tool_calls=row["tool_calls"],
        tool_call_id=row["tool_call_id"],
        tool_name=row["tool_name"],
        model=row["model"],
        usage=usage,
        finish_reason=row["finish_reason"],
        error_code=row["error_code"],
        superseded=row["superseded"],
    )


def session_list(*, limit: int, after: ActivityKey | None = None) -> SessionPage:
    """Sessions, most recently active first, starting after ``after``: one query a page.

    Keyset pagination on ``(last_activity_at, pk)`` (the ``session_activity_idx`` index): a
    session created or active while a client pages moves to the front, before the pages already
    read, so the pages still to come neither repeat nor skip any session that stayed idle.
    """
    sessions = Session.objects.with_lease_held(timezone.now()).annotate(
        message_count=_message_count()
    )
    if after is not None:
        sessions = sessions.filter(
            Q(last_activity_at__lt=after.last_activity_at)
            | Q(last_activity_at=after.last_activity_at, pk__lt=after.pk)
        )
    rows = list(
        sessions.order_by("-last_activity_at", "-pk").values(*_SESSION_FIELDS, "message_count")[
            : limit + 1
        ]
    )
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_key = ActivityKey(last_activity_at=rows[-1]["last_activity_at"], pk=rows[-1]["pk"])
    return SessionPage(sessions=[_session_info(row) for row in rows], next_key=next_key)


def session_get(*, session_id: str) -> SessionInfo | None:
    """One session's metadata, or ``None`` if there is no such session (one query)."""
    row = (
        Session.objects.filter(session_id=session_id)
        .with_lease_held(timezone.now())
        .annotate(message_count=_message_count())
        .values(*_SESSION_FIELDS, "message_count")
        .first()
    )
    return None if row is None else _session_info(row)


def message_list(*, session_id: str, after_seq: int, limit: int) -> MessagePage | None:
    """Up to ``limit`` messages with ``seq > after_seq``, in order; ``None`` for an unknown
    session. Two queries whatever the page: the session, then the page by ``(session, seq)``.

    Messages are only ever appended with increasing ``seq``, so paging by ``after_seq`` never
    repeats or skips a message, however many arrive between two pages.
    """
    session_pk = Session.objects.filter(session_id=session_id).values_list("pk", flat=True).first()
    if session_pk is None:
        return None
    rows = list(
        Message.objects.filter(session_id=session_pk, seq__gt=after_seq)
        .order_by("seq")
        .values(*_MESSAGE_FIELDS)[: limit + 1]
    )
    return MessagePage(
        session_id=session_id,
        messages=[_message_info(row) for row in rows[:limit]],
        has_more=len(rows) > limit,
    )


def message_transcript(*, session_pk: int, page: int | str | None, per_page: int) -> TranscriptPage:
    """One page of a session's messages in order, for the admin (two queries: count, page)."""
    paginator = Paginator(
        Message.objects.filter(session_id=session_pk).order_by("seq").values(*_MESSAGE_FIELDS),
        per_page,
    )
    current = paginator.get_page(page)  # out-of-range or malformed numbers give a valid page
    return TranscriptPage(
        messages=[_message_info(row) for row in current.object_list],
        number=current.number,
        num_pages=paginator.num_pages,
        count=paginator.count,
        start_index=current.start_index(),
        end_index=current.end_index(),
    )


def tool_approvals_by_call(*, session_pk: int, call_ids: Sequence[str]) -> dict[str, ApprovalInfo]:
    """The approval requests of these calls of a session, by call id (the latest of a reused
    id). One query even for no calls (the ORM would skip an empty ``IN``): a transcript page
    costs the same whatever it shows."""
    rows = (
        ToolApproval.objects.filter(session_id=session_pk, call_id__in=list(call_ids) or [""])
        .order_by("pk")
        .values(*(field.name for field in dataclasses.fields(ApprovalInfo)))
    )
    return {row["call_id"]: ApprovalInfo(**row) for row in rows}


def session_admin_queryset() -> QuerySet[Session]:
    """Sessions annotated with what the admin's list shows, computed in the list's one query."""
    return Session.objects.with_lease_held(timezone.now()).annotate(
        message_count=_message_count(),
        total_tokens=_per_session(Sum("total_tokens")),
        model=Subquery(
            Message.objects.filter(session=OuterRef("pk"), role=Message.Role.ASSISTANT)
            .exclude(model="")
            .order_by("-seq")
            .values("model")[:1]
        ),
        has_failed=Exists(
            Message.objects.filter(session=OuterRef("pk"), status__in=FAILED_STATUSES)
        ),
        has_interrupted=Exists(
            Message.objects.filter(session=OuterRef("pk"), status__in=INTERRUPTED_STATUSES)
        ),
    )


def session_exists(*, session_id: str) -> bool:
    return Session.objects.filter(session_id=session_id).exists()
