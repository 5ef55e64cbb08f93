"""The AI SDK and AG-UI endpoints, consumed by those protocols' own clients (``tests/clients``).

A Node project runs the Vercel AI SDK's ``DefaultChatTransport`` + ``readUIMessageStream`` and
``@ag-ui/client``'s ``HttpAgent`` against the live runtime and development LLM started here:
text, a server tool, a client tool round trip, an upstream error, a cancel and regenerate.
Its packages come from ``tests/clients/package-lock.json`` (``npm ci`` in ``tests/clients``;
``.ci/run`` does it). Without them this test fails, it does not skip: the clients are the proof.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import E2E_KEY
from tests.servers import DevLLM, Runtime

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).resolve().parent.parent / "clients"


def test_the_protocols_own_clients_read_our_streams(runtime: Runtime, devllm: DevLLM) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is not installed: install Node 20 or later (`apt-get install nodejs`)."
        )
    if not (CLIENTS / "node_modules" / "ai").is_dir():
        pytest.fail(
            "The client packages are not installed: run `npm ci` in tests/clients "
            "(REQUIRED: this test does not skip)."
        )
    env = {
        **os.environ,
        "RUNTIME_URL": runtime.url,
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
