"""The container's entry point, run outside Docker: ``migrate`` then ``serve``."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import BASE_DIR, free_port, wait_until_up

pytestmark = pytest.mark.e2e

ENTRYPOINT = BASE_DIR / "docker" / "entrypoint.sh"
KEY = "entrypoint-key-0123456789abcdef"


def _env(database: Path, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENT_RUNTIME__") and k not in ("PROMETHEUS_MULTIPROC_DIR",)
    }
    env.update(
        {
            # The image puts its virtual environment first on PATH; so does this.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "AGENT_RUNTIME__DATABASE_URL": f"sqlite:///{database}",
            "AGENT_RUNTIME__INTERNAL_API_KEY": KEY,
            "AGENT_RUNTIME__SECRET_KEY": "entrypoint-secret-0123456789abcdef0123456789abcdef",
            "AGENT_RUNTIME__LOG_FORMAT": "json",
        }
    )
    env.update({f"AGENT_RUNTIME__{k.upper()}": v for k, v in settings.items()})
    return env


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrate_applies_the_migrations_and_exits(tmp_path: Path) -> None:
    database = tmp_path / "runtime.sqlite3"
    result = subprocess.run(
        [str(ENTRYPOINT), "migrate"],
        env=_env(database),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert {"agent_sessions_session", "agent_sessions_message", "django_migrations"} <= _tables(
        database
    )
    with sqlite3.connect(database) as db:
        applied = {row[0] for row in db.execute("SELECT app FROM django_migrations")}
    assert "agent_sessions" in applied


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path, Path]]:
    database = tmp_path / "fresh.sqlite3"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(ENTRYPOINT), "serve"],
            env=_env(database, port=str(port), workers="2"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,  # the script finds the project by its own path
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/health", process, log, timeout=60)
        yield url, process, log, database
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serve_answers_health_with_workers_and_never_migrates(served) -> None:  # type: ignore[no-untyped-def]
    url, process, log, database = served
    [serving] = [json.loads(line) for line in log.read_text().splitlines() if '"serving"' in line]
    assert serving["workers"] == 2
    metrics_dir = Path(serving["metrics_dir"])

    # Each new connection goes to either worker; a worker writes its metric files once it has
    # answered a request. Ask until both have.
    answered = 1  # the start-up probe
    deadline = time.monotonic() + 60
    while len(_writers(metrics_dir)) < 2 and time.monotonic() < deadline:
        response = httpx.get(url + "/health")
        assert response.status_code == 200
        assert response.headers["X-Request-ID"]
        answered += 1
    assert len(_writers(metrics_dir)) == 2
    # Serving never changes the schema: that is the explicit migrate step.
    assert "django_migrations" not in _tables(database)

    # /metrics adds up both workers' counts, whichever answered each request.
    metrics = httpx.get(url + "/metrics", headers={"X-Internal-Auth": KEY})
    assert metrics.status_code == 200
    count = f'agent_runtime_http_requests_total{{method="GET",status="200"}} {float(answered)}'
    assert count in metrics.text.splitlines()

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    text = log.read_text()
    for line in filter(str.strip, text.splitlines()):
        assert isinstance(json.loads(line), dict), line  # every line is one JSON object
    # Its workers share their metrics: no start-up warning that they do not.
    assert "manage.py serve --workers N" not in text
    assert KEY not in text
    assert not metrics_dir.exists()  # the temporary directory went with the server


def _writers(metrics_dir: Path) -> set[str]:
    """The pids that wrote metric files (``<kind>_<pid>.db``)."""
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("*.db")}


def test_serve_refuses_a_placeholder_key(tmp_path: Path) -> None:
    env = _env(tmp_path / "db.sqlite3", internal_api_key="your-internal-key", port=str(free_port()))
    result = subprocess.run(
        [str(ENTRYPOINT), "serve"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder" in result.stderr


def test_other_commands_run_as_given(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ENTRYPOINT), "python", "-c", "import os; print(os.getcwd())"],
        env=_env(tmp_path / "db.sqlite3"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == BASE_DIR
