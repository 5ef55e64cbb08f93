"""Running an encoder over scripted turn events, for the encoders' tests."""

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson

from streaming.engine.events import TurnEvent


async def scripted(*events: TurnEvent) -> AsyncIterator[TurnEvent]:
    for event in events:
        yield event


def decoded_frames(
    encode: Callable[[AsyncIterator[TurnEvent]], AsyncIterator[bytes]], *events: TurnEvent
) -> list[dict | str]:
    """Each SSE frame of the encoded events: its JSON, ``"ping"`` or ``"[DONE]"``."""

    async def collect() -> list[bytes]:
        return [frame async for frame in encode(scripted(*events))]

    out: list[dict | str] = []
    for frame in asyncio.run(collect()):
        assert frame.endswith(b"\n\n")
        payload = frame.removeprefix(b"data: ").strip()
        if frame.startswith(b":"):
            out.append("ping")
        else:
            out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out
