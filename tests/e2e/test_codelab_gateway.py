"""The Codelab gateway's envelope and event shape, played by a gateway and IDE stand-in."""

import re

import pytest

from sessions.models import Message
from streaming.protocol import SESSION_ID_PATTERN
from tests.e2e.codelab_gateway import CodelabIDE, answer
from tests.servers import DevLLM, Runtime

pytestmark = pytest.mark.e2e


@pytest.fixture
def ide(runtime: Runtime) -> CodelabIDE:
    return CodelabIDE(runtime.client, session_id="codelab-1")


def test_a_plain_message(ide: CodelabIDE) -> None:
    events = ide.say("Hello there")
    assert "You said: 'Hello there'" in answer(events)
    assert events[-1]["type"] == "assistant_message"
    assert events[-1]["is_final"] is True
    assert all(e["is_final"] is False for e in events[:-1])
    assert {e["type"] for e in events} == {"assistant_message"}


def test_a_second_message_in_the_same_session_sees_the_history(ide: CodelabIDE) -> None:
    ide.say("first")
    events = ide.say("second")
    assert "I can see 3 messages" in answer(events)
    stored = Message.objects.filter(session__session_id="codelab-1").values_list("role", flat=True)
    assert list(stored) == ["user", "assistant", "user", "assistant"]


def test_a_new_session_is_announced_by_session_info(runtime: Runtime) -> None:
    ide = CodelabIDE(runtime.client)
    events = ide.say("who am I")
    assert events[0]["type"] == "session_info"
    new_id = events[0]["session_id"]
    assert re.fullmatch(SESSION_ID_PATTERN, new_id)
    assert ide.session_id == new_id
    second = ide.say("again")
    assert second[0]["type"] == "assistant_message"  # no second session_info
    assert "I can see 3 messages" in answer(second)
    listed = runtime.client.get(f"/agent/sessions/{new_id}/messages").json()["messages"]
    assert [m["role"] for m in listed] == ["user", "assistant", "user", "assistant"]
    other = CodelabIDE(runtime.client).say("someone else")[0]["session_id"]
    assert other != new_id


def test_a_server_tool_is_never_sent_to_the_ide_as_a_tool_call(ide: CodelabIDE) -> None:
    events = ide.say('/tool calculator {"expr": "6*7"}')
    assert not [e for e in events if e["type"] == "tool_call"]
    statuses = [e for e in events if e["type"] == "status"]
    assert [s["metadata"]["tool_name"] for s in statuses] == ["calculator", "calculator"]
    assert statuses[0]["metadata"]["executor"] == "server"
    assert statuses[1]["metadata"]["result"] == 42
    assert "returned 42" in answer(events)


def test_a_client_tool_round_trip(ide: CodelabIDE) -> None:
    ide.tools["read_file"] = lambda arguments: {"content": f"contents of {arguments['path']}"}
    events = ide.say('/tool read_file {"path": "src/main.py"}')
    [call] = [e for e in events if e["type"] == "tool_call"]
    assert call == {
        "type": "tool_call",
        "call_id": call["call_id"],
        "tool_name": "read_file",
        "arguments": {"path": "src/main.py"},
        "requires_approval": False,
        "is_final": True,
    }
    assert "contents of src/main.py" in answer(events)
    assert events[-1]["type"] == "assistant_message"
    assert events[-1]["is_final"] is True


def test_two_client_calls_end_with_the_last_one_final(ide: CodelabIDE, devllm: DevLLM) -> None:
    devllm.script(
        {
            "tool_calls": [
                {"name": "read_file", "arguments": {"path": "a"}, "id": "c1"},
                {"name": "read_file", "arguments": {"path": "b"}, "id": "c2"},
            ]
        }
    )
    response = ide.post({"type": "user_message", "content": "read both", "role": "user"})
    assert response.status_code == 200
    calls = [e for e in ide.received if e["type"] == "tool_call"]
    assert [(c["call_id"], c["is_final"]) for c in calls] == [("c1", False), ("c2", True)]
    assert ide.received[-1] == calls[-1]  # no separate marker after the calls


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (
            {"type": "switch_agent", "agent_type": "coder", "content": "write it"},
            "agent profiles",
        ),
        (
            {"type": "hitl_decision", "call_id": "c1", "decision": "approve"},
            "tool approval",
        ),
    ],
)
def test_unsupported_messages_are_refused_clearly(
    ide: CodelabIDE, message: dict, detail: str
) -> None:
    response = ide.post(message)
    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_message_type"
    assert detail in response.json()["detail"]
    assert not Message.objects.exists()


def test_an_upstream_error_shows_the_ide_a_readable_content(
    ide: CodelabIDE, devllm: DevLLM
) -> None:
    devllm.script({"fault": {"kind": "status", "status": 400}})
    response = ide.post({"type": "user_message", "content": "hi", "role": "user"})
    assert response.status_code == 200
    [error] = [e for e in ide.received if e["type"] == "error"]
    assert error["is_final"] is True
    assert error["content"] == error["error"]
    assert error["metadata"]["code"] == "upstream_http_error"
    assert ide.printed == [error["content"]]


def test_an_invalid_envelope_is_a_422_naming_the_field(ide: CodelabIDE) -> None:
    response = ide.post({"type": "user_message", "content": "   ", "role": "user"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "message.content"
    response = ide.post({"type": "plan_decision"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "message.type"
