"""Async-capable middleware: the internal-key check and the JSON error map."""

import hmac
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from agent_runtime.errors import (
    AgentRuntimeError,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    error_response,
)

logger = logging.getLogger(__name__)

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _AsyncMiddleware:
    """Base for middleware that runs on the event loop only (no thread hop per request)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        if not iscoroutinefunction(get_response):
            raise TypeError(f"{type(self).__name__} needs an async handler chain")
        self.get_response = get_response
        markcoroutinefunction(self)


class InternalAuthMiddleware(_AsyncMiddleware):
    """Requires ``X-Internal-Auth`` on every path but the public ones; constant-time compare."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self._key = settings.INTERNAL_API_KEY.encode()
        self._public = tuple(settings.PUBLIC_PATH_PREFIXES)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(self._public) or request.path == "/health":
            return await self.get_response(request)
        sent = request.headers.get("X-Internal-Auth", "").encode()
        # An empty configured key (allowed only with DEBUG on) still rejects every request.
        if not self._key or not hmac.compare_digest(sent, self._key):
            return error_response(Unauthorized())
        return await self.get_response(request)


class ErrorJsonMiddleware(_AsyncMiddleware):
    """Turns the runtime's exceptions, and database outages, into the one JSON error body."""

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        return await self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, AgentRuntimeError):
            return error_response(exception)
        if isinstance(exception, RequestDataTooBig):
            return error_response(PayloadTooLarge())
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable: %s", type(exception).__name__)
            return error_response(Unavailable())
        if isinstance(exception, DatabaseError):
            logger.exception("database error")
        return None
