"""``manage.py devserver``: its children stop with it, and a taken port stops it first."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import BASE_DIR

DEADLINE = 120  # seconds; generous, for a busy machine

# Each test starts (at most) two servers and waits for each: more than the suite's default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * DEADLINE)]


def _two_free_ports() -> tuple[int, int]:
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return first.getsockname()[1], second.getsockname()[1]


def _devserver(tmp_path: Path, port: int, llm_port: int) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "devserver",
        "--port",
        str(port),
        "--llm-port",
        str(llm_port),
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="agent_runtime.settings",
        AGENT_RUNTIME__DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    return env


def _wait(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {DEADLINE}s")
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    """The PIDs of the processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, list[int]]]:
    """A devserver that is up, its log, and its two ports."""
    ports = list(_two_free_ports())
    log = tmp_path / "devserver.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            _devserver(tmp_path, *ports),
            env=_env(tmp_path),
            cwd=BASE_DIR,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(
            lambda: "Agent Runtime on" in log.read_text() or process.poll() is not None,
            "devserver did not start",
        )
        assert process.poll() is None, log.read_text()
        yield process, log, ports
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_devserver_stops_its_children_and_frees_the_ports(
    running: tuple[subprocess.Popen[bytes], Path, list[int]], signum: int
) -> None:
    process, log, ports = running
    children = _children(process.pid)
    assert len(children) == 2, children  # the development LLM and uvicorn

    process.send_signal(signum)  # to devserver alone, as a process manager sends it

    process.wait(timeout=DEADLINE)
    _wait(lambda: all(_gone(pid) for pid in children), "the children did not stop")
    _wait(lambda: all(_free(port) for port in ports), "the ports were not freed")
    assert "Traceback" not in log.read_text()


def test_a_child_that_dies_is_named_with_its_exit_status(
    running: tuple[subprocess.Popen[bytes], Path, list[int]],
) -> None:
    process, log, ports = running
    children = _children(process.pid)
    [llm] = [pid for pid in children if b"devllm" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    [runtime] = [pid for pid in children if pid != llm]
    os.kill(llm, signal.SIGKILL)

    process.wait(timeout=DEADLINE)
    assert f"devllm (PID {llm}) was killed by SIGKILL; stopping." in log.read_text()
    _wait(lambda: _gone(runtime), "uvicorn did not stop")
    _wait(lambda: all(_free(port) for port in ports), "the ports were not freed")


@pytest.mark.parametrize("taken", ["--port", "--llm-port"])
def test_a_taken_port_stops_it_before_anything_starts(tmp_path: Path, taken: str) -> None:
    port, llm_port = _two_free_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port if taken == "--port" else llm_port))
        holder.listen()
        held = holder.getsockname()[1]
        result = subprocess.run(
            _devserver(tmp_path, port, llm_port),
            env=_env(tmp_path),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
    assert result.returncode != 0
    assert f"Port {held} on 127.0.0.1 is not free" in result.stderr
    # This test's process holds it, and the OS says so.
    assert f"PID {os.getpid()} (" in result.stderr
    assert f"choose another port with {taken}" in result.stderr
    assert "Agent Runtime on" not in result.stdout
    assert not (tmp_path / "db.sqlite3").exists()  # nothing ran, not even the migrations
