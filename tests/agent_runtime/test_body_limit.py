"""The ASGI wrapper that refuses large bodies before Django reads them."""

import json
from typing import Any

import pytest

from agent_runtime.body_limit import BodySizeLimit

LIMIT = 100


class FakeApp:
    """An inner ASGI app that records what reached it."""

    def __init__(self) -> None:
        self.called = False
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        self.called = True
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/agent/message/stream",
        "headers": list(headers),
    }


async def _run(
    scope: dict[str, Any], chunks: list[bytes]
) -> tuple[FakeApp, list[dict], list[dict]]:
    app = FakeApp()
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ] + [{"type": "http.disconnect"}]
    pulled: list[dict] = []

    async def receive() -> dict:
        message = pending.pop(0)
        pulled.append(message)
        return message

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await BodySizeLimit(app, max_bytes=LIMIT)(scope, receive, send)
    return app, sent, pulled


def _refused(sent: list[dict]) -> dict[str, Any]:
    start, body = sent
    assert start["status"] == 413
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"connection"] == b"close"
    assert headers[b"x-request-id"]
    assert json.loads(body["body"]) == {
        "detail": "Request body is too large.",
        "code": "payload_too_large",
    }
    return headers


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body() -> None:
    app, sent, pulled = await _run(_scope((b"content-length", b"101")), [b"x" * 101])
    assert not app.called
    assert pulled == []  # not one byte of the body was read
    _refused(sent)


async def test_the_refusal_echoes_a_plain_request_id() -> None:
    _, sent, _ = await _run(
        _scope((b"content-length", b"5000"), (b"x-request-id", b"rid-413")), [b""]
    )
    assert _refused(sent)[b"x-request-id"] == b"rid-413"


async def test_a_declared_length_within_the_limit_passes_untouched() -> None:
    app, sent, _ = await _run(_scope((b"content-length", b"100")), [b"x" * 100])
    assert app.called
    assert app.received == [{"type": "http.request", "body": b"x" * 100, "more_body": False}]
    assert sent[0]["status"] == 200


async def test_a_chunked_body_is_counted_and_refused_once_over_the_limit() -> None:
    app, sent, pulled = await _run(_scope(), [b"x" * 60, b"x" * 60, b"x" * 60])
    assert not app.called
    assert len(pulled) == 2  # it stopped reading at the chunk that crossed the limit
    _refused(sent)


async def test_a_chunked_body_within_the_limit_reaches_the_app_whole() -> None:
    app, sent, _ = await _run(_scope(), [b"a" * 50, b"b" * 50])
    assert app.received == [{"type": "http.request", "body": b"a" * 50 + b"b" * 50}]
    assert sent[0]["status"] == 200


async def test_a_client_gone_while_sending_a_chunked_body_ends_quietly() -> None:
    app = FakeApp()

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        raise AssertionError("nothing may be sent")

    await BodySizeLimit(app, max_bytes=LIMIT)(_scope(), receive, send)
    assert not app.called


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_other_scopes_pass_through(scope_type: str) -> None:
    seen = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope["type"])

    await BodySizeLimit(app, max_bytes=LIMIT)({"type": scope_type}, None, None)  # type: ignore[arg-type]
    assert seen == [scope_type]
