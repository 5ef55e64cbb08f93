"""One log line per request, however the server is started; none for probes at INFO."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import BASE_DIR, free_port, wait_until_up

pytestmark = pytest.mark.e2e

KEY = "request-log-key-0123456789abcdef"


def _uvicorn(port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "agent_runtime.asgi:application",
        "--port",
        str(port),
        *args,
    ]


@pytest.mark.timeout(300)  # a server start on a busy machine, then three requests
@pytest.mark.parametrize(
    "command",
    [
        # The container's entry point (it tells uvicorn access_log=False).
        lambda port: [sys.executable, "manage.py", "serve", "--port", str(port)],
        # The README's production command: uvicorn with its defaults.
        lambda port: _uvicorn(port),
        # As devserver and the bench run it.
        lambda port: _uvicorn(port, "--no-access-log"),
    ],
    ids=["serve", "uvicorn", "uvicorn-no-access-log"],
)
def test_one_line_per_request_and_none_for_health_probes(tmp_path: Path, command) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="agent_runtime.settings",
        AGENT_RUNTIME__DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        AGENT_RUNTIME__INTERNAL_API_KEY=KEY,
        AGENT_RUNTIME__SECRET_KEY="request-log-secret-0123456789abcdef0123456789",
        AGENT_RUNTIME__LOG_LEVEL="INFO",
        AGENT_RUNTIME__LOG_FORMAT="json",
    )
    log = tmp_path / "server.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command(port), env=env, cwd=BASE_DIR, stdout=handle, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", process, log, timeout=120)
        for _ in range(3):
            assert httpx.get(url + "/health").status_code == 200
        answer = httpx.get(url + "/no/such/path", headers={"X-Internal-Auth": KEY})
        assert answer.status_code == 404
        # The request's line is written before the response is sent; wait for it anyway.
        deadline = time.monotonic() + 30
        while "/no/such/path" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)

    lines = log.read_text().splitlines()
    about_request = [line for line in lines if "/no/such/path" in line]
    assert len(about_request) == 1, lines
    assert '"logger":"agent_runtime.requests"' in about_request[0]
    assert [line for line in lines if "/health" in line] == []
    assert [line for line in lines if "uvicorn.access" in line] == []
