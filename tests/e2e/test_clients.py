"""The AI SDK and AG-UI endpoints, consumed by those protocols' own clients (``tests/clients``).

A Node project runs the Vercel AI SDK's ``DefaultChatTransport`` + ``readUIMessageStream`` and
``@ag-ui/client``'s ``HttpAgent`` against the live runtime and development LLM started here:
text, a server tool, a client tool round trip, an upstream error, a cancel, regenerate, resume,
and (on a second runtime that asks for approval) tool approval.
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


#: The tools of the runtime that asks for approval: ``guarded`` always asks, the setting adds
#: the calculator (as in tests/e2e/test_tool_approval.py).
APPROVAL_TOOLS = ",".join(
    [
        "streaming.tools.builtin.echo",
        "streaming.tools.builtin.calculator",
        "streaming.tools.builtin.read_file",
        "tests.tools.guarded",
    ]
)


@pytest.fixture(scope="module")
def approval_runtime(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(tools=APPROVAL_TOOLS, tools_requiring_approval="calc*")


def test_the_protocols_own_clients_read_our_streams(
    runtime: Runtime, approval_runtime: Runtime, devllm: DevLLM
) -> None:
    node = node_project_ready(CLIENTS)
    env = {
        **os.environ,
        "RUNTIME_URL": runtime.url,
        "APPROVAL_RUNTIME_URL": approval_runtime.url,
        "RUNTIME_KEY": E2E_KEY,
        "DEVLLM_URL": devllm.url,
        "SUPPRESS_TRANSFORMATION_WARNINGS": "true",
    }
    result = subprocess.run(
        [node, "--test", "--test-concurrency=1"],
        cwd=CLIENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout
