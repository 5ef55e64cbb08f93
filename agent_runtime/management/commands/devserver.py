"""``manage.py devserver``: the whole service on its embedded defaults, for a first look.

Applies migrations (SQLite by default), starts the development LLM, and serves the runtime
with uvicorn on port 8001. Development only: it turns DEBUG on and takes any variable that
neither the environment nor ``.env`` sets from ``.env.example``.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent_runtime.http_protocol import HTTP_PROTOCOL


class Command(BaseCommand):
    help = "Run migrations, the development LLM and the runtime (port 8001) together."
    requires_system_checks: list[str] = []  # it supplies development values first

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--llm-port", type=int, default=8002)
        parser.add_argument(
            "--no-llm",
            action="store_true",
            help="Do not start the development LLM; use AGENT_RUNTIME__LLM_PROXY_URL as set.",
        )
        parser.add_argument(
            "--web-chat",
            action="store_true",
            help="Also serve examples/web-chat (Vite, port 5173; runs `npm ci` there first).",
        )

    def handle(self, *args: object, **options: object) -> None:
        child_env = dict(os.environ)
        child_env.update(_example_values(Path(settings.BASE_DIR) / ".env.example", child_env))
        child_env["AGENT_RUNTIME__DEBUG"] = "true"
        # Before anything starts: a server left on a port would answer the health checks below.
        _require_free(str(options["host"]), options["port"], "--port")  # type: ignore[arg-type]
        if not options["no_llm"]:
            _require_free("127.0.0.1", options["llm_port"], "--llm-port")  # type: ignore[arg-type]
        children: list[subprocess.Popen[bytes]] = []
        interrupted = False
        # A process manager, `docker stop` or an IDE stops it with SIGTERM (a closed terminal:
        # SIGHUP), sent to this process alone: the children must be stopped from here.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write(
                self.style.SUCCESS(f"Database ready: {settings.DATABASES['default']['NAME']}")
            )
            if not options["no_llm"]:
                llm_port = int(options["llm_port"])  # type: ignore[call-overload]
                child_env["AGENT_RUNTIME__LLM_PROXY_URL"] = f"http://127.0.0.1:{llm_port}"
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "devllm", "--port", str(llm_port)], env=child_env
                    )
                )
                _wait_for(f"http://127.0.0.1:{llm_port}/health", children[-1])
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "agent_runtime.asgi:application",
                        "--host",
                        str(options["host"]),
                        "--port",
                        str(options["port"]),
                        "--no-access-log",
                        "--lifespan",
                        "on",
                        "--http",
                        HTTP_PROTOCOL,
                    ],
                    env=child_env,
                )
            )
            _wait_for(f"http://{options['host']}:{options['port']}/health", children[-1])
            key = child_env.get("AGENT_RUNTIME__INTERNAL_API_KEY", "")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Agent Runtime on http://{options['host']}:{options['port']} "
                    f"(X-Internal-Auth: {key}). Ctrl-C stops it."
                )
            )
            if options["web_chat"]:
                child_env["AGENT_RUNTIME_URL"] = f"http://{options['host']}:{options['port']}"
                children.append(_web_chat(Path(settings.BASE_DIR), child_env))
                port = child_env.get("WEB_CHAT_PORT", "5173")
                self.stdout.write(self.style.SUCCESS(f"Web chat on http://127.0.0.1:{port}"))
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            gone = next(child for child in children if child.poll() is not None)
            raise CommandError(f"{_describe_exit(gone)}; stopping.")
        except KeyboardInterrupt:
            interrupted = True  # the terminal sent SIGINT to the children too
        except _Stop:
            pass
        finally:
            _stop(children, interrupted=interrupted)


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def _describe_exit(child: "subprocess.Popen[bytes]") -> str:
    """``devllm (PID 12) exited with status 1``, or ``... was killed by SIGSEGV``."""
    args = list(child.args)  # type: ignore[arg-type]
    name = f"{args[2] if args[1:2] == ['-m'] else 'web chat'} (PID {child.pid})"
    code = child.returncode
    if code is not None and code < 0:
        return f"{name} was killed by {signal.Signals(-code).name}"
    return f"{name} exited with status {code}"


def _web_chat(base_dir: Path, env: dict[str, str]) -> "subprocess.Popen[bytes]":
    """The example chat page's Vite dev server; its proxy adds the key for the browser."""
    directory = base_dir / "examples" / "web-chat"
    if not (directory / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, check=True)
    vite = directory / "node_modules" / "vite" / "bin" / "vite.js"
    return subprocess.Popen(["node", str(vite)], cwd=directory, env=env)


def _stop(children: "list[subprocess.Popen[bytes]]", *, interrupted: bool) -> None:
    """Stop the children gracefully, with one signal each.

    Ctrl-C in a terminal already sent them SIGINT (``interrupted``); a second signal would
    make uvicorn skip its graceful shutdown (and the lifespan step that closes the upstream
    client), so give them a moment to finish on their own before sending SIGTERM.
    """
    # A second Ctrl-C or SIGTERM (or uv forwarding the first one again) must not cut this
    # short and leave children running.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    deadline = time.monotonic() + (2 if interrupted else 0)
    while time.monotonic() < deadline and any(c.poll() is None for c in children):
        time.sleep(0.1)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def _example_values(example: Path, env: dict[str, str]) -> dict[str, str]:
    """``KEY=value`` lines of ``.env.example`` that ``env`` does not set yet."""
    values: dict[str, str] = {}
    if not example.exists():
        return values
    for line in example.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            if key not in env:
                values[key.strip()] = value.strip()
    return values


def _require_free(host: str, port: int, option: str) -> None:
    """Stop here, naming the port and its holder, when something listens on ``host:port``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: connections of an earlier server in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    holder = _listener(port)
    raise CommandError(
        f"Port {port} on {host} is not free ({reason})"
        + (f": {holder} is listening on it" if holder else "")
        + f". Stop it, or choose another port with {option}."
    )


def _listener(port: int) -> str | None:
    """``PID 123 (command line)`` of the process listening on TCP ``port``, when the OS tells
    (Linux's /proc, for processes this user may inspect); else None."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the inode.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets.add(f"socket:[{fields[9]}]")
    for process in Path("/proc").iterdir() if sockets else ():
        if not process.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (process / "fd").iterdir()):
                command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                return f"PID {process.name} ({command.strip()[:200]})"
        except OSError:
            continue
    return None


def _wait_for(url: str, child: "subprocess.Popen[bytes]", timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CommandError(_describe_exit(child))
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"{url} did not answer within {timeout:.0f}s")
