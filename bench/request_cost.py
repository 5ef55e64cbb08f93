"""CPU per request of Django's request cycle, in process: ``uv run python -m bench.request_cost``.

Calls ``agent_runtime.asgi``'s application directly (no server, no socket) for two requests
that touch neither the database nor the model: ``GET /openapi.json`` (a cached body, no key
needed) and ``POST /agent/message/stream`` without the key (refused by the middleware). Each
is timed as served, and again with one part of the request cycle put back as Django has it,
to show what each part costs: Django's ``request_started`` receivers, and Django's own
middleware listed in ``MIDDLEWARE`` (each hook through a thread hop). CPU is the process's
(every thread), ÷ requests; rounds alternate between the variants.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.procs import BENCH_KEY

os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "agent_runtime.settings",
        "AGENT_RUNTIME__DEBUG": "false",
        "AGENT_RUNTIME__INTERNAL_API_KEY": BENCH_KEY,
        "AGENT_RUNTIME__SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789abcdef",
        "AGENT_RUNTIME__LOG_LEVEL": "WARNING",
    }
)

#: The middleware as Django lists them by default: every hook of these through a thread hop.
DJANGO_LISTED = [
    "agent_runtime.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "agent_runtime.middleware.CorsMiddleware",
    "agent_runtime.middleware.ErrorJsonMiddleware",
    "agent_runtime.middleware.InternalAuthMiddleware",
    "agent_runtime.middleware.RequestBodyMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

REQUESTS = {
    "GET /openapi.json": ("GET", "/openapi.json", []),
    "POST stream, no key (401)": (
        "POST",
        "/agent/message/stream",
        [(b"content-type", b"application/json"), (b"content-length", b"2")],
    ),
}


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }
    sent: list[bytes] = [b"{}" if method == "POST" else b""]
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    status = 0

    async def receive() -> dict[str, Any]:
        if sent:
            return {"type": "http.request", "body": sent.pop(), "more_body": False}
        await never  # the client stays until the response task ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    never.cancel()
    return status


async def cpu_us_per_request(app: Any, request: tuple[str, str, list], n: int) -> float:
    for _ in range(50):
        await call(app, *request)
    started = time.process_time()
    for _ in range(n):
        await call(app, *request)
    return (time.process_time() - started) / n * 1e6


def variants() -> dict[str, tuple[Any, Callable[[], None], Callable[[], None]]]:
    """name → (application, set up, tear down)."""
    from django.core.signals import request_started
    from django.db import close_old_connections, reset_queries
    from django.test.utils import override_settings

    from agent_runtime.asgi import application
    from agent_runtime.handler import RuntimeASGIHandler
    from agent_runtime.lifespan import Lifespan

    with override_settings(MIDDLEWARE=DJANGO_LISTED):
        listed = RuntimeASGIHandler()

    async def listed_application(scope: Any, receive: Any, send: Any) -> None:
        await listed(scope, receive, send)

    def connect() -> None:
        request_started.connect(close_old_connections)
        request_started.connect(reset_queries)

    def disconnect() -> None:
        request_started.disconnect(close_old_connections)
        request_started.disconnect(reset_queries)

    def nothing() -> None:
        pass

    listed_app = Lifespan(listed_application)
    return {
        "as served": (application, nothing, nothing),
        "+ request_started receivers": (application, connect, disconnect),
        "+ Django's middleware listed": (listed_app, nothing, nothing),
        "+ both (Django's defaults)": (listed_app, connect, disconnect),
    }


async def main(rounds: int, n: int) -> None:
    import django

    django.setup()
    cases = variants()
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for request_name, request in REQUESTS.items():
            for name, (app, set_up, tear_down) in cases.items():
                set_up()
                try:
                    assert await call(app, *request) in (200, 401)
                    value = await cpu_us_per_request(app, request, n)
                finally:
                    tear_down()
                results.setdefault((request_name, name), []).append(value)
    print(f"| request | {' | '.join(cases)} |")
    print("|---|" + "---|" * len(cases))
    for request_name in REQUESTS:
        cells = [f"{statistics.median(results[(request_name, name)]):.0f}" for name in cases]
        print(f"| {request_name} | " + " | ".join(cells) + " |")
    print(f"(µs of CPU per request, median of {rounds} rounds of {n} requests)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.rounds, args.requests))
