"""The upstream SSE decoder: the same events as httpx-sse's, however the bytes arrive."""

import itertools
import random

import httpx
import pytest
from httpx_sse import EventSource

from streaming.upstream_sse import UpstreamEvents


def reference(body: bytes) -> list[str]:
    """The data of each event, decoded by httpx-sse (its public API) from the whole body."""
    response = httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body)
    return [event.data for event in EventSource(response).iter_sse()]


def decoded(body: bytes, cuts: list[int]) -> list[str]:
    events, found = UpstreamEvents(), []
    bounds = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            found += events.feed(body[start:end])
    found += events.close()
    return [d.decode() if isinstance(d, bytes) else d for d in found]


BODIES = {
    "tokens": b'data: {"a":1}\n\ndata: {"b":"\xc3\xa9t\xc3\xa9"}\n\ndata: [DONE]\n\n',
    "multi-line data": b"data: one\ndata: two\n\ndata: three\n\n",
    "comments and fields": b": ping\n\nevent: delta\nid: 7\ndata: x\n\nretry: 10\ndata:y\n\n",
    "no space after colon": b"data:{}\n\n",
    "blank lines between": b"\n\n\ndata: a\n\n\n\ndata: b\n\n",
    "crlf": b'data: {"a":1}\r\n\r\ndata: b\r\n\r\n',
    "cr only": b"data: a\r\rdata: b\r\r",
    "crlf after lf": b"data: a\n\ndata: b\r\n\r\ndata: c\n\n",
    "unfinished last event": b"data: a\n\ndata: b\n",
    "empty data": b"data: \n\ndata: a\n\n",
    "a field with no colon": b"data\n\ndata: a\n\n",
    "a value with two spaces": b"data:  x\n\n",
    "comment only, then lf after cr": b": c\n\ndata: a\r\n\r\n",
}


@pytest.mark.parametrize("name", BODIES)
def test_whole_body_matches_httpx_sse(name: str) -> None:
    body = BODIES[name]
    assert decoded(body, []) == reference(body)


@pytest.mark.parametrize("name", BODIES)
def test_any_split_of_the_bytes_gives_the_same_events(name: str) -> None:
    body = BODIES[name]
    rng = random.Random(name)
    for _ in range(200):
        cuts = rng.sample(range(1, len(body)), k=min(len(body) - 1, rng.randint(1, 6)))
        assert decoded(body, cuts) == reference(body), cuts
    for cut in range(1, len(body)):  # every single split point, a multi-byte character's too
        assert decoded(body, [cut]) == reference(body), cut


def test_the_common_event_is_cut_out_as_bytes() -> None:
    assert UpstreamEvents().feed(b'data: {"a":1}\n\n') == [b'{"a":1}']
