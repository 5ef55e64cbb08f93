"""An ASGI wrapper that refuses request bodies over ``MAX_BODY_BYTES`` before Django reads them.

A declared ``Content-Length`` over the limit is answered with the 413 error body at once, and
the connection is closed instead of reading the body. A body without a length (chunked) is
counted as it arrives and refused as soon as it passes the limit; Django reads whole bodies
before any view runs anyway, so collecting it here first changes nothing else.
"""

from __future__ import annotations

from agent_runtime.asgi_types import ASGIApp, Message, Receive, Scope, Send
from agent_runtime.errors import PayloadTooLarge, error_body
from agent_runtime.logs import accepted_request_id, bind_request
from agent_runtime.metrics import request_observed


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
                break
        if length is not None:
            # The server holds the client to its declared length: nothing more to count.
            if length.isdigit() and int(length) > self.max_bytes:
                return await self._refuse(scope, send)
            return await self.app(scope, receive, send)

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._refuse(scope, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replaying_receive() -> Message:
            # The collected body first, then the server's own messages (the disconnect).
            return replay.pop() if replay else await receive()

        return await self.app(scope, replaying_receive, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        headers = dict(scope["headers"])
        request_id = accepted_request_id(
            headers.get(b"x-request-id", b"").decode("latin-1") or None
        )
        bind_request(request_id)
        error = PayloadTooLarge()
        body = error_body(error)
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    # The unread body is still on the wire: this connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        request_observed(
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            status=error.status,
            duration_s=0.0,
            streaming=False,
        )
