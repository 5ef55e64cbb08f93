"""The request body as the handler lets Django read it: bounded in size and in time, or unread.

Django's ``ASGIHandler`` reads the whole body before any middleware runs. ``RequestBody`` sits
between the server and that read:

- a request the key check will refuse, or whose declared ``Content-Length`` is over
  ``MAX_BODY_BYTES``, gets an empty body at once: not one byte of it is read;
- otherwise each read waits at most ``REQUEST_BODY_IDLE_TIMEOUT_SECONDS``, the whole body at
  most ``REQUEST_BODY_TIMEOUT_SECONDS``, and a body without a length (chunked) is counted as
  it arrives.

A fault (too large, too slow) ends the body early and is recorded on the scope, where
``RequestBodyMiddleware`` answers it with the one error format. Whenever part of the body is
left on the wire, the answer says ``Connection: close``: the connection cannot be reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from agent_runtime.asgi_types import Message, Receive, Scope, Send
from agent_runtime.errors import AgentRuntimeError, PayloadTooLarge, RequestTimeout

#: The scope key that carries the body's fault to ``RequestBodyMiddleware``.
BODY_ERROR = "agent_runtime.body_error"

_END: Message = {"type": "http.request", "body": b"", "more_body": False}


def body_error(scope: Scope) -> AgentRuntimeError | None:
    return scope.get(BODY_ERROR)


class RequestBody:
    """One request's ``receive`` and ``send``, for Django's handler."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        max_bytes: int,
        idle_seconds: float,
        total_seconds: float,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds
        self.size = 0
        self.deadline: float | None = None
        self.ended = False  # Django has had the end of the body
        self.left_unread = False
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        self.has_body = b"transfer-encoding" in headers or length not in (None, b"0")
        # The server holds the client to a declared length: only bodies without one are counted.
        if length is not None and length.isdigit() and int(length) > max_bytes:
            self.stop(PayloadTooLarge())

    def leave_unread(self) -> None:
        """End the body Django reads here, reading no more of the client's."""
        self.left_unread = True

    def stop(self, error: AgentRuntimeError) -> None:
        self.scope[BODY_ERROR] = error
        self.leave_unread()

    async def receive(self) -> Message:
        if self.left_unread:
            if not self.ended:
                self.ended = True
                return _END
            # Django now listens for a disconnect; the server would answer with the unread
            # body (after sending "100 Continue"). The answer comes at once, and Django
            # cancels this wait once it is sent.
            await asyncio.Event().wait()
        if self.ended:
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self.deadline is None:
            self.deadline = loop.time() + self.total_seconds
        try:
            async with asyncio.timeout(min(self.idle_seconds, self.deadline - loop.time())):
                message = await self._receive()
        except TimeoutError:
            self.stop(RequestTimeout())
            return await self.receive()
        if message["type"] != "http.request":  # the client went away: Django stops here
            return message
        self.size += len(message.get("body", b""))
        if self.size > self.max_bytes:
            self.stop(PayloadTooLarge())
            return await self.receive()
        self.ended = not message.get("more_body", False)
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: the server's ``send`` is awaited directly, without a frame of ours
        # for every chunk of a stream.
        if self.left_unread and self.has_body and message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"connection", b"close")]}
        return self._send(message)
