"""AGENT_RUNTIME__MCP_SERVERS: the mcpServers shape, and misconfiguration stopping start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent_runtime.checks import settings_problems
from streaming.tools.mcp_config import mcp_servers_parse
from streaming.tools.registry import SettingsToolRegistry, reset_tool_registry
from tests.servers import BASE_DIR

CLAUDE_DESKTOP = {
    "mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
        "docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}},
    }
}


def test_inline_json_in_the_claude_desktop_shape() -> None:
    servers = mcp_servers_parse(json.dumps(CLAUDE_DESKTOP))
    assert servers["time"].transport == "stdio"
    assert (servers["time"].command, servers["time"].args) == ("uvx", ["mcp-server-time"])
    assert servers["time"].env == {"TZ": "UTC"}
    assert servers["docs"].transport == "http"
    assert servers["docs"].headers == {"Authorization": "Bearer x"}
    assert servers["docs"].requires_approval is False


def test_a_file_path_and_vs_codes_servers_key(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"servers": {"git": {"type": "stdio", "command": "git-mcp"}}}))
    assert list(mcp_servers_parse(str(path))) == ["git"]


def test_per_server_options() -> None:
    servers = mcp_servers_parse(
        json.dumps(
            {
                "mcpServers": {
                    "a": {"command": "a", "allowed_tools": ["x"], "timeout": 5},
                    "b": {"command": "b", "approval": "required"},
                    "c": {"command": "c", "requires_approval": True},
                    "d": {"command": "d", "approval": "never", "disabled": False},
                }
            }
        )
    )
    assert (servers["a"].allowed_tools, servers["a"].timeout) == (["x"], 5)
    assert [servers[n].requires_approval for n in "bcd"] == [True, True, False]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "invalid JSON"),
        ("/nowhere/mcp.json", "cannot read the file '/nowhere/mcp.json'"),
        ('{"mcpServers": {"x": {"args": []}}}', 'give either "command"'),
        ('{"mcpServers": {"x": {"command": "a", "url": "http://h/mcp"}}}', 'give either "command"'),
        ('{"mcpServers": {"x": {"url": "ftp://h"}}}', "http(s) URL"),
        ('{"mcpServers": {"x": {"command": "a", "timeout": 0}}}', "timeout"),
        ('{"mcpServers": {"x y": {"command": "a"}}}', "server name 'x y'"),
        ('{"mcpServers": {"a__b": {"command": "a"}}}', "server name 'a__b'"),
        ('{"tools": {}}', 'no "mcpServers"'),
    ],
)
def test_misconfiguration_says_what_to_fix(value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="AGENT_RUNTIME__MCP_SERVERS") as info:
        mcp_servers_parse(value)
    assert message in str(info.value)


def test_the_registry_check_reports_it(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MCP_SERVERS = '{"mcpServers": {"x": {}}}'
    try:
        assert any("AGENT_RUNTIME__MCP_SERVERS" in p for p in settings_problems())
        with pytest.raises(ImproperlyConfigured):
            SettingsToolRegistry()
    finally:
        reset_tool_registry()


def test_the_server_refuses_to_start_with_a_broken_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        AGENT_RUNTIME__INTERNAL_API_KEY="a-real-key-0123456789abcdef",
        AGENT_RUNTIME__SECRET_KEY="a-real-secret-0123456789abcdef0123456789",
        AGENT_RUNTIME__MCP_SERVERS='{"mcpServers": {"time": {"args": ["x"]}}}',
        DJANGO_SETTINGS_MODULE="agent_runtime.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import agent_runtime.asgi"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AGENT_RUNTIME__MCP_SERVERS: mcpServers.time" in result.stderr
    assert 'give either "command"' in result.stderr
