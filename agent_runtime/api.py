"""The HTTP API, declared once: every endpoint's path, method, models and error statuses.

``agent_runtime.openapi`` generates ``/openapi.json`` from :data:`ENDPOINTS`, and the error
middleware answers a 405 with the ``Allow`` header from it. Adding an endpoint is one
:class:`Endpoint` entry here plus its URL route; an entry whose path has no route yet is left
out of the document until the route exists, so an endpoint can be declared before it is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agent_runtime.health import HealthBody
from sessions.schemas import (
    MessageListOut,
    MessageListQuery,
    SessionDetailOut,
    SessionListOut,
    SessionListQuery,
)
from streaming.event_metadata import StreamEventMetadata
from streaming.protocol import (
    CancelResult,
    ResumeQuery,
    SessionId,
    StreamEvent,
    StreamRequest,
)
from streaming.protocols.ag_ui import AgUiEvent
from streaming.protocols.ag_ui_input import RunInput
from streaming.protocols.ai_sdk import UIMessageChunk
from streaming.protocols.ai_sdk_request import ChatRequest
from streaming.tools.listing import ToolListOut


@dataclass(frozen=True, slots=True)
class Body:
    """A response body: a model (or any type pydantic can describe), or ``None`` for none."""

    description: str
    model: Any = None
    media_type: str = "application/json"
    #: The component name when ``model`` is not a class (a union, an ``Annotated`` type).
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str  # lower case, as in OpenAPI
    path: str  # OpenAPI template: "/agent/sessions/{session_id}"
    operation_id: str
    summary: str
    #: Success (and other non-error) responses by status.
    responses: dict[int, Body]
    #: Statuses answered with the error body (401 is added for every non-public endpoint).
    errors: tuple[int, ...] = ()
    #: The JSON request body's type, if any.
    request: Any = None
    request_name: str | None = None
    #: A model whose fields are the path parameters, and one whose fields are the query ones.
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Served without X-Internal-Auth.
    public: bool = False
    description: str = ""
    tags: tuple[str, ...] = field(default=())


class SessionPath(BaseModel):
    session_id: SessionId


SSE_DESCRIPTION = (
    "Server-Sent Events. Each event is `id: <n>` (unique within the session, increasing) and "
    "`data: <json>` where the JSON is a `StreamEvent` (its `metadata` is one of the "
    "`StreamEventMetadata` shapes), then a blank line; comment lines (`: ping`) may keep the "
    "connection open. The stream always ends with `data: [DONE]`."
)

AI_SDK_DESCRIPTION = (
    "The Vercel AI SDK's UI message stream (header `x-vercel-ai-ui-message-stream: v1`): "
    "`data: <chunk json>` frames, then `data: [DONE]`. See docs/api.md."
)
AG_UI_DESCRIPTION = "AG-UI events as `data: <event json>` frames. See docs/api.md."

ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "get",
        "/health",
        "health",
        "Liveness, with a database round trip",
        responses={
            200: Body("Healthy.", HealthBody),
            503: Body("The database cannot be reached.", HealthBody),
        },
        public=True,
        tags=("service",),
    ),
    Endpoint(
        "get",
        "/metrics",
        "metrics",
        "Prometheus metrics (all workers)",
        responses={200: Body("Prometheus text format.", str, media_type="text/plain")},
        tags=("service",),
    ),
    Endpoint(
        "get",
        "/openapi.json",
        "openapi",
        "This document",
        responses={200: Body("OpenAPI 3.1.", dict[str, Any])},
        public=True,
        tags=("service",),
    ),
    Endpoint(
        "post",
        "/agent/message/stream",
        "messageStream",
        "Send a message; the answer streams back as Server-Sent Events",
        request=StreamRequest,
        request_name="StreamRequest",
        responses={
            200: Body(SSE_DESCRIPTION, StreamEvent, media_type="text/event-stream"),
        },
        # 404/409 for a tool_result or tool_approval: unknown call_id, or one already answered.
        errors=(404, 408, 409, 413, 415, 422, 503),
        tags=("conversation",),
    ),
    Endpoint(
        "post",
        "/agent/ai-sdk/chat",
        "aiSdkChat",
        "Chat in the Vercel AI SDK's UI message stream protocol (useChat)",
        request=ChatRequest,
        responses={200: Body(AI_SDK_DESCRIPTION, UIMessageChunk, media_type="text/event-stream")},
        errors=(404, 408, 409, 413, 415, 422, 503),
        tags=("conversation",),
    ),
    Endpoint(
        "get",
        "/agent/ai-sdk/chat/{session_id}/stream",
        "aiSdkChatResume",
        "Resume the chat's running stream (useChat's resume)",
        path_params=SessionPath,
        responses={
            200: Body(
                "The running turn's stream from its start. " + AI_SDK_DESCRIPTION,
                UIMessageChunk,
                media_type="text/event-stream",
            ),
            204: Body("No turn runs: nothing to resume."),
        },
        errors=(404, 503),  # 404: a path segment that is not a session id
        tags=("conversation",),
    ),
    Endpoint(
        "post",
        "/agent/ag-ui",
        "agUiRun",
        "Run the agent in the AG-UI protocol (HttpAgent, CopilotKit)",
        request=RunInput,
        responses={200: Body(AG_UI_DESCRIPTION, AgUiEvent, media_type="text/event-stream")},
        errors=(404, 408, 409, 413, 415, 422, 503),
        tags=("conversation",),
    ),
    Endpoint(
        "get",
        "/agent/tools",
        "listTools",
        "Every tool the model may be offered, and the state of each MCP server",
        description="Built-in tools, client-side tools and the tools of the MCP servers in "
        "`AGENT_RUNTIME__MCP_SERVERS` (named `<server>__<tool>`). The first request of a worker "
        "waits until each server has been tried once; a server that cannot start is listed with "
        "`state: failed` and its `error`.",
        responses={200: Body("The tools.", ToolListOut)},
        tags=("tools",),
    ),
    Endpoint(
        "get",
        "/agent/sessions",
        "listSessions",
        "Sessions, most recently active first, a page at a time",
        query=SessionListQuery,
        responses={200: Body("A page of sessions.", SessionListOut)},
        errors=(422, 503),
        tags=("sessions",),
    ),
    Endpoint(
        "get",
        "/agent/sessions/{session_id}",
        "getSession",
        "One session's metadata",
        path_params=SessionPath,
        responses={200: Body("The session, and its running turn.", SessionDetailOut)},
        errors=(404, 503),
        tags=("sessions",),
    ),
    Endpoint(
        "delete",
        "/agent/sessions/{session_id}",
        "deleteSession",
        "Delete a session and all its messages",
        path_params=SessionPath,
        responses={204: Body("Deleted.")},
        errors=(404, 503),
        tags=("sessions",),
    ),
    Endpoint(
        "get",
        "/agent/sessions/{session_id}/messages",
        "listMessages",
        "A session's history in order, a page at a time",
        path_params=SessionPath,
        query=MessageListQuery,
        responses={200: Body("A page of messages.", MessageListOut)},
        errors=(404, 422, 503),
        tags=("sessions",),
    ),
    Endpoint(
        "post",
        "/agent/sessions/{session_id}/cancel",
        "cancelTurn",
        "Stop the turn running in this session, on whichever worker runs it",
        path_params=SessionPath,
        responses={
            200: Body("Asked to stop; that turn keeps its partial answer.", CancelResult),
        },
        errors=(404, 503),
        tags=("sessions",),
    ),
    Endpoint(
        "get",
        "/agent/sessions/{session_id}/stream",
        "resumeStream",
        "Follow the session's running turn from the last event seen (Last-Event-ID or after)",
        path_params=SessionPath,
        query=ResumeQuery,
        responses={
            200: Body(SSE_DESCRIPTION, StreamEvent, media_type="text/event-stream"),
            204: Body("Nothing to resume: no turn runs or ended recently, or all was seen."),
        },
        errors=(404, 422, 503),
        tags=("conversation",),
    ),
]

#: Components that no endpoint references directly but clients need (the SSE payloads).
EXTRA_COMPONENTS: dict[str, Any] = {
    "StreamEventMetadata": StreamEventMetadata,
}

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def path_template(route: str) -> str:
    """A Django route (``agent/sessions/<str:session_id>``) as an OpenAPI path template."""
    return "/" + _CONVERTER.sub(r"{\1}", route.lstrip("^").rstrip("$"))


def allowed_methods(route: str) -> list[str]:
    """The methods declared for a Django route, for the ``Allow`` header of a 405."""
    template = path_template(route)
    return sorted({e.method.upper() for e in ENDPOINTS if e.path == template})
