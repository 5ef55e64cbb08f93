"""Bodies refused before anything is stored: too large (before Django reads them), or
holding U+0000, which PostgreSQL cannot store."""

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from sessions.models import Message, Session
from tests.servers import Runtime

pytestmark = pytest.mark.e2e

STREAM = "/agent/message/stream"


def _nothing_written() -> None:
    assert Session.objects.count() == 0
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"session_id": "nul", "content": "a\u0000b"}, "content"),
        ({"session_id": "nul", "content": "hi", "message_id": "m\u0000"}, "message_id"),
        (
            {
                "session_id": "nul",
                "type": "tool_result",
                "call_id": "c1",
                "result": {"k": "\u0000"},
            },
            "result.k",
        ),
    ],
)
def test_nul_characters_are_422_on_every_database(runtime: Runtime, body: dict, field: str) -> None:
    response = runtime.client.post(STREAM, json=body)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": field,
            "message": "must not contain the NUL character (U+0000)",
            "type": "string_nul_character",
        }
    ]
    _nothing_written()


def test_an_escaped_backslash_before_u0000_is_plain_text(runtime: Runtime) -> None:
    text = "\\u0000 is how JSON spells NUL"  # a backslash, then "u0000": six characters
    raw = json.dumps({"session_id": "text", "content": text})
    assert "\\\\u0000" in raw  # on the wire: an escaped backslash, then "u0000"
    response = runtime.client.post(
        STREAM, content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    response.read()
    user = Message.objects.get(session__session_id="text", role="user")
    assert user.content == text
    assert "\x00" not in user.content


def test_a_chunked_body_over_the_limit_is_413(runtime: Runtime) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the wrapper counts
        yield b'{"session_id": "chunked", "content": "'
        for _ in range(settings.MAX_BODY_BYTES // 10_000 + 1):
            yield b"x" * 10_000
        yield b'"}'

    response = runtime.client.post(
        STREAM, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is too large.", "code": "payload_too_large"}
    assert response.headers["X-Request-ID"]
    _nothing_written()


def _escaped(body: dict) -> bytes:
    """``body`` as JSON with every non-ASCII character escaped (a non-BMP one as a pair)."""
    return json.dumps(body, ensure_ascii=True).encode()


def test_the_longest_message_passes_in_its_longest_json_encoding(runtime: Runtime) -> None:
    chars = settings.MAX_MESSAGE_CHARS
    body = {
        "session_id": "long",
        "message_id": "\U0001f511" * 128,
        "content": "\U0001f600" * chars,
    }
    raw = _escaped(body)
    assert len(raw) > 12 * chars  # each "\ud83d\ude00" is one character, twelve bytes
    response = runtime.client.post(
        STREAM, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    response.read()
    assert Message.objects.get(session__session_id="long", role="user").content == body["content"]


def test_one_character_more_is_refused_by_the_character_limit_not_the_byte_limit(
    runtime: Runtime,
) -> None:
    chars = settings.MAX_MESSAGE_CHARS + 1
    raw = _escaped({"session_id": "longer", "content": "\U0001f600" * chars})
    response = runtime.client.post(
        STREAM, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"content is longer than {settings.MAX_MESSAGE_CHARS} characters.",
        "code": "payload_too_large",
    }
    _nothing_written()


def test_a_small_chunked_body_is_served(runtime: Runtime) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"session_id": "chunked-ok", '
        yield b'"content": "hi"}'

    response = runtime.client.post(
        STREAM, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    response.read()
    assert Session.objects.filter(session_id="chunked-ok").exists()


def test_a_declared_length_over_the_limit_is_answered_before_the_body_is_sent(
    runtime: Runtime,
) -> None:
    # Only the headers go out: a server that read the body first would wait for it forever.
    url = urlsplit(runtime.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {STREAM} HTTP/1.1\r\nHost: {url.hostname}\r\n"
            f"X-Internal-Auth: {runtime.key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 50000000\r\n\r\n".encode()
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413 ")
    assert "payload_too_large" in head or "connection: close" in head.lower()
    _nothing_written()


def test_a_keyless_body_over_the_limit_is_401_before_it_is_read(runtime: Runtime) -> None:
    # Only the headers go out: the key check answers first, and the body is never read.
    url = urlsplit(runtime.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST {STREAM} HTTP/1.1\r\nHost: {url.hostname}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {settings.MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 401 ")
    assert "connection: close" in head.lower()
    _nothing_written()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/agent/sessions/a%00b"),
        ("DELETE", "/agent/sessions/a%00b"),
        ("GET", "/agent/sessions/a%00b/messages"),
        ("POST", "/agent/sessions/a%00b/cancel"),
        ("GET", "/agent/sessions/" + "x" * 129),
        ("GET", "/agent/sessions/has%20space"),
    ],
)
def test_a_path_that_cannot_name_a_session_is_404(runtime: Runtime, method: str, path: str) -> None:
    # A NUL byte used to reach the database, which PostgreSQL refuses (500).
    response = runtime.client.request(method, path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
