"""Reading the runtime's SSE responses in tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    id: int | None
    data: Any  # parsed JSON, or the string "[DONE]"
    comment: str | None = None


def iter_frames(response: httpx.Response) -> Iterator[Frame]:
    """Frames as they arrive: ``id``/``data`` events and ``:`` comment lines."""
    event_id: int | None = None
    for line in response.iter_lines():
        if line.startswith(":"):
            yield Frame(None, None, comment=line[1:].strip())
        elif line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            raw = line[6:]
            yield Frame(event_id, raw if raw == "[DONE]" else json.loads(raw))
            event_id = None


def events(response: httpx.Response) -> list[Frame]:
    """All data frames of a finished stream (comments dropped)."""
    return [f for f in iter_frames(response) if f.comment is None]


def post_stream(client: httpx.Client, body: dict[str, Any]) -> list[Frame]:
    with client.stream("POST", "/agent/message/stream", json=body) as response:
        assert response.status_code == 200, response.read()
        return events(response)


def text_of(frames: list[Frame]) -> str:
    return "".join(
        f.data["token"]
        for f in frames
        if isinstance(f.data, dict) and f.data["type"] == "assistant_message"
    )
