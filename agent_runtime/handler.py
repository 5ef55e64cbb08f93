"""Django's ASGI handler, as the runtime serves it.

Two differences from ``django.core.handlers.asgi.ASGIHandler``:

- Where sync work runs. Django gives every request its own ``ThreadSensitiveContext``: a new
  thread, and so a new database connection, per request. Here API requests run without one,
  so every ``sync_to_async`` call of theirs runs on asgiref's one database thread, which keeps
  its connection (``CONN_MAX_AGE``). The admin's requests (``ADMIN_PATH_PREFIXES``) keep
  Django's own context: their sync work (views, password hashing, sessions) runs on a thread
  of their own and never queues ahead of a turn's database work. At most ``ADMIN_CONCURRENCY``
  of them run at once (per worker); their connection is closed when they end.
- How the body is read (``agent_runtime.request_body``): not at all when the key check will
  refuse the request, and bounded in size and time otherwise.
"""

from __future__ import annotations

import asyncio
import os
import threading

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

from agent_runtime.asgi_types import Receive, Scope, Send
from agent_runtime.middleware import InternalKey
from agent_runtime.request_body import RequestBody


def sent_key(scope: Scope) -> str:
    """``X-Internal-Auth`` as Django's ``request.headers`` reads it from the scope."""
    return ",".join(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-internal-auth"
    )


def yield_the_cpu() -> None:
    """Lowest CPU priority for the calling thread (Linux: threads have their own nice value).

    The admin's threads are made for one request and end with it, so it is never raised again.
    """
    if hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class RuntimeASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.internal_key = InternalKey()
        self.admin_prefixes = tuple(settings.ADMIN_PATH_PREFIXES)
        # A password hash is CPU-bound (PBKDF2, about a second): admin requests past this many
        # wait on the event loop, so that a flood of logins cannot take every core.
        self.admin_slots = asyncio.Semaphore(settings.ADMIN_CONCURRENCY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        body = RequestBody(
            scope,
            receive,
            send,
            max_bytes=settings.MAX_BODY_BYTES,
            idle_seconds=settings.REQUEST_BODY_IDLE_TIMEOUT_SECONDS,
            total_seconds=settings.REQUEST_BODY_TIMEOUT_SECONDS,
        )
        path = scope["path"]
        if self.internal_key.refuses(path, sent_key(scope)):
            body.leave_unread()  # InternalAuthMiddleware answers 401 with an empty body
        if not path.startswith(self.admin_prefixes):
            await self.handle(scope, body.receive, body.send)
            return
        async with self.admin_slots, ThreadSensitiveContext():
            await sync_to_async(yield_the_cpu)()  # the request's own thread, as its views
            await self.handle(scope, body.receive, body.send)
            # On the admin's own thread: its connection would otherwise outlive the thread.
            await sync_to_async(connections.close_all)()
