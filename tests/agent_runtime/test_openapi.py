"""The OpenAPI document: valid 3.1, generated from the models, in step with the URLconf."""

import pytest
import schemathesis
from django.test import AsyncClient
from django.urls import get_resolver, path
from pydantic import TypeAdapter

from agent_runtime import urls as runtime_urls
from agent_runtime.api import ENDPOINTS, Body, Endpoint, SessionPath, allowed_methods, path_template
from agent_runtime.errors import ErrorBody, client_error_codes
from agent_runtime.openapi import ERROR_RESPONSE_NAMES, REF, is_routed, openapi_document
from streaming.protocol import StreamEvent, StreamRequest, UserMessageRequest
from tests.settings import INTERNAL_API_KEY


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema


def test_schemas_are_pydantics_own() -> None:
    schemas = openapi_document()["components"]["schemas"]
    event = TypeAdapter(StreamEvent).json_schema(ref_template=REF, mode="serialization")
    assert schemas["StreamEvent"] == event
    request = TypeAdapter(StreamRequest).json_schema(ref_template=REF)
    request.pop("$defs")
    assert schemas["StreamRequest"] == request
    error = ErrorBody.model_json_schema(ref_template=REF, mode="serialization")
    assert schemas["FieldError"] == error.pop("$defs")["FieldError"]
    assert schemas["ErrorBody"] == error
    # The same, written out by hand: what a client of the document relies on.
    assert schemas["StreamRequest"]["oneOf"] == [
        {"$ref": "#/components/schemas/UserMessageRequest"},
        {"$ref": "#/components/schemas/ToolResultRequest"},
        {"$ref": "#/components/schemas/ToolApprovalRequest"},
        {"$ref": "#/components/schemas/RegenerateRequest"},
    ]
    assert schemas["ErrorBody"]["required"] == ["detail", "code"]
    assert schemas["ErrorBody"]["properties"]["code"]["type"] == "string"
    assert schemas["ErrorBody"]["properties"]["errors"]["anyOf"] == [
        {"items": {"$ref": "#/components/schemas/FieldError"}, "type": "array"},
        {"type": "null"},
    ]
    assert schemas["FieldError"]["required"] == ["field", "message", "type"]
    assert set(schemas) >= {
        "UserMessageRequest",
        "ToolResultRequest",
        "ToolApprovalRequest",
        "StreamEventMetadata",
        "AssistantFinalMetadata",
        "ToolCallMetadata",
        "PendingToolCallsMetadata",
        "ToolResultMetadata",
        "ErrorEventMetadata",
        "FieldError",
        "HealthBody",
    }


def test_content_limits_come_from_the_models_and_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_MESSAGE_CHARS = 77
    content = openapi_document()["components"]["schemas"]["UserMessageRequest"]["properties"][
        "content"
    ]
    assert content["maxLength"] == 77
    assert content["pattern"] == r"\S"  # not blank
    assert UserMessageRequest.model_fields["content"].is_required()


def test_every_error_status_lists_its_codes_from_the_error_classes() -> None:
    responses = openapi_document()["components"]["responses"]
    codes = {
        name: response["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
        for name, response in responses.items()
    }
    assert codes["Unauthorized"] == ["unauthorized"]
    assert {"conflict", "session_busy"} <= set(codes["Conflict"])
    assert codes["PayloadTooLarge"] == ["payload_too_large"]
    assert codes["RequestTimeout"] == ["request_timeout"]
    assert codes["InvalidRequest"] == ["invalid_request", "unsupported_message_type"]
    assert codes["NotFound"] == ["not_found", "tool_call_not_found"]
    assert set(codes) == {
        "BadRequest",
        "Unauthorized",
        "NotFound",
        "MethodNotAllowed",
        "RequestTimeout",
        "Conflict",
        "PayloadTooLarge",
        "UnsupportedMediaType",
        "InvalidRequest",
        "InternalError",
        "Unavailable",
    }
    assert codes == {
        ERROR_RESPONSE_NAMES[status]: values for status, values in client_error_codes().items()
    }
    # Upstream failures reach a client as SSE error events, never as statuses.
    assert not any(code.startswith("upstream") for values in codes.values() for code in values)


def test_the_stream_operation() -> None:
    operation = openapi_document()["paths"]["/agent/message/stream"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StreamRequest"
    }
    assert set(operation["responses"]) == {
        "200",
        "401",
        "404",
        "408",
        "409",
        "413",
        "415",
        "422",
        "503",
    }
    event = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    done, json_data = event["properties"]["data"]["oneOf"]
    assert done == {"const": "[DONE]"}
    assert json_data["contentMediaType"] == "application/json"
    assert json_data["contentSchema"] == {"$ref": "#/components/schemas/StreamEvent"}
    assert "security" not in operation  # the document's default: X-Internal-Auth


def test_public_operations_need_no_key() -> None:
    paths = openapi_document()["paths"]
    assert paths["/health"]["get"]["security"] == []
    assert paths["/openapi.json"]["get"]["security"] == []
    assert "security" not in paths["/metrics"]["get"]
    assert "401" in paths["/metrics"]["get"]["responses"]


def _routes(patterns, prefix: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            if not route.startswith("admin/"):
                routes += _routes(pattern.url_patterns, route)
        elif getattr(pattern, "name", None) != "not-found":
            routes.append(route)
    return routes


def test_every_route_is_declared_in_the_registry() -> None:
    declared = {e.path for e in ENDPOINTS}
    undeclared = [
        r for r in _routes(get_resolver().url_patterns) if path_template(r) not in declared
    ]
    assert undeclared == []


def test_endpoints_without_a_route_are_left_out_until_routed(settings) -> None:  # type: ignore[no-untyped-def]
    planned = Endpoint(
        "get",
        "/agent/sessions/{session_id}/summary",
        "sessionSummary",
        "Not built yet",
        path_params=SessionPath,
        responses={200: Body("A summary.", dict[str, str])},
        errors=(404,),
    )
    assert not is_routed(planned)
    assert planned.path not in openapi_document([*ENDPOINTS, planned])["paths"]

    class WithSummary:
        urlpatterns = [
            path("agent/sessions/<str:session_id>/summary", lambda request: None),
            *runtime_urls.urlpatterns,
        ]

    settings.ROOT_URLCONF = WithSummary
    operation = openapi_document([*ENDPOINTS, planned])["paths"][planned.path]["get"]
    assert operation["parameters"] == [
        {
            "name": "session_id",
            "in": "path",
            "required": True,
            "schema": {
                "maxLength": 128,
                "minLength": 1,
                "pattern": "^[A-Za-z0-9\\-_.:@]{1,128}$",
                "title": "Session Id",
                "type": "string",
            },
        }
    ]
    assert set(operation["responses"]) == {"200", "401", "404"}


def test_the_cancel_operation() -> None:
    operation = openapi_document()["paths"]["/agent/sessions/{session_id}/cancel"]["post"]
    assert set(operation["responses"]) == {"200", "401", "404", "503"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CancelResult"
    }


def test_django_routes_become_openapi_paths() -> None:
    assert path_template("agent/sessions/<str:session_id>/messages") == (
        "/agent/sessions/{session_id}/messages"
    )
    assert allowed_methods("agent/message/stream") == ["POST"]
    assert allowed_methods("health") == ["GET"]


@pytest.mark.django_db
async def test_served_without_a_key_as_json() -> None:
    response = await AsyncClient().get("/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["paths"].keys() == openapi_document()["paths"].keys()


async def test_metrics_need_the_key() -> None:
    assert (await AsyncClient().get("/metrics")).status_code == 401
    response = await AsyncClient().get("/metrics", headers={"X-Internal-Auth": INTERNAL_API_KEY})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"agent_runtime_http_requests_total" in response.content


def test_the_sessions_operations() -> None:
    paths = openapi_document()["paths"]
    listing = paths["/agent/sessions"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["limit", "cursor"]
    cursor = listing["parameters"][1]
    # An opaque string, absent on the first page; never null.
    assert cursor["schema"]["type"] == "string"
    assert cursor["required"] is False
    assert set(listing["responses"]) == {"200", "401", "422", "503"}
    assert set(paths["/agent/sessions/{session_id}"]) == {"get", "delete"}
    assert "content" not in paths["/agent/sessions/{session_id}"]["delete"]["responses"]["204"]
    messages = paths["/agent/sessions/{session_id}/messages"]["get"]
    assert [p["name"] for p in messages["parameters"]] == ["session_id", "after", "limit"]
    assert allowed_methods("agent/sessions/<session_id:session_id>") == ["DELETE", "GET"]


def test_the_tools_operation() -> None:
    document = openapi_document()
    operation = document["paths"]["/agent/tools"]["get"]
    assert "security" not in operation  # the key is required
    assert set(operation["responses"]) == {"200", "401"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ToolListOut"
    }
    tool = document["components"]["schemas"]["ToolOut"]
    assert set(tool["required"]) == {
        "name",
        "description",
        "parameters",
        "executor",
        "requires_approval",
    }
    assert "mcp:<server>" in tool["properties"]["executor"]["description"]
    assert allowed_methods("agent/tools") == ["GET"]
