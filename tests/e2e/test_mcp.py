"""MCP tools over real HTTP: the runtime started with AGENT_RUNTIME__MCP_SERVERS, the
development LLM asking for MCP tools (``/tool <name> <json>``), real MCP servers."""

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.models import Message
from tests.servers import (
    DevLLM,
    Runtime,
    ServerProcess,
    child_pids,
    mcp_stdio_config,
    pid_running,
    start_mcp_http,
)
from tests.sse import Frame, post_stream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mcp_http(server_logs: Path) -> Iterator[ServerProcess]:
    server = start_mcp_http(server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-marks")


def servers_config(mcp_http: ServerProcess, mark_dir: Path) -> str:
    return json.dumps(
        {
            "mcpServers": {
                "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
                "docs": {"url": f"{mcp_http.url}/mcp", "timeout": 2},
                # The same server again, its calls gated by the user's approval.
                "gated": {
                    "url": f"{mcp_http.url}/mcp",
                    "allowed_tools": ["stats"],
                    "approval": "required",
                },
                "flaky": mcp_stdio_config(env={"MCP_TEST_MARK_DIR": str(mark_dir)}, timeout=120),
                "broken": {"command": "/nonexistent/mcp-server"},
            }
        }
    )


@pytest.fixture(scope="module")
def mcp_runtime(runtime_factory, mcp_http: ServerProcess, mark_dir: Path) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(mcp_servers=servers_config(mcp_http, mark_dir))


@pytest.fixture
def rt(mcp_runtime: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return mcp_runtime


def data(frames: list[Frame]) -> list:
    return [f.data for f in frames if f.data != "[DONE]"]


def ask(rt: Runtime, session_id: str, tool: str, arguments: dict) -> list:
    return data(
        post_stream(
            rt.client,
            {"session_id": session_id, "content": f"/tool {tool} {json.dumps(arguments)}"},
        )
    )


def test_an_mcp_tool_result_flows_into_the_answer_and_the_history(
    rt: Runtime, devllm: DevLLM
) -> None:
    events = ask(rt, "mcp-time", "time__get_current_time", {"timezone": "Europe/Paris"})
    call, result, *answer = events
    assert call["type"] == "tool_call"
    assert call["metadata"]["tool_name"] == "time__get_current_time"
    assert call["metadata"]["executor"] == "server"  # the wire says who runs it: the runtime
    assert result["type"] == "tool_result"
    value = result["metadata"]["result"]
    assert value["timezone"] == "Europe/Paris"
    text = "".join(e["token"] for e in answer if e["type"] == "assistant_message")
    assert json.dumps(value, separators=(",", ":")) in text  # the model read it back
    assert answer[-1]["is_final"] is True

    offered = devllm.requests()[0]["body"]["tools"]
    [schema] = [t for t in offered if t["function"]["name"] == "time__get_current_time"]
    assert schema["function"]["parameters"]["required"] == ["timezone"]
    assert "echo" in [t["function"]["name"] for t in offered]
    tool = Message.objects.get(session__session_id="mcp-time", role="tool")
    assert (tool.tool_name, json.loads(tool.content), tool.error_code) == (
        "time__get_current_time",
        value,
        "",
    )


def test_invalid_arguments_and_tool_errors_reach_the_model(rt: Runtime) -> None:
    invalid = ask(rt, "mcp-invalid", "time__get_current_time", {"zone": "UTC"})
    assert invalid[1]["metadata"]["error"].startswith("invalid arguments: arguments: 'timezone'")
    failed = ask(rt, "mcp-fail", "docs__fail", {"reason": "no such page"})
    assert "no such page" in failed[1]["metadata"]["error"]
    hung = ask(rt, "mcp-hang", "docs__hang", {"seconds": 60})
    assert hung[1]["metadata"]["error"] == "timed out after 2s"
    assert hung[-1]["is_final"] is True
    codes = {
        m.session.session_id: m.error_code
        for m in Message.objects.filter(role="tool").select_related("session")
    }
    assert codes == {
        "mcp-invalid": "invalid_arguments",
        "mcp-fail": "tool_error",
        "mcp-hang": "timeout",
    }


def test_get_agent_tools(rt: Runtime) -> None:
    assert rt.client.get("/agent/tools", headers={"X-Internal-Auth": "wrong"}).status_code == 401
    response = rt.client.get("/agent/tools")
    assert response.status_code == 200
    body = response.json()
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert tools["echo"]["executor"] == "server"
    assert tools["read_file"]["executor"] == "client"
    assert tools["echo"]["server_state"] is None
    time_tool = tools["time__get_current_time"]
    assert time_tool["executor"] == "mcp:time"
    assert time_tool["server_state"] == "ready"
    assert time_tool["parameters"]["properties"]["timezone"]["type"] == "string"
    assert "timezone" in time_tool["description"]
    assert tools["gated__stats"]["requires_approval"] is True
    assert tools["docs__stats"]["requires_approval"] is False
    assert time_tool["requires_approval"] is False
    servers = {server["name"]: server for server in body["mcp_servers"]}
    assert servers["time"]["transport"] == "stdio"
    assert servers["docs"]["transport"] == "http"
    assert servers["broken"]["state"] == "failed"
    assert servers["broken"]["error"]
    assert servers["broken"]["tools"] == 0


def test_a_server_killed_mid_call_then_the_next_call_succeeds(rt: Runtime, mark_dir: Path) -> None:
    first = ask(rt, "mcp-pid-1", "flaky__pid", {})[1]["metadata"]["result"]["result"]
    outcome: list = []
    thread = threading.Thread(
        target=lambda: outcome.extend(ask(rt, "mcp-killed", "flaky__hang", {"seconds": 300}))
    )
    thread.start()
    mark = mark_dir / f"hang-{first}"
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mark.exists(), "the call never reached the server"
    os.kill(first, signal.SIGKILL)
    thread.join(timeout=60)
    assert "MCP server 'flaky'" in outcome[1]["metadata"]["error"]
    assert outcome[-1]["is_final"] is True  # the turn went on
    second = ask(rt, "mcp-pid-2", "flaky__pid", {})[1]["metadata"]
    assert "error" not in second
    assert second["result"]["result"] != first


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_no_stdio_server_outlives_the_worker(
    runtime_factory, devllm: DevLLM, transactional_db: None, stop: str
) -> None:  # type: ignore[no-untyped-def]
    # --linger: this server would stay 120 s after its stdin closes if nothing stopped it.
    config = {
        "mcpServers": {
            "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
            "slow": mcp_stdio_config("--linger", "120"),
        }
    }
    rt = runtime_factory(mcp_servers=json.dumps(config))
    assert rt.client.get("/agent/tools").status_code == 200  # opens both sessions
    children = child_pids(rt.process.pid)
    assert len(children) == 2
    assert all(pid_running(pid) for pid in children)
    if stop == "terminate":
        rt.stop()  # SIGTERM: the lifespan shutdown closes the sessions
    else:
        rt.process.kill()  # SIGKILL: no shutdown at all; the servers die with their parent
        rt.process.wait()
    deadline = time.monotonic() + 30
    while any(pid_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if pid_running(pid)]
    if stop == "terminate":  # closed by the worker itself, not only by dying with it
        assert "MCP server slow closed" in rt.log_text()


def test_a_server_configured_for_approval_has_its_calls_wait(rt: Runtime) -> None:
    events = ask(rt, "mcp-gated", "gated__stats", {"numbers": [1, 2, 3]})
    call, final = events[0], events[-1]
    assert [e["type"] for e in events] == ["tool_call", "tool_call"]  # no result: it waits
    assert call["metadata"]["approval"] == "required"
    assert final["metadata"]["awaiting_approval"] == [call["metadata"]["call_id"]]
