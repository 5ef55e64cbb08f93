"""The aiohttp session under the upstream client: httpx-aiohttp's, with small read buffers.

aiohttp reads a response ahead of its reader: up to twice ``read_bufsize`` (64 KiB by default)
before it stops reading the socket, plus whatever one read of the socket returns (up to 256
KiB). A turn whose client reads slowly stops taking the model's deltas, and what aiohttp read
ahead then waits in memory: hundreds of KiB per turn at the defaults. Here it reads at most
``UPSTREAM_READ_BUFFER_BYTES`` ahead, and each read is bounded by the kernel's receive buffer
(``UPSTREAM_SOCKET_RCVBUF_BYTES``, which Linux doubles) (docs/security.md, "Slow readers").
A model streams far below what a 64 KiB window carries, even over a distant link.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import httpx

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
