"""Deleting and pruning sessions. Each public function is one short transaction."""

from collections.abc import Callable, Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from sessions.models import Message, Session
from sessions.records import PruneResult
from sessions.selectors.prune import (
    session_idle_running_count,
    session_prune_batch,
    session_prune_counts,
)


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
