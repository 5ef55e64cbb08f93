"""The aiohttp session under the upstream client (httpx-aiohttp's, with small read buffers), and
what its errors mean.

aiohttp reads a response ahead of its reader: up to twice ``read_bufsize`` (64 KiB by default)
before it stops reading the socket, plus whatever one read of the socket returns (up to 256
KiB). A turn whose client reads slowly stops taking the model's deltas, and what aiohttp read
ahead then waits in memory: hundreds of KiB per turn at the defaults. Here it reads at most
``UPSTREAM_READ_BUFFER_BYTES`` ahead, and each read is bounded by the kernel's receive buffer
(``UPSTREAM_SOCKET_RCVBUF_BYTES``, which Linux doubles) (docs/security.md, "Slow readers").
A model streams far below what a 64 KiB window carries, even over a distant link.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import httpx

from streaming.background import task_kept
from streaming.wait_watch import WaitWatch

UPSTREAM_READ_BUFFER_BYTES = 16 * 1024
UPSTREAM_SOCKET_RCVBUF_BYTES = 32 * 1024


def upstream_socket(addr_info: Any) -> socket.socket:
    """aiohttp's ``socket_factory``: a socket as its default one, with a small receive buffer."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_SOCKET_RCVBUF_BYTES)
    return sock


def aiohttp_session(limits: httpx.Limits) -> aiohttp.ClientSession:
    """The session httpx-aiohttp makes itself (its pool limits, httpx's TLS defaults), with the
    read buffers above. Made on first use, in the event loop that uses it."""
    connector = aiohttp.TCPConnector(
        limit=100 if limits.max_connections is None else limits.max_connections,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=httpx.create_ssl_context(),
        socket_factory=upstream_socket,
    )
    return aiohttp.ClientSession(connector=connector, read_bufsize=UPSTREAM_READ_BUFFER_BYTES)


def drop_cause_tracebacks(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc``'s causes (the transport's own errors).

    aiohttp ends every read of a response closed before its end (a hung-up call) by raising
    one exception object that it shares between all responses. Each raise adds the reading
    frames to that object's traceback, so it would keep every such response, with its stream
    reader, its buffers and its connection, for the life of the process (docs/security.md,
    "Slow readers"). The runtime raises its own error in their place anyway.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if cause is not exc or isinstance(exc, aiohttp.ClientError):
            cause.__traceback__ = None
        cause = cause.__cause__


def connect_timed_out(exc: httpx.TimeoutException) -> bool:
    """Whether a connect "timeout" really was one.

    httpx-aiohttp reports every aiohttp connection error (refused, reset, closed before the
    headers) as ``httpx.ConnectTimeout``; its cause tells a real timeout from the rest.
    """
    cause = exc.__cause__
    return not isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError)


def read_watch(timeout: float, response: httpx.Response) -> WaitWatch:
    """The read timeout of ``response``'s body, kept by its reader (``WaitWatch.began`` around
    each read; the first read begins with the watch): a read that waits ``timeout`` closes the
    response, which ends it. aiohttp's own (``sock_read``) re-arms a timer for every chunk
    received, a token's cost; time between reads (the reader paused for a slow client) does
    not count here."""
    loop = asyncio.get_running_loop()
    return WaitWatch(timeout, lambda _: task_kept(response.aclose()), began=loop.time())
