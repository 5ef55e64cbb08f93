"""Async-only middleware: request ids and logs, CORS, the internal-key check, the error map."""

import hmac
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from agent_runtime.api import allowed_methods
from agent_runtime.errors import (
    MethodNotAllowed,
    Unauthorized,
    error_for_exception,
    error_for_status,
    error_response,
)
from agent_runtime.logs import accepted_request_id, bind_request
from agent_runtime.metrics import request_observed

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


class RequestIdMiddleware(_AsyncMiddleware):
    """Gives each request an id (the client's ``X-Request-ID`` if acceptable), logs and counts it.

    The id goes into the log context of the request's task, so every line logged while the
    request (and its streamed body) runs carries it; it is echoed in the response header.
    """

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_request_id(request.headers.get("X-Request-ID"))
        bind_request(request_id)
        started = time.perf_counter()
        response = await self.get_response(request)
        response["X-Request-ID"] = request_id
        request_observed(
            method=request.method or "",
            path=request.path,
            status=response.status_code,
            duration_s=time.perf_counter() - started,
            streaming=response.streaming,
        )
        return response


def cors_origin_allowed(origins: frozenset[str], origin: str | None) -> bool:
    """Whether ``origin`` may read the answer (``CORS_ALLOWED_ORIGINS``; ``*``: any)."""
    return origin is not None and ("*" in origins or origin in origins)


class CorsMiddleware(_AsyncMiddleware):
    """CORS for the origins in ``CORS_ALLOWED_ORIGINS``; removed from the chain when empty."""

    ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
    ALLOW_HEADERS = "Content-Type, X-Internal-Auth, X-Request-ID, Last-Event-ID"
    MAX_AGE = "600"

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self._origins = frozenset(settings.CORS_ALLOWED_ORIGINS)
        if not self._origins:
            raise MiddlewareNotUsed()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        origin = request.headers.get("Origin")
        allowed = cors_origin_allowed(self._origins, origin)
        preflight = (
            request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        )
        if preflight and allowed:
            # Answered here: a preflight carries no X-Internal-Auth.
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = self.ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = self.ALLOW_HEADERS
            response["Access-Control-Max-Age"] = self.MAX_AGE
        else:
            response = await self.get_response(request)
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Expose-Headers"] = "X-Request-ID"
        patch_vary_headers(response, ("Origin",))
        return response


class InternalAuthMiddleware(_AsyncMiddleware):
    """Requires ``X-Internal-Auth`` on every path but the public ones; constant-time compare."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self._key = settings.INTERNAL_API_KEY.encode()
        self._public = tuple(settings.PUBLIC_PATH_PREFIXES)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/admin/"):
            # CSRF protects cookie sessions, which only the admin has: a browser cannot send
            # X-Internal-Auth cross-site, so the API's methods answer 405/404, never CSRF 403.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        if request.path.startswith(self._public) or request.path == "/health":
            return await self.get_response(request)
        sent = request.headers.get("X-Internal-Auth", "").encode()
        # An empty configured key (allowed only with DEBUG on) still rejects every request.
        if not self._key or not hmac.compare_digest(sent, self._key):
            return error_response(Unauthorized())
        return await self.get_response(request)


class ErrorJsonMiddleware(_AsyncMiddleware):
    """Turns the runtime's exceptions, and database outages, into the one JSON error body.

    Also the error pages Django makes itself with DEBUG on (a bad Host, an uncaught
    exception), which bypass the ``handler400``/``handler500`` views: outside the admin, every
    error is JSON, DEBUG or not.
    """

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        if (
            response.status_code >= 400
            and not request.path.startswith("/admin/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            error = error_for_status(response.status_code)
            if error is not None:
                return error_response(error)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        error = error_for_exception(exception)
        if error is None:
            return None
        response = error_response(error)
        if isinstance(error, MethodNotAllowed):
            match = request.resolver_match
            methods = allowed_methods(match.route) if match is not None else []
            if methods:
                response["Allow"] = ", ".join(methods)  # required with a 405 (RFC 9110)
        return response
