"""Service-level views: health, metrics, the OpenAPI document and the JSON fallbacks."""

from functools import cache

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from agent_runtime import metrics
from agent_runtime.errors import (
    AgentRuntimeError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    error_response,
)
from agent_runtime.health import HealthBody, database_ping
from agent_runtime.openapi import openapi_document
from streaming.runs.broker import get_run_broker


async def health(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed()
    ok = await sync_to_async(database_ping)()
    broker_ok = await get_run_broker().available()
    body = HealthBody(
        status="healthy" if ok else "unhealthy",
        version=settings.VERSION,
        database="ok" if ok else "unavailable",
        broker="ok" if broker_ok else "unavailable",
    )
    return JsonResponse(body.model_dump(), status=200 if ok else 503)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; behind X-Internal-Auth like the API."""
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed()
    # Multiprocess mode reads one file per worker and metric: off the event loop.
    body, content_type = await sync_to_async(metrics.exposition, thread_sensitive=False)()
    return HttpResponse(body, content_type=content_type)


@cache
def _openapi_bytes() -> bytes:
    return orjson.dumps(openapi_document())


async def openapi(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 document, generated from the models once per process; public."""
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed()
    return HttpResponse(_openapi_bytes(), content_type="application/json")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400`` (e.g. a Host not in ALLOWED_HOSTS); sync, like every error handler."""
    return error_response(BadRequest())


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404`` (an ``Http404`` raised by a view, e.g. in the admin). Django calls error
    handlers synchronously, so it must not be a coroutine function like ``not_found``."""
    return error_response(NotFound(f"No such path: {request.path}"))


async def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """The catch-all route for unknown paths: the same body as ``page_not_found``."""
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(AgentRuntimeError())
