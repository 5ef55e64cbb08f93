"""``StreamEndpoint``, called as an ASGI app in process, against Django's answer to the same
request (the middleware stack and ``streaming.views.message_stream``)."""

import asyncio
from typing import Any

import orjson
import pytest
from django.test import AsyncClient

from streaming.endpoint import PATH, StreamEndpoint
from tests.settings import INTERNAL_API_KEY

# The headers both must agree on (Django adds Content-Length, Vary: Cookie etc. elsewhere).
COMPARED = (
    "content-type",
    "x-request-id",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "x-frame-options",
    "strict-transport-security",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "vary",
)


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


async def call_endpoint(
    endpoint: StreamEndpoint,
    headers: dict[str, str] | list[tuple[bytes, bytes]],
    body: bytes | None,
    *,
    method: str = "POST",
    path: str = PATH,
    scheme: str = "http",
) -> Answer:
    """Call it as a server would; ``body=None``: the client leaves before sending its body."""
    answer, done = Answer(), asyncio.Event()
    messages = [] if body is None else [{"type": "http.request", "body": body}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        if body is not None:
            await done.wait()  # as a server does: a disconnect once the response is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            for name, value in message["headers"]:
                key = name.decode().lower()
                answer.headers[key] = (
                    f"{answer.headers[key]}, {value.decode()}"
                    if key in answer.headers
                    else value.decode()
                )
        else:
            answer.body += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "scheme": scheme,
        "headers": headers
        if isinstance(headers, list)
        else [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(endpoint(scope, receive, send), timeout=10)
    return answer


async def passed_on(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("this request is the endpoint's, not Django's")


async def compare(
    headers: dict[str, str], body: bytes, *, scheme: str = "http"
) -> tuple[Answer, Any]:
    """The endpoint's answer and Django's; asserts they agree on status, body and headers."""
    ours = await call_endpoint(StreamEndpoint(passed_on), headers, body, scheme=scheme)
    theirs = await AsyncClient().post(
        PATH,
        data=body,
        content_type=headers.get("Content-Type", ""),
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
        secure=scheme == "https",
    )
    assert ours.status == theirs.status_code
    assert ours.body == theirs.content
    for name in COMPARED:
        assert ours.headers.get(name) == theirs.headers.get(name), name
    return ours, theirs


KEY = {"X-Internal-Auth": INTERNAL_API_KEY, "X-Request-ID": "rid-endpoint-1"}
JSON = {**KEY, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "application/json", "X-Request-ID": "r1"}, b"{}", 401, "unauthorized"),
        ({**KEY, "X-Internal-Auth": "wrong"}, b"{}", 401, "unauthorized"),
        ({**JSON, "Host": "evil.example.com"}, b"{}", 400, "bad_request"),
        ({**KEY, "Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        (JSON, b"{not json", 422, "invalid_request"),
        (JSON, b'{"session_id": "s", "content": "   "}', 422, "invalid_request"),
        (JSON, b'{"session_id": "s", "content": "a\\u0000b"}', 422, "invalid_request"),
        (JSON, b'{"session_id": "s", "type": "tool_result"}', 422, "invalid_request"),
    ],
)
async def test_a_refused_request_gets_djangos_exact_answer(
    headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    ours, _ = await compare(headers, body)
    assert ours.status == status
    assert orjson.loads(ours.body)["code"] == code


async def test_content_over_the_limit_is_413_as_in_django(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_MESSAGE_CHARS = 5
    ours, _ = await compare(JSON, b'{"session_id": "s", "content": "123456"}')
    assert ours.status == 413


async def test_cors_headers_as_the_middleware_sets_them(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    ours, _ = await compare({**JSON, "Origin": "https://ide.example.com"}, b"{}")
    assert ours.headers["access-control-allow-origin"] == "https://ide.example.com"
    other, _ = await compare({**JSON, "Origin": "https://evil.example.com"}, b"{}")
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"


async def test_hsts_only_over_https(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    secure, _ = await compare(JSON, b"{}", scheme="https")
    assert secure.headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
    plain, _ = await compare(JSON, b"{}")
    assert "strict-transport-security" not in plain.headers


async def test_https_from_the_trusted_proxy_header(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 60
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    ours, _ = await compare({**JSON, "X-Forwarded-Proto": "https"}, b"{}")
    assert ours.headers["strict-transport-security"] == "max-age=60"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", PATH), ("OPTIONS", PATH), ("POST", "/agent/sessions")]
)
async def test_other_requests_go_to_django(method: str, path: str) -> None:
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    answer = await call_endpoint(StreamEndpoint(inner), JSON, b"{}", method=method, path=path)
    assert (answer.status, seen) == (204, [(method, path)])


@pytest.mark.parametrize("setting", ["SECURE_SSL_REDIRECT", "USE_X_FORWARDED_HOST"])
async def test_settings_it_does_not_reproduce_send_everything_to_django(
    settings, setting: str
) -> None:  # type: ignore[no-untyped-def]
    setattr(settings, setting, True)
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call_endpoint(StreamEndpoint(inner), JSON, b"{}")
    assert seen == [PATH]


async def test_a_client_gone_before_its_body_gets_no_answer() -> None:
    answer = await call_endpoint(StreamEndpoint(passed_on), JSON, None)
    assert (answer.status, answer.headers, answer.body) == (0, {}, b"")


async def test_an_origin_that_is_not_utf8_is_just_not_allowed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    raw = [(b"host", b"testserver"), (b"origin", b"https://\xff.example.com")]
    answer = await call_endpoint(StreamEndpoint(passed_on), raw, b"{}")
    assert answer.status == 401
    assert "access-control-allow-origin" not in answer.headers
