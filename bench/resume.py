"""Runs' event logs: ``uv run python -m bench resume [--streams 50] [--window 8]``.

1. Added latency: two runtimes (one worker each) on one database and one Redis. Each stream is
   posted to the first and followed, by ``GET /agent/sessions/{id}/stream``, through the other;
   for every event both get live, the time the resumed reader got it minus the time the
   POST's own reader got it: p50 and p99.
2. CPU per token at ``--streams`` concurrent streams (closed loop): the runtime's CPU seconds
   over the tokens it relayed in the window, with the in-process broker and with Redis; and
   Redis's own CPU per token beside it.

The development LLM sends 256 tokens, 10 ms apart. The runtime is pinned to one core; the
LLM, Redis and this client to the others. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import (
    BENCH_KEY,
    Pinning,
    Server,
    cpu_seconds,
    free_port,
    migrate,
    start_devllm,
    start_runtime,
)

HEADERS = {"X-Internal-Auth": BENCH_KEY}


def start_redis(pinning: Pinning, scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [*pinning.prefix(pinning.others), "redis-server", "--port", str(port)]
    command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(scratch)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout:
            return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


async def events_of(response: aiohttp.ClientResponse) -> Any:
    """``(id, arrival time)`` of each event, until ``[DONE]``."""
    event_id = None
    async for line in response.content:
        if line.startswith(b"id: "):
            event_id = int(line[4:])
        elif line.startswith(b"data: "):
            if line.startswith(b"data: [DONE]"):
                return
            yield event_id, time.perf_counter()


async def post_turn(http: aiohttp.ClientSession, url: str, session_id: str) -> dict[int, float]:
    body = {"session_id": session_id, "content": "go"}
    async with http.post(url + "/agent/message/stream", json=body, headers=HEADERS) as response:
        return {event_id: at async for event_id, at in events_of(response)}


async def follow(http: aiohttp.ClientSession, url: str, session_id: str) -> tuple[float, dict]:
    """Resume through ``url`` once the turn runs: when it connected, and its events."""
    while True:
        async with http.get(
            f"{url}/agent/sessions/{session_id}/stream", headers=HEADERS
        ) as response:
            if response.status == 200:
                connected = time.perf_counter()
                return connected, {event_id: at async for event_id, at in events_of(response)}
        await asyncio.sleep(0.005)


async def latency(first: str, other: str, streams: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        session_ids = [f"lat-{uuid.uuid4().hex[:10]}" for _ in range(streams)]
        results = await asyncio.gather(
            *(post_turn(http, first, s) for s in session_ids),
            *(follow(http, other, s) for s in session_ids),
        )
    added: list[float] = []
    for posted, (connected, resumed) in zip(results[:streams], results[streams:], strict=True):
        # Only events produced after the reader joined: the ones it got live, not replayed.
        added += [(resumed[i] - at) * 1000 for i, at in posted.items() if at > connected + 0.05]
    added.sort()
    return {
        "events": len(added),
        "p50_ms": statistics.median(added),
        "p99_ms": added[int(len(added) * 0.99) - 1],
    }


async def cpu_per_token(url: str, pids: dict[str, int], streams: int, window: float) -> dict:
    tokens = 0
    measuring = False

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal tokens
        while True:
            body = {"session_id": f"cpu-{uuid.uuid4().hex[:10]}", "content": "go"}
            url_ = url + "/agent/message/stream"
            async with http.post(url_, json=body, headers=HEADERS) as response:
                assert response.status == 200, await response.text()
                async for _ in events_of(response):
                    tokens += measuring

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        tasks = [asyncio.create_task(client(http)) for _ in range(streams)]
        await asyncio.sleep(3)  # warm up
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        measuring = True
        await asyncio.sleep(window)
        measuring = False
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "tokens": tokens,
        **{f"{name}_us_per_token": (after[name] - before[name]) / tokens * 1e6 for name in pids},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--latency-streams", type=int, default=10)
    parser.add_argument("--window", type=float, default=8.0)
    args = parser.parse_args(argv)
    pinning = Pinning.detect()
    pinning.pin_self()
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-bench-resume-"))
    db_url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    migrate(db_url, scratch / "migrate.log")
    servers: list[Server] = []
    redis, redis_url = start_redis(pinning, scratch)
    try:
        devllm = start_devllm(scratch, pinning, token_delay_ms=10, tokens=256)
        servers.append(devllm)

        def runtime(**env: str) -> Server:
            extra = {f"AGENT_RUNTIME__{k.upper()}": v for k, v in env.items()}
            server = start_runtime(
                scratch, pinning, db_url=db_url, llm_url=devllm.url, uvicorn_args=[],
                extra_env=extra,
            )  # fmt: skip
            servers.append(server)
            return server

        plain = runtime()
        pids = {"runtime": plain.pid}
        off = asyncio.run(cpu_per_token(plain.url, pids, args.streams, args.window))
        plain.stop()
        first, other = runtime(redis_url=redis_url), runtime(redis_url=redis_url)
        pids = {"runtime": first.pid, "redis": redis.pid}
        on = asyncio.run(cpu_per_token(first.url, pids, args.streams, args.window))
        lat = asyncio.run(latency(first.url, other.url, args.latency_streams))
    finally:
        for server in servers:
            server.stop()
        redis.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    ratio = on["runtime_us_per_token"] / off["runtime_us_per_token"]
    print(f"\nRuns' event logs, {args.streams} streams x 256 tokens at 10 ms (pinning {pinning})")
    print(f"  machine load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print(f"  CPU per token, in-process broker: {off['runtime_us_per_token']:.1f} us")
    print(
        f"  CPU per token, Redis broker:      {on['runtime_us_per_token']:.1f} us "
        f"({ratio:.2f}x), plus Redis itself {on['redis_us_per_token']:.1f} us"
    )
    print(
        f"  added latency to a resumed reader on the other worker ({lat['events']} events, "
        f"{args.latency_streams} streams): p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms"
    )
