"""A recording HTTP pass-through, to see what the runtime sends a model server it did not write.

It sits on 127.0.0.1 between the runtime and the upstream (llama.cpp's server), runs uvicorn in
a thread of the test process, and for every request keeps the body it forwarded, when each
chunk of the answer went through and how the exchange ended. Answers stream through byte for
byte as they arrive; when the runtime hangs up, the proxy hangs up on the upstream at once, so
the upstream sees the disconnect just as it would without the proxy. ``inject`` merges extra
fields into forwarded JSON bodies (a test's way to pass a server-specific sampling option the
runtime has no setting for).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tests.servers import free_port

# Headers about one hop's connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"host",
}


@dataclass
class Exchange:
    """One request through the proxy; times are ``time.monotonic()`` of the test process."""

    method: str
    path: str
    body: Any  # the JSON the runtime sent (before ``inject``), or the raw bytes when not JSON
    started_at: float
    status: int | None = None
    chunk_times: list[float] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    #: The stream's ``data: [DONE]`` went through: the model server finished its answer.
    done_at: float | None = None
    #: The upstream's body ended and was all relayed.
    finished_at: float | None = None
    #: The runtime hung up before the body ended (as it may right after ``[DONE]``); the proxy
    #: then hung up on the upstream at once.
    client_gone_at: float | None = None


class RecordingProxy:
    def __init__(self, upstream: str, *, inject: dict[str, Any] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.inject = inject or {}
        self.exchanges: list[Exchange] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                host="127.0.0.1",
                port=self.port,
                interface="asgi3",
                lifespan="off",
                log_level="warning",
                loop="asyncio",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="recording-proxy")

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the recording proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the ``/v1/chat/completions`` calls so far, in order."""
        return [e.body for e in self.chat_exchanges()]

    def chat_exchanges(self) -> list[Exchange]:
        return [e for e in list(self.exchanges) if e.path.endswith("/chat/completions")]

    # The ASGI application. --------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        raw = bytearray()
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body: Any = bytes(raw)
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
        content = bytes(raw)
        if self.inject and isinstance(body, dict):
            content = json.dumps({**body, **self.inject}).encode()
        path = scope["path"] + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        exchange = Exchange(scope["method"], path, body, time.monotonic())
        self.exchanges.append(exchange)

        headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP | {b"content-length"}
        ]
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            request = client.build_request(
                scope["method"], self.upstream + path, headers=headers, content=content
            )
            response = await client.send(request, stream=True)
            try:
                exchange.status = response.status_code
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [
                            (k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP
                        ],
                    }
                )
                relay = asyncio.ensure_future(self._relay(response, send, exchange))
                gone = asyncio.ensure_future(self._hung_up(receive))
                await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
                if exchange.finished_at is None:  # the runtime hung up (seen by receive or send)
                    exchange.client_gone_at = time.monotonic()
                for task in (relay, gone):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await task
            finally:
                # Closing the upstream response closes its connection: the upstream stops too.
                await response.aclose()

    async def _relay(self, response: httpx.Response, send: Any, exchange: Exchange) -> None:
        async for chunk in response.aiter_raw():
            exchange.chunk_times.append(time.monotonic())
            exchange.data += chunk
            if exchange.done_at is None and b"data: [DONE]" in exchange.data[-len(chunk) - 16 :]:
                exchange.done_at = exchange.chunk_times[-1]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        exchange.finished_at = time.monotonic()

    async def _hung_up(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
