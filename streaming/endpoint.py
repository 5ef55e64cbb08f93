"""``POST /agent/message/stream`` as a plain ASGI endpoint, in front of Django.

The turn's own work costs little; Django's request cycle around it cost more than the rest of
the turn together (a thread-sensitive context, two signals and a thread hop per built-in
middleware; docs/benchmarks.md). So this one route is served here: the same parse and turn
service as ``streaming.views.message_stream``, and what the middleware stack does for it
(request id, log line and metric, host check, CORS, key check, security headers, the one
JSON error body). Everything else, this path's other methods and any configuration this
endpoint does not reproduce (an HTTPS redirect, ``X-Forwarded-Host``), goes to Django.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.http.request import split_domain_port, validate_host

from agent_runtime.asgi_types import ASGIApp, Receive, Scope, Send
from agent_runtime.errors import (
    AgentRuntimeError,
    BadRequest,
    Unauthorized,
    UnsupportedMediaType,
    error_body,
    error_for_exception,
)
from agent_runtime.json_body import is_json_content_type, parse_json_bytes
from agent_runtime.logs import accepted_request_id, bind_request
from agent_runtime.metrics import request_observed
from agent_runtime.middleware import cors_origin_allowed
from streaming.protocol import stream_request_adapter
from streaming.turns import turn_stream
from streaming.views import stream_request_checked

PATH = "/agent/message/stream"

logger = logging.getLogger(__name__)

_WANTED = frozenset({b"host", b"x-internal-auth", b"x-request-id", b"content-type", b"origin"})


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


def security_headers(*, secure: bool) -> list[tuple[bytes, bytes]]:
    """What ``SecurityMiddleware`` and ``XFrameOptionsMiddleware`` add to a response."""
    headers: list[tuple[bytes, bytes]] = []
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(
            (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
        )
    frame_options = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
    headers.append((b"x-frame-options", frame_options.encode()))
    return headers


class StreamEndpoint:
    """Serves ``POST /agent/message/stream``; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.key = settings.INTERNAL_API_KEY.encode()
        self.origins = frozenset(settings.CORS_ALLOWED_ORIGINS)
        self.allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not self.allowed_hosts:
            self.allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's get_host
        proxy = settings.SECURE_PROXY_SSL_HEADER
        self.proxy_ssl: tuple[bytes, bytes] | None = None
        if proxy:
            name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower()
            self.proxy_ssl = (name.encode(), proxy[1].encode())
        # Django does these itself; this endpoint does not reproduce them.
        self.defer_all = settings.SECURE_SSL_REDIRECT or settings.USE_X_FORWARDED_HOST
        self.plain_headers = security_headers(secure=False)
        self.secure_headers = security_headers(secure=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].removeprefix(scope.get("root_path", "")) != PATH
            or self.defer_all
        ):
            return await self.app(scope, receive, send)
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED or (self.proxy_ssl and name == self.proxy_ssl[0]):
                # Repeated headers are joined, as Django joins them.
                headers[name] = headers[name] + b"," + value if name in headers else value
        request_id = accepted_request_id(
            headers.get(b"x-request-id", b"").decode("latin-1") or None
        )
        bind_request(request_id)
        secure = scope.get("scheme") == "https" or (
            self.proxy_ssl is not None and headers.get(self.proxy_ssl[0]) == self.proxy_ssl[1]
        )
        response_headers = [*(self.secure_headers if secure else self.plain_headers)]
        response_headers.append((b"x-request-id", request_id.encode()))
        if self.origins:
            response_headers.append((b"vary", b"Origin"))
            origin = headers.get(b"origin")
            if origin is not None and cors_origin_allowed(self.origins, origin.decode("latin-1")):
                response_headers.append((b"access-control-allow-origin", origin))
                response_headers.append((b"access-control-expose-headers", b"X-Request-ID"))

        if b"host" not in headers and scope.get("server"):
            host, port = scope["server"][:2]  # as Django does without a Host header
            headers[b"host"] = f"{host}:{port}".encode()
        try:
            self.check(headers)
            body = await self.read_body(receive)
        except _ClientGone:
            return
        except AgentRuntimeError as error:
            return await self.refuse(error, scope, send, response_headers, started)

        # From here on the client may leave at any time: like Django, watch for its
        # disconnect in a second task and cancel the turn's task, which cleans up.
        response = asyncio.ensure_future(self.respond(body, scope, send, response_headers, started))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((response, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, response):
                if not task.done():
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
        if not response.cancelled():
            response.result()  # a bug's exception propagates to the server's log

    def check(self, headers: dict[bytes, bytes]) -> None:
        """The middleware's checks, in the middleware's order: key, host, then the view's."""
        sent = headers.get(b"x-internal-auth", b"")
        # An empty configured key (allowed only with DEBUG on) still rejects every request.
        if not self.key or not hmac.compare_digest(sent, self.key):
            raise Unauthorized()
        domain, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
        if not domain or not validate_host(domain, self.allowed_hosts):
            raise BadRequest()
        if not is_json_content_type(headers.get(b"content-type", b"").decode("latin-1")):
            raise UnsupportedMediaType()

    @staticmethod
    async def read_body(receive: Receive) -> bytes:
        """The whole body (``BodySizeLimit``, in front, has bounded it)."""
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def respond(
        self,
        body: bytes,
        scope: Scope,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> None:
        try:
            frames = await turn_stream(
                request=stream_request_checked(parse_json_bytes(body, stream_request_adapter))
            )
        except Exception as exc:
            if isinstance(exc, DatabaseError):
                # A failed connection is dropped now, not reused by the next turn (Django
                # does this at a request's end; this endpoint has no request signals).
                await sync_to_async(close_old_connections)()
            error = error_for_exception(exc)
            if error is None:
                logger.exception("the stream request failed")
                error = AgentRuntimeError()
            return await self.refuse(error, scope, send, headers, started)
        await self.relay(frames, scope, send, headers, started)

    async def relay(
        self,
        frames: AsyncIterator[bytes],
        scope: Scope,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> None:
        async with aclosing(frames):  # closed on every way out: the turn's clean-up runs
            headers.extend(
                (
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                )
            )
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            request_observed(
                method="POST",
                path=scope["path"],
                status=200,
                duration_s=time.perf_counter() - started,
                streaming=True,
            )
            async for chunk in frames:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def refuse(
        self,
        error: AgentRuntimeError,
        scope: Scope,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> None:
        body = error_body(error)
        headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        request_observed(
            method="POST",
            path=scope["path"],
            status=error.status,
            duration_s=time.perf_counter() - started,
            streaming=False,
        )


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
