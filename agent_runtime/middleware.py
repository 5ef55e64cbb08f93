"""Async-only middleware: request ids and logs, Django's header middleware on the event loop,
CORS, the internal-key check, the body's faults, the error map."""

import hmac
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from corsheaders import middleware as corsheaders
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware import clickjacking, common, security
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin

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
from agent_runtime.request_body import body_error

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponse]]


class AsyncMiddleware:
    """Base for middleware that runs on the event loop only (no thread hop per request)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        if not iscoroutinefunction(get_response):
            raise TypeError(f"{type(self).__name__} needs an async handler chain")
        self.get_response = get_response
        markcoroutinefunction(self)


class RequestIdMiddleware(AsyncMiddleware):
    """Gives each request an id (the client's ``X-Request-ID`` if acceptable), logs and counts it.

    The id goes into the log context of the request's task, so every line logged while the
    request (and its streamed body) runs carries it; it is echoed in the response header.
    """

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        # ``META``, not ``request.headers``: the same values, without building the whole mapping
        # of headers for each request (on the main route nothing else reads it but CORS).
        request_id = accepted_request_id(request.META.get("HTTP_X_REQUEST_ID"))
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


class OnEventLoop(AsyncMiddleware):
    """Runs a Django ``MiddlewareMixin``'s request and response hooks on the event loop.

    Listed in ``MIDDLEWARE``, Django would run each hook through ``sync_to_async``: a thread
    hop per hook and request. The wrapped ones only read the request and set headers (no
    I/O), so they are called directly; ``stands_for`` names them for the system checks.
    """

    wrapped: type[MiddlewareMixin]

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        hooks = self.wrapped(get_response)
        self.process_request = getattr(hooks, "process_request", None)
        self.process_response = getattr(hooks, "process_response", None)

    @classmethod
    def stands_for(cls) -> list[str]:
        return [f"{cls.wrapped.__module__}.{cls.wrapped.__qualname__}"]

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if self.process_request is not None:
            response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        if self.process_response is not None:
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(OnEventLoop):
    """Django's: the HTTPS redirect, HSTS, nosniff, referrer and opener policies."""

    wrapped = security.SecurityMiddleware


class XFrameOptionsMiddleware(OnEventLoop):
    """Django's: ``X-Frame-Options``."""

    wrapped = clickjacking.XFrameOptionsMiddleware


class CommonMiddleware(OnEventLoop):
    """Django's: the ``ALLOWED_HOSTS`` check (400) and ``Content-Length`` on whole answers."""

    wrapped = common.CommonMiddleware


class CorsMiddleware(corsheaders.CorsMiddleware):
    """django-cors-headers; removed from the chain when no origin is configured.

    Two differences from the library's defaults, both the runtime's answers from before: a
    preflight from an origin that is not allowed is not answered here (it goes on to the key
    check, which refuses it), an allowed one gets 204; and ``Vary: Origin`` is spelled so.
    """

    def __init__(self, get_response: GetResponse) -> None:
        if not (settings.CORS_ALLOWED_ORIGINS or settings.CORS_ALLOW_ALL_ORIGINS):
            raise MiddlewareNotUsed()
        super().__init__(get_response)

    def check_preflight(self, request: HttpRequest) -> HttpResponseBase | None:
        response = super().check_preflight(request)
        origin = request.headers.get("Origin")
        if response is None or not origin or not self.origin_allowed(origin):
            return None
        response.status_code = 204
        del response["Content-Length"]  # a 204 has no body, and says nothing of its length
        return response

    def origin_allowed(self, origin: str) -> bool:
        try:
            url = urlsplit(origin)
        except ValueError:
            return False
        return settings.CORS_ALLOW_ALL_ORIGINS or self.origin_found_in_white_lists(origin, url)

    def add_response_headers(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        patch_vary_headers(response, ("Origin",))  # before the library's "origin"
        return super().add_response_headers(request, response)


class InternalKey:
    """The ``X-Internal-Auth`` rule: which paths need the key, and whether a sent key is it.

    One rule for two callers: ``InternalAuthMiddleware`` answers the 401, and the ASGI handler
    (``agent_runtime.handler``) leaves the body of a request it refuses unread.
    """

    def __init__(self) -> None:
        self._key = settings.INTERNAL_API_KEY.encode()
        self._public = tuple(settings.PUBLIC_PATH_PREFIXES)

    def refuses(self, path: str, sent: str) -> bool:
        """``sent`` as Django's ``request.headers`` has it (latin-1, repeated headers joined)."""
        if path.startswith(self._public) or path == "/health":
            return False
        # An empty configured key (allowed only with DEBUG on) still rejects every request.
        return not self._key or not hmac.compare_digest(sent.encode(), self._key)


class InternalAuthMiddleware(AsyncMiddleware):
    """Requires ``X-Internal-Auth`` on every path but the public ones; constant-time compare."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        self.key = InternalKey()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.key.refuses(request.path, request.META.get("HTTP_X_INTERNAL_AUTH", "")):
            return error_response(Unauthorized())
        return await self.get_response(request)


class RequestBodyMiddleware(AsyncMiddleware):
    """Answers what went wrong while the handler read the body: too large (413), too slow (408).

    The handler (``agent_runtime.handler``) stops reading at the fault and records it on the
    request's scope; answered here, after the key check, so the answer carries every header.
    """

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        error = body_error(getattr(request, "scope", {}))
        if error is not None:
            return error_response(error)
        return await self.get_response(request)


class ErrorJsonMiddleware(AsyncMiddleware):
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
