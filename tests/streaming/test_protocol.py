import json

import pytest
from pydantic import ValidationError

from streaming.protocol import (
    StreamEvent,
    ToolResultRequest,
    UserMessageRequest,
    stream_request_adapter,
)
from streaming.protocols.seed import event_frame, token_frame


@pytest.mark.parametrize(
    "token",
    [
        "Hello, ",
        "",
        'quote " and \\ backslash',
        "line\nbreak",
        "emoji 🙂 ünïcödé",
        "\u2028",
        "</script>",
    ],
)
def test_token_frame_is_the_validated_event_frame(token: str) -> None:
    event = StreamEvent(token=token, is_final=False, type="assistant_message")
    assert token_frame(7, token) == event_frame(7, event)
    head, data = token_frame(7, token).decode().split("\n")[:2]
    assert head == "id: 7"
    assert json.loads(data.removeprefix("data: ")) == {
        "token": token,
        "is_final": False,
        "type": "assistant_message",
    }


def test_event_metadata_is_omitted_when_absent() -> None:
    assert StreamEvent(token="", is_final=True, type="error").to_json() == (
        b'{"token":"","is_final":true,"type":"error"}'
    )


def test_event_type_is_validated() -> None:
    with pytest.raises(ValidationError):
        StreamEvent(token="", is_final=True, type="surprise")  # type: ignore[arg-type]


def test_user_message_defaults() -> None:
    request = stream_request_adapter.validate_python({"session_id": "a:b@c.d-e_f", "content": "hi"})
    assert isinstance(request, UserMessageRequest)
    assert (request.role, request.type, request.message_id) == ("user", "user_message", None)


def test_tool_result_is_its_own_type() -> None:
    request = stream_request_adapter.validate_python(
        {"session_id": "s", "type": "tool_result", "call_id": "c1", "result": {"lines": 3}}
    )
    assert isinstance(request, ToolResultRequest)
    assert request.result == {"lines": 3}


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "s", "type": "tool_result", "call_id": "c", "result": 1, "error": "no"},
        {"session_id": "s", "content": "\n\t "},
        {"session_id": "s/t", "content": "hi"},
        {"session_id": "s", "content": "hi", "role": "system"},
    ],
)
def test_invalid_requests(body: dict) -> None:
    with pytest.raises(ValidationError):
        stream_request_adapter.validate_python(body)


def test_regenerate_request_asks_the_engine_to_answer_again() -> None:
    from streaming.engine.start import Regenerate
    from streaming.protocol import RegenerateRequest
    from streaming.protocols.seed import seed_turn_input

    request = stream_request_adapter.validate_python({"session_id": "s1", "type": "regenerate"})
    assert isinstance(request, RegenerateRequest)
    assert seed_turn_input(request) == Regenerate("s1")
