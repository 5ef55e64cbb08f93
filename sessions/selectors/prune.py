"""The reads of a prune: which idle sessions it deletes, in batches, and what it would count."""

from datetime import datetime

from django.db.models import Count, Q

from sessions.models import Message, Session, lease_held_q
from sessions.records import ActivityKey


def session_prune_batch(
    *, cutoff: datetime, now: datetime, after: ActivityKey | None, limit: int
) -> list[ActivityKey]:
    """The next ``limit`` sessions idle since before ``cutoff`` with no running turn, oldest
    first, after ``after``: only their keys, so memory stays bounded by ``limit``."""
    sessions = Session.objects.filter(last_activity_at__lt=cutoff).lease_free(now)
    if after is not None:
        sessions = sessions.filter(
            Q(last_activity_at__gt=after.last_activity_at)
            | Q(last_activity_at=after.last_activity_at, pk__gt=after.pk)
        )
    return [
        ActivityKey(last_activity_at=at, pk=pk)
        for at, pk in sessions.order_by("last_activity_at", "pk").values_list(
            "last_activity_at", "pk"
        )[:limit]
    ]


def session_prune_counts(*, cutoff: datetime, now: datetime) -> tuple[int, int, int]:
    """``(sessions, messages, kept_running)`` that a prune at ``cutoff`` would delete or keep."""
    idle = Session.objects.filter(last_activity_at__lt=cutoff)
    counts = idle.aggregate(idle=Count("pk"), running=Count("pk", filter=lease_held_q(now)))
    messages = Message.objects.filter(session__in=idle.lease_free(now).values("pk")).count()
    return counts["idle"] - counts["running"], messages, counts["running"]


def session_idle_running_count(*, cutoff: datetime, now: datetime) -> int:
    """Sessions idle since before ``cutoff`` in which a turn is nevertheless running."""
    return Session.objects.lease_held(now).filter(last_activity_at__lt=cutoff).count()
