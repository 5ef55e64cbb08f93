"""``AdminOnlyMiddleware``: the admin's middleware run for the admin's paths only."""

import pytest
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory
from django.utils.deprecation import MiddlewareMixin

from agent_runtime.admin_only import AdminOnlyMiddleware


def scoped() -> tuple[AdminOnlyMiddleware, list[HttpRequest]]:
    seen: list[HttpRequest] = []

    async def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse("ok")

    return AdminOnlyMiddleware(view), seen


async def test_api_requests_skip_the_admin_middleware() -> None:
    middleware, seen = scoped()
    await middleware(AsyncRequestFactory().get("/agent/sessions"))
    [request] = seen
    assert not hasattr(request, "session")
    assert not hasattr(request, "user")
    with pytest.raises(messages.MessageFailure):
        messages.info(request, "no message storage outside the admin")


async def test_admin_requests_get_session_user_and_messages() -> None:
    middleware, seen = scoped()
    await middleware(AsyncRequestFactory().get("/admin/login/"))
    [request] = seen
    assert hasattr(request, "session")
    assert hasattr(request, "user")
    messages.info(request, "stored")


async def test_csrf_is_checked_for_admin_views_only() -> None:
    middleware, _ = scoped()

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    admin_post = AsyncRequestFactory().post("/admin/login/", {"username": "a"})
    await middleware(admin_post)  # the chain's process_request reads the CSRF cookie
    refused = await middleware.process_view(admin_post, view, (), {})
    assert refused is not None
    assert refused.status_code == 403
    api_post = AsyncRequestFactory().post("/agent/sessions", {})
    assert await middleware.process_view(api_post, view, (), {}) is None


class WithExceptionHook(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        return None


def test_a_hook_that_would_not_run_is_refused_at_start_up(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_MIDDLEWARE = [f"{__name__}.WithExceptionHook"]
    with pytest.raises(ImproperlyConfigured, match="process_exception"):
        scoped()
