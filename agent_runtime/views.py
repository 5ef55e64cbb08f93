"""Service-level views: health and the JSON fallbacks for unknown paths and crashes."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse

from agent_runtime.errors import AgentRuntimeError, MethodNotAllowed, NotFound, error_response
from agent_runtime.health import database_ping


async def health(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed()
    ok = await sync_to_async(database_ping)()
    return JsonResponse(
        {
            "status": "healthy" if ok else "unhealthy",
            "service": "agent-runtime",
            "version": settings.VERSION,
            "database": "ok" if ok else "unavailable",
        },
        status=200 if ok else 503,
    )


async def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(NotFound(f"No such path: {request.path}"))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404`` (an ``Http404`` raised by a view, e.g. in the admin). Django calls error
    handlers synchronously, so it must not be a coroutine function like ``not_found``."""
    return error_response(NotFound(f"No such path: {request.path}"))


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(AgentRuntimeError())
