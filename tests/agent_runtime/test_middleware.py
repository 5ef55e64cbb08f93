"""The request middleware through Django's async test client (no server process)."""

import logging
import threading

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, AsyncRequestFactory
from django.utils.deprecation import MiddlewareMixin

from agent_runtime.middleware import OnEventLoop
from tests.settings import INTERNAL_API_KEY

KEY = {"X-Internal-Auth": INTERNAL_API_KEY}
STREAM = "/agent/message/stream"


async def test_a_plain_incoming_request_id_is_echoed() -> None:
    response = await AsyncClient().post("/health", headers={"X-Request-ID": "client-id-1"})
    assert response["X-Request-ID"] == "client-id-1"


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 200])
async def test_a_missing_or_unfit_request_id_is_replaced(sent: str | None) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    response = await AsyncClient().post("/health", headers=headers)
    assert len(response["X-Request-ID"]) == 32
    assert response["X-Request-ID"] != sent


async def test_errors_from_the_key_check_carry_the_request_id_too() -> None:
    response = await AsyncClient().post(STREAM, headers={"X-Request-ID": "rid-401"})
    assert response.status_code == 401
    assert response["X-Request-ID"] == "rid-401"


async def test_each_request_is_logged_once_with_its_id_and_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="agent_runtime.requests"):
        await AsyncClient().get("/no/such/path", headers={**KEY, "X-Request-ID": "rid-404"})
    [record] = [r for r in caplog.records if r.name == "agent_runtime.requests"]
    assert record.levelno == logging.INFO
    assert (record.request_id, record.method, record.path, record.status) == (
        "rid-404",
        "GET",
        "/no/such/path",
        404,
    )
    assert record.duration_ms >= 0


async def test_probes_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="agent_runtime.requests"):
        await AsyncClient().post("/health")
    [record] = [r for r in caplog.records if r.name == "agent_runtime.requests"]
    assert record.levelno == logging.DEBUG


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("post", "/health", "GET"), ("get", STREAM, "POST"), ("delete", "/openapi.json", "GET")],
)
async def test_405_lists_the_declared_methods_in_allow(method: str, path: str, allow: str) -> None:
    response = await getattr(AsyncClient(), method)(path, headers=KEY)
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert response.json() == {"detail": "Method not allowed.", "code": "method_not_allowed"}


@pytest.mark.django_db(transaction=True)
async def test_api_posts_need_no_csrf_token() -> None:
    # Authenticated by header, not by cookie: a POST to an API view with no CSRF token or
    # cookie reaches the view (404 for an unknown session), never a CSRF 403 page.
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/agent/sessions/nobody/cancel", headers=KEY
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_the_admin_keeps_its_csrf_protection() -> None:
    response = await AsyncClient(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "a", "password": "b"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/health", STREAM, "/no/such/path"])
async def test_an_unknown_host_is_400_json(settings, debug: bool, path: str) -> None:  # type: ignore[no-untyped-def]
    # With DEBUG on, Django answers a bad Host with its HTML debug page, not handler400.
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = ["runtime.example.com"]
    response = await AsyncClient().get(path, headers={"Host": "evil.example.com", **KEY})
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request.", "code": "bad_request"}


async def test_no_cors_headers_unless_configured() -> None:
    response = await AsyncClient().options(
        STREAM,
        headers={"Origin": "https://ide.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 401
    assert "Access-Control-Allow-Origin" not in response


async def test_cors_preflight_for_a_configured_origin(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    response = await AsyncClient().options(
        STREAM,
        headers={
            "Origin": "https://ide.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-internal-auth",
        },
    )
    assert response.status_code == 204  # answered without the key: a preflight has none
    assert response["Access-Control-Allow-Origin"] == "https://ide.example.com"
    assert "X-Internal-Auth" in response["Access-Control-Allow-Headers"]
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Origin" in response["Vary"]


async def test_cors_headers_on_answers_to_a_configured_origin_only(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://ide.example.com"]
    client = AsyncClient()
    allowed = await client.get(
        "/no/such/path", headers={**KEY, "Origin": "https://ide.example.com"}
    )
    assert allowed.status_code == 404
    assert allowed["Access-Control-Allow-Origin"] == "https://ide.example.com"
    assert allowed["Access-Control-Expose-Headers"] == "X-Request-ID"
    other = await client.get("/no/such/path", headers={**KEY, "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other
    preflight = await AsyncClient().options(
        STREAM,
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 401


async def test_ssl_redirect_spares_the_probe_and_the_scraper(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_SSL_REDIRECT = True
    client = AsyncClient()
    assert (await client.post("/health")).status_code == 405  # answered over plain HTTP
    assert (await client.get("/metrics")).status_code == 401
    redirected = await client.post(STREAM, headers=KEY)
    assert redirected.status_code == 301
    assert redirected["Location"].startswith("https://")


@pytest.mark.django_db
async def test_the_admin_is_served_under_admin_only() -> None:
    client = AsyncClient()
    assert (await client.get("/admin/login/")).status_code == 200  # its own login, no key
    for path in ("/admin", "/administration/", "/static-admin/login/"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "unauthorized"
    response = await client.get("/admin", headers=KEY)
    assert response.status_code == 404


class ThreadRecorder(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> None:
        request.hook_threads = [threading.get_ident()]  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        request.hook_threads.append(threading.get_ident())  # type: ignore[attr-defined]
        return response


class RecorderOnTheLoop(OnEventLoop):
    wrapped = ThreadRecorder


async def test_django_middleware_hooks_run_on_the_event_loop_thread() -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    request = AsyncRequestFactory().get("/health")
    await RecorderOnTheLoop(view)(request)
    assert request.hook_threads == [threading.get_ident()] * 2  # type: ignore[attr-defined]
    assert RecorderOnTheLoop.stands_for() == [f"{__name__}.ThreadRecorder"]
