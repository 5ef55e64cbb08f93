"""uvicorn's HTTP protocol with a deadline on request headers, and small send buffers.

uvicorn has no header-read timeout: its keep-alive timeout covers only the idle time between
requests, and any byte received cancels it, so a client that sends its headers a byte at a
time holds a connection (and a slot) for ever. ``HeaderTimeoutProtocol`` closes a connection
whose headers are not complete ``REQUEST_HEADER_TIMEOUT_SECONDS`` after it opened, or after a
later request's first byte. ``manage.py serve`` (and ``devserver``) pass it to uvicorn through
its ``http`` option; plain ``uvicorn agent_runtime.asgi:application`` needs
``--http agent_runtime.http_protocol:HeaderTimeoutProtocol`` for it.

Each connection's send buffers are capped at ``STREAM_SEND_BUFFER_BYTES`` (the kernel's, and
the transport's high-water mark): otherwise the kernel takes up to 4 MB of a reply its client
does not read, so the stream never waits and its turn produces it all (docs/security.md,
"Slow readers").

It hooks only the asyncio protocol callbacks and httptools' parser callbacks
(``on_message_begin``, ``on_headers_complete``), calling uvicorn's own for everything else.
"""

from __future__ import annotations

import asyncio
import socket

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from streaming.runs.memory import release_freed_memory_soon

#: The import string uvicorn's ``http`` option takes.
HTTP_PROTOCOL = "agent_runtime.http_protocol:HeaderTimeoutProtocol"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    header_deadline: asyncio.TimerHandle | None = None
    connection: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.connection = transport
        send_buffer_capped(transport, settings.STREAM_SEND_BUFFER_BYTES)
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        # What a stream left queued for a client that never read goes only now.
        release_freed_memory_soon()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_deadline is None:  # the first request's deadline runs from the connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self.header_deadline = asyncio.get_running_loop().call_later(
            settings.REQUEST_HEADER_TIMEOUT_SECONDS, self._headers_too_slow
        )

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_slow(self) -> None:
        self.header_deadline = None
        if self.connection is not None and not self.connection.is_closing():
            self.connection.close()


def send_buffer_capped(transport: asyncio.Transport, size: int) -> None:
    """Cap what the kernel and the transport keep of a connection's unsent bytes (0: as is)."""
    if not size:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    transport.set_write_buffer_limits(high=size)
