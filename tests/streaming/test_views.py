"""``POST /agent/message/stream`` through Django's middleware and view (no server process):
what a refused request gets back, byte for byte, and the headers every answer carries."""

import orjson
import pytest
from django.test import AsyncClient

from agent_runtime.errors import BadRequest, Unauthorized, UnsupportedMediaType, error_body
from tests.settings import INTERNAL_API_KEY

STREAM = "/agent/message/stream"
KEY = {"X-Internal-Auth": INTERNAL_API_KEY, "X-Request-ID": "rid-stream-1"}
JSON = {**KEY, "Content-Type": "application/json"}


async def post(headers: dict[str, str], body: bytes, *, secure: bool = False):  # type: ignore[no-untyped-def]
    return await AsyncClient().post(
        STREAM,
        data=body,
        content_type=headers.get("Content-Type", ""),
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
        secure=secure,
    )


@pytest.mark.parametrize(
    ("headers", "body", "error"),
    [
        ({"Content-Type": "application/json", "X-Request-ID": "r1"}, b"{}", Unauthorized()),
        ({**KEY, "X-Internal-Auth": "wrong"}, b"{}", Unauthorized()),
        ({**JSON, "Host": "evil.example.com"}, b"{}", BadRequest()),
        ({**KEY, "Content-Type": "text/plain"}, b"{}", UnsupportedMediaType()),
    ],
)
async def test_a_refused_request_gets_the_exact_error_body(
    headers: dict[str, str], body: bytes, error: Exception
) -> None:
    response = await post(headers, body)
    assert response.status_code == error.status  # type: ignore[attr-defined]
    assert response.content == error_body(error)  # type: ignore[arg-type]
    assert response["Content-Type"] == "application/json"
    assert response["Content-Length"] == str(len(response.content))
    assert response["X-Request-ID"] == headers["X-Request-ID"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"session_id": "s", "content": "   "}',
        b'{"session_id": "s", "content": "a\\u0000b"}',
        b'{"session_id": "s", "type": "tool_result"}',
    ],
)
async def test_an_invalid_body_is_422(body: bytes) -> None:
    response = await post(JSON, body)
    assert response.status_code == 422
    assert orjson.loads(response.content)["code"] == "invalid_request"
    assert response["Content-Length"] == str(len(response.content))


async def test_content_over_the_limit_is_413(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_MESSAGE_CHARS = 5
    response = await post(JSON, b'{"session_id": "s", "content": "123456"}')
    assert response.status_code == 413
    assert orjson.loads(response.content)["code"] == "payload_too_large"


async def test_cors_headers_on_the_stream_route(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    allowed = await post({**JSON, "Origin": "https://ide.example.com"}, b"{}")
    assert allowed["Access-Control-Allow-Origin"] == "https://ide.example.com"
    assert allowed["Access-Control-Expose-Headers"] == "X-Request-ID"
    assert allowed["Vary"] == "Origin"
    other = await post({**JSON, "Origin": "https://evil.example.com"}, b"{}")
    assert "Access-Control-Allow-Origin" not in other
    assert other["Vary"] == "Origin"


async def test_any_origin_with_a_star(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOW_ALL_ORIGINS = True
    settings.CORS_ALLOWED_ORIGINS = []
    response = await post({**JSON, "Origin": "https://anywhere.example.com"}, b"{}")
    assert response["Access-Control-Allow-Origin"] == "*"
    preflight = await AsyncClient().options(
        STREAM,
        headers={"Origin": "https://anywhere.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204


async def test_a_preflight_has_the_same_answer_headers_as_before(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    response = await AsyncClient().options(
        STREAM,
        headers={"Origin": "https://ide.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Length" not in response
    assert response["Access-Control-Allow-Methods"] == "GET, POST, DELETE, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == (
        "Content-Type, X-Internal-Auth, X-Request-ID, Last-Event-ID"
    )
    assert response["Access-Control-Max-Age"] == "600"
    assert response["Vary"] == "Origin"


async def test_hsts_only_over_https(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    secure = await post(JSON, b"{}", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    plain = await post(JSON, b"{}")
    assert "Strict-Transport-Security" not in plain


async def test_https_from_the_trusted_proxy_header(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 60
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = await post({**JSON, "X-Forwarded-Proto": "https"}, b"{}")
    assert response["Strict-Transport-Security"] == "max-age=60"


async def test_an_origin_that_is_not_utf8_is_just_not_allowed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    # Django reads header bytes as latin-1: b"\xff" arrives as "ÿ".
    response = await post({"X-Request-ID": "r2", "Origin": "https://\xff.example.com"}, b"{}")
    assert response.status_code == 401
    assert "Access-Control-Allow-Origin" not in response
