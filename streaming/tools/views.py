"""GET /agent/tools: what the agent can do, for the IDE to show."""

from django.http import HttpRequest, HttpResponse

from agent_runtime.errors import MethodNotAllowed
from streaming.tools.listing import tool_list
from streaming.tools.registry import get_tool_registry


async def tools_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed()
    body = await tool_list(registry=get_tool_registry())
    return HttpResponse(body.model_dump_json(), content_type="application/json")
