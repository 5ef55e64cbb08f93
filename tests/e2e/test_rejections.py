"""Requests the runtime refuses: every documented status and code, and nothing written."""

import httpx
import pytest

from sessions.models import Message, Session
from tests.servers import Runtime

pytestmark = pytest.mark.e2e

STREAM = "/agent/message/stream"
# Every route but /health, the OpenAPI document and the admin (which has its own login).
PROTECTED = [
    ("POST", STREAM),
    ("GET", "/agent/sessions"),
    ("GET", "/agent/sessions/s"),
    ("DELETE", "/agent/sessions/s"),
    ("GET", "/agent/sessions/s/messages"),
    ("POST", "/agent/sessions/s/cancel"),
    ("GET", "/no/such/path"),
]


def _nothing_written() -> None:
    assert Session.objects.count() == 0
    assert Message.objects.count() == 0


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("key", [None, "", "wrong-key", "e2e-internal-key-6f1c2a9b8d7"])
def test_missing_or_wrong_key_is_401(
    runtime: Runtime, method: str, path: str, key: str | None
) -> None:
    headers = {} if key is None else {"X-Internal-Auth": key}
    response = httpx.request(
        method, runtime.url + path, headers=headers, json={"session_id": "s", "content": "hi"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Missing or invalid X-Internal-Auth header.",
        "code": "unauthorized",
    }
    _nothing_written()


def test_unsupported_media_type_is_415(runtime: Runtime) -> None:
    response = runtime.client.post(
        STREAM,
        content=b"session_id=s&content=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "detail": "Body must be application/json.",
        "code": "unsupported_media_type",
    }
    _nothing_written()


def test_body_over_the_limit_is_413(runtime: Runtime) -> None:
    response = runtime.client.post(STREAM, json={"session_id": "big", "content": "x" * 600_000})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    _nothing_written()


def test_content_over_max_message_chars_is_413(runtime_factory, transactional_db: None) -> None:  # type: ignore[no-untyped-def]
    small = runtime_factory(max_message_chars=10)
    response = small.client.post(STREAM, json={"session_id": "long", "content": "x" * 11})
    assert response.status_code == 413
    assert response.json() == {
        "detail": "content is longer than 10 characters.",
        "code": "payload_too_large",
    }
    _nothing_written()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "hi"}, "session_id"),
        ({"session_id": "", "content": "hi"}, "session_id"),
        ({"session_id": "has space", "content": "hi"}, "session_id"),
        ({"session_id": "x" * 129, "content": "hi"}, "session_id"),
        ({"session_id": "s"}, "content"),
        ({"session_id": "s", "content": "   "}, "content"),
        ({"session_id": "s", "content": 5}, "content"),
        ({"session_id": "s", "content": "hi", "role": "assistant"}, "role"),
        ({"session_id": "s", "content": "hi", "type": "bogus"}, "type"),
        ({"session_id": "s", "content": "hi", "message_id": ""}, "message_id"),
        ({"session_id": "s", "type": "tool_result"}, "call_id"),
    ],
)
def test_invalid_fields_are_422_with_the_field_named(
    runtime: Runtime, body: dict, field: str
) -> None:
    response = runtime.client.post(STREAM, json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert payload["detail"] == "Invalid request body."
    assert field in [e["field"] for e in payload["errors"]]
    _nothing_written()


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_malformed_json_is_422(runtime: Runtime, raw: bytes) -> None:
    response = runtime.client.post(
        STREAM, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert response.json()["errors"]
    _nothing_written()


def test_unknown_fields_are_ignored(runtime: Runtime) -> None:
    response = runtime.client.post(
        STREAM, json={"session_id": "extra", "content": "hi", "colour": "blue"}
    )
    assert response.status_code == 200
    response.read()
    assert Session.objects.filter(session_id="extra").exists()


def test_wrong_method_is_405(runtime: Runtime) -> None:
    response = runtime.client.get(STREAM)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method not allowed.", "code": "method_not_allowed"}


def test_unknown_path_is_404_json(runtime: Runtime) -> None:
    response = runtime.client.get("/no/such/path")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such path: /no/such/path", "code": "not_found"}
