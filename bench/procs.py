"""Processes of a benchmark: the development LLM and the runtime, pinned to cores with taskset.

Also the two readings every figure rests on: a process's CPU time (utime + stime from
``/proc/<pid>/stat``, all threads) and its resident memory (``VmRSS``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_KEY = "bench-internal-key-3f9a7c1e5b2d"


def cpu_times(pid: int) -> tuple[float, float]:
    """utime and stime of a whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        data = handle.read()
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (every thread), in seconds."""
    return sum(cpu_times(pid))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def contention() -> dict[str, float]:
    """How busy the machine is (other users' work skews latency figures): the load average
    and, where the kernel has it, the share of time some task waited for a CPU (PSI)."""
    found: dict[str, float] = {"loadavg_1m": os.getloadavg()[0]}
    try:
        with open("/proc/pressure/cpu") as handle:
            some = handle.readline().split()
        found["cpu_pressure_some_avg10"] = float(some[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Pinning:
    """Which core each side runs on; ``None`` when taskset or a second core is missing."""

    server: str | None
    others: str | None

    @classmethod
    def detect(cls) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if shutil.which("taskset") is None or len(cores) < 2:
            return cls(None, None)
        return cls(str(cores[0]), ",".join(str(c) for c in cores[1:]))

    def prefix(self, cores: str | None) -> list[str]:
        return ["taskset", "-c", cores] if cores else []

    def pin_self(self) -> None:
        """Keep the orchestrator (and so the load client it starts) off the server's core."""
        if self.others:
            os.sched_setaffinity(0, {int(c) for c in self.others.split(",")})


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None


def _wait_up(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited ({server.process.returncode}):\n"
                + server.log.read_text()[-3000:]
            )
        try:
            with urllib.request.urlopen(server.url + path, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not come up:\n{server.log.read_text()[-3000:]}")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=BASE_DIR
        )


def start_devllm(scratch: Path, pinning: Pinning, *, token_delay_ms: float, tokens: int) -> Server:
    port = free_port()
    log = scratch / f"devllm-{port}.log"
    args = [
        *pinning.prefix(pinning.others),
        sys.executable,
        "-m",
        "devllm",
        "--port",
        str(port),
        "--token-delay-ms",
        str(token_delay_ms),
        "--tokens",
        str(tokens),
    ]
    server = Server("devllm", f"http://127.0.0.1:{port}", _spawn(args, os.environ.copy(), log), log)
    _wait_up(server, "/health")
    return server


def runtime_env(db_url: str, llm_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "agent_runtime.settings",
            "AGENT_RUNTIME__DEBUG": "false",
            "AGENT_RUNTIME__INTERNAL_API_KEY": BENCH_KEY,
            "AGENT_RUNTIME__SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789abcdef",
            "AGENT_RUNTIME__DATABASE_URL": db_url,
            "AGENT_RUNTIME__LLM_PROXY_URL": llm_url,
        }
    )
    env.update(extra or {})
    return env


def uvicorn_command(python: str, app: str, port: int) -> list[str]:
    """One uvicorn worker of ``app`` on ``port`` (no supervisor, so its pid is the server's)."""
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--lifespan",
        "off",
        # As ``manage.py serve``: the runtime writes its own request log line instead.
        "--no-access-log",
    ]


def _start_uvicorn(
    name: str, app: str, scratch: Path, pinning: Pinning, env: dict[str, str], args: list[str]
) -> Server:
    """One uvicorn worker (no supervisor process, so its pid is the server's), on its own core."""
    port = free_port()
    log = scratch / f"{name}-{port}.log"
    command = [*pinning.prefix(pinning.server), *uvicorn_command(sys.executable, app, port), *args]
    server = Server(name, f"http://127.0.0.1:{port}", _spawn(command, env, log), log)
    _wait_up(server, "/health")
    return server


def start_runtime(
    scratch: Path,
    pinning: Pinning,
    *,
    db_url: str,
    llm_url: str,
    uvicorn_args: list[str],
    extra_env: dict[str, str] | None = None,
) -> Server:
    env = runtime_env(db_url, llm_url, extra_env)
    return _start_uvicorn(
        "runtime", "agent_runtime.asgi:application", scratch, pinning, env, uvicorn_args
    )


def start_floor(
    scratch: Path, pinning: Pinning, *, llm_url: str, upstream_body: bytes, uvicorn_args: list[str]
) -> Server:
    """``bench.floor_relay`` under the same uvicorn command and core as the runtime."""
    env = {**os.environ, "FLOOR_LLM_URL": llm_url, "FLOOR_UPSTREAM_BODY": upstream_body.decode()}
    return _start_uvicorn("floor", "bench.floor_relay:app", scratch, pinning, env, uvicorn_args)


def migrate(db_url: str, log: Path) -> None:
    """``manage.py migrate`` on the scratch database."""
    env = runtime_env(db_url, "http://127.0.0.1:1")
    with log.open("ab") as handle:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            env=env,
            cwd=BASE_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )


def start_mcp_http(scratch: Path, pinning: Pinning) -> Server:
    """``bench/mcp_server.py`` over Streamable HTTP (endpoint ``<url>/mcp``)."""
    port = free_port()
    log = scratch / f"mcp-http-{port}.log"
    args = [
        *pinning.prefix(pinning.others),
        sys.executable,
        str(BASE_DIR / "bench" / "mcp_server.py"),
        "--port",
        str(port),
    ]
    server = Server(
        "mcp-http", f"http://127.0.0.1:{port}", _spawn(args, os.environ.copy(), log), log
    )
    # Its endpoint answers a plain GET with an error status: wait for the port instead.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.alive():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the MCP server did not come up:\n{log.read_text()[-3000:]}")
