"""200 turns with random client disconnects: nothing leaks, everything is stored."""

import contextlib
import os
import random
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.db import connection

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime
from tests.sse import iter_frames

pytestmark = pytest.mark.e2e

CONCURRENCY = 20


def fd_targets(pid: int) -> list[str]:
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return sorted(targets)


def open_fds(pid: int) -> tuple[int, int]:
    """(descriptors other than SQLite's database file, SQLite database file descriptors).

    SQLite keeps the descriptor of a closed connection open while another connection of the
    process holds a lock on the same file (POSIX locks are per process), and reuses it for
    the next connection: their number is bounded by the peak of concurrent connections, not
    by the number of requests, so it is checked separately.
    """
    database = connection.settings_dict["NAME"] if connection.vendor == "sqlite" else None
    targets = fd_targets(pid)
    sqlite = sum(1 for t in targets if database and t == str(database))
    return len(targets) - sqlite, sqlite


def database_connections() -> int:
    """Connections to the test database from other processes (PostgreSQL), else 0."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def turn(runtime: Runtime, session_id: str, stop_after: int | None) -> None:
    with (
        httpx.Client(
            base_url=runtime.url, headers={"X-Internal-Auth": runtime.key}, timeout=30
        ) as client,
        client.stream(
            "POST", "/agent/message/stream", json={"session_id": session_id, "content": "soak"}
        ) as response,
    ):
        assert response.status_code == 200
        frames = iter_frames(response)
        for i, _ in enumerate(frames):
            if stop_after is not None and i >= stop_after:
                break  # leaving the block closes the connection mid-stream


def run_batch(runtime: Runtime, prefix: str, count: int, rng: random.Random) -> None:
    plans = [rng.choice([None, rng.randint(0, 15)]) for _ in range(count)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda i: turn(runtime, f"{prefix}-{i}", plans[i]), range(count)))


def settle(devllm: DevLLM, timeout: float = 30.0) -> None:
    """Wait until every upstream stream ended and no turn holds a lease."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upstream_open = [s for s in devllm.streams() if s["finished_at"] is None]
        running = Session.objects.filter(active_turn_id__isnull=False).count()
        if not upstream_open and not running:
            return
        time.sleep(0.05)
    stuck = list(Session.objects.filter(active_turn_id__isnull=False).values())
    rows = list(
        Message.objects.filter(session__active_turn_id__isnull=False).values(
            "session__session_id", "seq", "role", "status", "content"
        )
    )
    raise AssertionError(f"still running: {upstream_open} upstream, {stuck} {rows}")


def upstream_connections(pid: int, port: int) -> int:
    """The process's TCP sockets to ``port`` (the development LLM), in any state."""
    inodes = {t[len("socket:[") : -1] for t in fd_targets(pid) if t.startswith("socket:[")}
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                count += remote_port == port and fields[9] in inodes
    return count


def quiesce(devllm: DevLLM, runtime: Runtime, timeout: float = 60.0) -> None:
    """Wait, with no traffic, until the runtime holds no connection to the development LLM:
    idle ones go after the 5 s keep-alive expiry. Then one more turn, so that both counts
    include the one pooled connection it leaves. What stays open after this is held."""
    settle(devllm)
    deadline = time.monotonic() + timeout
    while upstream_connections(runtime.process.pid, urlsplit(devllm.url).port):
        assert time.monotonic() < deadline, "idle upstream connections were never closed"
        time.sleep(0.2)
    touch(devllm, runtime)


def touch(devllm: DevLLM, runtime: Runtime) -> None:
    """One more turn, once everything before it has ended."""
    settle(devllm)
    turn(runtime, f"touch-{time.monotonic_ns()}", None)
    settle(devllm)


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether ``check()`` holds within ``timeout`` seconds (a leak never lets it)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_soak_with_random_disconnects_leaks_nothing(
    runtime_factory, devllm: DevLLM, transactional_db: None
) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory()
    pid = runtime.process.pid
    # 40 tokens over a second: a client that leaves early leaves while the model still writes.
    devllm.configure(tokens=40, token_delay_ms=25, record_limit=2000)
    rng = random.Random(20261125)
    try:
        run_batch(runtime, "warm", CONCURRENCY * 2, rng)
        quiesce(devllm, runtime)
        (fds_before, _), db_before = open_fds(pid), database_connections()

        run_batch(runtime, "soak", 200, rng)
        quiesce(devllm, runtime)
        # What the turns opened is closed as they end, if not at once: wait for it, and
        # fail only on what stays open.
        eventually(lambda: open_fds(pid)[0] <= fds_before and database_connections() <= db_before)
        (fds_after, sqlite_after), db_after = open_fds(pid), database_connections()
    finally:
        devllm.configure(tokens=None, token_delay_ms=0, record_limit=1000)

    sockets = subprocess.run(["ss", "-tanpe"], capture_output=True, text=True).stdout
    mine = [line for line in sockets.splitlines() if f"pid={pid}," in line]
    assert fds_after <= fds_before, "\n".join(map(str, (fds_before, fds_after, *mine)))
    if connection.vendor == "postgresql":
        assert db_after <= db_before, (db_before, db_after)  # no database connection leaked
    else:
        # SQLite has no server to count connections on; their file descriptors are bounded
        # by the peak of concurrent turns instead.
        assert sqlite_after <= CONCURRENCY + 2  # one per concurrent turn, plus the cancel watcher
    soak = Message.objects.filter(session__session_id__startswith="soak-")
    assert soak.filter(role="user").count() == 200
    assistants = soak.filter(role="assistant")
    assert assistants.count() == 200
    statuses = set(assistants.values_list("status", flat=True))
    assert statuses <= {"complete", "interrupted"}
    assert "interrupted" in statuses
    assert "complete" in statuses
    streams = devllm.streams()
    assert all(s["finished_at"] is not None for s in streams)
    assert sum(1 for s in streams if s["disconnected_at"]) >= 50  # the aborts reached the model
