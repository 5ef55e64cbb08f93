"""The runtime's ASGI handler: the body bounded in size and time, left unread for a request
without the key; the admin's sync work on a thread of its own."""

import asyncio
import json
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from agent_runtime.handler import RuntimeASGIHandler

# Django's request_finished receivers look at the connection when a response is closed.
pytestmark = pytest.mark.django_db(transaction=True)

KEY = "handler-test-key"
STREAM = "/agent/message/stream"


@pytest.fixture
def handler(settings) -> RuntimeASGIHandler:  # type: ignore[no-untyped-def]
    settings.INTERNAL_API_KEY = KEY
    settings.MAX_BODY_BYTES = 100
    settings.REQUEST_BODY_IDLE_TIMEOUT_SECONDS = 0.2
    settings.REQUEST_BODY_TIMEOUT_SECONDS = 0.5
    return RuntimeASGIHandler()


def _scope(path: str = STREAM, *headers: tuple[bytes, bytes], method: str = "POST") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }


class Client:
    """Body chunks sent on request (``None``: the client stalls), messages the app sent."""

    def __init__(self, chunks: list[bytes | None]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.chunks:
            await asyncio.Event().wait()  # the client stays until answered
        chunk = self.chunks.pop(0)
        if chunk is None:
            await asyncio.Event().wait()
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def _run(handler: RuntimeASGIHandler, scope: dict, chunks: list[bytes | None]) -> Client:
    client = Client(chunks)
    await asyncio.wait_for(handler(scope, client.receive, client.send), timeout=10)
    return client


async def test_a_keyless_request_gets_the_middlewares_401_without_its_body_read(
    handler: RuntimeASGIHandler,
) -> None:
    chunked = _scope(STREAM, (b"transfer-encoding", b"chunked"), (b"x-request-id", b"rid-1"))
    client = await _run(handler, chunked, [b"x" * 50, None])
    assert client.pulled == 0  # not one byte read
    # The same answer as without a body (from InternalAuthMiddleware), but for the connection.
    plain = await _run(handler, _scope(STREAM, (b"x-request-id", b"rid-1"), method="POST"), [b""])
    headers = client.headers
    assert headers.pop(b"connection") == b"close"
    assert b"connection" not in plain.headers
    assert client.status == plain.status == 401
    assert headers == plain.headers  # request id, security headers, length: all the same
    assert client.sent[1:] == plain.sent[1:]


async def test_a_wrong_key_is_the_same_as_none(handler: RuntimeASGIHandler) -> None:
    scope = _scope(STREAM, (b"x-internal-auth", b"nope"), (b"content-length", b"10"))
    client = await _run(handler, scope, [b"0123456789"])
    assert (client.status, client.pulled) == (401, 0)


async def test_a_declared_length_over_the_limit_is_413_unread(handler: RuntimeASGIHandler) -> None:
    scope = _scope(STREAM, (b"x-internal-auth", KEY.encode()), (b"content-length", b"101"))
    client = await _run(handler, scope, [b"x" * 101])
    assert (client.status, client.pulled) == (413, 0)
    assert client.body == {"detail": "Request body is too large.", "code": "payload_too_large"}
    assert client.headers[b"connection"] == b"close"
    assert client.headers[b"X-Request-ID"]  # answered by the middleware chain


async def test_a_chunked_body_is_refused_at_the_chunk_over_the_limit(
    handler: RuntimeASGIHandler,
) -> None:
    scope = _scope(STREAM, (b"x-internal-auth", KEY.encode()), (b"transfer-encoding", b"chunked"))
    client = await _run(handler, scope, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert (client.status, client.pulled) == (413, 2)


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b'{"a"', None], id="idle"),
        pytest.param([b"{", b'"', b"a", b'"', b":", b"1", b"}", b" "], id="total"),
    ],
)
async def test_a_slow_body_is_408(handler: RuntimeASGIHandler, chunks: list) -> None:
    scope = _scope(STREAM, (b"x-internal-auth", KEY.encode()), (b"transfer-encoding", b"chunked"))
    client = Client(chunks)

    async def slow_receive() -> dict[str, Any]:
        await asyncio.sleep(0.1)  # within the idle timeout, each time
        return await client.receive()

    await asyncio.wait_for(handler(scope, slow_receive, client.send), timeout=10)
    assert client.status == 408
    assert client.body == {
        "detail": "The request body arrived too slowly.",
        "code": "request_timeout",
    }
    assert client.headers[b"connection"] == b"close"


async def test_the_admins_sync_work_runs_on_a_thread_of_its_own(settings) -> None:  # type: ignore[no-untyped-def]
    """An admin request's sync work does not run on the thread the API's database work uses."""
    seen: dict[str, int] = {}

    def view_thread(request: Any) -> Any:
        from django.http import HttpResponse

        seen["admin"] = threading.get_ident()
        return HttpResponse("ok")

    settings.ROOT_URLCONF = __name__
    global urlpatterns
    from django.urls import path

    urlpatterns = [path("admin/probe/", view_thread)]
    seen["api"] = await sync_to_async(threading.get_ident)()
    client = await _run(RuntimeASGIHandler(), _scope("/admin/probe/", method="GET"), [b""])
    assert client.status == 200
    assert seen["admin"] != seen["api"]
    assert await sync_to_async(threading.get_ident)() == seen["api"]


urlpatterns: list = []
