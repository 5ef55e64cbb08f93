"""Runs' event logs: ``uv run python -m bench resume [--streams 50] [--window 8] [--runs 1]``.

1. Added latency: two runtimes (one worker each) on one database and one Redis. Each stream is
   posted to the first and followed, by ``GET /agent/sessions/{id}/stream``, through the other;
   for every event both get live, the time the resumed reader got it minus the time the
   POST's own reader got it: p50 and p99.
2. CPU per token at ``--streams`` concurrent streams (closed loop): the runtime's CPU seconds
   over the tokens it relayed in the window, with the in-process broker and with Redis; and
   Redis's own CPU per token beside it.

``--runs N`` repeats both, off and on interleaved, and prints each figure's median and range;
``--baseline DIR`` measures another checkout's runtime (e.g. main's) with Redis on too, in the
same runs, for a before/after on a noisy machine.

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
import sys
import tempfile
import time
import urllib.error
import urllib.request
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
    runtime_env,
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


async def latency(first: str, other: str, streams: int, other_pid: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        session_ids = [f"lat-{uuid.uuid4().hex[:10]}" for _ in range(streams)]
        cpu_before = cpu_seconds(other_pid)
        results = await asyncio.gather(
            *(post_turn(http, first, s) for s in session_ids),
            *(follow(http, other, s) for s in session_ids),
        )
        cpu = cpu_seconds(other_pid) - cpu_before
    added: list[float] = []
    for posted, (connected, resumed) in zip(results[:streams], results[streams:], strict=True):
        # Only events produced after the reader joined: the ones it got live, not replayed.
        added += [(resumed[i] - at) * 1000 for i, at in posted.items() if at > connected + 0.05]
    added.sort()
    resumed_events = sum(len(resumed) for _, resumed in results[streams:])
    return {
        # The resuming worker's CPU over the events its readers got (the first worker's too
        # when both are one).
        "reader_us_per_event": cpu / resumed_events * 1e6,
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


def start_baseline(
    checkout: Path, scratch: Path, pinning: Pinning, *, db_url: str, llm_url: str, redis_url: str
) -> Server:
    """A runtime from another checkout's code (this one's interpreter), on the runtime's core."""
    port = free_port()
    log = scratch / f"baseline-{port}.log"
    env = runtime_env(db_url, llm_url, {"AGENT_RUNTIME__REDIS_URL": redis_url})
    command = [*pinning.prefix(pinning.server), sys.executable, "-m"]
    command += ["uvicorn", "agent_runtime.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--lifespan", "off", "--no-access-log"]
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=checkout
        )
    server = Server("baseline", f"http://127.0.0.1:{port}", process, log)
    for _ in range(600):
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2):
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None:
                break
            time.sleep(0.1)
    raise RuntimeError(f"the baseline did not come up:\n{log.read_text()[-3000:]}")


def spread(values: list[float], unit: str, digits: int = 1) -> str:
    """Median [min to max] of the runs."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} {unit} [{low:.{digits}f} to {high:.{digits}f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--latency-streams", type=int, default=10)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument(
        "--runs", type=int, default=1, help="repetitions, off and on interleaved in each"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout's code (main's), also with Redis on"
    )
    args = parser.parse_args(argv)
    pinning = Pinning.detect()
    pinning.pin_self()
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-bench-resume-"))
    db_url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    migrate(db_url, scratch / "migrate.log")
    servers: list[Server] = []
    redis, redis_url = start_redis(pinning, scratch)
    rows: list[dict[str, Any]] = []
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

        # All started first, then measured in turn: an idle runtime takes no CPU.
        plain = runtime()
        first, other = runtime(redis_url=redis_url), runtime(redis_url=redis_url)
        arms = {"this": (first, other)}
        if args.baseline:
            started = [
                start_baseline(
                    args.baseline,
                    scratch,
                    pinning,
                    db_url=db_url,
                    llm_url=devllm.url,
                    redis_url=redis_url,
                )
                for _ in range(2)
            ]
            servers += started
            arms = {"baseline": (started[0], started[1]), **arms}
        for run in range(args.runs):
            row: dict[str, Any] = {"load": os.getloadavg()[0]}
            off = asyncio.run(
                cpu_per_token(plain.url, {"runtime": plain.pid}, args.streams, args.window)
            )
            row["off"] = off["runtime_us_per_token"]
            # The floor: the same streams resumed on the worker that runs them, in process.
            row["floor"] = asyncio.run(
                latency(plain.url, plain.url, args.latency_streams, plain.pid)
            )
            for name, (writer, reader) in arms.items():
                pids = {"runtime": writer.pid, "redis": redis.pid}
                on = asyncio.run(cpu_per_token(writer.url, pids, args.streams, args.window))
                lat = asyncio.run(latency(writer.url, reader.url, args.latency_streams, reader.pid))
                row[name] = {
                    "on": on["runtime_us_per_token"],
                    "ratio": on["runtime_us_per_token"] / row["off"],
                    "redis": on["redis_us_per_token"],
                    **lat,
                }
            rows.append(row)
            print(f"run {run + 1}: {row}", flush=True)
    finally:
        for server in servers:
            server.stop()
        redis.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nRuns' event logs, {args.streams} streams x 256 tokens at 10 ms (pinning {pinning})")
    print(f"  {args.runs} runs; median [min to max] of the runs")
    print(f"  machine load average (1 min) at each run's start: {[r['load'] for r in rows]}")
    print(f"  CPU per token, in-process broker: {spread([r['off'] for r in rows], 'us')}")
    floors = [r["floor"] for r in rows]
    print(
        f"    floor: added latency resuming on the same worker, in process: "
        f"p50 {spread([f['p50_ms'] for f in floors], 'ms', 2)}, "
        f"p99 {spread([f['p99_ms'] for f in floors], 'ms', 2)}"
    )
    for name in arms:
        label = f"Redis broker ({name})" if args.baseline else "Redis broker"
        got = [r[name] for r in rows]
        print(f"  CPU per token, {label}: {spread([g['on'] for g in got], 'us')}")
        print(f"    ratio to in-process: {spread([g['ratio'] for g in got], 'x', 2)}")
        print(f"    Redis itself: {spread([g['redis'] for g in got], 'us')}")
        print(
            f"    added latency to a resumed reader on the other worker "
            f"({sum(g['events'] for g in got)} events, {args.latency_streams} streams per run): "
            f"p50 {spread([g['p50_ms'] for g in got], 'ms', 2)}, "
            f"p99 {spread([g['p99_ms'] for g in got], 'ms', 2)}"
        )
        print(
            f"    the resuming worker's CPU per event it sent: "
            f"{spread([g['reader_us_per_event'] for g in got], 'us')}"
        )
