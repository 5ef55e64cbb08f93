"""The AI SDK and AG-UI endpoints, consumed by those protocols' own clients (``tests/clients``).

A Node project runs the Vercel AI SDK's ``DefaultChatTransport`` + ``readUIMessageStream`` and
``@ag-ui/client``'s ``HttpAgent`` against the live runtime and development LLM started here:
text, a server tool, a client tool round trip, an upstream error, a cancel and regenerate;
and, against a runtime whose tools need approval, ``HttpAgent`` answering AG-UI interrupts.
Its packages come from ``tests/clients/package-lock.json``: ``npm ci`` there (``.ci/run`` does
it; so does this test the first time). Without Node or the packages it fails, it never skips.
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import E2E_KEY
from tests.servers import DevLLM, Runtime, node_project_ready

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).resolve().parent.parent / "clients"


def node_tests(runtime: Runtime, devllm: DevLLM, *files: str) -> str:
    """Run the Node tests (``files``, else the default ``test/`` ones): their TAP output."""
    node = node_project_ready(CLIENTS)
    env = {
        **os.environ,
        "RUNTIME_URL": runtime.url,
        "RUNTIME_KEY": E2E_KEY,
        "DEVLLM_URL": devllm.url,
        "SUPPRESS_TRANSFORMATION_WARNINGS": "true",
    }
    result = subprocess.run(
        [node, "--test", "--test-concurrency=1", *files],
        cwd=CLIENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout
    return result.stdout


def test_the_protocols_own_clients_read_our_streams(runtime: Runtime, devllm: DevLLM) -> None:
    node_tests(runtime, devllm)


def test_http_agent_answers_tool_approvals(approval_runtime: Runtime, devllm: DevLLM) -> None:
    """``approval/ag-ui.mjs``: approve, deny and a mixed step through ``HttpAgent``."""
    out = node_tests(approval_runtime, devllm, "approval/ag-ui.mjs")
    assert "# pass 3" in out
