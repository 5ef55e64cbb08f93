"""The turns this worker process is running, and the one task that watches over them.

While any turn runs, the watcher polls the database every ``CANCEL_POLL_SECONDS`` with one
query for all of them, so a cancel sent to any worker reaches the worker that runs the turn,
and it renews their session leases every third of ``TURN_LEASE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

from sessions import selectors, services

logger = logging.getLogger(__name__)


def _poll(turn_ids: list[UUID], renew: bool) -> list[UUID]:
    try:
        if renew:
            services.turn_leases_renew(turn_ids=turn_ids)
        return selectors.turn_cancels_requested(turn_ids=turn_ids)
    except DatabaseError:
        logger.warning("turn watcher: database unavailable", exc_info=True)
        connection.close()
        return []


class ActiveTurns:
    def __init__(self) -> None:
        self._turns: dict[UUID, Callable[[], None]] = {}
        self._watcher: asyncio.Task[None] | None = None

    def add(self, turn_id: UUID, on_cancel: Callable[[], None]) -> None:
        self._turns[turn_id] = on_cancel
        if self._watcher is None or self._watcher.done():
            # A fresh context: the watcher outlives the request that started it, so it must
            # not inherit that request's thread-sensitive executor.
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(), context=contextvars.Context()
            )

    def remove(self, turn_id: UUID) -> None:
        self._turns.pop(turn_id, None)

    def cancel_local(self, turn_id: UUID) -> bool:
        """Stop a turn of this process at once; False if it does not run here."""
        on_cancel = self._turns.get(turn_id)
        if on_cancel is None:
            return False
        on_cancel()
        return True

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        last_renewal = loop.time()
        while self._turns:
            await asyncio.sleep(settings.CANCEL_POLL_SECONDS)
            turn_ids = list(self._turns)
            if not turn_ids:
                break
            renew = loop.time() - last_renewal >= settings.TURN_LEASE_SECONDS / 3
            if renew:
                last_renewal = loop.time()
            for turn_id in await sync_to_async(_poll)(turn_ids, renew):
                self.cancel_local(turn_id)


active_turns = ActiveTurns()
