"""The one owner of the upstream HTTP client: OpenAI-compatible ``/v1/chat/completions``.

One pooled ``httpx.AsyncClient`` per process, built from settings on first use, on aiohttp's
transport (``httpx-aiohttp``) unless ``LLM_HTTP_TRANSPORT`` is ``httpx``. Requests and bodies
go through the httpx API, so respx mocks them in tests. The upstream SSE is decoded by
``streaming.upstream_sse``; transport failures become the runtime's ``Upstream*`` errors.
Which class serves is the ``LLM_CLIENT`` dotted path (tests and benchmarks swap it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
from django.conf import settings
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient

from agent_runtime.errors import (
    UpstreamDisconnected,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from streaming.chat import (
    ChatClient,
    ChatStream,
    ContentDelta,
    Delta,
    StreamEnd,
    ToolCallDelta,
    get_llm_client,
    reset_llm_client,
)
from streaming.upstream_http import (
    aiohttp_session,
    connect_timed_out,
    drop_cause_tracebacks,
    read_watch,
)
from streaming.upstream_retry import retry_after_seconds
from streaming.upstream_sse import UpstreamEvents

logger = logging.getLogger(__name__)


#: After ``[DONE]``, how long to wait for the end of the body. Reading it lets the pool keep
#: the connection for the next turn; a response closed before its end closes its connection.
DRAIN_SECONDS = 0.25


def _body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive. Without a content coding the response's byte stream is
    the body: reading it skips two generator layers (``aiter_bytes``, ``aiter_raw``), the
    identity decoder and the chunker for every chunk. (A body read already, as a mocked
    response's, is only there decoded.)"""
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity") and not response.is_stream_consumed:
        return aiter(response.stream)  # type: ignore[arg-type]
    return response.aiter_bytes()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally nothing: the body's end), for a short while."""
    with contextlib.suppress(TimeoutError, httpx.TransportError, aiohttp.ClientError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass


class OpenAIChatClient:
    """Streams chat completions from an OpenAI-compatible server (vLLM, LiteLLM, Ollama...)."""

    def __init__(self) -> None:
        base = settings.LLM_PROXY_URL.rstrip("/")
        # Accept a base URL with or without /v1; never send /v1/v1.
        self.url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        # Parsed once: httpx parses a string URL again for every request (docs/benchmarks.md).
        self.request_url = httpx.URL(self.url)
        self.model = settings.LLM_MODEL
        # Every request is the same JSON POST: its headers are the client's, merged once.
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if settings.LLM_API_KEY:
            headers["Authorization"] = f"Bearer {settings.LLM_API_KEY}"
        if settings.LLM_PROXY_KEY:
            headers["X-Internal-Auth"] = settings.LLM_PROXY_KEY
        self.total_timeout = settings.LLM_TOTAL_TIMEOUT
        # Kept by the reader (``read_watch``) and ``_send``, not by the transport (per chunk).
        self.read_timeout = settings.LLM_READ_TIMEOUT
        self.headers_timeout = settings.LLM_CONNECT_TIMEOUT + settings.LLM_READ_TIMEOUT
        self.include_usage = settings.LLM_INCLUDE_USAGE
        self.extra_params: dict[str, Any] = {}
        if settings.LLM_TEMPERATURE is not None:
            self.extra_params["temperature"] = settings.LLM_TEMPERATURE
        if settings.LLM_MAX_TOKENS is not None:
            self.extra_params["max_tokens"] = settings.LLM_MAX_TOKENS
        limits = httpx.Limits(
            max_connections=settings.LLM_MAX_CONNECTIONS,
            max_keepalive_connections=settings.LLM_MAX_CONNECTIONS,
        )
        client_class = (
            httpx.AsyncClient if settings.LLM_HTTP_TRANSPORT == "httpx" else HttpxAiohttpClient
        )
        self.http = client_class(
            headers=headers,
            transport=(
                None
                if settings.LLM_HTTP_TRANSPORT == "httpx"
                else AiohttpTransport(limits=limits, client=lambda: aiohttp_session(limits))
            ),
            timeout=httpx.Timeout(
                connect=settings.LLM_CONNECT_TIMEOUT,
                read=None,
                write=settings.LLM_CONNECT_TIMEOUT,
                pool=settings.LLM_CONNECT_TIMEOUT,
            ),
            limits=limits,
        )

    def request_body(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = tools
        body.update(self.extra_params)
        return body

    def stream_chat(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> ChatStream:
        """The call's deltas as they arrive; see :class:`ChatStream`."""
        content = orjson.dumps(self.request_body(messages, tools))
        request = self.http.build_request("POST", self.request_url, content=content)
        stream = ChatStream()
        stream.iterator = self._stream(request, stream)
        return stream

    async def _stream(self, request: httpx.Request, stream: ChatStream) -> AsyncIterator[Delta]:
        # One generator from the response's bytes to the deltas: every layer of async
        # iteration costs per token.
        response = await self._send(request)
        stream.response = response
        watch = read_watch(self.read_timeout, response)
        try:
            if stream.hung_up:
                raise UpstreamDisconnected("The call was hung up.")
            if response.status_code != 200:
                await self._raise_for_status(response)
            content_type = response.headers.get("Content-Type", "")
            if "text/event-stream" not in content_type:
                raise UpstreamProtocolError(
                    f"The language model server answered {content_type!r}, not an event stream."
                )
            loop_time = asyncio.get_running_loop().time
            deadline = loop_time() + self.total_timeout
            finish_reason: str | None = None
            usage: dict[str, int] = {}
            model = ""
            chunks = _body_chunks(response)
            next_chunk = chunks.__anext__
            events = UpstreamEvents()
            while True:
                watch.began = loop_time()
                try:
                    received = await next_chunk()
                except StopAsyncIteration:
                    received = b""
                watch.began = 0.0
                if loop_time() > deadline:
                    raise UpstreamTimeout("The language model call exceeded its total timeout.")
                for data in events.feed(received) if received else events.close():
                    if data == b"[DONE]" or data == "[DONE]":
                        if finish_reason is None:
                            # A server that stops early (llama.cpp when another request
                            # arrives) still says [DONE]; only a finish_reason says the
                            # answer is whole.
                            raise UpstreamDisconnected("The stream ended without a finish reason.")
                        yield StreamEnd(finish_reason, usage, model)
                        await _drain(chunks)
                        return
                    if not data:
                        continue
                    try:
                        chunk = orjson.loads(data)
                        if "error" in chunk:
                            raise UpstreamHTTPError(
                                200, f"The language model reported: {chunk['error']}"
                            )
                        model = chunk.get("model") or model
                        if chunk.get("usage"):
                            usage = chunk["usage"]
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta") or {}
                            text = delta.get("content")
                            if text:
                                yield ContentDelta(text)
                            for call in delta.get("tool_calls") or ():
                                function = call.get("function") or {}
                                yield ToolCallDelta(
                                    index=call.get("index", 0),
                                    id=call.get("id"),
                                    name=function.get("name"),
                                    arguments=function.get("arguments") or "",
                                )
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
                    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError) as exc:
                        raise UpstreamProtocolError() from exc
                if not received:
                    break
            # The body ended without [DONE]: some servers do that after a finish_reason.
            if finish_reason is None:
                raise UpstreamTimeout() if watch.expired else UpstreamDisconnected()
            yield StreamEnd(finish_reason, usage, model)
        except (httpx.ReadTimeout, aiohttp.ServerTimeoutError) as exc:
            drop_cause_tracebacks(exc)
            raise UpstreamTimeout() from exc
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            drop_cause_tracebacks(exc)
            raise (UpstreamTimeout() if watch.expired else UpstreamDisconnected()) from exc
        finally:
            watch.stop()
            # Closing the response closes the connection: that is how the model server learns
            # to stop generating when our client goes away.
            await response.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(self.headers_timeout):
                return await self.http.send(request, stream=True)
        except TimeoutError as exc:
            raise UpstreamTimeout() from exc
        except httpx.TimeoutException as exc:
            # A connect timeout may be retried; a read timeout before the headers may not.
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                if not connect_timed_out(exc):
                    raise UpstreamUnavailable() from exc
                raise UpstreamUnavailable(
                    "Timed out connecting to the language model server."
                ) from exc
            raise UpstreamTimeout() from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable() from exc

    async def _raise_for_status(self, response: httpx.Response) -> None:
        try:
            body = (await response.aread())[:500].decode(errors="replace")
        except httpx.TransportError:
            body = ""
        # The body may name the upstream's internals or quote the request: the log has it,
        # the client gets the status and a generic message.
        logger.warning(
            "upstream error response",
            extra={"upstream_status": response.status_code, "upstream_body": body},
        )
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if response.status_code == 429:
            raise UpstreamRateLimited(retry_after=retry_after)
        raise UpstreamHTTPError(
            response.status_code,
            f"The language model server answered HTTP {response.status_code}.",
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        await self.http.aclose()


__all__ = [
    "ChatClient",
    "ChatStream",
    "ContentDelta",
    "Delta",
    "OpenAIChatClient",
    "StreamEnd",
    "ToolCallDelta",
    "UpstreamError",
    "get_llm_client",
    "reset_llm_client",
]
