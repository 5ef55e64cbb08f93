"""Redis for the tests: the one already running on 127.0.0.1:6379, or a private one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.servers import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"
START_SHARED = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
)


def _require(reason: str) -> None:
    if os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail(f"REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


def shared_redis_url() -> str:
    """The Redis on 127.0.0.1:6379 (``.ci/run`` starts it); skips the test when it is down."""
    try:
        redis.Redis.from_url(SHARED_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        _require(f"Redis is not running on 127.0.0.1:6379: start it with `{START_SHARED}`")
    return SHARED_URL


class PrivateRedis:
    """A redis-server of the test's own, which the test may stop (never the shared one)."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            _require("redis-server is missing: `apt-get install redis-server`")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
