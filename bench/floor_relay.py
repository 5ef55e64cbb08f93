"""The floor: the least a Python relay can do per token on this machine.

A bare ASGI app under the same uvicorn, with the same upstream client library (aiohttp), that
relays the development LLM's tokens in the runtime's event format: no Django, no database, no
history, no tools, no cancel, no heartbeat. The bench measures it beside the runtime, so a
figure says how much of the runtime's cost is the relay itself (a socket read and a socket
write per token) and how much is the runtime's own work.

``FLOOR_LLM_URL=http://127.0.0.1:8002 FLOOR_UPSTREAM_BODY='{...}' uvicorn bench.floor_relay:app``
(``bench.procs.start_floor`` sets both: the body is what the runtime sends for a session with 20
prior messages).
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

_HEAD = b'data: {"token":'
_TAIL = b',"is_final":false,"type":"assistant_message"}\n\n'
_FINAL = b'data: {"token":"","is_final":true,"type":"assistant_message"}\n\ndata: [DONE]\n\n'
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    while (await receive()).get("more_body"):
        pass
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = os.environ["FLOOR_LLM_URL"].rstrip("/") + "/v1/chat/completions"
    body = os.environ["FLOOR_UPSTREAM_BODY"].encode()
    async with _session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        buffer = b""
        while chunk := await response.content.readany():
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                data = event[6:]
                if not data or data == b"[DONE]":
                    continue
                for choice in orjson.loads(data).get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        frame = _HEAD + orjson.dumps(text) + _TAIL
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": _FINAL})
