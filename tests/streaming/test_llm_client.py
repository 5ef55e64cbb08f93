"""The upstream client against respx-mocked OpenAI-compatible servers."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import respx

from agent_runtime.errors import (
    UpstreamDisconnected,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from streaming.llm_client import (
    ContentDelta,
    OpenAIChatClient,
    StreamEnd,
    ToolCallDelta,
    retry_after_seconds,
)

URL = "http://llm.test/v1/chat/completions"


def sse(*chunks: object, done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def delta(**d: object) -> dict:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}], "model": "m1"}


def finish(reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}], "model": "m1"}


@pytest.fixture
def client(settings) -> AsyncIterator[OpenAIChatClient]:  # type: ignore[no-untyped-def]
    settings.LLM_PROXY_URL = "http://llm.test"
    settings.LLM_MODEL = "m1"
    settings.LLM_API_KEY = "sk-test"
    settings.LLM_PROXY_KEY = "proxy-key"
    settings.LLM_READ_TIMEOUT = 0.2
    return OpenAIChatClient()


async def collect(client: OpenAIChatClient, **kwargs: object) -> list:
    return [
        d async for d in client.stream_chat(messages=[{"role": "user", "content": "hi"}], **kwargs)
    ]


def event_stream(body: bytes, status: int = 200, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"Content-Type": "text/event-stream", **(headers or {})}
    )


@respx.mock
async def test_request_shape_and_content_deltas(client: OpenAIChatClient) -> None:
    route = respx.post(URL).mock(
        return_value=event_stream(
            sse(
                delta(role="assistant", content=""),
                delta(content="Hel"),
                delta(content="lo"),
                finish(),
                {
                    "choices": [],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                },
            )
        )
    )
    deltas = await collect(client)
    assert deltas == [
        ContentDelta("Hel"),
        ContentDelta("lo"),
        StreamEnd("stop", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, "m1"),
    ]
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.headers["X-Internal-Auth"] == "proxy-key"
    assert orjson.loads(request.content) == {
        "model": "m1",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    "base", ["http://llm.test", "http://llm.test/", "http://llm.test/v1", "http://llm.test/v1/"]
)
def test_url_never_doubles_v1(settings, base: str) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_PROXY_URL = base
    assert OpenAIChatClient().url == URL


def test_no_auth_headers_unless_configured(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_API_KEY = ""
    settings.LLM_PROXY_KEY = ""
    headers = OpenAIChatClient().http.headers
    assert "Authorization" not in headers
    assert "X-Internal-Auth" not in headers


@respx.mock
async def test_tool_call_fragments_keep_their_index(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(
        return_value=event_stream(
            sse(
                delta(
                    tool_calls=[
                        {
                            "index": 0,
                            "id": "c0",
                            "type": "function",
                            "function": {"name": "echo", "arguments": ""},
                        }
                    ]
                ),
                delta(tool_calls=[{"index": 0, "function": {"arguments": '{"te'}}]),
                delta(
                    tool_calls=[
                        {
                            "index": 1,
                            "id": "c1",
                            "function": {"name": "calculator", "arguments": "{}"},
                        }
                    ]
                ),
                delta(tool_calls=[{"index": 0, "function": {"arguments": 'xt":"x"}'}}]),
                finish("tool_calls"),
            )
        )
    )
    deltas = await collect(client, tools=[{"type": "function", "function": {"name": "echo"}}])
    assert deltas == [
        ToolCallDelta(0, "c0", "echo", ""),
        ToolCallDelta(0, None, None, '{"te'),
        ToolCallDelta(1, "c1", "calculator", "{}"),
        ToolCallDelta(0, None, None, 'xt":"x"}'),
        StreamEnd("tool_calls", {}, "m1"),
    ]


@respx.mock
async def test_rate_limit_carries_retry_after(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(
        return_value=httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "3"})
    )
    with pytest.raises(UpstreamRateLimited) as raised:
        await collect(client)
    assert raised.value.retry_after == 3.0
    assert raised.value.retryable


@respx.mock
@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (400, False), (401, False)]
)
async def test_http_errors(
    client: OpenAIChatClient, status: int, retryable: bool, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"error": {"message": "nope: internal-host-7 " + "x" * 1000}}
    respx.post(URL).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(UpstreamHTTPError) as raised:
        await collect(client)
    assert raised.value.status_code == status
    assert raised.value.retryable is retryable
    # The client is told the status only; the upstream's body, truncated, goes to the log.
    assert raised.value.detail == f"The language model server answered HTTP {status}."
    (record,) = [r for r in caplog.records if r.getMessage() == "upstream error response"]
    assert record.levelname == "WARNING"
    assert record.upstream_status == status  # type: ignore[attr-defined]
    assert "nope: internal-host-7" in record.upstream_body  # type: ignore[attr-defined]
    assert len(record.upstream_body) == 500  # type: ignore[attr-defined]


@respx.mock
async def test_connection_refused_is_unavailable(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(UpstreamUnavailable) as raised:
        await collect(client)
    assert raised.value.retryable


@respx.mock
async def test_connect_timeout_is_retryable_unavailable(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(UpstreamUnavailable) as raised:
        await collect(client)
    assert raised.value.retryable is True
    assert raised.value.detail == "Timed out connecting to the language model server."


@respx.mock
async def test_malformed_chunk_is_a_protocol_error(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(
        return_value=event_stream(sse(delta(content="ok"), done=False) + b"data: {nope\n\n")
    )
    with pytest.raises(UpstreamProtocolError):
        await collect(client)


@respx.mock
async def test_error_object_in_stream_is_an_http_error(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(
        return_value=event_stream(sse({"error": {"message": "context too long"}}, done=False))
    )
    with pytest.raises(UpstreamHTTPError, match="context too long"):
        await collect(client)


@respx.mock
async def test_stream_that_ends_without_finish_is_a_disconnect(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(return_value=event_stream(sse(delta(content="par"), done=False)))
    with pytest.raises(UpstreamDisconnected):
        await collect(client)


@respx.mock
async def test_finish_without_done_is_accepted(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(return_value=event_stream(sse(delta(content="x"), finish(), done=False)))
    assert (await collect(client))[-1] == StreamEnd("stop", {}, "m1")


@respx.mock
async def test_read_error_mid_stream_is_a_disconnect(client: OpenAIChatClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield sse(delta(content="x"), done=False)
        raise httpx.ReadError("connection reset")

    respx.post(URL).mock(
        return_value=httpx.Response(
            200, content=body(), headers={"Content-Type": "text/event-stream"}
        )
    )
    with pytest.raises(UpstreamDisconnected):
        await collect(client)


@respx.mock
async def test_done_before_any_finish_reason_is_a_disconnect(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(return_value=event_stream(sse(delta(content="par"), done=True)))
    with pytest.raises(UpstreamDisconnected):
        await collect(client)


@respx.mock
async def test_read_timeout_is_upstream_timeout(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(side_effect=httpx.ReadTimeout("stalled"))
    with pytest.raises(UpstreamTimeout):
        await collect(client)


@respx.mock
async def test_non_sse_response_is_a_protocol_error(client: OpenAIChatClient) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, json={"choices": []}))
    with pytest.raises(UpstreamProtocolError):
        await collect(client)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_refused_connection_is_unreachable_on_both_transports(
    settings, transport: str
) -> None:  # type: ignore[no-untyped-def]
    """No mock: a port nobody listens on. httpx-aiohttp reports a refused connection as a
    ConnectTimeout; the client must still say "unreachable", not "timed out"."""
    from tests.servers import free_port

    settings.LLM_PROXY_URL = f"http://127.0.0.1:{free_port()}"
    settings.LLM_HTTP_TRANSPORT = transport
    client = OpenAIChatClient()
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await collect(client)
    finally:
        await client.aclose()
    assert raised.value.detail == "The language model server is unreachable."
    assert raised.value.retryable


async def answer_headers(reader, writer) -> None:  # type: ignore[no-untyped-def]
    """Read one request; write a chunked event stream's status line and headers."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_connection_is_reused_when_the_body_ends_after_done(settings, transport: str) -> None:  # type: ignore[no-untyped-def]
    """A server that ends the body a moment after ``[DONE]`` (as uvicorn does: two writes).
    The client reads up to the end, so the next call reuses the connection instead of
    opening a new one."""

    connections = 0

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await answer_headers(reader, writer)
            writer.write(chunk(sse(delta(content="hi"), finish(), done=True)))
            await writer.drain()
            await asyncio.sleep(0.02)  # the body's end comes in a later packet
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings.LLM_PROXY_URL = f"http://127.0.0.1:{port}"
    settings.LLM_HTTP_TRANSPORT = transport
    client = OpenAIChatClient()
    try:
        for _ in range(3):
            deltas = await collect(client)
            assert deltas[-1] == StreamEnd("stop", {}, "m1")
    finally:
        await client.aclose()
        server.close()
    assert connections == 1


async def chunked_server(pieces: list[bytes]):  # type: ignore[no-untyped-def]
    """A raw HTTP server answering each request with ``pieces``, one chunk and write each."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_headers(reader, writer)
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.002)  # each piece its own read on the client's side
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def collect_served(settings, server: asyncio.Server, transport: str) -> list:  # type: ignore[no-untyped-def]
    """The deltas of one call to ``server`` over ``transport``; the server is closed after."""
    settings.LLM_PROXY_URL = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings.LLM_HTTP_TRANSPORT = transport
    client = OpenAIChatClient()
    try:
        return await collect(client)
    finally:
        await client.aclose()
        server.close()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
async def test_events_cut_anywhere_by_the_network_arrive_whole(
    settings, transport: str, line_end: bytes
) -> None:  # type: ignore[no-untyped-def]
    body = sse(delta(content="été"), delta(content="b"), finish()).replace(b"\n", line_end)
    server = await chunked_server([body[i : i + 7] for i in range(0, len(body), 7)])
    deltas = await collect_served(settings, server, transport)
    assert deltas == [ContentDelta("été"), ContentDelta("b"), StreamEnd("stop", {}, "m1")]


async def test_a_hung_up_call_leaves_no_response_behind(settings) -> None:  # type: ignore[no-untyped-def]
    """aiohttp ends the reads of a closed response with one exception object that it shares
    between all responses: each raise used to add the reader's frames to its traceback, which
    then kept every hung-up response (its buffers, its connection) for good."""
    import gc

    import aiohttp

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_headers(reader, writer)
        piece = sse(delta(content="hi"), done=False)
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        await reader.read()  # until the client hangs up

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    settings.LLM_PROXY_URL = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings.LLM_HTTP_TRANSPORT = "aiohttp"
    client = OpenAIChatClient()
    try:
        for _ in range(3):
            stream = client.stream_chat(messages=[{"role": "user", "content": "x"}])
            deltas = aiter(stream)
            assert await anext(deltas) == ContentDelta("hi")
            await stream.hang_up()
            with pytest.raises(UpstreamDisconnected):
                await anext(deltas)
            del stream, deltas
    finally:
        await client.aclose()
        server.close()
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientResponse)]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_content_coded_stream_is_decoded(settings, transport: str) -> None:  # type: ignore[no-untyped-def]
    """Only a body without a content coding is read raw; a gzip-coded one is decoded."""
    import gzip

    body = gzip.compress(sse(delta(content="été"), delta(content="b"), finish()))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    deltas = await collect_served(settings, server, transport)
    assert deltas == [ContentDelta("été"), ContentDelta("b"), StreamEnd("stop", {}, "m1")]
